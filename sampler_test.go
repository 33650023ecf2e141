package gdpm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startGroups starts n sleeping processes, each the leader of its own
// process group as an instance is, and kills them at cleanup.
func startGroups(tb testing.TB, n int) map[int]bool {
	tb.Helper()
	pgids := map[int]bool{}
	var cmds []*exec.Cmd
	tb.Cleanup(func() {
		for _, c := range cmds {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		}
	})
	for i := 0; i < n; i++ {
		c := exec.Command(testProgram, "sleep")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			tb.Fatal(err)
		}
		cmds = append(cmds, c)
		pgids[c.Process.Pid] = true
	}
	return pgids
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUsageSample is what a slave running 1,000 instances spends per
// sample: one scan of /proc measuring every process group, and the node's
// usage placed in shards, hashed and encoded for etcd (every shard: an
// upper bound, since only the changed ones are encoded and written). It reports the CPU time of a sample
// (user+system, from getrusage, not the wall clock) and what that is as a
// share of one core at the default interval (DefaultUsageInterval); the
// target is under 2 %.
func BenchmarkUsageSample(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 50
	}
	pgids := startGroups(b, n)
	rep := newUsageReport(newKeyspace(""), fmt.Sprintf("%036d", 0), "host")
	s := rep.sampler
	s.sample(pgids, time.Now()) // warm: the first sample has no rate yet
	keys := map[int]string{}
	for pgid := range pgids {
		keys[pgid] = fmt.Sprintf("%036d/%012d", pgid%10, pgid)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		now := time.Now()
		got := s.sample(pgids, now)
		if len(got) != n {
			b.Fatalf("sampled %d groups of %d", len(got), n)
		}
		clear(rep.usage.Instances)
		for pgid, iu := range got {
			rep.usage.Instances[keys[pgid]] = iu
		}
		hostUsage(&rep.usage)
		usageBytes(rep, now)
	}
	per := (cpuTime() - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "cpu-ms/sample")
	b.ReportMetric(100*per.Seconds()/DefaultUsageInterval.Seconds(), "%core@5s")
}

// The sampler measures a group as a whole: a leader and its children.
func TestUsageSamplerCountsTheWholeGroup(t *testing.T) {
	pgids := startGroups(t, 1)
	var pgid int
	for p := range pgids {
		pgid = p
	}
	// Start returns once the exec is under way, before the new image has
	// touched its memory: measure once the program sleeps.
	waitSleeping(t, pgid)
	s := newUsageSampler()
	got := s.sample(pgids, time.Now())
	one := got[pgid].RSS
	if one <= 0 {
		t.Fatalf("no RSS for the group: %+v", got)
	}
	// A second member in the same group adds its memory.
	c := exec.Command(testProgram, "sleep")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = s.sample(pgids, time.Now())
		if got[pgid].RSS > one+one/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a second member did not add to the group's RSS: %d then %d", one, got[pgid].RSS)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSleeping waits until pid is asleep (state S in /proc/pid/stat).
func waitSleeping(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && len(b) > i+2 && b[i+2] == 'S' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d does not sleep: %s", pid, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
