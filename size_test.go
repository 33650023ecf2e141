package gdpm_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestBigEnvManyInstancesSchedules is issue 10's case as it was found: a
// 13,000-byte environment variable and 128 instances. Every placement
// copied the spec, so each scheduler transaction went over etcd's request
// limit and nothing was scheduled any more, this service nor any other.
func TestBigEnvManyInstancesSchedules(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 2})
	n := 128
	big, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{
		Command: "sleep 1000", InstanceNum: &n,
		Env: map[string]string{"BLOB": strings.Repeat("x", 13000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	small := c.create("sleep 1000", 2)
	c.waitRunning(small, 2)
	c.waitRunning(big, n)
}

// atLimitSpec is a spec exactly at MaxSpecBytes, with its command at
// MaxCommandBytes and one Env value at MaxEnvValueBytes.
func atLimitSpec(t testing.TB) gdpm.CreateRequest {
	t.Helper()
	cmd := "exec sleep 1000 #"
	cmd += strings.Repeat("x", gdpm.MaxCommandBytes-len(cmd))
	spec := gdpm.Spec{Command: cmd, Env: map[string]string{"B0": strings.Repeat("y", gdpm.MaxEnvValueBytes), "B1": ""}}
	b, _ := json.Marshal(spec)
	spec.Env["B1"] = strings.Repeat("z", gdpm.MaxSpecBytes-len(b))
	if b, _ = json.Marshal(spec); len(b) != gdpm.MaxSpecBytes {
		t.Fatalf("spec is %d bytes, want %d", len(b), gdpm.MaxSpecBytes)
	}
	return gdpm.CreateRequest{Command: spec.Command, Env: spec.Env}
}

// TestSpecAtSizeLimitSchedules: the largest spec the API takes, 128 times,
// runs everywhere, and a scale places more without restarting the others
// (the assignments name the spec; they do not copy it).
func TestSpecAtSizeLimitSchedules(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 2})
	req := atLimitSpec(t)
	n := 128
	req.InstanceNum = &n
	id, err := c.client.CreateService(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	pids := c.waitRunning(id, n)
	if err := c.client.ScaleService(ctxT(t), id, n+2); err != nil {
		t.Fatal(err)
	}
	after := c.waitRunning(id, n+2)
	for _, p := range pids {
		if !slices.Contains(after, p) {
			t.Fatalf("pid %d of before the scale is gone: a scale restarted an instance", p)
		}
	}
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Command != req.Command || d.Env["B1"] != req.Env["B1"] || d.SchedError != "" {
		t.Fatalf("the service does not read back as created (SchedError %q)", d.SchedError)
	}
}

func etcdRev(t testing.TB, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(ctxT(t), "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// TestSpecOverSizeLimitRefused: every size limit answers 413 naming the
// limit, and nothing is written.
func TestSpecOverSizeLimitRefused(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cli := etcdClient(t, c.eps, nil)
	body := func(req gdpm.CreateRequest) string {
		b, _ := json.Marshal(req)
		return string(b)
	}
	cases := []struct {
		name, ctype, body, limit string
	}{
		{"command", "application/json", body(gdpm.CreateRequest{Command: "sleep 1 #" + strings.Repeat("x", gdpm.MaxCommandBytes)}), "MaxCommandBytes"},
		{"command form", "application/x-www-form-urlencoded",
			url.Values{"Command": {"sleep 1 #" + strings.Repeat("x", gdpm.MaxCommandBytes)}}.Encode(), "MaxCommandBytes"},
		{"700 KB command", "application/json", body(gdpm.CreateRequest{Command: "sleep 1 #" + strings.Repeat("x", 700<<10)}), "MaxCommandBytes"},
		{"env name", "application/json", body(gdpm.CreateRequest{Command: "sleep 1", Env: map[string]string{strings.Repeat("N", gdpm.MaxEnvNameBytes+1): "v"}}), "MaxEnvNameBytes"},
		{"env value", "application/json", body(gdpm.CreateRequest{Command: "sleep 1", Env: map[string]string{"V": strings.Repeat("v", gdpm.MaxEnvValueBytes+1)}}), "MaxEnvValueBytes"},
		{"env total", "application/json", body(gdpm.CreateRequest{Command: "sleep 1", Env: map[string]string{
			"A": strings.Repeat("a", 30000), "B": strings.Repeat("b", 30000), "C": strings.Repeat("c", 30000)}}), "MaxEnvBytes"},
		{"dir", "application/json", body(gdpm.CreateRequest{Command: "sleep 1", Dir: "/" + strings.Repeat("d", gdpm.MaxDirBytes)}), "MaxDirBytes"},
		// Quotes double in JSON: under MaxCommandBytes, over MaxSpecBytes.
		{"whole spec", "application/json", body(gdpm.CreateRequest{Command: strings.Repeat(`"`, gdpm.MaxCommandBytes)}), "MaxSpecBytes"},
	}
	rev := etcdRev(t, cli)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, msg := c.do("POST", "/service/", tc.ctype, tc.body)
			if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, tc.limit) {
				t.Fatalf("got %d %s, want 413 naming %s", code, msg, tc.limit)
			}
			if len(msg) > 1024 {
				t.Fatalf("the error message is %d bytes: it must not echo the input", len(msg))
			}
		})
	}
	if after := etcdRev(t, cli); after != rev {
		t.Fatalf("etcd revision moved from %d to %d: a refused create wrote something", rev, after)
	}
}

// putServices writes service records straight into etcd in one
// transaction, as an operator or an old release could, bypassing the
// API's limits; the scheduler sees them in one change.
func putServices(t testing.TB, cli *clientv3.Client, svcs map[string]gdpm.Service) {
	t.Helper()
	var ops []clientv3.Op
	for id, s := range svcs {
		v, _ := json.Marshal(s)
		ops = append(ops, clientv3.OpPut(gdpm.DefaultPrefix+"services/"+id, string(v)))
	}
	if _, err := cli.Txn(ctxT(t)).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestUnplaceableServiceIsolated: a service whose placement etcd cannot
// take (an id of hundreds of KB, written behind the API's back) is
// reported on the service and in the events, and every other service,
// even one that came in the same change, is scheduled.
func TestUnplaceableServiceIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	for _, tc := range []struct {
		name      string
		idBytes   int
		txnBytes  int
		instances int
		want      string
	}{
		// Over TxnBytes: refused before it is sent.
		{"over TxnBytes", 150 << 10, 0, 3, "TxnBytes"},
		// Under a (too large) TxnBytes, over etcd's 1.5 MiB request limit
		// (the key and the service's compare are 800 KiB each): etcd
		// refuses it.
		{"refused by etcd", 800 << 10, 4 << 20, 1, "request is too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{slaves: 1, master: func(cfg *gdpm.MasterConfig) { cfg.TxnBytes = tc.txnBytes }})
			cli := etcdClient(t, c.eps, nil)
			events, err := c.client.Events(ctxT(t), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer events.Close()

			bad := strings.Repeat("b", tc.idBytes)
			good := uuid.NewString()
			now := time.Now().UTC()
			// The record holds its id when etcd can take both.
			badID := ""
			if tc.idBytes < 512<<10 {
				badID = bad
			}
			putServices(t, cli, map[string]gdpm.Service{
				bad:  {ID: badID, Spec: gdpm.Spec{Command: "sleep 1000"}, InstanceNum: tc.instances, CreatedAt: now},
				good: {ID: good, Spec: gdpm.Spec{Command: "sleep 1000"}, InstanceNum: 2, CreatedAt: now},
			})
			pids := c.waitRunning(good, 2)

			// The failure is in the events and on the service.
			for {
				ev, err := events.Next()
				if err != nil {
					t.Fatalf("no %s event: %v", gdpm.EventServiceUnschedulable, err)
				}
				if ev.Type == gdpm.EventServiceUnschedulable {
					if ev.Service != bad || !strings.Contains(ev.Message, tc.want) || len(ev.Message) > 2048 {
						t.Fatalf("event %s for a %d-byte service, message %q; want the bad service and %q", ev.Type, len(ev.Service), ev.Message, tc.want)
					}
					break
				}
			}
			list, err := c.client.Services(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range list {
				switch {
				case s.ID == good && s.SchedError != "":
					t.Fatalf("the good service reports %q", s.SchedError)
				case s.ID == bad && !strings.Contains(s.SchedError, tc.want):
					t.Fatalf("the bad service reports %q, want %q", logSafe(s.SchedError), tc.want)
				}
			}
			failed, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"sched/failed/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
			if err != nil {
				t.Fatal(err)
			}
			if len(failed.Kvs) != 1 || !strings.HasSuffix(string(failed.Kvs[0].Key), "/"+bad) {
				t.Fatalf("%d failure records, want the bad service's", len(failed.Kvs))
			}

			// Scheduling goes on: a scale and a new service are placed,
			// and a scale does not restart what runs.
			if err := c.client.ScaleService(ctxT(t), good, 3); err != nil {
				t.Fatal(err)
			}
			after := c.waitRunning(good, 3)
			for _, p := range pids {
				if !slices.Contains(after, p) {
					t.Fatalf("pid %d is gone after a scale up", p)
				}
			}
			c.waitRunning(c.create("sleep 1000", 2), 2)

			// The etcd error is not an outage.
			code, _, metrics := c.do("GET", "/metrics", "", "")
			if code != http.StatusOK || !strings.Contains(metrics, "\ngdpm_etcd_errors_total 0\n") {
				t.Fatalf("metrics: %d; want gdpm_etcd_errors_total 0 in:\n%s", code, grepLines(metrics, "gdpm_etcd"))
			}

			// Once the bad service is gone, so is its failure record.
			if _, err := cli.Delete(ctxT(t), gdpm.DefaultPrefix+"services/"+bad); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the failure record to go", func() (bool, string) {
				resp, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"sched/failed/", clientv3.WithPrefix(), clientv3.WithCountOnly())
				if err != nil {
					return false, err.Error()
				}
				return resp.Count == 0, fmt.Sprintf("%d records", resp.Count)
			})
		})
	}
}

func logSafe(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSchedulerTxnByteCap: with a small TxnBytes the placements of one
// service go in several transactions, none over the cap, and all land.
func TestSchedulerTxnByteCap(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 2, master: func(cfg *gdpm.MasterConfig) { cfg.TxnBytes = gdpm.MinTxnBytes }})
	cli := etcdClient(t, c.eps, nil)
	_, _, txns0, _ := c.master().SchedulerStats()
	n := 30
	id := c.create("sleep 1000", n)
	c.waitRunning(id, n)
	resp, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"assign/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	perTxn := map[int64]int{}
	total := 0
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "/"+id+"/") {
			perTxn[kv.ModRevision] += len(kv.Key) + len(kv.Value)
			total += len(kv.Key) + len(kv.Value)
		}
	}
	for rev, b := range perTxn {
		if b > gdpm.MinTxnBytes {
			t.Errorf("the transaction at revision %d wrote %d bytes of placements, over TxnBytes %d", rev, b, gdpm.MinTxnBytes)
		}
	}
	_, _, txns, _ := c.master().SchedulerStats()
	if want := total / gdpm.MinTxnBytes; len(perTxn) <= want || txns-txns0 <= int64(want) {
		t.Fatalf("%d placement bytes in %d transactions (%d counted); want more than %d", total, len(perTxn), txns-txns0, want)
	}
	t.Logf("%d instances: %d bytes of placements (%d a placement) in %d transactions", n, total, total/n, len(perTxn))
}

// TestSpecChangeRollsOut: an instance runs the spec of the record revision
// its assignment names. A record changed behind the API's back is a new
// version like any other: a scale in the same breath places the new
// instance with the new spec, and the rollout then replaces the old ones.
func TestSpecChangeRollsOut(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 1})
	cli := etcdClient(t, c.eps, nil)
	id := c.create("sleep 1000", 2)
	pids := c.waitRunning(id, 2)
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	d.Service.Command = "sleep 2000"
	d.Service.Rollout.MinReady = gdpm.Duration(200 * time.Millisecond)
	v, _ := json.Marshal(d.Service)
	if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"services/"+id, string(v)); err != nil {
		t.Fatal(err)
	}
	if err := c.client.ScaleService(ctxT(t), id, 3); err != nil {
		t.Fatal(err)
	}
	after := c.waitSettled(id, gdpm.ServiceRunning, 3)
	for _, p := range after {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")); got != "sleep 2000" {
			t.Errorf("pid %d runs %q, want sleep 2000", p, got)
		}
		if slices.Contains(pids, p) {
			t.Errorf("pid %d of the old spec survived the rollout", p)
		}
	}
}
