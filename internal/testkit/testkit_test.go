package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m, nil)) }

// The leak check finds a process by the mark in its environment, and only
// while it lives.
func TestStraysFindsMarkedProcesses(t *testing.T) {
	mark := fmt.Sprintf("strays-test-%d", time.Now().UnixNano())
	cmd := exec.Command("sleep", "60")
	cmd.Env = []string{MarkVar + "=" + mark}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if s := strays(mark); !slices.Equal(s, []int{pid}) {
		t.Errorf("strays(%q) = %v, want [%d]", mark, s, pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if s := waitNoStrays(mark, 5*time.Second); len(s) != 0 {
		t.Errorf("strays after the kill: %v", s)
	}
}

func TestPollFailureSaysWhatAndLastState(t *testing.T) {
	n := 0
	msg := Fatal(t, func(t testing.TB) {
		Poll(t, 50*time.Millisecond, func() bool { n++; return false },
			"the moon", func() string { return fmt.Sprintf(" (state %d)", n) })
	})
	if want := fmt.Sprintf("waiting for the moon (state %d)", n); n < 2 || !strings.HasSuffix(msg, want) {
		t.Fatalf("after %d polls the failure was %q, want it to end with %q", n, msg, want)
	}
}

func TestBuildTestProgram(t *testing.T) {
	path, dir, err := BuildTestProgram()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("test program %s: %v, %v", path, fi, err)
	}
}

// Alive counts a zombie dead, as the production check does.
func TestAliveCountsAZombieDead(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	if !Alive(pid) {
		t.Fatalf("a running sleep (pid %d) is not alive", pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	Poll(t, 10*time.Second, func() bool { return !Alive(pid) }, "the killed sleep to be a zombie")
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("pid %d left /proc before its reap: no zombie seen", pid)
	}
}
