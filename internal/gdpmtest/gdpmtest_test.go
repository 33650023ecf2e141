package gdpmtest

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/proc"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as testing.T's does, so WaitFor's failure can be read.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestWaitForReturnsWhenTrue(t *testing.T) {
	calls := 0
	WaitFor(t, 10*time.Second, "the third call", func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprint(calls)
	})
	if calls != 3 {
		t.Fatalf("WaitFor returned after %d calls, want 3", calls)
	}
}

func TestWaitForFailureNamesWhatAndLastState(t *testing.T) {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	calls := 0
	go func() {
		defer close(done)
		WaitFor(r, 100*time.Millisecond, "the moon", func() (bool, string) {
			calls++
			return false, fmt.Sprintf("state %d", calls)
		})
		t.Error("WaitFor returned although its condition never held")
	}()
	<-done
	want := fmt.Sprintf("waiting for the moon; last seen: state %d", calls)
	if calls < 2 || !strings.Contains(r.msg, want) {
		t.Fatalf("after %d polls the failure was %q, want it to contain %q", calls, r.msg, want)
	}
}

// A zombie is dead to Alive: a test that waits for an instance to die must
// not wait for its parent to reap it.
func TestAliveCountsAZombieDead(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	if !Alive(pid) {
		t.Fatalf("a running sleep (pid %d) is not Alive", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	WaitDead(t, 10*time.Second, []int{pid})
	// Not reaped yet: the pid is still a zombie in /proc.
	if proc.StartTime(pid) == 0 {
		t.Fatalf("pid %d is gone from /proc before its reap; the test did not see a zombie", pid)
	}
}

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

// Start brings up a whole cluster whose slaves run real processes, and
// Cluster.WaitRunning sees them through the OS.
func TestStartRunsAClusterThatRunsProcesses(t *testing.T) {
	c := Start(t, Options{Slaves: 2})
	nodes, err := c.Client.Nodes(context.Background())
	if err != nil || len(nodes.Ids) != 2 {
		t.Fatalf("nodes %v, %v; want 2", nodes, err)
	}
	id, err := c.Client.CreateService(context.Background(), gdpm.CreateRequest{Command: "sleep 60", InstanceNum: new(3)})
	if err != nil {
		t.Fatal(err)
	}
	pids := c.WaitRunning(id, 3)
	for _, p := range pids {
		if !Alive(p) {
			t.Errorf("pid %d reported running is not alive", p)
		}
	}
}
