package gdpm_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metrics is one scrape of GET /metrics: metric name, then the labels of
// one series as "k=v,k=v" (sorted, as the exposition has them), to value.
type metrics map[string]map[string]float64

// scrape reads m's /metrics with token and parses the text format.
func scrape(t testing.TB, m *gdpm.Master, token string) metrics {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+m.HTTPAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics is not the Prometheus text format: %v", err)
	}
	out := metrics{}
	for name, f := range fams {
		out[name] = map[string]float64{}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := s.GetGauge().GetValue() + s.GetCounter().GetValue() + s.GetUntyped().GetValue()
			if h := s.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out[name][strings.Join(labels, ",")] = v
		}
	}
	return out
}

// get returns the value of one series; ok is false when it is missing.
func (ms metrics) get(name, labels string) (v float64, ok bool) {
	v, ok = ms[name][labels]
	return v, ok
}

func (ms metrics) must(t testing.TB, name, labels string) float64 {
	t.Helper()
	v, ok := ms.get(name, labels)
	if !ok {
		t.Fatalf("no series %s{%s}; have %v", name, labels, ms[name])
	}
	return v
}

// waitMetric polls m's metrics until cond holds for the value of the series.
func waitMetric(t testing.TB, m *gdpm.Master, token, name, labels string, cond func(float64) bool) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%s{%s}", name, labels), func() (bool, string) {
		v, ok := scrape(t, m, token).get(name, labels)
		return ok && cond(v), fmt.Sprint(v, " present=", ok)
	})
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func atLeast(min float64) func(float64) bool {
	return func(v float64) bool { return v >= min }
}

func TestMetricsFollowTheCluster(t *testing.T) {
	const tok = "metrics-token"
	c := newCluster(t, clusterOpts{slaves: 2, token: tok})
	m := c.master()

	// Behind the token like every route but /healthz.
	if code, _, body := c.do("GET", "/metrics", "", "", "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics with a wrong token: %d %s", code, body)
	}
	waitMetric(t, m, tok, "gdpm_is_leader", "", eq(1))
	ms := scrape(t, m, tok)
	if v := ms.must(t, "gdpm_nodes", "status=online"); v != 2 {
		t.Errorf("gdpm_nodes{online} = %v, want 2", v)
	}
	if v := ms.must(t, "gdpm_services", ""); v != 0 {
		t.Errorf("gdpm_services = %v before any service, want 0", v)
	}
	for _, st := range []string{"running", "pending", "assigned", "backoff", "exited", "failed", "stopping"} {
		if v := ms.must(t, "gdpm_instances", "state="+st); v != 0 {
			t.Errorf("gdpm_instances{%s} = %v before any service, want 0", st, v)
		}
	}
	ms.must(t, "gdpm_etcd_errors_total", "")
	if v := ms.must(t, "gdpm_etcd_up", ""); v != 1 {
		t.Errorf("gdpm_etcd_up = %v, want 1", v)
	}
	placed0 := ms.must(t, "gdpm_scheduler_placements_total", "")
	latency0 := ms.must(t, "gdpm_scheduler_latency_seconds", "")

	id := c.create(sleepCmd(), 3)
	pids := c.waitRunning(id, 3)
	waitMetric(t, m, tok, "gdpm_instances", "state=running", eq(3))
	ms = scrape(t, m, tok)
	if v := ms.must(t, "gdpm_services", ""); v != 1 {
		t.Errorf("gdpm_services = %v, want 1", v)
	}
	if v := ms.must(t, "gdpm_scheduler_placements_total", ""); v < placed0+3 {
		t.Errorf("gdpm_scheduler_placements_total went from %v to %v for 3 instances", placed0, v)
	}
	if v := ms.must(t, "gdpm_scheduler_transactions_total", ""); v < 1 {
		t.Errorf("gdpm_scheduler_transactions_total = %v", v)
	}
	if v := ms.must(t, "gdpm_scheduler_written_bytes_total", ""); v <= 0 {
		t.Errorf("gdpm_scheduler_written_bytes_total = %v", v)
	}
	if v := ms.must(t, "gdpm_scheduler_latency_seconds", ""); v <= latency0 {
		t.Errorf("gdpm_scheduler_latency_seconds has %v observations after a create, had %v", v, latency0)
	}
	// The route pattern, not the path, labels the requests.
	c.do("GET", "/service/no-such-id/", "", "")
	c.do("GET", "/no/such/route", "", "")
	ms = scrape(t, m, tok)
	for _, series := range []string{
		"code=200,method=POST,route=/service",
		"code=200,method=GET,route=/service/:id",
		"code=404,method=GET,route=/service/:id",
		"code=401,method=GET,route=/metrics",
		"code=404,method=other,route=other",
	} {
		if v := ms.must(t, "gdpm_api_requests_total", series); v < 1 {
			t.Errorf("gdpm_api_requests_total{%s} = %v", series, v)
		}
	}
	for labels := range ms["gdpm_api_requests_total"] {
		if strings.Contains(labels, id) || strings.Contains(labels, "no-such-id") {
			t.Errorf("a request series is labelled with a path: %s", labels)
		}
	}

	// A crash shows in the restarts.
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, m, tok, "gdpm_instance_restarts", "", atLeast(1))

	// A standby serves the same cluster gauges and is not the leader.
	m2 := c.addMaster()
	ms2 := scrape(t, m2, tok)
	if v := ms2.must(t, "gdpm_is_leader", ""); v != 0 {
		t.Errorf("standby gdpm_is_leader = %v, want 0", v)
	}
	if v := ms2.must(t, "gdpm_services", ""); v != 1 {
		t.Errorf("standby gdpm_services = %v, want 1", v)
	}
	if v := ms2.must(t, "gdpm_scheduler_placements_total", ""); v != 0 {
		t.Errorf("standby gdpm_scheduler_placements_total = %v, want 0: it never scheduled", v)
	}
	ms2.must(t, "gdpm_master_info", "id="+m2.ID()+",version="+gdpm.Version)

	if err := c.client.DeleteService(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, m, tok, "gdpm_services", "", eq(0))
	waitMetric(t, m, tok, "gdpm_instances", "state=running", eq(0))
}

func TestMetricsCountEtcdErrors(t *testing.T) {
	// Nothing listens on port 1: every etcd call fails.
	m, err := gdpm.NewMaster(gdpm.MasterConfig{
		Endpoints: []string{"http://127.0.0.1:1"},
		HTTPAddr:  "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		RequestTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	resp, err := http.Get("http://" + m.HTTPAddr() + "/service/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /service/ without etcd: %s, want 503", resp.Status)
	}
	ms := scrape(t, m, "")
	if v := ms.must(t, "gdpm_etcd_errors_total", ""); v < 1 {
		t.Errorf("gdpm_etcd_errors_total = %v after a 503", v)
	}
	if v := ms.must(t, "gdpm_etcd_up", ""); v != 0 {
		t.Errorf("gdpm_etcd_up = %v without etcd, want 0", v)
	}
	if _, ok := ms.get("gdpm_services", ""); ok {
		t.Errorf("gdpm_services reported without etcd")
	}
	if v := ms.must(t, "gdpm_api_requests_total", "code=503,method=GET,route=/service"); v != 1 {
		t.Errorf("gdpm_api_requests_total{503} = %v, want 1", v)
	}
}
