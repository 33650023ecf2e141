package gdpm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// eventLog reads an event stream in the background and keeps every event.
type eventLog struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []gdpm.Event
	err    error // why the stream ended
}

// openEvents opens cl's event stream (since as Client.Events takes it); the
// stream is open when it returns. Cleanup ends it.
func openEvents(t testing.TB, cl *gdpm.Client, since int64) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := cl.Events(ctx, since)
	if err != nil {
		cancel()
		t.Fatalf("open the event stream: %v", err)
	}
	l := &eventLog{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer s.Close()
		for {
			ev, err := s.Next()
			l.mu.Lock()
			if err != nil {
				l.err = err
				l.mu.Unlock()
				return
			}
			l.events = append(l.events, ev)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-l.done })
	return l
}

func (l *eventLog) snapshot() []gdpm.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]gdpm.Event(nil), l.events...)
}

// wait polls until cond holds for the events read so far.
func (l *eventLog) wait(t testing.TB, what string, cond func([]gdpm.Event) bool) []gdpm.Event {
	t.Helper()
	var evs []gdpm.Event
	waitFor(t, 20*time.Second, what, func() (bool, string) {
		evs = l.snapshot()
		return cond(evs), describe(evs)
	})
	return evs
}

// ended waits for the stream to end and returns why.
func (l *eventLog) ended(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(within):
		t.Fatalf("the event stream did not end within %v", within)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func describe(evs []gdpm.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %d %s svc=%.8s inst=%s node=%.8s pid=%d restarts=%d %s", e.Revision, e.Type, e.Service, e.Instance, e.Node, e.PID, e.Restarts, e.Message)
	}
	return b.String()
}

// match returns the events of type typ that pass every filter.
func match(evs []gdpm.Event, typ gdpm.EventType, filters ...func(gdpm.Event) bool) []gdpm.Event {
	var out []gdpm.Event
next:
	for _, e := range evs {
		if e.Type != typ {
			continue
		}
		for _, f := range filters {
			if !f(e) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

func ofService(id string) func(gdpm.Event) bool {
	return func(e gdpm.Event) bool { return e.Service == id }
}
func ofInstance(id string) func(gdpm.Event) bool {
	return func(e gdpm.Event) bool { return e.Instance == id }
}
func after(rev int64) func(gdpm.Event) bool {
	return func(e gdpm.Event) bool { return e.Revision > rev }
}

func TestEventsFollowTheCluster(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2})
	log := openEvents(t, c.client, 0)

	id := c.create(sleepCmd(), 2)
	c.waitRunning(id, 2)
	evs := log.wait(t, "service.created, 2 instance.placed, 2 instance.started", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventServiceCreated, ofService(id))) == 1 &&
			len(match(evs, gdpm.EventInstancePlaced, ofService(id))) == 2 &&
			len(match(evs, gdpm.EventInstanceStarted, ofService(id))) == 2
	})
	created := match(evs, gdpm.EventServiceCreated)[0]
	if created.InstanceNum == nil || *created.InstanceNum != 2 || created.Message != sleepCmd() {
		t.Errorf("service.created: %+v", created)
	}
	nodes := map[string]bool{}
	for _, p := range match(evs, gdpm.EventInstancePlaced, ofService(id)) {
		if p.Revision <= created.Revision {
			t.Errorf("instance placed at revision %d, before the service was created at %d", p.Revision, created.Revision)
		}
		s := match(evs, gdpm.EventInstanceStarted, ofInstance(p.Instance))
		if len(s) != 1 || s[0].Revision <= p.Revision || s[0].Node != p.Node || s[0].PID <= 0 {
			t.Errorf("instance %s placed on %s at %d; started: %+v", p.Instance, p.Node, p.Revision, s)
		}
		nodes[p.Node] = true
	}
	if len(nodes) != 2 {
		t.Errorf("2 instances on 2 nodes placed on %v", nodes)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Revision < evs[i-1].Revision {
			t.Fatalf("events out of revision order: %s", describe(evs))
		}
	}

	// A crash: the exit, then the restart.
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	victim := d.Instances[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	mark := evs[len(evs)-1].Revision
	evs = log.wait(t, "instance.exited then instance.restarted", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventInstanceRestarted, ofInstance(victim.ID), after(mark))) == 1
	})
	exited := match(evs, gdpm.EventInstanceExited, ofInstance(victim.ID), after(mark))
	restarted := match(evs, gdpm.EventInstanceRestarted, ofInstance(victim.ID), after(mark))[0]
	if len(exited) != 1 || exited[0].Revision > restarted.Revision {
		t.Fatalf("want one instance.exited before the restart: %s", describe(evs))
	}
	if code := exited[0].ExitCode; code != nil && *code != 128+int(syscall.SIGKILL) {
		t.Errorf("instance.exited ExitCode %d, want %d (SIGKILL)", *code, 128+int(syscall.SIGKILL))
	}
	if restarted.Restarts != 1 || restarted.PID == victim.PID || restarted.PID <= 0 || restarted.Node != victim.Node {
		t.Errorf("instance.restarted %+v; the killed pid was %d on %s", restarted, victim.PID, victim.Node)
	}

	// A slave leaves: its node goes, and its instance moves.
	gone := c.slaves[1]
	node := gone.NodeID()
	mark = evs[len(evs)-1].Revision
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	isNode := func(e gdpm.Event) bool { return e.Node == node }
	movedOff := func(e gdpm.Event) bool { return e.Node != node && strings.Contains(e.Message, node) }
	evs = log.wait(t, "node.left and the instance moved", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventNodeLeft, isNode)) == 1 &&
			len(match(evs, gdpm.EventInstancePlaced, ofService(id), movedOff, after(mark))) == 1
	})
	if lost := match(evs, gdpm.EventNodeLost, isNode); len(lost) != 0 {
		t.Errorf("a slave that closed was reported lost: %+v", lost)
	}
	moved := match(evs, gdpm.EventInstancePlaced, ofService(id), movedOff, after(mark))[0]
	log.wait(t, "the moved instance started", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventInstanceStarted, ofInstance(moved.Instance), after(moved.Revision))) == 1
	})

	// Scale and delete.
	if err := c.client.ScaleService(ctxT(t), id, 1); err != nil {
		t.Fatal(err)
	}
	evs = log.wait(t, "service.scaled and instance.removed", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventServiceScaled, ofService(id))) == 1 &&
			len(match(evs, gdpm.EventInstanceRemoved, ofService(id))) == 1
	})
	if s := match(evs, gdpm.EventServiceScaled)[0]; s.InstanceNum == nil || *s.InstanceNum != 1 {
		t.Errorf("service.scaled: %+v", s)
	}
	removed := match(evs, gdpm.EventInstanceRemoved, ofService(id))[0]
	log.wait(t, "the removed instance stopped", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventInstanceStopped, ofInstance(removed.Instance), after(removed.Revision))) == 1
	})
	if err := c.client.DeleteService(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	log.wait(t, "service.deleted", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventServiceDeleted, ofService(id))) == 1
	})

	// The stream ends when its client cancels, and the master lets go.
	log.cancel()
	if err := log.ended(t, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("stream ended with %v, want context.Canceled", err)
	}
	waitMetric(t, c.master(), "", "gdpm_event_streams", "", eq(0))
}

func TestEventsResumeOnEveryMaster(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	live := openEvents(t, c.client, 0)
	id := c.create(sleepCmd(), 2)
	evs := live.wait(t, "service.created and 2 instance.pending", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventInstancePending, ofService(id))) == 2
	})
	since := evs[0].Revision - 1
	if evs[0].Type != gdpm.EventServiceCreated {
		t.Fatalf("first event: %s", describe(evs))
	}

	// Joining drains the queue: each placement reports where it came from.
	c.addSlave()
	c.waitRunning(id, 2)
	evs = live.wait(t, "node.joined, 2 instance.placed from the queue", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventNodeJoined)) == 1 &&
			len(match(evs, gdpm.EventInstancePlaced, func(e gdpm.Event) bool { return e.Message == "from the queue" })) == 2
	})
	if n := len(match(evs, gdpm.EventInstanceRemoved)); n != 0 {
		t.Errorf("a placement from the queue reported as a removal: %s", describe(evs))
	}

	// Another master replays the same events from the same revision.
	m2 := c.addMaster()
	replay := openEvents(t, c.newClient(m2, ""), since)
	want := evs
	got := replay.wait(t, "the replay", func(got []gdpm.Event) bool { return len(got) >= len(want) })
	for i, w := range want {
		g := got[i]
		if g.Revision != w.Revision || g.Type != w.Type || g.Service != w.Service || g.Instance != w.Instance || g.Node != w.Node || g.Message != w.Message {
			t.Fatalf("replay on another master differs at %d:\n got %+v\nwant %+v", i, g, w)
		}
	}

	// Close ends the streams it serves, without waiting for them.
	start := time.Now()
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close with an open event stream took %v", d)
	}
	if err := replay.ended(t, 5*time.Second); !errors.Is(err, io.EOF) {
		t.Errorf("stream of a closed master ended with %v, want io.EOF", err)
	}

	// Compacted history is gone: 410.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctxT(t), "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctxT(t), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	_, err = c.client.Events(ctxT(t), since)
	var apiErr *gdpm.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusGone || !strings.Contains(apiErr.Message, "compacted") {
		t.Errorf("resume from a compacted revision: %v, want 410", err)
	}
	if code, _, body := c.do("GET", "/events?since=abc", "", ""); code != http.StatusBadRequest {
		t.Errorf("since=abc: %d %s", code, body)
	}
	if code, _, body := c.do("GET", fmt.Sprintf("/events?since=%d", resp.Header.Revision+1000), "", ""); code != http.StatusGone {
		t.Errorf("since in the future: %d %s", code, body)
	}
}

// TestEventsFromStatusChanges writes slave statuses straight into etcd, the
// way a slave's batched writer can leave them, and reads what the stream
// makes of them. As a slave does, it writes them on the lease of their
// node's record (statuses off it make no events).
func TestEventsFromStatusChanges(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	lease, err := cli.Grant(ctxT(t), 120)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Revoke(context.Background(), lease.ID)
	if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"nodes/n1", `{"ID":"n1","Hostname":"h1","Status":"online"}`, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	code := func(n int) *int { return &n }
	status := func(state gdpm.InstanceState, pid, restarts int, exit *int) *gdpm.InstanceStatus {
		return &gdpm.InstanceStatus{Node: "n1", State: state, PID: pid, Restarts: restarts, ExitCode: exit}
	}
	const (
		running  = gdpm.StateRunning
		backoff  = gdpm.StateBackoff
		exited   = gdpm.StateExited
		failed   = gdpm.StateFailed
		stopping = gdpm.StateStopping
	)
	tests := []struct {
		name  string
		steps []*gdpm.InstanceStatus // nil deletes the status
		want  string                 // event types, space separated
	}{
		{"start, crash, restart", []*gdpm.InstanceStatus{
			status(running, 10, 0, nil), status(backoff, 0, 0, code(137)), status(running, 11, 1, nil)},
			"instance.started instance.exited instance.restarted"},
		{"exit and restart written as one", []*gdpm.InstanceStatus{
			status(running, 10, 0, nil), status(running, 11, 1, nil)},
			"instance.started instance.exited instance.restarted"},
		{"exit the policy does not restart", []*gdpm.InstanceStatus{
			status(running, 10, 0, nil), status(exited, 0, 0, code(0))},
			"instance.started instance.exited"},
		{"stop", []*gdpm.InstanceStatus{
			status(running, 10, 0, nil), status(stopping, 10, 0, nil), status(exited, 0, 0, code(143)), nil},
			"instance.started instance.stopped"},
		{"stop seen only as the status going away", []*gdpm.InstanceStatus{
			status(running, 10, 0, nil), nil},
			"instance.started instance.stopped"},
		{"cannot start, retried", []*gdpm.InstanceStatus{
			status(failed, 0, 0, nil), status(failed, 0, 1, nil), status(running, 12, 2, nil)},
			"instance.failed instance.failed instance.restarted"},
		{"the same status written again", []*gdpm.InstanceStatus{
			status(running, 10, 0, nil), status(running, 10, 0, nil)},
			"instance.started"},
	}
	log := openEvents(t, c.client, 0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, inst := fmt.Sprintf("svc%d", i), "inst"
			key := gdpm.DefaultPrefix + "status/" + svc + "/" + inst
			for _, st := range tt.steps {
				var err error
				if st == nil {
					_, err = cli.Delete(ctxT(t), key)
				} else {
					st.Service, st.Instance = svc, inst
					b, _ := json.Marshal(st)
					_, err = cli.Put(ctxT(t), key, string(b), clientv3.WithLease(lease.ID))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			// A marker after the steps: every event of the steps has
			// arrived once it has.
			if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"services/"+svc+"-marker", `{"ID":"`+svc+`-marker","Command":"x","InstanceNum":0}`); err != nil {
				t.Fatal(err)
			}
			evs := log.wait(t, "the marker", func(evs []gdpm.Event) bool {
				return len(match(evs, gdpm.EventServiceCreated, ofService(svc+"-marker"))) == 1
			})
			var got []string
			for _, e := range evs {
				if e.Service == svc {
					got = append(got, string(e.Type))
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("events %q, want %q%s", got, tt.want, describe(evs))
			}
		})
	}
}

func TestEventsHeartbeatAndToken(t *testing.T) {
	c := newCluster(t, clusterOpts{token: "tok", master: func(cfg *gdpm.MasterConfig) { cfg.EventHeartbeat = 50 * time.Millisecond }})
	url := "http://" + c.master().HTTPAddr() + "/events"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /events without the token: %s", resp.Status)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-ndjson" {
		t.Fatalf("GET /events/: %s %q", resp.Status, ct)
	}
	if rev, err := strconv.ParseInt(resp.Header.Get(gdpm.RevisionHeader), 10, 64); err != nil || rev < 1 {
		t.Errorf("%s: %q, want the revision the stream starts after", gdpm.RevisionHeader, resp.Header.Get(gdpm.RevisionHeader))
	}
	r := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ {
		line, err := r.ReadString('\n')
		if err != nil || line != "\n" {
			t.Fatalf("heartbeat %d: %q %v, want an empty line", i, line, err)
		}
	}
}

// A node whose lease ends without a goodbye is reported lost; the slave
// registers again and joins.
func TestEventsNodeLost(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	log := openEvents(t, c.client, 0)
	node := c.slaves[0].NodeID()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"nodes/"+node)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("node record: %v %v", resp, err)
	}
	// What etcd does when the lease expires, without waiting for the TTL.
	if _, err := cli.Revoke(ctxT(t), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	isNode := func(e gdpm.Event) bool { return e.Node == node }
	evs := log.wait(t, "node.lost, then node.joined again", func(evs []gdpm.Event) bool {
		lost := match(evs, gdpm.EventNodeLost, isNode)
		return len(lost) == 1 && len(match(evs, gdpm.EventNodeJoined, isNode, after(lost[0].Revision))) == 1
	})
	if left := match(evs, gdpm.EventNodeLeft, isNode); len(left) != 0 {
		t.Errorf("a lost node was reported as having left: %+v", left)
	}
}
