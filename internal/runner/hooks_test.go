//go:build linux

package runner

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// Config.Err fails every start with it, and is retried like a failed
// start.
func TestRunnerConfigErr(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " sleep", Err: errors.New("bad log ids")}, nil)
	testkit.Poll(t, 5*time.Second, func() bool { return tr.Status().Restarts >= 2 }, "2 retries")
	if st := tr.Status(); st.State != StateFailed || st.Error != "bad log ids" || st.LastError != "bad log ids" {
		t.Errorf("status %+v, want failed with the config's error", st)
	}
	tr.stop()
}

// testLimits wraps the command in a shell that writes a file first, and
// reports an OOM kill when asked to.
type testLimits struct {
	mark   string
	oom    atomic.Bool
	closed atomic.Int32
}

func (l *testLimits) Wrap(argv []string) []string {
	return append([]string{"/bin/sh", "-c", `echo wrapped > "$0"; exec "$@"`, l.mark}, argv...)
}
func (l *testLimits) OOM() bool { return l.oom.Swap(false) }
func (l *testLimits) Close()    { l.closed.Add(1) }

func TestRunnerLimitsHook(t *testing.T) {
	l := &testLimits{mark: filepath.Join(t.TempDir(), "mark")}
	tr := newTestRunner(t, Config{Command: testProgram + " sleep", Limits: l}, nil)
	st := tr.waitState(StateRunning)
	testkit.Poll(t, 5*time.Second, func() bool { _, err := os.Stat(l.mark); return err == nil }, "the wrapper's mark")
	// The wrapper execs the program: same pid.
	testkit.Poll(t, 5*time.Second, func() bool {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(st.PID) + "/exe")
		return exe == testProgram
	}, "pid ", st.PID, " to run the program")
	l.oom.Store(true)
	killPID(st.PID)
	testkit.Poll(t, 5*time.Second, func() bool { return tr.Status().LastError == ErrOOM.Error() }, "LastError oom")
	if l.closed.Load() != 0 {
		t.Error("Limits closed while the runner runs")
	}
	tr.stop()
	if n := l.closed.Load(); n != 1 {
		t.Errorf("Limits closed %d times, want once", n)
	}
}

func TestRunnerHealthCheck(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(map[bool]string{true: "restart", false: "report"}[restart], func(t *testing.T) {
			flag := filepath.Join(t.TempDir(), "ok")
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			check := &Check{Exec: "test -e $FLAG", Interval: 20 * time.Millisecond, Timeout: time.Second,
				Failures: 2, Restart: restart}
			tr := newTestRunner(t, Config{Command: testProgram + " sleep", Env: []string{"FLAG=" + flag}, Check: check}, nil)
			testkit.Poll(t, 5*time.Second, func() bool { return tr.Status().Health == HealthHealthy }, "healthy")
			first := tr.Status()
			os.Remove(flag)
			if restart {
				// Replaced: stopped, backoff, started again; and it says why.
				testkit.Poll(t, 5*time.Second, func() bool { return tr.Status().Restarts >= 1 }, "a replacement")
				st := tr.Status()
				if !strings.HasPrefix(st.LastError, "unhealthy: ") || st.PID == first.PID {
					t.Errorf("after the replacement: %+v", st)
				}
				if tr.log.Count(StateStopping) < 1 {
					t.Errorf("statuses %v, want a stop before the replacement", tr.log.Keys())
				}
			} else {
				testkit.Poll(t, 5*time.Second, func() bool { return tr.Status().Health == HealthUnhealthy }, "unhealthy")
				st := tr.Status()
				if st.PID != first.PID || st.Restarts != 0 || st.State != StateRunning || !strings.Contains(st.HealthError, "test -e") {
					t.Errorf("unhealthy status %+v, want the same process still running, with the reason", st)
				}
			}
			tr.stop()
		})
	}
}

func killPID(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
