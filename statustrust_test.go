package gdpm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// forgedPID marks the statuses these tests forge.
const forgedPID = 4242

// putStatus writes st as its instance's status, the way any holder of the
// slave role can (statuses are keyed by service, not node).
func putStatus(t *testing.T, cli *clientv3.Client, st gdpm.InstanceStatus, opts ...clientv3.OpOption) error {
	t.Helper()
	b, _ := json.Marshal(st)
	_, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"status/"+st.Service+"/"+st.Instance, string(b), opts...)
	return err
}

// notForged fails the test when the service shows a forged status.
func notForged(t *testing.T, c *cluster, id, what string) {
	t.Helper()
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range d.Instances {
		if in.PID == forgedPID || in.State == gdpm.StateFailed || in.Error == "forged" {
			t.Errorf("%s: GET /service/%s shows instance %s %s pid %d %q", what, id, in.ID, in.State, in.PID, in.Error)
		}
	}
}

// A status put without the lease of the node it names (no lease, or a
// lease of the writer's own) does not count: the API and the event stream
// show none of it, and the node's own next status counts again.
func TestStatusForgedOffTheNodesLeaseIsIgnored(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	id := c.create(gdpm.ProgramForTests()+" sleep", 1)
	pids := c.waitRunning(id, 1)
	d, err := c.client.Service(ctxT(t), id)
	if err != nil || len(d.Instances) != 1 {
		t.Fatalf("service: %+v %v", d, err)
	}
	in := d.Instances[0]
	log := openEvents(t, c.client, 0)
	cli := etcdClient(t, c.eps, nil)
	own, err := cli.Grant(ctxT(t), 60)
	if err != nil {
		t.Fatal(err)
	}
	forged := gdpm.InstanceStatus{Service: id, Instance: in.ID, Node: in.Node, State: gdpm.StateFailed, Error: "forged"}
	if err := putStatus(t, cli, forged); err != nil {
		t.Fatal(err)
	}
	notForged(t, c, id, "a failed status put without a lease")
	forged.State, forged.PID = gdpm.StateRunning, forgedPID
	if err := putStatus(t, cli, forged, clientv3.WithLease(own.ID)); err != nil {
		t.Fatal(err)
	}
	notForged(t, c, id, "a running status put on another lease")

	// The node's own statuses count as before: its instance is killed,
	// restarted, and shown running with its new pid.
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := c.waitRunning(id, 1)
	if again[0] == pids[0] || again[0] == forgedPID {
		t.Errorf("after the kill: pid %d, want a new one (was %d)", again[0], pids[0])
	}
	marker := c.create("sleep 1", 0)
	evs := log.wait(t, "the marker", func(evs []gdpm.Event) bool {
		return len(match(evs, gdpm.EventServiceCreated, ofService(marker))) == 1
	})
	for _, e := range match(evs, gdpm.EventInstanceFailed, ofService(id)) {
		t.Errorf("event from a forged status: %+v", e)
	}
	for _, e := range evs {
		if e.PID == forgedPID {
			t.Errorf("event from a forged status: %+v", e)
		}
	}
	if len(match(evs, gdpm.EventInstanceRestarted, ofService(id))) == 0 {
		t.Errorf("no instance.restarted from the node's own status%s", describe(evs))
	}
}

// A new version that does not run halts its rollout even while someone
// overwrites its statuses with "running" (off the node's lease): the old
// instances are left running.
func TestRolloutNotFooledByAForgedRunningStatus(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	prog := gdpm.ProgramForTests()
	spec := func(cmd string, restart gdpm.RestartPolicy) gdpm.CreateRequest {
		return gdpm.CreateRequest{Name: "web", Command: cmd, InstanceNum: new(2), Restart: restart,
			Rollout: gdpm.RolloutPolicy{MinReady: gdpm.Duration(300 * time.Millisecond), ReadyTimeout: gdpm.Duration(3 * time.Second)}}
	}
	res, err := c.client.ApplyService(ctxT(t), spec(prog+" sleep", ""))
	if err != nil {
		t.Fatal(err)
	}
	id := res.ID
	old := c.waitSettled(id, gdpm.ServiceRunning, 2)

	// The forger answers every status the slave writes that is not
	// "running" with a "running" one of its own, at once.
	cli := etcdClient(t, c.eps, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	now, err := cli.Get(ctxT(t), gdpm.DefaultPrefix+"status/"+id+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	// From the next revision on: no status the new version makes is missed.
	wch := cli.Watch(ctx, gdpm.DefaultPrefix+"status/"+id+"/", clientv3.WithPrefix(), clientv3.WithRev(now.Header.Revision+1))
	var forgeries sync.Map
	wg.Go(func() {
		for wr := range wch {
			for _, ev := range wr.Events {
				var st gdpm.InstanceStatus
				if ev.Type != clientv3.EventTypePut || json.Unmarshal(ev.Kv.Value, &st) != nil || st.PID == forgedPID || st.State == gdpm.StateRunning {
					continue
				}
				st.State, st.PID, st.Restarts, st.ExitCode, st.Error = gdpm.StateRunning, forgedPID, 0, nil, ""
				b, _ := json.Marshal(st)
				if _, err := cli.Put(ctx, string(ev.Kv.Key), string(b)); err == nil {
					forgeries.Store(st.Instance, true)
				}
			}
		}
	})

	if _, err := c.client.ApplyService(ctxT(t), spec(prog+" exit 3", gdpm.RestartNever)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rollout to halt", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		if err != nil {
			return false, err.Error()
		}
		return d.Status == gdpm.ServiceHalted, fmt.Sprintf("%s %q", d.Status, d.RolloutError)
	})
	d, _ := c.client.Service(ctxT(t), id)
	t.Logf("halted: %s", d.RolloutError)
	n := 0
	forgeries.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Error("the forger forged nothing: the test proves nothing")
	}
	for _, p := range old {
		if !alive(p) {
			t.Errorf("old instance pid %d was stopped: the rollout went on", p)
		}
	}
	if running, _, _ := c.running(id); !sameSet(running, old) || slices.Contains(running, forgedPID) {
		t.Errorf("after the halt running %v, want the old instances %v", running, old)
	}
}

// What makes the lease check sound in a secured cluster: etcd refuses a
// slave's certificate a status put on another node's lease. A status on
// its own lease naming the other node is written, and shown by nobody.
func TestSecureSlaveCannotPutAStatusOnAnotherNodesLease(t *testing.T) {
	c, id, a, b, root := secureTwoNodes(t, gdpm.ProgramForTests()+" sleep")
	p := gdpm.DefaultPrefix
	leaseOf := func(node string) clientv3.LeaseID {
		r, err := root.Get(ctxT(t), p+"nodes/"+node)
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("node %s record: %v", node, err)
		}
		return clientv3.LeaseID(r.Kvs[0].Lease)
	}
	la, lb := leaseOf(a), leaseOf(b)
	// Each node runs one of the two; forge the one on b.
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(d.Instances, func(in gdpm.InstanceInfo) bool { return in.Node == b })
	if i < 0 {
		t.Fatalf("no instance on %s: %+v", b, d.Instances)
	}
	forged := gdpm.InstanceStatus{Service: id, Instance: d.Instances[i].ID, Node: b, State: gdpm.StateFailed, Error: "forged"}

	cli := slaveEtcdClient(t, c, a)
	wantDenied(t, "put a status on another node's lease", putStatus(t, cli, forged, clientv3.WithLease(lb)))
	b1, _ := json.Marshal(forged)
	_, err = cli.Txn(ctxT(t)).Then(clientv3.OpPut(p+"status/"+id+"/"+forged.Instance, string(b1), clientv3.WithLease(lb))).Commit()
	wantDenied(t, "a txn putting a status on another node's lease", err)
	notForged(t, c, id, "after the refused puts")

	// Its own lease, its statuses' lease, is no better for b's instance.
	if err := putStatus(t, cli, forged, clientv3.WithLease(la)); err != nil {
		t.Fatalf("put a status on its own lease: %v", err)
	}
	notForged(t, c, id, "a status on node "+a+"'s lease naming node "+b)
}
