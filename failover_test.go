package gdpm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// instancesOn returns the pids of the running instances of svc on node.
func (c *cluster) instancesOn(svc, node string) []int {
	c.t.Helper()
	d, err := c.client.Service(ctxT(c.t), svc)
	if err != nil {
		c.t.Fatal(err)
	}
	var pids []int
	for _, in := range d.Instances {
		if in.Node == node && in.State == gdpm.StateRunning {
			pids = append(pids, in.PID)
		}
	}
	return pids
}

func TestSlaveCutOffFromEtcdIsFencedAndReplaced(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits out a lease")
	}
	c := newCluster(t, clusterOpts{slaves: 1})
	stay := c.slaves[0]
	// The second slave reaches etcd through a proxy we can cut: it
	// registers through a master that advertises the proxy.
	px := newTCPProxy(t, strings.TrimPrefix(c.eps[0], "http://"))
	m2 := c.addMaster(func(cfg *gdpm.MasterConfig) { cfg.AdvertiseEndpoints = []string{"http://" + px.addr()} })
	cutOff := c.addSlaveVia(m2)

	id := c.create(sleepCmd(), 4)
	c.waitRunning(id, 4)
	fenced := c.instancesOn(id, cutOff.NodeID())
	if len(fenced) != 2 {
		t.Fatalf("want 2 instances on the slave to cut off, got %v", fenced)
	}

	px.setCut(true)
	start := time.Now()
	waitDead(t, fenced) // the slave kills its own processes
	fencedAfter := time.Since(start)
	waitFor(t, 20*time.Second, "all 4 instances on the remaining slave", func() (bool, string) {
		n := len(c.instancesOn(id, stay.NodeID()))
		return n == 4, fmt.Sprint(n, " on the remaining slave")
	})
	t.Logf("lease TTL 2s: fenced slave's processes dead after %v, 4 running elsewhere after %v", fencedAfter, time.Since(start))
	// Nothing ran twice: every replacement started after the fenced
	// copies were dead (the slave fences before its lease can expire).
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range d.Instances {
		if in.StartedAt.After(start) && in.StartedAt.Before(start.Add(fencedAfter)) {
			t.Errorf("instance %s started %v after the cut, before the fenced copies died (%v)", in.ID, in.StartedAt.Sub(start), fencedAfter)
		}
	}
	pids, _, _ := c.running(id)
	if len(pids) != 4 {
		t.Fatalf("running %v, want exactly 4", pids)
	}

	// Reconnected, the slave registers again and takes new work.
	px.setCut(false)
	waitFor(t, 20*time.Second, "the cut-off slave to register again", func() (bool, string) {
		nodes, err := c.client.Nodes(ctxT(t))
		return err == nil && len(nodes.Ids) == 2, fmt.Sprint(nodes.Ids, err)
	})
	id2 := c.create(sleepCmd(), 2)
	c.waitRunning(id2, 2)
	if n := len(c.instancesOn(id2, cutOff.NodeID())); n != 1 {
		t.Errorf("after rejoining the slave got %d of 2 new instances, want 1", n)
	}
	if pids, _, _ := c.running(id); len(pids) != 4 {
		t.Errorf("first service runs %d instances after the rejoin, want 4", len(pids))
	}
}

func TestMasterRestartFindsStateAndTouchesNoProcess(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2})
	id := c.create(sleepCmd(), 3)
	before := c.waitRunning(id, 3)
	queued := c.create(sleepCmd(), 0)

	if err := c.masters[0].Close(); err != nil {
		t.Fatal(err)
	}
	m := c.addMaster()
	c.client = c.newClient(m, "")
	waitFor(t, 10*time.Second, "the new master to elect itself", func() (bool, string) { return m.IsLeader(), "" })

	nodes, err := c.client.Nodes(ctxT(t))
	if err != nil || len(nodes.Ids) != 2 {
		t.Fatalf("nodes after restart: %v %v, want 2", nodes.Ids, err)
	}
	list, err := c.client.Services(ctxT(t))
	if err != nil || len(list) != 2 {
		t.Fatalf("services after restart: %+v %v, want 2", list, err)
	}
	after := c.waitRunning(id, 3)
	sort.Ints(before)
	sort.Ints(after)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("a master restart changed the processes: %v -> %v", before, after)
	}
	// The rotation and the services carry on.
	if err := c.client.ScaleService(ctxT(t), queued, 1); err != nil {
		t.Fatal(err)
	}
	c.waitRunning(queued, 1)
	if err := c.client.ScaleService(ctxT(t), id, 5); err != nil {
		t.Fatal(err)
	}
	c.waitRunning(id, 5)
}

// buildBinary builds one of the examples into dir.
func buildBinary(t testing.TB, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command("go", "build", "-o", out, "./examples/"+name).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

func TestLeaderKilledStandbyTakesOver(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds gdpm-master and waits out an election")
	}
	bin := buildBinary(t, "gdpm-master")
	etcd, err := gdpm.StartEmbeddedEtcd(context.Background(), gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })

	// The leader is a real gdpm-master process, so it can die by SIGKILL.
	cmd := exec.Command(bin, "-etcd", strings.Join(etcd.Endpoints(), ","), "-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0",
		"-election-ttl", "2s", "-log-level", "error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	waitFor(t, 20*time.Second, "the gdpm-master process to become leader", func() (bool, string) {
		resp, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"election/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 1, fmt.Sprint(err)
	})

	c := newCluster(t, clusterOpts{slaves: 1, endpoints: etcd.Endpoints()})
	standby := c.master()
	if standby.IsLeader() {
		t.Fatal("the in-process master leads while the process master is alive")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	waitFor(t, 20*time.Second, "the standby to take over", func() (bool, string) { return standby.IsLeader(), "" })
	t.Logf("election TTL 2s: standby leads %v after the leader's SIGKILL", time.Since(killed))
	id := c.create(sleepCmd(), 2)
	c.waitRunning(id, 2)
}

func TestRestartPoliciesThroughTheAPI(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	prog := gdpm.ProgramForTests()
	create := func(cmd string, policy gdpm.RestartPolicy) string {
		one := 1
		id, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{Command: cmd, InstanceNum: &one, Restart: policy})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	instance := func(id string) gdpm.InstanceInfo {
		d, err := c.client.Service(ctxT(t), id)
		if err != nil || len(d.Instances) != 1 {
			return gdpm.InstanceInfo{}
		}
		return d.Instances[0]
	}
	loop := create(prog+" exit 3 50ms", gdpm.RestartAlways)
	done := create(prog+" exit 0", gdpm.RestartOnFailure)
	never := create(prog+" exit 4", gdpm.RestartNever)

	waitFor(t, 20*time.Second, "a crash loop to be restarted 3 times", func() (bool, string) {
		in := instance(loop)
		return in.Restarts >= 3 && in.ExitCode != nil && *in.ExitCode == 3, fmt.Sprintf("%+v", in)
	})
	for id, code := range map[string]int{done: 0, never: 4} {
		waitFor(t, 10*time.Second, "an instance to exit for good", func() (bool, string) {
			in := instance(id)
			return in.State == gdpm.StateExited && in.ExitCode != nil && *in.ExitCode == code && in.Restarts == 0, fmt.Sprintf("%+v", in)
		})
	}
	// The crash loop backs off instead of spinning: restarts double their
	// delay, so far fewer than one per 50 ms run happen in a second.
	r0 := instance(loop).Restarts
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if r1 := instance(loop).Restarts; r1-r0 > 6 {
		t.Errorf("crash loop restarted %d times in 1s: no backoff", r1-r0)
	}
}

func TestStopEscalatesAndKillsTheWholeGroup(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	prog := gdpm.ProgramForTests()
	one := 1
	stubborn, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{
		Command: prog + " ignoreterm", InstanceNum: &one, StopTimeout: gdpm.Duration(300 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	forker := c.create(prog+" fork 3", 1)
	shell := c.create("sleep 100 & sleep 100", 1)
	var all []int
	for _, id := range []string{stubborn, forker, shell} {
		pids := c.waitRunning(id, 1)
		waitFor(t, 10*time.Second, "the instance's group to fill", func() (bool, string) {
			m := groupMembers(pids[0])
			return id != forker && id != shell || len(m) >= 3, fmt.Sprint(m)
		})
		all = append(all, groupMembers(pids[0])...)
	}
	for _, id := range []string{stubborn, forker, shell} {
		if err := c.client.DeleteService(ctxT(t), id); err != nil {
			t.Fatal(err)
		}
	}
	waitDead(t, all)
}

// groupMembers lists the live processes in process group pgid.
func groupMembers(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func TestSchedulerRepairsDriftLeftByACrash(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	id := c.create(sleepCmd(), 2)
	c.waitRunning(id, 2)
	node := c.slaves[0].NodeID()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// What a master killed half-way could leave: an extra instance, and
	// one of a service that no longer exists.
	stray := func(svc, inst string) {
		a, _ := json.Marshal(gdpm.Assignment{Service: svc, Instance: inst, Node: node, Spec: gdpm.Spec{Command: sleepCmd()}})
		if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"assign/"+node+"/"+svc+"/"+inst, string(a)); err != nil {
			t.Fatal(err)
		}
	}
	stray(id, "extra0000000")
	stray("gone-service", "orphan000000")
	waitFor(t, 10*time.Second, "the drift to be repaired", func() (bool, string) {
		resp, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"assign/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return false, err.Error()
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		// The extra instance or a real one may go (the scheduler picks
		// by id); the count and the orphan's removal are what matter.
		return len(keys) == 2 && !strings.Contains(strings.Join(keys, " "), "gone-service"), fmt.Sprint(keys)
	})
	c.waitRunning(id, 2)
}

func TestSlaveRegistersThroughWhicheverMasterAnswers(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{"127.0.0.1:1", c.master().TCPAddr()}, DataDir: t.TempDir(), LogAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	code, _, body := c.do(http.MethodGet, "/node/"+s.NodeID(), "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /node/%s: %d %s", s.NodeID(), code, body)
	}
}
