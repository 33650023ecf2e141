package gdpm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// Services as operators know them: names, spec files, rollouts, lifecycle
// verbs and what an instance is told about itself.

// environOf reads one variable of a live process from /proc/PID/environ.
func environOf(t testing.TB, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatalf("environ of %d: %v", pid, err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k == name {
			return v
		}
	}
	return ""
}

// apply applies a spec file and returns each service's result.
func (c *cluster) apply(file string) map[string]gdpm.ApplyResult {
	c.t.Helper()
	specs, err := gdpm.ParseSpecFile([]byte(file))
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]gdpm.ApplyResult{}
	for _, s := range specs {
		res, err := c.client.ApplyService(ctxT(c.t), s)
		if err != nil {
			c.t.Fatalf("apply %s: %v", s.Name, err)
		}
		out[s.Name] = res
	}
	return out
}

// sampleRunning counts the running instances of id every 100 ms until
// stop is called, and returns the smallest count seen.
func (c *cluster) sampleRunning(id string) (stop func() int) {
	var lowest atomic.Int64
	lowest.Store(1 << 30)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			d, err := c.client.Service(ctxT(c.t), id)
			if err != nil {
				continue
			}
			lowest.Store(min(lowest.Load(), int64(d.Running)))
		}
	})
	return func() int {
		close(done)
		wg.Wait()
		return int(lowest.Load())
	}
}

// waitStatus waits until the service reports status and every instance
// placed runs its current version.
func (c *cluster) waitSettled(id string, status gdpm.ServiceStatus, n int) []int {
	c.t.Helper()
	var pids []int
	waitFor(c.t, 40*time.Second, fmt.Sprintf("%s settled %s with %d instances", id, status, n), func() (bool, string) {
		d, err := c.client.Service(ctxT(c.t), id)
		if err != nil {
			return false, err.Error()
		}
		pids = pids[:0]
		for _, in := range d.Instances {
			if in.State == gdpm.StateRunning && alive(in.PID) && in.Version == d.Version {
				pids = append(pids, in.PID)
			}
		}
		return d.Status == status && len(pids) == n && len(d.Instances) == n,
			fmt.Sprintf("status %s, %d current running, %d instances, halted: %q", d.Status, len(pids), len(d.Instances), d.RolloutError)
	})
	return pids
}

const appsYAML = `
- Name: web
  Command: %s env GREETING
  InstanceNum: 3
  Env:
    GREETING: %s
  Rollout:
    MinReady: 500ms
    ReadyTimeout: 20s
- Name: worker
  Command: %s sleep
  InstanceNum: 2
`

func TestApplyRolloutHaltAndRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 2})
	prog := gdpm.ProgramForTests()
	file := func(greeting, webCmd string) string { return fmt.Sprintf(appsYAML, webCmd, greeting, prog) }

	evCtx, evCancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer evCancel()
	events, err := c.client.Events(evCtx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	res := c.apply(file("hello", prog))
	if res["web"].Result != gdpm.ApplyCreated || res["worker"].Result != gdpm.ApplyCreated {
		t.Fatalf("first apply: %+v", res)
	}
	web, worker := res["web"].ID, res["worker"].ID
	webPids := c.waitSettled(web, gdpm.ServiceRunning, 3)
	workerPids := c.waitSettled(worker, gdpm.ServiceRunning, 2)

	// Indices 0..N-1, each once, and the identity in the environment.
	d, _ := c.client.Service(ctxT(t), web)
	var idx []int
	for _, in := range d.Instances {
		idx = append(idx, in.Index)
		for name, want := range map[string]string{
			"GDPM_SERVICE_ID": web, "GDPM_SERVICE_NAME": "web", "GDPM_INSTANCE_ID": in.ID,
			"GDPM_INSTANCE_INDEX": strconv.Itoa(in.Index), "GDPM_NODE_ID": in.Node, "GREETING": "hello",
		} {
			if got := environOf(t, in.PID, name); got != want {
				t.Errorf("instance %s: %s=%q, want %q", in.ID, name, got, want)
			}
		}
		if environOf(t, in.PID, "GDPM_NODE_HOST") == "" {
			t.Errorf("instance %s: no GDPM_NODE_HOST", in.ID)
		}
	}
	slices.Sort(idx)
	if !slices.Equal(idx, []int{0, 1, 2}) {
		t.Errorf("indices %v, want 0 1 2", idx)
	}

	// Re-applying the same file changes nothing and restarts nothing.
	res = c.apply(file("hello", prog))
	if res["web"].Result != gdpm.ApplyUnchanged || res["worker"].Result != gdpm.ApplyUnchanged {
		t.Fatalf("second apply: %+v", res)
	}
	time.Sleep(time.Second) // long enough for a wrong rollout to show
	if got := c.waitSettled(web, gdpm.ServiceRunning, 3); !sameSet(got, webPids) {
		t.Errorf("re-apply restarted web: %v -> %v", webPids, got)
	}
	if got := c.waitSettled(worker, gdpm.ServiceRunning, 2); !sameSet(got, workerPids) {
		t.Errorf("re-apply restarted worker: %v -> %v", workerPids, got)
	}

	// One env value changes: a rollout, one index at a time.
	stop := c.sampleRunning(web)
	began := time.Now()
	res = c.apply(file("bonjour", prog))
	if res["web"].Result != gdpm.ApplyUpdated || res["worker"].Result != gdpm.ApplyUnchanged {
		t.Fatalf("third apply: %+v", res)
	}
	newPids := c.waitSettled(web, gdpm.ServiceRunning, 3)
	lowest := stop()
	if lowest < 3-1 {
		t.Errorf("running instances fell to %d during the rollout, want at least %d", lowest, 3-1)
	}
	t.Logf("rollout of 3 instances (MinReady 500ms) done in %v; fewest running seen (every 100 ms): %d", time.Since(began).Round(10*time.Millisecond), lowest)
	for _, p := range newPids {
		if slices.Contains(webPids, p) {
			t.Errorf("pid %d survived the rollout", p)
		}
		if got := environOf(t, p, "GREETING"); got != "bonjour" {
			t.Errorf("pid %d sees GREETING=%q, want bonjour", p, got)
		}
	}
	waitDead(t, webPids)
	if got := c.waitSettled(worker, gdpm.ServiceRunning, 2); !sameSet(got, workerPids) {
		t.Errorf("web's rollout restarted worker: %v -> %v", workerPids, got)
	}

	// A version that exits at once halts the rollout; the old instances
	// run on and the service says why.
	res = c.apply(file("bonjour", prog+" exit 3"))
	if res["web"].Result != gdpm.ApplyUpdated {
		t.Fatalf("bad apply: %+v", res)
	}
	waitFor(t, 30*time.Second, "the rollout to halt", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), web)
		if err != nil {
			return false, err.Error()
		}
		return d.Status == gdpm.ServiceHalted && strings.Contains(d.RolloutError, "exited"), fmt.Sprintf("%s %q", d.Status, d.RolloutError)
	})
	d, _ = c.client.Service(ctxT(t), web)
	t.Logf("halted: %s", d.RolloutError)
	// The events told the story: updated twice, then halted with the reason.
	var seen []gdpm.EventType
	for !slices.Contains(seen, gdpm.EventServiceHalted) {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("events: %v; seen %v", err, seen)
		}
		if ev.Service != web || !strings.HasPrefix(string(ev.Type), "service.") {
			continue
		}
		seen = append(seen, ev.Type)
		if ev.Type == gdpm.EventServiceHalted && ev.Message != d.RolloutError {
			t.Errorf("halt event says %q, the service %q", ev.Message, d.RolloutError)
		}
	}
	if want := []gdpm.EventType{gdpm.EventServiceCreated, gdpm.EventServiceUpdated, gdpm.EventServiceUpdated, gdpm.EventServiceHalted}; !slices.Equal(seen, want) {
		t.Errorf("service events %v, want %v", seen, want)
	}
	running, _, _ := c.running(web)
	if !sameSet(running, newPids) {
		t.Errorf("after the halt running %v, want the old instances %v untouched", running, newPids)
	}

	// Applying the previous spec again recovers, and keeps the instances
	// that run it.
	res = c.apply(file("bonjour", prog))
	if res["web"].Result != gdpm.ApplyUpdated {
		t.Fatalf("recovering apply: %+v", res)
	}
	if got := c.waitSettled(web, gdpm.ServiceRunning, 3); !sameSet(got, newPids) {
		t.Errorf("rollback restarted instances of the restored version: %v -> %v", newPids, got)
	}
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestNamesAndLifecycleVerbs(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 1})
	prog := gdpm.ProgramForTests()
	n := 2
	id, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{Name: "api", Command: prog + " sleep", InstanceNum: &n,
		Rollout: gdpm.RolloutPolicy{MinReady: gdpm.Duration(300 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	// The seed's create, without a name, still works.
	plain := c.create(prog+" sleep", 1)

	// Names are unique and well formed; a refused create changes nothing.
	for body, want := range map[string]int{
		`{"Name":"api","Command":"true"}`:                                  http.StatusConflict,
		`{"Name":"API","Command":"true"}`:                                  http.StatusBadRequest,
		`{"Name":"-x","Command":"true"}`:                                   http.StatusBadRequest,
		`{"Name":"` + strings.Repeat("a", 64) + `","Command":"true"}`:      http.StatusBadRequest,
		`{"Name":"9b2f6a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c","Command":"true"}`: http.StatusBadRequest,
	} {
		if code, _, b := c.do(http.MethodPost, "/service/", "application/json", body); code != want {
			t.Errorf("create %s: %d %s, want %d", body, code, b, want)
		}
	}
	if list, _ := c.client.Services(ctxT(t)); len(list) != 2 {
		t.Errorf("%d services after refused creates, want 2", len(list))
	}

	// Every route takes the name.
	pids := c.waitRunning(id, 2)
	byName, err := c.client.Service(ctxT(t), "api")
	if err != nil || byName.ID != id || byName.Name != "api" {
		t.Fatalf("get by name: %+v %v", byName.ID, err)
	}
	if err := c.client.ScaleService(ctxT(t), "api", 3); err != nil {
		t.Fatal(err)
	}
	pids3 := c.waitRunning(id, 3)
	for _, p := range pids {
		if !slices.Contains(pids3, p) {
			t.Errorf("scaling up restarted pid %d", p)
		}
	}

	// stop: nothing runs, the count is kept, the status says so.
	if err := c.client.StopService(ctxT(t), "api"); err != nil {
		t.Fatal(err)
	}
	waitDead(t, pids3)
	waitFor(t, 10*time.Second, "no instance of a stopped service", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		return err == nil && len(d.Instances) == 0 && d.Status == gdpm.ServiceStopped && d.InstanceNum == 3,
			fmt.Sprintf("%+v %v", d.RolloutState, err)
	})
	if list, _ := c.client.Services(ctxT(t)); list[0].Name != "api" || list[0].Status != gdpm.ServiceStopped {
		t.Errorf("list: %+v", list[0])
	}
	// start: the same count again.
	if err := c.client.StartService(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	started := c.waitSettled(id, gdpm.ServiceRunning, 3)

	// restart: every instance replaced, never fewer than 2 running.
	stop := c.sampleRunning(id)
	if err := c.client.RestartService(ctxT(t), "api"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every instance restarted", func() (bool, string) {
		pids, _, err := c.running(id)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range pids {
			if slices.Contains(started, p) {
				return false, fmt.Sprint(pids)
			}
		}
		return len(pids) == 3, fmt.Sprint(pids)
	})
	c.waitSettled(id, gdpm.ServiceRunning, 3)
	if lowest := stop(); lowest < 2 {
		t.Errorf("running fell to %d during the restart, want at least 2", lowest)
	} else {
		t.Logf("restart of 3 instances: fewest running seen (every 100 ms): %d", lowest)
	}

	// delete by name frees the name; the other service is untouched.
	if err := c.client.DeleteService(ctxT(t), "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.Service(ctxT(t), "api"); !errors.Is(err, gdpm.ErrNotFound) {
		t.Errorf("get after delete: %v, want not found", err)
	}
	if _, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{Name: "api", Command: "true"}); err != nil {
		t.Errorf("the name of a deleted service: %v", err)
	}
	c.waitRunning(plain, 1)
}

func TestNamedPortsDiffer(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 1})
	n := 2
	res, err := c.client.ApplyService(ctxT(t), gdpm.CreateRequest{Name: "http", Command: gdpm.ProgramForTests() + " listen GDPM_PORT_HTTP",
		InstanceNum: &n, Ports: []string{"http"}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitSettled(res.ID, gdpm.ServiceRunning, 2)
	d, _ := c.client.Service(ctxT(t), "http")
	ports := map[int]bool{}
	for _, in := range d.Instances {
		p := in.Ports["http"]
		if p == 0 || environOf(t, in.PID, "GDPM_PORT_HTTP") != strconv.Itoa(p) {
			t.Fatalf("instance %s: port %v, env %q", in.ID, in.Ports, environOf(t, in.PID, "GDPM_PORT_HTTP"))
		}
		ports[p] = true
		// It listens there (it would have exited otherwise).
		waitFor(t, 10*time.Second, "instance listening", func() (bool, string) {
			conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				return false, err.Error()
			}
			conn.Close()
			return true, ""
		})
	}
	if len(ports) != 2 {
		t.Errorf("two instances on one node share a port: %+v", d.Instances)
	}
}

func TestRolloutSurvivesLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	c := newCluster(t, clusterOpts{slaves: 1})
	standby := c.addMaster()
	prog := gdpm.ProgramForTests()
	spec := func(v string) gdpm.CreateRequest {
		n := 4
		return gdpm.CreateRequest{Name: "slow", Command: prog + " sleep", InstanceNum: &n, Env: map[string]string{"V": v},
			Rollout: gdpm.RolloutPolicy{MinReady: gdpm.Duration(time.Second)}}
	}
	res, err := c.client.ApplyService(ctxT(t), spec("1"))
	if err != nil {
		t.Fatal(err)
	}
	old := c.waitSettled(res.ID, gdpm.ServiceRunning, 4)
	// Whichever master won the election schedules; the other takes over.
	leader, other := c.master(), standby
	waitFor(t, 20*time.Second, "a leader", func() (bool, string) { return leader.IsLeader() || other.IsLeader(), "" })
	if !leader.IsLeader() {
		leader, other = other, leader
	}
	if _, err := c.client.ApplyService(ctxT(t), spec("2")); err != nil {
		t.Fatal(err)
	}
	// Mid-rollout: one index replaced, the others not yet.
	waitFor(t, 20*time.Second, "the rollout to be under way", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), res.ID)
		return err == nil && d.Updated >= 1 && d.Status == gdpm.ServiceUpdating, fmt.Sprintf("%+v", d.RolloutState)
	})
	d, _ := c.client.Service(ctxT(t), res.ID)
	t.Logf("leader closed with %d of 4 instances updated", d.Updated)
	leader.Close()
	c.client = c.newClient(other, c.token)
	waitFor(t, 20*time.Second, "the standby to lead", func() (bool, string) { return other.IsLeader(), "" })
	got := c.waitSettled(res.ID, gdpm.ServiceRunning, 4)
	for _, p := range got {
		if slices.Contains(old, p) {
			t.Errorf("pid %d of the old version survived the rollout", p)
		}
		if environOf(t, p, "V") != "2" {
			t.Errorf("pid %d does not run the new version", p)
		}
	}
}

// testKill9KeepsIndices: the instances of a slave killed with kill -9 move
// to the other slave with their index, and learn it from their new
// environment; the instances that did not move keep theirs.
func testKill9KeepsIndices(t *testing.T, bin string) {
	c := newCluster(t, clusterOpts{slaves: 1, master: func(c *gdpm.MasterConfig) { c.LeaseTTL = 2 * time.Second }})
	sp := startSlaveBinary(t, bin, c.master().TCPAddr(), t.TempDir())
	binNode := sp.waitRegistered()
	waitNodes(t, c, 2)
	n := 4
	res, err := c.client.ApplyService(ctxT(t), gdpm.CreateRequest{Name: "indexed", Command: gdpm.ProgramForTests() + " sleep", InstanceNum: &n})
	if err != nil {
		t.Fatal(err)
	}
	c.waitSettled(res.ID, gdpm.ServiceRunning, 4)
	before := map[string]int{} // instance -> index
	moved := 0
	for _, in := range c.instances(res.ID) {
		before[in.ID] = in.Index
		if in.Node == binNode {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no instance on the binary slave")
	}
	sp.kill9()
	other := c.slaves[0].NodeID()
	c.waitOnlyOn(res.ID, 4, other)
	var idx []int
	for _, in := range c.instances(res.ID) {
		idx = append(idx, in.Index)
		if want, ok := before[in.ID]; !ok || want != in.Index {
			t.Errorf("instance %s has index %d, had %d (known: %v)", in.ID, in.Index, want, ok)
		}
		if got := environOf(t, in.PID, "GDPM_INSTANCE_INDEX"); got != strconv.Itoa(in.Index) {
			t.Errorf("instance %s: GDPM_INSTANCE_INDEX=%q, index %d", in.ID, got, in.Index)
		}
	}
	slices.Sort(idx)
	if !slices.Equal(idx, []int{0, 1, 2, 3}) {
		t.Errorf("indices after the move %v, want 0 1 2 3", idx)
	}
	t.Logf("%d instances moved off the killed slave with their indices", moved)

	// A scale-down removes the highest indices.
	if err := c.client.ScaleService(ctxT(t), "indexed", 2); err != nil {
		t.Fatal(err)
	}
	c.waitSettled(res.ID, gdpm.ServiceRunning, 2)
	idx = idx[:0]
	for _, in := range c.instances(res.ID) {
		idx = append(idx, in.Index)
	}
	slices.Sort(idx)
	if !slices.Equal(idx, []int{0, 1}) {
		t.Errorf("indices after scaling down to 2: %v, want 0 1", idx)
	}
}
