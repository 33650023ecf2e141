package gdpm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
	"github.com/capy-pl/gdpm/internal/runner"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// procAlive reports whether pid is a live process, zombies counting as dead.
func procAlive(pid int) bool { return proc.Alive(pid) }

// statusLog records the statuses a runner reports, keyed by state.
type statusLog = testkit.Log[InstanceStatus, InstanceState]

func newStatusLog() *statusLog {
	return testkit.NewLog(func(s InstanceStatus) InstanceState { return s.State })
}

// The slave's adapter to internal/runner (slaverunner.go): what it makes
// of a spec and of the runner's statuses. The runner itself is tested in
// internal/runner.

// testRunner is a runner under test with what it reported.
type testRunner struct {
	*instanceRunner
	t      testing.TB
	log    *statusLog
	logDir string
}

// fastBackoff keeps crash loops short in tests.
var fastBackoff = runner.Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Reset: time.Minute}

// newTestRunner starts a runner for spec; adjust may change the config. The
// runner is stopped on cleanup.
func newTestRunner(t testing.TB, spec Spec, adjust func(*runnerConfig)) *testRunner {
	t.Helper()
	tr := &testRunner{t: t, log: newStatusLog(), logDir: t.TempDir()}
	cfg := runnerConfig{
		Assignment: Assignment{Service: "svc", Instance: "inst", Spec: spec},
		Node:       "node-1",
		LogDir:     tr.logDir,
		// As the slave passes them: SlaveConfig's, defaults applied.
		LogMaxSize:  DefaultLogMaxSize,
		LogMaxFiles: DefaultLogMaxFiles,
		OnStatus:    tr.log.Add,
		Backoff:     fastBackoff,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	tr.instanceRunner = startRunner(cfg)
	testkit.StopAtCleanup(t, tr.instanceRunner)
	return tr
}

// waitState waits until the runner's latest status is in state.
func (tr *testRunner) waitState(state InstanceState) InstanceStatus {
	tr.t.Helper()
	var st InstanceStatus
	testkit.Poll(tr.t, 5*time.Second, func() bool {
		st = tr.Status()
		return st.State == state
	}, "state ", state, func() string { return fmt.Sprintf(" (statuses so far: %v)", tr.log.Keys()) })
	return st
}

func (tr *testRunner) stop() {
	tr.t.Helper()
	testkit.Stop(tr.t, tr.instanceRunner)
}

func (tr *testRunner) readLog(ext string) string {
	b, _ := os.ReadFile(filepath.Join(tr.logDir, "svc", "inst"+ext))
	return string(b)
}

// waitLog waits until the stdout (ext ".stdout") or stderr log holds want.
func (tr *testRunner) waitLog(ext, want string) string {
	tr.t.Helper()
	var s string
	testkit.Poll(tr.t, 5*time.Second, func() bool {
		s = tr.readLog(ext)
		return strings.Contains(s, want)
	}, fmt.Sprintf("%q in %s log", want, ext))
	return s
}

func TestRunnerStatusAdapter(t *testing.T) {
	tr := newTestRunner(t, Spec{Command: testProgram + " ignoreterm", Restart: RestartNever,
		StopTimeout: Duration(200 * time.Millisecond)}, func(c *runnerConfig) {
		c.Ports = map[string]int{"http": 12345}
	})
	st := tr.waitState(StateRunning)
	if st.Service != "svc" || st.Instance != "inst" || st.Node != "node-1" || st.Ports["http"] != 12345 {
		t.Errorf("ids not filled: %+v", st)
	}
	if st.Health != HealthNone || st.StartedAt.IsZero() || !procAlive(st.PID) {
		t.Errorf("bad running status: %+v", st)
	}
	tr.waitLog(".stdout", "ignoring SIGTERM")
	tr.stop() // the spec's stop timeout, then SIGKILL
	if final := tr.Status(); final.State != StateExited || final.ExitCode == nil || *final.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("final status %+v, want exited with 137 after the stop timeout", final)
	}
	all, _ := tr.log.All()
	for _, st := range all {
		if st.Service != "svc" || st.Node != "node-1" {
			t.Errorf("reported status without ids: %+v", st)
		}
	}
}

func TestRunnerEnvAndDir(t *testing.T) {
	base := t.TempDir()
	if err := os.Mkdir(filepath.Join(base, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs := t.TempDir()
	tests := []struct {
		name          string
		baseEnv       []string
		env           map[string]string
		baseDir, dir  string
		wantV, wantWD string
	}{
		{"spec env", nil, map[string]string{"GDPM_X": "hello world"}, "", abs, "hello world", abs},
		{"spec overrides base", append(os.Environ(), "GDPM_X=base"), map[string]string{"GDPM_X": "spec"}, base, "", "spec", base},
		{"base env", append(os.Environ(), "GDPM_X=base"), nil, base, "sub", "base", filepath.Join(base, "sub")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestRunner(t, Spec{Command: testProgram + " env GDPM_X", Env: tt.env, Dir: tt.dir}, func(c *runnerConfig) {
				c.Env = tt.baseEnv
				c.BaseDir = tt.baseDir
			})
			// One write prints both lines.
			out := tr.waitLog(".stdout", "dir=")
			if want := fmt.Sprintf("GDPM_X=%s\ndir=%s\n", tt.wantV, tt.wantWD); out != want {
				t.Errorf("output %q, want %q", out, want)
			}
			tr.stop()
		})
	}
}

func TestRunnerLogFiles(t *testing.T) {
	tr := newTestRunner(t, Spec{Command: testProgram + " print 5ms"}, nil)
	tr.waitLog(".stdout", "out 3\n")
	tr.waitLog(".stderr", "err 3\n")
	tr.stop()
	if strings.Contains(tr.readLog(".stdout"), "err") || strings.Contains(tr.readLog(".stderr"), "out") {
		t.Error("stdout and stderr mixed")
	}

	// Restarts append.
	tr = newTestRunner(t, Spec{Command: "echo started; echo oops >&2; exit 1"}, nil)
	testkit.Poll(t, 5*time.Second, func() bool {
		return strings.Count(tr.readLog(".stdout"), "started\n") >= 3 && strings.Count(tr.readLog(".stderr"), "oops\n") >= 3
	}, "output of 3 runs")
	tr.stop()

	// No LogDir: output is discarded and nothing breaks.
	tr = newTestRunner(t, Spec{Command: testProgram + " print 5ms"}, func(c *runnerConfig) { c.LogDir = "" })
	st := tr.waitState(StateRunning)
	if !procAlive(st.PID) {
		t.Errorf("pid %d not alive", st.PID)
	}
	tr.stop()
}
