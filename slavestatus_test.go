package gdpm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// statusWriterEnv is an embedded etcd, a lease, and a node's assignments
// for n instances of service "svc" (i0 ... i<n-1>), which a status writer
// needs before it writes their statuses.
func statusWriterEnv(t testing.TB, n int) (*clientv3.Client, keyspace, clientv3.LeaseID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbeddedEtcd(ctx, EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	cli, err := newEtcdClient(e.Endpoints(), 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	k := newKeyspace("")
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := cli.Put(ctx, k.assign("node", "svc", fmt.Sprintf("i%d", i)), "{}"); err != nil {
			t.Fatal(err)
		}
	}
	return cli, k, lease.ID
}

// runStatusWriter runs w until the test ends.
func runStatusWriter(t *testing.T, w *statusWriter) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx, 5*time.Second) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// Statuses too large to go a hundred to a transaction (an error that quotes
// a 60 KiB command) still arrive: batches are bounded by bytes, under
// etcd's request limit, not only by operations. Before, the writer sent
// 100 at a time, etcd refused the request as too large, and it retried the
// same refused batch forever.
func TestStatusWriterBatchesByBytes(t *testing.T) {
	const n = 40
	cli, k, lease := statusWriterEnv(t, n)
	w := newStatusWriter(cli, k, "node", lease, discardLogger())
	long := `exec: "` + strings.Repeat("x", 60<<10) + `": executable file not found in $PATH`
	for i := range n {
		w.set(InstanceStatus{Service: "svc", Instance: fmt.Sprintf("i%d", i), Node: "node", State: StateFailed, Error: long, LastError: long})
	}
	runStatusWriter(t, w)
	waitStatuses(t, cli, k, n, func(st InstanceStatus) bool { return st.State == StateFailed && st.Error == long })
}

// Many updates of the same instances, written several transactions at a
// time, leave each instance's latest status in etcd: an instance is never
// in two transactions at once, so an older status cannot land last.
func TestStatusWriterKeepsTheLatest(t *testing.T) {
	const n, rounds = 300, 20
	cli, k, lease := statusWriterEnv(t, n)
	w := newStatusWriter(cli, k, "node", lease, discardLogger())
	runStatusWriter(t, w)
	for r := 1; r <= rounds; r++ {
		for i := range n {
			w.set(InstanceStatus{Service: "svc", Instance: fmt.Sprintf("i%d", i), Node: "node", State: StateRunning, Restarts: r})
		}
		if r%5 == 0 {
			time.Sleep(time.Millisecond) // let some batches fly between rounds
		}
	}
	waitStatuses(t, cli, k, n, func(st InstanceStatus) bool { return st.Restarts == rounds })
	// Settled: no write still in flight changes it afterwards.
	time.Sleep(200 * time.Millisecond)
	waitStatuses(t, cli, k, n, func(st InstanceStatus) bool { return st.Restarts == rounds })
}

// waitStatuses waits until etcd holds n statuses and ok accepts each.
func waitStatuses(t *testing.T, cli *clientv3.Client, k keyspace, n int, ok func(InstanceStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, k.statusAll(), clientv3.WithPrefix())
		cancel()
		good := 0
		if err == nil {
			for _, kv := range resp.Kvs {
				var st InstanceStatus
				if json.Unmarshal(kv.Value, &st) == nil && ok(st) {
					good++
				}
			}
			last = fmt.Sprintf("%d statuses, %d as expected", len(resp.Kvs), good)
		} else {
			last = err.Error()
		}
		if good == n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("statuses not written: %s (want %d)", last, n)
}
