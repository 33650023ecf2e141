package gdpm

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// BenchmarkSupervisorFootprint measures what a slave keeps for n `sleep
// 1000` instances beyond the runners alone (BenchmarkRunnerFootprint): the
// supervisor with its assignments, the status writer writing to a real
// etcd, and the usage report's state after a sample. It reports the live
// heap per instance once every instance runs and its status is written,
// what one watch batch of one change allocates (apply), and for
// comparison what a clone of the assignments costs (what every batch
// allocated when the supervisor kept a copy). GDPM_FOOTPRINT_INSTANCES
// sets n (default 1000, 100 with -short); GDPM_HEAP_PROFILE, a file for
// the heap profile while they run.
func BenchmarkSupervisorFootprint(b *testing.B) {
	n := testkit.FootprintInstances(1000, 100)
	writeProfile := heapProfile()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli, k, lease := statusWriterEnv(b, 0)
	groups, err := proc.OpenGroups(b.TempDir(), false, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer groups.Close()
	logDir := b.TempDir()
	for range b.N {
		wctx, wcancel := context.WithCancel(ctx)
		sw := newStatusWriter(cli, k, "node-1", lease, discardLogger())
		done := make(chan struct{})
		go func() { defer close(done); sw.run(wctx, 5*time.Second) }()
		sup := newSupervisor(slaveDeps{logDir: logDir, logMaxSize: DefaultLogMaxSize, logMaxFiles: DefaultLogMaxFiles,
			hostname: "host", groups: groups, ports: newPortPool(), log: discardLogger()}, "node-1", sw)
		heap0, _, _, _ := footprint()
		desired := make(map[string]Assignment, n)
		for i := range n {
			a := Assignment{Service: "bench", Instance: fmt.Sprintf("%012d", i), Node: "node-1", Index: i,
				Spec: Spec{Command: "sleep 1000"}, PlacedAt: time.Now(), resolved: true}
			desired["bench/"+a.Instance] = a
		}
		sup.sync(desired)
		deadline := time.Now().Add(max(60*time.Second, time.Duration(n)*20*time.Millisecond))
		for {
			running := 0
			sup.mu.Lock()
			for _, r := range sup.running {
				if r.Status().State == StateRunning {
					running++
				}
			}
			sup.mu.Unlock()
			sw.mu.Lock()
			pending := len(sw.dirty) + len(sw.flying)
			sw.mu.Unlock()
			if running == n && pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d running, %d statuses to write", running, n, pending)
			}
			time.Sleep(20 * time.Millisecond)
		}
		rep := newUsageReport(newKeyspace(""), "node-1", "host")
		sup.sampleUsageInto(rep, time.Now())
		usage := usageBytes(rep, time.Now())
		time.Sleep(200 * time.Millisecond) // transient start work settles
		heap1, _, _, _ := footprint()
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/instance")
		b.ReportMetric(float64(usage)/float64(n), "usage-B/instance")
		writeProfile()

		// A watch batch of one change: an instance's assignment written
		// again as it is.
		const batches = 100
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		for i := range batches {
			key := "bench/" + fmt.Sprintf("%012d", i%n)
			sup.mu.Lock()
			a := sup.desired[key]
			sup.mu.Unlock()
			sup.apply(map[string]Assignment{key: a})
		}
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/batches, "alloc-B/batch")
		sup.mu.Lock()
		runtime.ReadMemStats(&ms0)
		c := maps.Clone(sup.desired)
		runtime.ReadMemStats(&ms1)
		sup.mu.Unlock()
		runtime.KeepAlive(c)
		b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc), "clone-B")

		b.StopTimer()
		sup.stopAll(context.Background(), true)
		wcancel()
		<-done
		b.StartTimer()
	}
}
