//go:build linux

package proc

import (
	"bytes"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// TestPumpsAndWatchExit runs a child the way the runner does: its output
// drained by the poller into writers, its exit seen without reaping it.
func TestPumpsAndWatchExit(t *testing.T) {
	p := testPoller(t)
	var out, errOut testkit.SyncBuffer
	pp, ow, ew, err := OpenPumps(p, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3")
	cmd.Stdout, cmd.Stderr = ow, ew
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pp.CloseReaders()
		t.Fatal(err)
	}
	ow.Close()
	ew.Close()
	pp.Start(func(err error) { t.Errorf("pump: %v", err) })
	exited := make(chan struct{})
	WatchExit(p, cmd.Process.Pid, -1, func() { close(exited) })
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("exit not seen")
	}
	// Not reaped yet: the zombie is still there for Wait.
	if st := StartTime(cmd.Process.Pid); st == 0 {
		t.Error("the exited child was reaped before Wait")
	}
	cmd.Wait()
	drained := make(chan struct{})
	pp.Finish(func() { close(drained) })
	<-drained
	if cmd.ProcessState.ExitCode() != 3 || out.String() != "to-out\n" || errOut.String() != "to-err\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", cmd.ProcessState.ExitCode(), out.String(), errOut.String())
	}
}

// TestKillGroupsUntilGone checks the one kill loop against a group whose
// leader has exited and whose members are orphans of another parent: it
// ends once no live member is left, and leaves other groups alone.
func TestKillGroupsUntilGone(t *testing.T) {
	// The shell leads a new group, forks two sleeps and exits: they are
	// orphans in a group without its leader.
	sh := exec.Command("/bin/sh", "-c", "sleep 100 >/dev/null & sleep 100 >/dev/null & echo $!; exit 0")
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var so bytes.Buffer
	sh.Stdout = &so
	if err := sh.Run(); err != nil {
		t.Fatal(err)
	}
	pgid := sh.Process.Pid
	kid, err := strconv.Atoi(strings.TrimSpace(so.String()))
	if err != nil {
		t.Fatalf("child pid %q: %v", so.String(), err)
	}
	other := exec.Command(testProgram, "sleep")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()

	if members := liveGroupMembers(pgid); !slices.Contains(members, kid) || len(members) != 2 {
		t.Fatalf("live members of %d: %v, want 2 with %d", pgid, members, kid)
	}
	killGroupsUntilGone([]int{pgid}, 5*time.Second)
	if members := liveGroupMembers(pgid); len(members) != 0 {
		t.Fatalf("members left after killGroupsUntilGone: %v", members)
	}
	if !procAlive(other.Process.Pid) {
		t.Error("a process of another group died")
	}
	if StartTime(other.Process.Pid) == 0 {
		t.Error("StartTime of a live process is 0")
	}
	if StartTime(pgid) != 0 {
		t.Error("StartTime of a reaped process is not 0")
	}
}
