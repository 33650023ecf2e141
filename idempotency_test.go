package gdpm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

func TestIdempotencyKeyRetryReturnsTheSameService(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	const js = "application/json"
	body := `{"Command":"true once","InstanceNum":0}`
	code, hdr, id := c.do("POST", "/service/", js, body, "Idempotency-Key", "k-1")
	if code != http.StatusOK || hdr.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first create: %d %s %v", code, id, hdr)
	}
	rev := c.etcdRev()
	// The same request in another form and key order is the same request.
	for _, retry := range []struct{ ctype, body string }{
		{js, body},
		{js, `{"InstanceNum":0,"Command":"true once"}`},
		{"application/x-www-form-urlencoded", "Command=true+once&InstanceNum=0"},
	} {
		code, hdr, got := c.do("POST", "/service/", retry.ctype, retry.body, "Idempotency-Key", "k-1")
		if code != http.StatusOK || got != id || hdr.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry %q: %d %q %v, want 200 with the first id %s", retry.body, code, got, hdr, id)
		}
	}
	if after := c.etcdRev(); after != rev {
		t.Errorf("retries wrote to etcd: revision %d -> %d", rev, after)
	}
	// The key with another request is a conflict, and changes nothing.
	code, _, msg := c.do("POST", "/service/", js, `{"Command":"true other"}`, "Idempotency-Key", "k-1")
	if code != http.StatusConflict || !strings.Contains(msg, "already used for another request") || !strings.Contains(msg, id) {
		t.Errorf("key reused for another request: %d %s, want 409 naming the first service", code, msg)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "has space", "tab\tkey"} {
		if code, _, msg := c.do("POST", "/service/", js, body, "Idempotency-Key", bad); code != http.StatusBadRequest || !strings.Contains(msg, "Idempotency-Key") {
			t.Errorf("Idempotency-Key %q: %d %s, want 400", bad, code, msg)
		}
	}
	if after := c.etcdRev(); after != rev {
		t.Errorf("refused creates wrote to etcd: revision %d -> %d", rev, after)
	}
	list, err := c.client.Services(ctxT(t))
	if err != nil || len(list) != 1 {
		t.Fatalf("services %+v %v, want exactly one", list, err)
	}
	// The key lives on a lease of at least 24 hours.
	ttl := c.idempotencyKeyTTL()
	if ttl < int64(gdpm.IdempotencyKeyTTL/time.Second) {
		t.Errorf("Idempotency-Key kept for %ds, want at least %v", ttl, gdpm.IdempotencyKeyTTL)
	}
}

// etcd stalls (as under SIGSTOP) while a create is on its way: the master
// cannot know whether it was applied, says so with 504, and the retry with
// the same key then answers the one service there is (issue 10 item 5).
func TestIdempotentCreateDuringEtcdStallMakesOneService(t *testing.T) {
	etcd, err := gdpm.StartEmbeddedEtcd(context.Background(), gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	px := newTCPProxy(t, strings.TrimPrefix(etcd.Endpoints()[0], "http://"))
	c := newCluster(t, clusterOpts{slaves: 0, endpoints: []string{"http://" + px.addr()},
		master: func(cfg *gdpm.MasterConfig) { cfg.RequestTimeout = time.Second }})
	// A first keyed create makes the master's lease for keys.
	if code, _, body := c.do("POST", "/service/", "application/json", `{"Command":"true warm","InstanceNum":0}`, "Idempotency-Key", "warm"); code != http.StatusOK {
		t.Fatalf("warm-up create: %d %s", code, body)
	}
	px.setStall(true)
	body := `{"Command":"true stalled","InstanceNum":0}`
	code, _, msg := c.do("POST", "/service/", "application/json", body, "Idempotency-Key", "k-stall")
	if code != http.StatusGatewayTimeout || !strings.Contains(msg, "may or may not have been applied") {
		t.Fatalf("create while etcd stalls: %d %s, want 504 saying the outcome is unknown", code, msg)
	}
	// The Go client retries on its own with its own key, across the stall.
	answers := &countingTransport{next: http.DefaultTransport}
	cl, err := gdpm.NewClient(gdpm.ClientConfig{Addr: "http://" + c.master().HTTPAddr(), HTTPClient: &http.Client{Transport: answers}, Retries: 10})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		id, err := cl.CreateService(ctx, gdpm.CreateRequest{Command: "true client"})
		done <- result{id, err}
	}()
	waitFor(t, 20*time.Second, "the client's first create answered during the stall", func() (bool, string) {
		n := answers.count.Load()
		return n > 0, fmt.Sprint(n)
	})
	px.setStall(false)

	// The retry finds whatever the stalled create did.
	var id string
	waitFor(t, 20*time.Second, "the retry answered", func() (bool, string) {
		code, _, id = c.do("POST", "/service/", "application/json", body, "Idempotency-Key", "k-stall")
		return code == http.StatusOK, fmt.Sprint(code, " ", id)
	})
	r := <-done
	if r.err != nil {
		t.Fatalf("client create across the stall: %v", r.err)
	}
	list, err := c.client.Services(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	ids := map[string]string{}
	for _, s := range list {
		count[s.Command]++
		ids[s.Command] = s.ID
	}
	if count["true stalled"] != 1 || count["true client"] != 1 || len(list) != 3 {
		t.Fatalf("services after the stall: %+v, want exactly one of each", list)
	}
	if ids["true stalled"] != id || ids["true client"] != r.id {
		t.Errorf("ids answered %s and %s, stored %v", id, r.id, ids)
	}
}

// countingTransport counts the answers it passes on.
type countingTransport struct {
	next  http.RoundTripper
	count atomic.Int64
}

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := ct.next.RoundTrip(r)
	if err == nil {
		ct.count.Add(1)
	}
	return resp, err
}

// The client does not retry what a retry cannot mend.
func TestClientDoesNotRetryRefusals(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	_, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{Command: " "})
	if !errors.Is(err, gdpm.ErrBadRequest) {
		t.Fatalf("empty command: %v, want ErrBadRequest", err)
	}
}
