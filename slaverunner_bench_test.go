package gdpm

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// BenchmarkRunnerFootprint measures what n supervised `sleep 1000`
// instances cost inside the slave's process, through the same adapter and
// log files the slave uses: live heap, goroutines and file descriptors per
// instance, once every instance runs. GDPM_FOOTPRINT_INSTANCES sets n
// (default 1000, 100 with -short); GDPM_HEAP_PROFILE, a file to write the
// heap profile to while they run.
func BenchmarkRunnerFootprint(b *testing.B) {
	n := testkit.FootprintInstances(1000, 100)
	logDir := b.TempDir()
	writeProfile := heapProfile()
	for range b.N {
		heap0, stack0, g0, fd0 := footprint()
		var mu sync.Mutex
		running := 0
		runners := make([]*instanceRunner, n)
		for i := range runners {
			inst := strconv.Itoa(i)
			started := false
			runners[i] = startRunner(runnerConfig{
				Assignment:  Assignment{Service: "bench", Instance: inst, Spec: Spec{Command: "sleep 1000"}},
				Node:        "node-1",
				LogDir:      logDir,
				LogMaxSize:  DefaultLogMaxSize,
				LogMaxFiles: DefaultLogMaxFiles,
				Identity:    instanceEnv(Assignment{Service: "bench", Instance: inst}, "node-1", "host", nil),
				OnStatus: func(st InstanceStatus) {
					mu.Lock()
					defer mu.Unlock()
					if st.State == StateRunning && !started {
						started = true
						running++
					}
				},
			})
		}
		deadline := time.Now().Add(time.Duration(n) * 20 * time.Millisecond)
		for {
			mu.Lock()
			r := running
			mu.Unlock()
			if r == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d running", r, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // transient start work settles
		heap1, stack1, g1, fd1 := footprint()
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/instance")
		b.ReportMetric(float64(stack1-stack0)/float64(n), "stack-B/instance")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/instance")
		b.ReportMetric(float64(fd1-fd0)/float64(n), "fds/instance")
		writeProfile()
		b.StopTimer()
		var wg sync.WaitGroup
		for _, r := range runners {
			wg.Go(func() { r.Stop(context.Background()) })
		}
		wg.Wait()
		b.StartTimer()
	}
}

// footprint is the live heap after a collection, the goroutine stacks, the
// goroutines and the open file descriptors of this process.
// heapProfile, with GDPM_HEAP_PROFILE naming a file, records every
// allocation (not a sample) and returns what writes the heap profile
// there; without it, a no-op.
func heapProfile() (write func()) {
	path := os.Getenv("GDPM_HEAP_PROFILE")
	if path == "" {
		return func() {}
	}
	runtime.MemProfileRate = 1
	return func() {
		if f, err := os.Create(path); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
}

func footprint() (heap, stacks int64, goroutines, fds int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ents, _ := os.ReadDir("/proc/self/fd")
	return int64(ms.HeapAlloc), int64(ms.StackInuse), runtime.NumGoroutine(), len(ents)
}
