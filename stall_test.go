package gdpm_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// markedProcs counts the live (not zombie) test programs whose environment
// holds mark: every copy of a service's instances, wherever it runs and
// whatever the cluster believes.
func markedProcs(mark string) int {
	want := []byte(mark + "\x00")
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, _ := os.Readlink("/proc/" + e.Name() + "/exe"); exe != gdpm.ProgramForTests() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) || isZombieProc(pid) {
			continue
		}
		n++
	}
	return n
}

func isZombieProc(pid int) bool {
	st := procStat(pid)
	return len(st) == 0 || st[0] == "Z" || st[0] == "X"
}

// countSampler samples markedProcs every 100 ms until stopped and keeps
// the largest count and when it was seen.
type countSampler struct {
	mark string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	max     int
	samples int
	over    []string // samples above the limit: "time: count"
	limit   int
	begin   time.Time
}

func startSampler(mark string, limit int) *countSampler {
	s := &countSampler{mark: mark, limit: limit, stop: make(chan struct{}), done: make(chan struct{}), begin: time.Now()}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			n := markedProcs(mark)
			s.mu.Lock()
			s.samples++
			s.max = max(s.max, n)
			if n > s.limit {
				s.over = append(s.over, fmt.Sprintf("%v: %d", time.Since(s.begin).Round(time.Millisecond), n))
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns the largest count, the number of
// samples and the samples above the limit.
func (s *countSampler) finish() (int, int, []string) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples, s.over
}

// TestStalledSlaveNeverRunsDuplicates: a gdpm-slave stopped with SIGSTOP
// for longer than its lease cannot fence itself; its watchdog kills its
// instances before the lease can expire, so that when the scheduler has
// placed them on the other slave no instance runs twice at any sampled
// moment. After SIGCONT the stalled slave fences, registers again, and
// the service converges to exactly its instance count (issue 10, 4).
func TestStalledSlaveNeverRunsDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops the gdpm-slave binary")
	}
	const ttl = 2 * time.Second
	bin := buildBinary(t, "gdpm-slave")
	c := newCluster(t, clusterOpts{slaves: 1, master: func(c *gdpm.MasterConfig) { c.LeaseTTL = ttl }})
	sp := startSlaveBinary(t, bin, c.master().TCPAddr(), t.TempDir())
	binNode := sp.waitRegistered()
	waitNodes(t, c, 2)

	const n = 8
	svc, mark, onBin := c.createMarked("GDPM_STALL_MARK", n, binNode)

	sampler := startSampler(mark, n)
	t.Cleanup(func() { sampler.finish() })
	begin := time.Now()
	if err := syscall.Kill(sp.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(sp.pid(), syscall.SIGCONT) })
	other := c.slaves[0].NodeID()
	c.waitOnlyOn(svc, n, other)
	moved := time.Since(begin)
	// Stay stopped well past the lease, as a frozen machine would.
	for time.Since(begin) < 3*ttl {
		time.Sleep(100 * time.Millisecond)
	}
	stopped := time.Since(begin)
	syscall.Kill(sp.pid(), syscall.SIGCONT)

	// The slave recovers: it fences (nothing left to kill), registers
	// again and is given work again.
	maxSeen, samples, over := convergesAfter(t, c, sp, "the stalled slave", 20*time.Second, svc, mark, n, sampler)
	t.Logf("SIGSTOP %v (lease TTL %v): %d of %d instances on the stopped slave moved after %v; %d samples every 100 ms, max %d processes for %d desired",
		stopped.Round(time.Millisecond), ttl, onBin, n, moved.Round(time.Millisecond), samples, maxSeen, n)
	if len(over) > 0 {
		t.Errorf("more than %d copies running at %d samples: %v", n, len(over), over)
	}
	if !strings.Contains(sp.out.String(), "lease not renewed in time") && !strings.Contains(sp.out.String(), "session ended") {
		t.Logf("slave output:\n%s", sp.out.String())
	}
}

// createMarked creates a service of n sleeps marked with a fresh value of
// the environment variable env, waits until all n run and the marked
// processes are there, and checks that some run on binNode, the slave
// the test is about to stall or cut off. It returns the service, the mark
// ("ENV=value") that markedProcs counts, and how many run on binNode.
func (c *cluster) createMarked(env string, n int, binNode string) (svc, mark string, onBin int) {
	t := c.t
	t.Helper()
	mark = env + "=" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	k, v, _ := strings.Cut(mark, "=")
	svc, err := c.client.CreateService(ctxT(t), gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " sleep", InstanceNum: &n, Env: map[string]string{k: v}})
	if err != nil {
		t.Fatal(err)
	}
	c.waitRunning(svc, n)
	waitFor(t, 10*time.Second, fmt.Sprintf("%d marked processes", n), func() (bool, string) {
		got := markedProcs(mark)
		return got == n, strconv.Itoa(got)
	})
	for _, in := range c.instances(svc) {
		if in.Node == binNode {
			onBin++
		}
	}
	if onBin == 0 {
		t.Fatalf("no instance on slave %s, the one the test stalls or cuts off", binNode)
	}
	return svc, mark, onBin
}

// convergesAfter waits until the slave binary sp, back from a stall or a
// cut, has registered again (within regTimeout), then for exact
// convergence: n marked processes and n running instances of svc, and it
// stays so for a last sampling window. It returns the sampler's verdict
// (the most processes seen, the samples, those over n).
func convergesAfter(t *testing.T, c *cluster, sp *slaveProc, who string, regTimeout time.Duration, svc, mark string, n int, sampler *countSampler) (int, int, []string) {
	t.Helper()
	waitFor(t, regTimeout, who+" to register again", func() (bool, string) {
		return strings.Count(sp.out.String(), "msg=registered") >= 2, ""
	})
	waitNodes(t, c, 2)
	waitFor(t, 20*time.Second, fmt.Sprintf("exactly %d marked processes and running instances", n), func() (bool, string) {
		pids, perNode, err := c.running(svc)
		got := markedProcs(mark)
		return err == nil && len(pids) == n && got == n, fmt.Sprintf("%d processes, %d running %v %v", got, len(pids), perNode, err)
	})
	time.Sleep(time.Second) // a last window for stragglers to show
	maxSeen, samples, over := sampler.finish()
	if got := markedProcs(mark); got != n {
		t.Errorf("%d marked processes after convergence, want %d", got, n)
	}
	return maxSeen, samples, over
}
