//go:build linux

package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func TestStaleGroups(t *testing.T) {
	procs := []procInfo{
		{pid: 100, pgrp: 100, start: 5000},               // leader of a recorded group, same start
		{pid: 101, pgrp: 100, start: 5001},               // its child
		{pid: 200, pgrp: 200, start: 9000},               // pid reused: recorded start was 6000
		{pid: 201, pgrp: 200, start: 9001},               //
		{pid: 301, pgrp: 300, start: 7001},               // leader 300 gone, member forked after it
		{pid: 401, pgrp: 400, start: 100},                // leader 400 gone, member older than the record
		{pid: 500, pgrp: 500, start: 8000, zombie: true}, // leader a zombie, same start
		{pid: 501, pgrp: 500, start: 8001},               //
		{pid: 600, pgrp: 600, start: 8500, zombie: true}, // only a zombie left
		{pid: 700, pgrp: 700, start: 1},                  // recorded without a start time
		{pid: 701, pgrp: 700, start: 2},                  //
	}
	recs := map[int]uint64{100: 5000, 200: 6000, 300: 7000, 400: 7000, 500: 8000, 600: 8500, 700: 0, 800: 1}
	got := staleGroups(recs, procs)
	slices.Sort(got)
	if want := []int{100, 300, 500}; !slices.Equal(got, want) {
		t.Errorf("staleGroups = %v, want %v", got, want)
	}
}

func TestGroupRecord(t *testing.T) {
	dir := t.TempDir()
	tr := &groupTracker{path: filepath.Join(dir, pgroupsFile), log: discardLogger(), live: map[int]uint64{}, gone: map[int]struct{}{}}
	if err := tr.compact(); err != nil {
		t.Fatal(err)
	}
	// Enough churn to compact a few times; tell is a no-op without a
	// watchdog.
	for i := 2; i < 3000; i++ {
		tr.add(i, uint64(i)*10)
		if i%3 != 0 {
			tr.remove(i)
		}
	}
	recs, err := readGroupRecord(tr.path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(tr.live) {
		t.Fatalf("record holds %d groups, tracker %d", len(recs), len(tr.live))
	}
	for pg, st := range tr.live {
		if recs[pg] != st {
			t.Fatalf("record has %d -> %d, want %d", pg, recs[pg], st)
		}
	}
	tr.file.Close()
	// About 5000 lines were written; compaction keeps the file small.
	b, _ := os.ReadFile(tr.path)
	if n := strings.Count(string(b), "\n"); n > 2000 {
		t.Errorf("record not compacted: %d lines for %d groups", n, len(tr.live))
	}

	// A record written before a reboot holds nothing.
	other := strings.Replace(string(b), bootID(), "another-boot", 1)
	os.WriteFile(tr.path, []byte(other), 0o644)
	if recs, err := readGroupRecord(tr.path); err != nil || len(recs) != 0 {
		t.Errorf("record of another boot read as %d groups, %v", len(recs), err)
	}
}

// startGroup starts the test program in a new process group.
func startGroup(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testProgram, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatchdogKillsRecordedGroupsOnEOF: at end of file the watchdog kills
// the groups it was told about and not removed, children included, and
// exits.
func TestWatchdogKillsRecordedGroupsOnEOF(t *testing.T) {
	wd, err := startWatchdog("test")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := startGroup(t, "fork", "1"), startGroup(t, "sleep"), startGroup(t, "sleep")
	waitUntil(t, 5*time.Second, "the forked child", func() bool { return len(liveGroupMembers(a.Process.Pid)) == 2 })
	pa, pb, pc := a.Process.Pid, b.Process.Pid, c.Process.Pid
	// c is removed and added again; 4194305 is above any pid_max.
	lines := []string{
		fmt.Sprintf("+ %d\n", pa), fmt.Sprintf("+ %d\n", pb), fmt.Sprintf("+ %d\n", pc),
		fmt.Sprintf("- %d\n", pb), "- 4194305\n", fmt.Sprintf("- %d\n", pc), fmt.Sprintf("+ %d\n", pc),
	}
	if err := wd.send(time.Now().Add(time.Second), lines...); err != nil {
		t.Fatal(err)
	}
	if err := wd.close(); err != nil {
		t.Fatal(err)
	}
	if !wd.cmd.ProcessState.Success() {
		t.Errorf("watchdog exited with %v", wd.cmd.ProcessState)
	}
	waitUntil(t, 5*time.Second, "groups a and c to die", func() bool {
		return len(liveGroupMembers(pa)) == 0 && len(liveGroupMembers(pc)) == 0
	})
	if !procAlive(pb) {
		t.Errorf("the watchdog killed group %d, which had been removed", pb)
	}
}

// TestWatchdogKilledKillsNothing: SIGKILL of the watchdog (how the tracker
// drops one that stopped reading) leaves the groups alone.
func TestWatchdogKilledKillsNothing(t *testing.T) {
	wd, err := startWatchdog("test")
	if err != nil {
		t.Fatal(err)
	}
	a := startGroup(t, "sleep")
	if err := wd.send(time.Now().Add(time.Second), fmt.Sprintf("+ %d\n", a.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	wd.kill()
	if err := wd.close(); err != nil {
		t.Errorf("close after kill: %v", err)
	}
	if !procAlive(a.Process.Pid) {
		t.Error("a killed watchdog killed its group")
	}
}

func subreaperFlag(t *testing.T) int32 {
	var v int32
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prGetChildSubreaper, uintptr(unsafe.Pointer(&v)), 0); e != 0 {
		t.Fatal(e)
	}
	return v
}

// TestSubreaperReapsOrphansOfInstanceGroupsOnly: an instance's orphan is
// adopted and, once dead, reaped; the flag is cleared at close.
func TestSubreaperReapsOrphansOfInstanceGroupsOnly(t *testing.T) {
	if subreaperFlag(t) != 0 {
		t.Skip("this process is already a subreaper")
	}
	tr, err := openGroupTracker(t.TempDir(), true, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	if subreaperFlag(t) != 1 {
		t.Fatal("subreaper flag not set")
	}

	// An instance-like group whose leader exits, orphaning its child.
	leader := startGroup(t, "fork", "1")
	pg := leader.Process.Pid
	tr.add(pg, StartTime(pg))
	var orphan int
	waitUntil(t, 5*time.Second, "the forked child", func() bool {
		for _, p := range liveGroupMembers(pg) {
			if p != pg {
				orphan = p
			}
		}
		return orphan != 0
	})
	leader.Process.Kill()
	leader.Wait()
	waitUntil(t, 5*time.Second, "the orphan to be adopted", func() bool {
		st, ok := readProcStat(orphan)
		return ok && st[1] == strconv.Itoa(os.Getpid())
	})

	// A child of ours in another group, not an instance's: left alone.
	other := exec.Command(testProgram, "exit", "0")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}

	signalGroup(pg, syscall.SIGKILL)
	tr.remove(pg)
	waitUntil(t, 5*time.Second, "the dead orphan to be reaped", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", orphan))
		return os.IsNotExist(err)
	})
	if err := other.Wait(); err != nil {
		t.Errorf("another child's exit status was taken: %v", err)
	}
	waitUntil(t, 15*time.Second, "the killed group to be forgotten", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		_, ok := tr.gone[pg]
		return !ok
	})
	if err := tr.close(); err != nil {
		t.Fatal(err)
	}
	if subreaperFlag(t) != 0 {
		t.Error("subreaper flag still set after close")
	}
}

// TestWatchdogKeepsUpWithThousandsOfGroups: adding and removing many
// groups in any order stays cheap, so that the watchdog is never behind
// when the slave closes (a string-cut set took 6-18 s for 1000 removals
// and made Close give up on it).
func TestWatchdogKeepsUpWithThousandsOfGroups(t *testing.T) {
	wd, err := startWatchdog("test")
	if err != nil {
		t.Fatal(err)
	}
	// Above any pid_max: no such group exists, so nothing is killed.
	const n, base = 3000, 4194305
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("+ %d\n", base+i))
	}
	for i := n - 1; i >= 0; i-- { // the worst order for a string-cut set
		lines = append(lines, fmt.Sprintf("- %d\n", base+i))
	}
	if err := wd.send(time.Now().Add(10*time.Second), lines...); err != nil {
		t.Fatal(err)
	}
	if err := wd.close(); err != nil {
		t.Fatal(err) // "did not exit on end of file" when it falls behind
	}
	if !wd.cmd.ProcessState.Success() {
		t.Errorf("watchdog exited with %v", wd.cmd.ProcessState)
	}
}

// deadline is the watchdog's "h" line for a deadline d from now.
func deadlineLine(t *testing.T, d time.Duration) string {
	t.Helper()
	up, err := bootClock()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("h %d\n", (up+d)/(10*time.Millisecond))
}

// TestWatchdogDeadMansSwitch: an armed watchdog that hears no new deadline
// kills every group, and every group added after that, until a deadline
// in the future comes; a renewed deadline, or disarming, kills nothing; a
// deadline already past kills at once.
func TestWatchdogDeadMansSwitch(t *testing.T) {
	wd, err := startWatchdog("test")
	if err != nil {
		t.Fatal(err)
	}
	defer wd.close()
	send := func(lines ...string) {
		t.Helper()
		if err := wd.send(time.Now().Add(time.Second), lines...); err != nil {
			t.Fatal(err)
		}
	}
	dead := func(pg int) func() bool { return func() bool { return len(liveGroupMembers(pg)) == 0 } }

	// Renewed in time: nothing dies.
	a := startGroup(t, "fork", "1")
	pa := a.Process.Pid
	waitUntil(t, 5*time.Second, "the forked child", func() bool { return len(liveGroupMembers(pa)) == 2 })
	send(fmt.Sprintf("+ %d\n", pa))
	for range 5 {
		send(deadlineLine(t, 400*time.Millisecond))
		time.Sleep(200 * time.Millisecond)
	}
	if !procAlive(pa) {
		t.Fatal("the watchdog killed a group while its deadline was renewed")
	}
	// Missed: the group dies, children included, soon after the deadline.
	begin := time.Now()
	send(deadlineLine(t, 300*time.Millisecond))
	waitUntil(t, 5*time.Second, "group a to die after the deadline", dead(pa))
	// The deadline travels in hundredths of a second, rounded down.
	if d := time.Since(begin); d < 290*time.Millisecond {
		t.Errorf("killed after %v, before the deadline", d)
	}
	t.Logf("deadline 300ms: group killed after %v", time.Since(begin).Round(time.Millisecond))
	// Fenced: a group added now dies at once.
	b := startGroup(t, "sleep")
	send(fmt.Sprintf("+ %d\n", b.Process.Pid))
	waitUntil(t, 5*time.Second, "group b, added while fenced, to die", dead(b.Process.Pid))
	// A deadline in the past keeps it fenced.
	send(deadlineLine(t, -time.Second))
	c := startGroup(t, "sleep")
	send(fmt.Sprintf("+ %d\n", c.Process.Pid))
	waitUntil(t, 5*time.Second, "group c, added with a past deadline, to die", dead(c.Process.Pid))
	// A future deadline lifts the fence; disarming keeps what runs alive.
	send(deadlineLine(t, 300*time.Millisecond))
	d := startGroup(t, "sleep")
	send(fmt.Sprintf("+ %d\n", d.Process.Pid), "d\n")
	time.Sleep(600 * time.Millisecond)
	if !procAlive(d.Process.Pid) {
		t.Fatal("the watchdog killed a group after it was disarmed")
	}
	// End of file still kills it, and leaves no timer behind.
	if err := wd.close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "group d to die at end of file", dead(d.Process.Pid))
}

// TestReaperReadsOnlyItsChildren: looking for orphans to reap lists this
// process's children instead of reading the stat of every process on the
// host, which a slave with thousands of instances did every 10 s at idle.
func TestReaperReadsOnlyItsChildren(t *testing.T) {
	if _, err := os.Stat("/proc/thread-self/children"); err != nil {
		t.Skip("no /proc/PID/task/TID/children here (CONFIG_PROC_CHILDREN)")
	}
	tr, err := openGroupTracker(t.TempDir(), false, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	leader := startGroup(t, "sleep")
	pg := leader.Process.Pid
	tr.add(pg, StartTime(pg))
	before := procScans.Load()
	tr.reapOrphans()
	if n := procScans.Load() - before; n != 0 {
		t.Errorf("reapOrphans scanned every process %d times", n)
	}
	signalGroup(pg, syscall.SIGKILL)
	leader.Wait()
	tr.remove(pg)
	waitUntil(t, 5*time.Second, "the killed group to be forgotten", func() bool {
		tr.reapOrphans()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		_, ok := tr.gone[pg]
		return !ok
	})
}

// TestSubreaperReapsTheWatchdogsOrphans: each renewal of the dead man's
// switch ends the watchdog's previous timer, whose sleep is orphaned and,
// under a subreaper, adopted by this process. They are reaped: before,
// gdpm-slave gathered a zombie sleep every renewal (23 after a minute with
// a 10 s lease), in the watchdog's group, which the reaper left alone.
func TestSubreaperReapsTheWatchdogsOrphans(t *testing.T) {
	if subreaperFlag(t) != 0 {
		t.Skip("this process is already a subreaper")
	}
	tr, err := openGroupTracker(t.TempDir(), true, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	tr.mu.Lock()
	wdGroup := tr.wd.cmd.Process.Pid
	tr.mu.Unlock()
	// Zombie children of this process in the watchdog's group.
	zombies := func() (n int) {
		kids, err := childPids()
		if err != nil {
			t.Fatal(err)
		}
		for _, pid := range kids {
			if st, ok := readProcStat(pid); ok && len(st) > 2 && st[2] == strconv.Itoa(wdGroup) && pid != wdGroup && st[0] == "Z" {
				n++
			}
		}
		return n
	}
	for range 10 {
		tr.arm(time.Now().Add(time.Minute))
		// The timer's subshell and its sleep are under way before the
		// next arm ends them.
		waitUntil(t, 5*time.Second, "the watchdog's timer", func() bool { return len(liveGroupMembers(wdGroup)) >= 3 })
	}
	tr.disarm()
	waitUntil(t, 15*time.Second, "the watchdog's orphans reaped", func() bool { return zombies() == 0 })
}
