//go:build linux

package proc

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpawnWatchReap starts processes the way the runner does: in a group
// of their own, one pidfd each, their exit seen by the poller and reaped
// with the code or the signal.
func TestSpawnWatchReap(t *testing.T) {
	p := testPoller(t)
	files := nullFiles(t)
	for _, tc := range []struct {
		argv []string
		kill bool
		code int
	}{
		{[]string{"/bin/sh", "-c", "exit 3"}, false, 3},
		{[]string{testProgram, "sleep"}, true, 128 + int(syscall.SIGKILL)},
	} {
		pid, pidfd, err := Spawn(tc.argv[0], tc.argv, []string{"A=1"}, "/", files)
		if err != nil {
			t.Fatal(err)
		}
		if pgid, _ := syscall.Getpgid(pid); pgid != pid {
			t.Errorf("pid %d in group %d, want its own", pid, pgid)
		}
		if pidfd < 0 {
			t.Log("no pidfd from clone on this kernel")
		} else if target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(pidfd)); !strings.Contains(target, "pidfd") {
			t.Errorf("fd %d is %q, not a pidfd", pidfd, target)
		}
		exited := make(chan struct{})
		WatchExit(p, pid, pidfd, func() { close(exited) })
		if tc.kill {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Fatal("exit not seen")
		}
		if StartTime(pid) == 0 {
			t.Error("reaped before Reap")
		}
		if code, err := Reap(pid); code != tc.code || err != nil {
			t.Errorf("Reap = %d, %v; want %d", code, err, tc.code)
		}
		if pidfd >= 0 {
			if _, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(pidfd)); err == nil {
				// The number may have been reused since; only a pidfd
				// there would be ours.
				if target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(pidfd)); strings.Contains(target, "pidfd") {
					t.Errorf("pidfd %d still open after the exit", pidfd)
				}
			}
		}
	}
	if _, _, err := Spawn("/nonexistent/prog", []string{"prog"}, nil, "", files); err == nil ||
		err.Error() != "fork/exec /nonexistent/prog: no such file or directory" {
		t.Errorf("Spawn of a missing program: %v", err)
	}
	if code, err := Reap(1 << 22); code != -1 || err == nil {
		t.Errorf("Reap of no child = %d, %v; want -1 and an error", code, err)
	}
}
