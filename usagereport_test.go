package gdpm

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// usageTraffic is what a slave's usage writes put in etcd's history (and
// sent to every watcher of the prefix): keys put and deleted, and the
// bytes of the puts' keys and values.
type usageTraffic struct{ puts, dels, bytes int }

// usageWritten runs write and returns what it wrote under usage/, read
// back from etcd's history by a watch from the revision before it.
func usageWritten(t testing.TB, cli *clientv3.Client, k keyspace, write func()) usageTraffic {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev := func() int64 {
		resp, err := cli.Get(ctx, k.usageAll(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	r0 := rev()
	write()
	r1 := rev()
	var tr usageTraffic
	if r1 == r0 {
		return tr
	}
	wch := cli.Watch(ctx, k.usageAll(), clientv3.WithPrefix(), clientv3.WithRev(r0+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > r1 {
				continue
			}
			if ev.Type == clientv3.EventTypeDelete {
				tr.dels++
				continue
			}
			tr.puts++
			tr.bytes += len(ev.Kv.Key) + len(ev.Kv.Value)
		}
		if n := len(resp.Events); n > 0 && resp.Events[n-1].Kv.ModRevision >= r1 {
			return tr
		}
	}
	t.Fatalf("the watch ended before revision %d: %v", r1, ctx.Err())
	return tr
}

// addInstances gives the report n instances of svc, with ids and figures
// as a slave's (12 hex digits, a pid, some CPU and memory), and adds them
// to the node's totals.
func addInstances(rep *usageReport, svc string, n int) {
	for i := range n {
		iu := InstanceUsage{PID: 100000 + len(rep.usage.Instances), CPU: float64(i%50) / 10, RSS: int64(i%200+1) << 20}
		rep.usage.Instances[fmt.Sprintf("%s/%012x", svc, 0xa00000000000+i)] = iu
		rep.usage.CPU += iu.CPU
		rep.usage.RSS += iu.RSS
	}
}

// setInstance changes (or adds) one instance's figures, totals too.
func setInstance(rep *usageReport, key string, iu InstanceUsage) {
	old := rep.usage.Instances[key]
	rep.usage.Instances[key] = iu
	rep.usage.CPU = math.Round((rep.usage.CPU-old.CPU+iu.CPU)*10) / 10
	rep.usage.RSS += iu.RSS - old.RSS
}

// legacyUsageBytes is what the single record of before (every instance in
// usage/<node>) was in bytes: what each change of one instance wrote.
func legacyUsageBytes(rep *usageReport) int {
	val, _ := json.Marshal(rep.usage)
	return len(rep.k.usage(rep.usage.Node)) + len(val)
}

// usageBytes is what the report's first write is: every key and value.
func usageBytes(rep *usageReport, now time.Time) int {
	n := 0
	for _, w := range rep.plan(now) {
		key, val := rep.encode(&w)
		n += len(key) + len(val)
	}
	return n
}

func readUsageT(t *testing.T, cli *clientv3.Client, k keyspace, svc string) map[string]NodeUsage {
	t.Helper()
	got, err := readUsage(usageCtx(t), cli, k, 0, svc)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func usageCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const (
	usageSvcA = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"
	usageSvcB = "0b9a8c7d-6e5f-4a3b-9c2d-1e0f2a3b4c5d"
)

// A slave with 18,000 instances reports them all. Before, they went in
// one record of about 1.66 MB, over etcd's default request limit (1.5 MiB;
// the embedded etcd uses it), and every write was refused: the usage
// vanished. Now every value is a shard of at most usageShardInstances,
// a few KB, on the slave's lease.
func TestUsageReportShardsPastEtcdRequestLimit(t *testing.T) {
	cli, k, lease := statusWriterEnv(t, 0)
	rep := newUsageReport(k, "node", "host")
	addInstances(rep, usageSvcA, 17000)
	addInstances(rep, usageSvcB, 1000)
	const limit = 3 << 19 // etcd's default --max-request-bytes
	legacy := legacyUsageBytes(rep)
	if legacy <= limit {
		t.Fatalf("the single record would be %d bytes, not past etcd's limit", legacy)
	}
	val, _ := json.Marshal(rep.usage)
	_, err := cli.Put(usageCtx(t), k.usage("node"), string(val), clientv3.WithLease(lease))
	if err == nil {
		t.Fatalf("etcd took the single record of %d bytes: not past its request limit", legacy)
	}
	t.Logf("the single record of 18,000 instances: %d bytes, refused: %v", legacy, err)

	if err := rep.write(usageCtx(t), cli, lease, 10*time.Second, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := readUsageT(t, cli, k, "")
	if u := got["node"]; !maps.Equal(u.Instances, rep.usage.Instances) || u.Hostname != "host" || u.CPU != rep.usage.CPU {
		t.Fatalf("read back %d instances of %d (host %q, CPU %v)", len(u.Instances), len(rep.usage.Instances), u.Hostname, u.CPU)
	}
	resp, err := cli.Get(usageCtx(t), k.usageAll(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	biggest := 0
	for _, kv := range resp.Kvs {
		biggest = max(biggest, len(kv.Key)+len(kv.Value))
		if kv.Lease != int64(lease) {
			t.Errorf("%s is not on the slave's lease", kv.Key)
		}
	}
	if biggest > 8<<10 {
		t.Errorf("a usage value of %d bytes; a shard is at most about 7 KB", biggest)
	}
	t.Logf("18,000 instances: %d keys, the largest %d bytes", len(resp.Kvs), biggest)
}

// The usage is written when it changes, and only what changed: a changed
// instance rewrites its shard and the node's record (its totals), not
// every instance's figures; a change of the host's figures alone waits for
// usageHostEvery; a shard whose instances all went is deleted.
func TestUsageReportWritesWhatChanged(t *testing.T) {
	cli, k, lease := statusWriterEnv(t, 0)
	rep := newUsageReport(k, "node", "host")
	addInstances(rep, usageSvcA, 9000)
	for i := range 100 {
		addInstances(rep, fmt.Sprintf("%s-%03d", usageSvcB[:32], i), 10)
	}
	now := time.Now()
	write := func(what string, puts, dels int) usageTraffic {
		t.Helper()
		tr := usageWritten(t, cli, k, func() {
			if err := rep.write(usageCtx(t), cli, lease, 10*time.Second, now); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		})
		if tr.puts != puts || tr.dels != dels {
			t.Fatalf("%s: %d puts and %d deletes, want %d and %d", what, tr.puts, tr.dels, puts, dels)
		}
		if got := readUsageT(t, cli, k, "")["node"]; !maps.Equal(got.Instances, rep.usage.Instances) || got.CPU != rep.usage.CPU {
			t.Fatalf("%s: read back %d instances of %d, CPU %v of %v", what, len(got.Instances), len(rep.usage.Instances), got.CPU, rep.usage.CPU)
		}
		return tr
	}
	shards := 9000/usageShardInstances + 1 + 100
	first := write("the first report", 1+shards, 0)
	write("the same figures", 0, 0)

	rep.usage.Load1 = 0.7
	write("only the load moved", 0, 0)
	now = now.Add(usageHostEvery)
	write("only the load moved, 30 s later", 1, 0)

	now = now.Add(time.Second)
	key := fmt.Sprintf("%s/%012x", usageSvcA, 0xa00000000000+4321)
	iu := rep.usage.Instances[key]
	iu.CPU += 0.1
	legacy := legacyUsageBytes(rep)
	setInstance(rep, key, iu)
	one := write("one instance's CPU moved", 2, 0)
	t.Logf("10,000 instances: the first report %d bytes in %d keys; one changed instance: %d bytes in %d keys, where the single record of before wrote %d bytes",
		first.bytes, first.puts, one.bytes, one.puts, legacy)
	if one.bytes > 8<<10 {
		t.Errorf("one changed instance wrote %d bytes", one.bytes)
	}

	// Two instances swapping their figures change the shard's value.
	a, b := fmt.Sprintf("%s/%012x", usageSvcA, 0xa00000000000+1), ""
	for other, sh := range rep.slot {
		if sh == rep.slot[a] && rep.usage.Instances[other] != rep.usage.Instances[a] {
			b = other
		}
	}
	rep.usage.Instances[a], rep.usage.Instances[b] = rep.usage.Instances[b], rep.usage.Instances[a]
	write("two instances swapped their figures", 1, 0)

	// The instances of one small service go: its shard is deleted.
	gone := fmt.Sprintf("%s-%03d", usageSvcB[:32], 7)
	for i := range 10 {
		setInstance(rep, fmt.Sprintf("%s/%012x", gone, 0xa00000000000+i), InstanceUsage{})
		delete(rep.usage.Instances, fmt.Sprintf("%s/%012x", gone, 0xa00000000000+i))
	}
	write("a service's instances went", 1, 1)
	if _, ok := rep.shards[gone]; ok {
		t.Fatal("the emptied shard is still kept")
	}

	// A new instance joins the service's shard that has room (9,000 =
	// 140 full shards and one of 40): one shard is written.
	setInstance(rep, usageSvcA+"/ffffffffffff", InstanceUsage{PID: 99, RSS: 1 << 20})
	write("an instance came", 2, 0)
	if n := len(rep.shards[usageSvcA]); n != 9000/usageShardInstances+1 {
		t.Fatalf("%d shards for 9,001 instances", n)
	}
	// One that goes from a full shard leaves room there, which the next
	// new instance takes: membership is stable, and no shard is over.
	delete(rep.usage.Instances, fmt.Sprintf("%s/%012x", usageSvcA, 0xa00000000000+5))
	rep.usage.CPU += 0.1 // the totals moved too
	write("an instance went", 2, 0)
	setInstance(rep, usageSvcA+"/fffffffffffe", InstanceUsage{PID: 98, RSS: 1 << 20})
	write("another came", 2, 0)
	for _, sh := range rep.shards[usageSvcA] {
		if sh.members > usageShardInstances {
			t.Fatalf("a shard of %d instances", sh.members)
		}
	}
}

// A failed write is written at the next interval: the shards it held,
// a change it carried, a deletion.
func TestUsageReportRetriesFailedWrites(t *testing.T) {
	cli, k, lease := statusWriterEnv(t, 0)
	rep := newUsageReport(k, "node", "host")
	addInstances(rep, usageSvcA, 300)
	addInstances(rep, usageSvcB, 10)
	failed, cancel := context.WithCancel(context.Background())
	cancel()
	now := time.Now()
	try := func(what string) {
		t.Helper()
		if err := rep.write(failed, cli, lease, 10*time.Second, now); err == nil {
			t.Fatalf("%s: a write with a cancelled context did not fail", what)
		}
	}
	retry := func(what string) {
		t.Helper()
		if err := rep.write(usageCtx(t), cli, lease, 10*time.Second, now); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := readUsageT(t, cli, k, "")["node"]; !maps.Equal(got.Instances, rep.usage.Instances) || got.CPU != rep.usage.CPU {
			t.Fatalf("%s: read back %d instances of %d, CPU %v of %v", what, len(got.Instances), len(rep.usage.Instances), got.CPU, rep.usage.CPU)
		}
	}
	try("the first report")
	if got := readUsageT(t, cli, k, ""); len(got) != 0 {
		t.Fatalf("a failed write wrote %+v", got)
	}
	retry("the first report again")

	key := fmt.Sprintf("%s/%012x", usageSvcA, 0xa00000000000+7)
	setInstance(rep, key, InstanceUsage{PID: 7, CPU: 42, RSS: 7 << 20})
	try("a change")
	retry("the same figures, after a change failed")

	for i := range 10 {
		key := fmt.Sprintf("%s/%012x", usageSvcB, 0xa00000000000+i)
		setInstance(rep, key, InstanceUsage{})
		delete(rep.usage.Instances, key)
	}
	try("a service's instances went")
	retry("the same figures, after a deletion failed")
	if got := readUsageT(t, cli, k, usageSvcB)["node"]; len(got.Instances) != 0 {
		t.Fatalf("the emptied shard is still in etcd: %v", got.Instances)
	}
}

// A slave from before the shards writes every instance in usage/<node>:
// during a rolling upgrade the master reads both kinds. Reading for one
// service keeps the shards of that service.
func TestReadUsageAcceptsTheSingleRecordOfBefore(t *testing.T) {
	cli, k, lease := statusWriterEnv(t, 0)
	old := NodeUsage{Node: "old", Hostname: "old-host", Cores: 4, CPU: 3, RSS: 3 << 20, Instances: map[string]InstanceUsage{
		usageSvcA + "/000000000001": {PID: 1, CPU: 1, RSS: 1 << 20},
		usageSvcB + "/000000000002": {PID: 2, CPU: 2, RSS: 2 << 20},
	}}
	val, _ := json.Marshal(old)
	if _, err := cli.Put(usageCtx(t), k.usage("old"), string(val)); err != nil {
		t.Fatal(err)
	}
	rep := newUsageReport(k, "new", "new-host")
	addInstances(rep, usageSvcA, 70)
	addInstances(rep, usageSvcB, 3)
	if err := rep.write(usageCtx(t), cli, lease, 10*time.Second, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := readUsageT(t, cli, k, "")
	if o := got["old"]; o.Hostname != "old-host" || o.Cores != 4 || !maps.Equal(o.Instances, old.Instances) {
		t.Errorf("the record of before read as %+v", o)
	}
	if n := got["new"]; n.Hostname != "new-host" || !maps.Equal(n.Instances, rep.usage.Instances) {
		t.Errorf("the new node read as %q with %d instances", n.Hostname, len(n.Instances))
	}
	// A master from before decodes every usage value as a NodeUsage
	// and keys it by its Node: a shard must not decode as one.
	resp, err := cli.Get(usageCtx(t), k.usageAll(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		var u NodeUsage
		if _, _, shard, _ := k.splitUsage(string(kv.Key)); shard && json.Unmarshal(kv.Value, &u) == nil {
			t.Errorf("the shard %s decodes as a NodeUsage: %+v", kv.Key, u)
		}
	}
	got = readUsageT(t, cli, k, usageSvcB)
	if n := got["new"]; n.Hostname != "new-host" || len(n.Instances) != 3 {
		t.Errorf("the new node, for one service: %q with %d instances, want 3", n.Hostname, len(n.Instances))
	}
	if o := got["old"]; len(o.Instances) != 2 {
		t.Errorf("the record of before, for one service: %+v", o)
	}
}

// BenchmarkUsageReportOneChange is what a slave's usage report writes to
// etcd (and each watcher of the prefix receives) in an interval in which
// one of n instances' figures moved: B-written/interval and
// keys/interval, against the single record of before (before-B/interval),
// which was written whole.
func BenchmarkUsageReportOneChange(b *testing.B) {
	sizes := []int{100, 1000, 10000, 17000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cli, k, lease := statusWriterEnv(b, 0)
			rep := newUsageReport(k, "4f0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "host")
			addInstances(rep, usageSvcA, n/2)
			for i := range n / 20 { // and ten instances each of n/20 services
				addInstances(rep, fmt.Sprintf("%s-%03d", usageSvcB[:32], i), 10)
			}
			now := time.Now()
			if err := rep.write(usageCtx(b), cli, lease, 10*time.Second, now); err != nil {
				b.Fatal(err)
			}
			key := fmt.Sprintf("%s/%012x", usageSvcA, 0xa00000000000+n/4)
			var tr usageTraffic
			legacy := 0
			for i := 0; b.Loop(); i++ {
				iu := rep.usage.Instances[key]
				iu.CPU = float64(i%2) + 0.5
				setInstance(rep, key, iu)
				legacy += legacyUsageBytes(rep)
				t := usageWritten(b, cli, k, func() {
					if err := rep.write(usageCtx(b), cli, lease, 10*time.Second, now); err != nil {
						b.Fatal(err)
					}
				})
				tr.bytes, tr.puts = tr.bytes+t.bytes, tr.puts+t.puts
			}
			b.ReportMetric(float64(tr.bytes)/float64(b.N), "B-written/interval")
			b.ReportMetric(float64(tr.puts)/float64(b.N), "keys/interval")
			b.ReportMetric(float64(legacy)/float64(b.N), "before-B/interval")
		})
	}
}
