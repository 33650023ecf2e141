package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// statusLog records the statuses a runner reports, keyed by state.
type statusLog = testkit.Log[Status, State]

func newStatusLog() *statusLog { return testkit.NewLog(func(s Status) State { return s.State }) }

// testRunner is a runner under test with what it reported.
type testRunner struct {
	*Runner
	t   testing.TB
	log *statusLog
	out *fileOutput // nil when the output is discarded
}

// fastBackoff keeps crash loops short in tests.
var fastBackoff = Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Reset: time.Minute}

// newTestRunner starts a runner for cfg, with its output in files and the
// fast backoff; adjust may change the config. The runner is stopped on
// cleanup.
func newTestRunner(t testing.TB, cfg Config, adjust func(*Config)) *testRunner {
	t.Helper()
	tr := &testRunner{t: t, log: newStatusLog(), out: newFileOutput(t)}
	cfg.Output = tr.out
	cfg.OnStatus = tr.log.Add
	cfg.Backoff = fastBackoff
	if adjust != nil {
		adjust(&cfg)
	}
	if cfg.Output == nil {
		tr.out = nil
	}
	tr.Runner = Start(cfg)
	testkit.StopAtCleanup(t, tr.Runner)
	return tr
}

// waitState waits until the runner's latest status is in state.
func (tr *testRunner) waitState(state State) Status {
	tr.t.Helper()
	var st Status
	testkit.Poll(tr.t, 5*time.Second, func() bool {
		st = tr.Status()
		return st.State == state
	}, "state ", state, func() string { return fmt.Sprintf(" (statuses so far: %v)", tr.log.Keys()) })
	return st
}

func (tr *testRunner) stop() {
	tr.t.Helper()
	testkit.Stop(tr.t, tr.Runner)
}

func (tr *testRunner) readLog(ext string) string {
	b, _ := os.ReadFile(filepath.Join(tr.out.dir, "out"+ext))
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

// TestCommandExec checks through /proc which binary each kind of command
// really runs as.
func TestCommandExec(t *testing.T) {
	shell, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cmd, exe string
	}{
		{"direct", testProgram + " sleep", testProgram},
		// "; exit" keeps the shell from exec'ing its last command.
		{"shell", testProgram + " sleep; exit 7", shell},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestRunner(t, Config{Command: tt.cmd}, nil)
			st := tr.waitState(StateRunning)
			exe, err := os.Readlink("/proc/" + strconv.Itoa(st.PID) + "/exe")
			if err != nil {
				t.Fatal(err)
			}
			if exe != tt.exe {
				t.Errorf("pid %d runs %s, want %s", st.PID, exe, tt.exe)
			}
			tr.stop()
		})
	}
}

func TestRunnerStartStatusAndStop(t *testing.T) {
	var startPID int
	var startTime uint64
	var mu sync.Mutex
	tr := newTestRunner(t, Config{Command: testProgram + " sleep"}, func(c *Config) {
		c.OnStart = func(pid int, st uint64) {
			mu.Lock()
			startPID, startTime = pid, st
			mu.Unlock()
		}
	})
	st := tr.waitState(StateRunning)
	if st.StartedAt.IsZero() || st.Restarts != 0 || st.ExitCode != nil || st.Error != "" {
		t.Errorf("bad running status: %+v", st)
	}
	if !procAlive(st.PID) {
		t.Fatalf("pid %d is not alive", st.PID)
	}
	if pgid, err := syscall.Getpgid(st.PID); err != nil || pgid != st.PID {
		t.Errorf("pgid of %d = %d, %v; want its own group", st.PID, pgid, err)
	}
	mu.Lock()
	if startPID != st.PID || startTime == 0 || startTime != proc.StartTime(st.PID) {
		t.Errorf("OnStart(%d, %d); want pid %d and start time %d", startPID, startTime, st.PID, proc.StartTime(st.PID))
	}
	mu.Unlock()

	tr.stop()
	if procAlive(st.PID) {
		t.Errorf("pid %d alive after Stop", st.PID)
	}
	if got, want := tr.log.Keys(), []State{StateRunning, StateStopping, StateExited}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	final := tr.Status()
	if final.ExitCode == nil || *final.ExitCode != 128+int(syscall.SIGTERM) {
		t.Errorf("final status %+v, want exit code %d", final, 128+int(syscall.SIGTERM))
	}
	// Stop is idempotent and reports nothing more.
	n := len(tr.log.Keys())
	if err := tr.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if len(tr.log.Keys()) != n {
		t.Errorf("status reported after Stop: %v", tr.log.Keys())
	}
}

// groupPIDs returns the pids listed as "grandchild PID" in out.
func grandchildPIDs(t testing.TB, out string) []int {
	t.Helper()
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		if f, ok := strings.CutPrefix(line, "grandchild "); ok {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("bad line %q", line)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRunnerStopKillsProcessGroup(t *testing.T) {
	t.Run("fork", func(t *testing.T) {
		tr := newTestRunner(t, Config{Command: testProgram + " fork 3"}, nil)
		st := tr.waitState(StateRunning)
		var kids []int
		testkit.Poll(t, 5*time.Second, func() bool {
			kids = grandchildPIDs(t, tr.readLog(".stdout"))
			return len(kids) == 3
		}, "3 grandchildren")
		for _, pid := range kids {
			if pgid, err := syscall.Getpgid(pid); err != nil || pgid != st.PID {
				t.Errorf("grandchild %d in group %d (%v), want %d", pid, pgid, err, st.PID)
			}
		}
		tr.stop()
		for _, pid := range append(kids, st.PID) {
			if procAlive(pid) {
				t.Errorf("pid %d alive after Stop", pid)
			}
		}
	})
	t.Run("shell", func(t *testing.T) {
		tr := newTestRunner(t, Config{Command: "sleep 100 & sleep 100"}, nil)
		st := tr.waitState(StateRunning)
		var members []int
		testkit.Poll(t, 5*time.Second, func() bool {
			members = proc.GroupMembers(st.PID)
			return len(members) >= 3 // sh and two sleeps
		}, "the shell and both sleeps in the group")
		tr.stop()
		for _, pid := range members {
			if procAlive(pid) {
				t.Errorf("pid %d alive after Stop", pid)
			}
		}
		if m := proc.GroupMembers(st.PID); len(m) > 0 {
			t.Errorf("group %d still has %v", st.PID, m)
		}
	})
}

func TestRunnerStopTimeoutKills(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " ignoreterm", StopTimeout: 300 * time.Millisecond}, nil)
	st := tr.waitState(StateRunning)
	tr.waitLog(".stdout", "ignoring SIGTERM") // the handler is in place
	begin := time.Now()
	tr.stop()
	took := time.Since(begin)
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("Stop took %v, want the 300ms stop timeout and then a kill", took)
	}
	if procAlive(st.PID) {
		t.Errorf("pid %d alive after Stop", st.PID)
	}
	if final := tr.Status(); final.ExitCode == nil || *final.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("final status %+v, want exit code 137", final)
	}
}

func TestRunnerStopContextExpires(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " ignoreterm", StopTimeout: time.Minute}, nil)
	st := tr.waitState(StateRunning)
	tr.waitLog(".stdout", "ignoring SIGTERM")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := tr.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want a wrapped context.DeadlineExceeded", err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("Stop took %v after its context ended", took)
	}
	if procAlive(st.PID) {
		t.Errorf("pid %d alive after Stop", st.PID)
	}
	<-tr.Done()
}

func TestRunnerKill(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " fork 2", StopTimeout: time.Minute}, nil)
	st := tr.waitState(StateRunning)
	var kids []int
	testkit.Poll(t, 5*time.Second, func() bool {
		kids = grandchildPIDs(t, tr.readLog(".stdout"))
		return len(kids) == 2
	}, "2 grandchildren")
	n := len(tr.log.Keys())
	begin := time.Now()
	tr.Kill()
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("Kill took %v", took)
	}
	<-tr.Done()
	for _, pid := range append(kids, st.PID) {
		if procAlive(pid) {
			t.Errorf("pid %d alive after Kill", pid)
		}
	}
	if got := tr.log.Keys(); len(got) != n {
		t.Errorf("statuses reported after Kill: %v", got[n:])
	}
	tr.Kill() // idempotent
}

func TestRunnerCrashLoopBackoff(t *testing.T) {
	bo := Backoff{Initial: 20 * time.Millisecond, Max: 160 * time.Millisecond, Reset: time.Minute}
	tr := newTestRunner(t, Config{Command: testProgram + " exit 3"}, func(c *Config) { c.Backoff = bo })
	testkit.Poll(t, 10*time.Second, func() bool { return tr.log.Count(StateRunning) >= 6 }, "6 starts")
	tr.stop()

	all, at := tr.log.All()
	// Every exit is reported with its code, then the restart after at least
	// the current delay.
	want := bo.Initial
	runs := 0
	for i, st := range all {
		switch st.State {
		case StateRunning:
			if st.Restarts != runs {
				t.Errorf("start %d reports Restarts=%d", runs, st.Restarts)
			}
			runs++
		case StateBackoff:
			if st.ExitCode == nil || *st.ExitCode != 3 {
				t.Errorf("backoff status %+v, want exit code 3", st)
			}
			if i+1 < len(all) && all[i+1].State == StateRunning {
				if gap := at[i+1].Sub(at[i]); gap < want {
					t.Errorf("restart %d came %v after the exit, want at least %v", runs, gap, want)
				}
				want = min(2*want, bo.Max)
			}
		}
	}
}

func TestRunnerCrashLoopNoSpin(t *testing.T) {
	bo := Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Reset: time.Minute}
	tr := newTestRunner(t, Config{Command: testProgram + " exit 1"}, func(c *Config) { c.Backoff = bo })
	tr.waitState(StateBackoff)
	const window = 500 * time.Millisecond
	before := tr.log.Count(StateRunning)
	time.Sleep(window) // measuring a rate over a fixed window
	starts := tr.log.Count(StateRunning) - before
	tr.stop()
	// At most one start per Max once the delay is capped, plus the ramp-up.
	if limit := int(window/bo.Max) + 4; starts > limit {
		t.Errorf("%d starts in %v, want at most %d", starts, window, limit)
	}
	if starts == 0 {
		t.Errorf("no restart in %v", window)
	}
}

func TestRunnerFirstRestartIsQuick(t *testing.T) {
	// Default backoff: the first restart must come within 100ms of a crash.
	tr := newTestRunner(t, Config{Command: testProgram + " exit 3"}, func(c *Config) { c.Backoff = Backoff{} })
	testkit.Poll(t, 5*time.Second, func() bool { return tr.log.Count(StateRunning) >= 2 }, "a restart")
	tr.stop()
	all, at := tr.log.All()
	for i := range all {
		if all[i].State == StateBackoff {
			if gap := at[i+1].Sub(at[i]); gap > 100*time.Millisecond {
				t.Errorf("first restart %v after the exit, want within 100ms", gap)
			}
			break
		}
	}
}

func TestRunnerRestartPolicy(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		code    int
		restart bool
	}{
		{"always exit 0", RestartAlways, 0, true},
		{"default exit 0", RestartAlways, 0, true},
		{"on-failure exit 0", RestartOnFailure, 0, false},
		{"on-failure exit 3", RestartOnFailure, 3, true},
		{"never exit 3", RestartNever, 3, false},
		{"never exit 0", RestartNever, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestRunner(t, Config{Command: fmt.Sprintf("%s exit %d", testProgram, tt.code), Restart: tt.policy}, nil)
			if tt.restart {
				testkit.Poll(t, 5*time.Second, func() bool { return tr.log.Count(StateRunning) >= 2 }, "a restart")
				tr.stop()
				all, _ := tr.log.All()
				if st := all[1]; st.State != StateBackoff || st.ExitCode == nil || *st.ExitCode != tt.code {
					t.Errorf("second status %+v, want backoff with exit code %d", st, tt.code)
				}
				if st := all[2]; st.State != StateRunning || st.Restarts != 1 {
					t.Errorf("third status %+v, want running with Restarts=1", st)
				}
				return
			}
			st := tr.waitState(StateExited)
			if st.ExitCode == nil || *st.ExitCode != tt.code || st.Restarts != 0 {
				t.Errorf("exited status %+v, want exit code %d", st, tt.code)
			}
			// No restart may follow: give a few backoff delays' worth of time.
			time.Sleep(10 * fastBackoff.Initial)
			tr.stop()
			if got, want := tr.log.Keys(), []State{StateRunning, StateExited}; !slices.Equal(got, want) {
				t.Errorf("statuses %v, want %v", got, want)
			}
		})
	}
}

func TestRunnerSignalExitCode(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " sleep", Restart: RestartNever}, nil)
	st := tr.waitState(StateRunning)
	syscall.Kill(st.PID, syscall.SIGKILL)
	st = tr.waitState(StateExited)
	if st.ExitCode == nil || *st.ExitCode != 137 {
		t.Errorf("status %+v, want exit code 137", st)
	}
	tr.stop()
}

// TestRunnerExitKillsGroup checks that a process's leftovers die with it,
// without a Stop.
func TestRunnerExitKillsGroup(t *testing.T) {
	tr := newTestRunner(t, Config{Command: "sleep 100 & echo $!; exit 5", Restart: RestartNever}, nil)
	st := tr.waitState(StateExited)
	if st.ExitCode == nil || *st.ExitCode != 5 {
		t.Errorf("status %+v, want exit code 5", st)
	}
	out := tr.waitLog(".stdout", "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("bad output %q", out)
	}
	if procAlive(pid) {
		t.Errorf("background sleep %d outlived its instance", pid)
	}
	tr.stop()
}

func TestRunnerStartFailure(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		errSub string
	}{
		{"no binary", Config{Command: "/nonexistent/gdpm-no-such-program"}, "no such file"},
		{"not in PATH", Config{Command: "gdpm-no-such-program-xyz arg"}, "not found"},
		{"bad dir", Config{Command: testProgram + " sleep", Dir: "/nonexistent/dir"}, "working dir"},
		{"empty", Config{Command: "   "}, "empty command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestRunner(t, tt.cfg, nil)
			// Retried with backoff, each attempt reported.
			testkit.Poll(t, 5*time.Second, func() bool { return tr.Status().Restarts >= 2 }, "2 retries", func() string { return fmt.Sprintf(" (statuses so far: %v)", tr.log.Keys()) })
			st := tr.Status()
			if st.State != StateFailed || !strings.Contains(st.Error, tt.errSub) || st.PID != 0 {
				t.Errorf("status %+v, want failed with %q", st, tt.errSub)
			}
			tr.stop()
		})
	}
	t.Run("never", func(t *testing.T) {
		tr := newTestRunner(t, Config{Command: "/nonexistent/gdpm-no-such-program", Restart: RestartNever}, nil)
		st := tr.waitState(StateFailed)
		if st.Error == "" {
			t.Errorf("failed status without an error: %+v", st)
		}
		time.Sleep(10 * fastBackoff.Initial) // no retry may follow
		tr.stop()
		if got := tr.log.Keys(); !slices.Equal(got, []State{StateFailed}) {
			t.Errorf("statuses %v, want one failed", got)
		}
	})
	t.Run("recovers", func(t *testing.T) {
		// A failure counts for on-failure, and a later start can succeed.
		dir := filepath.Join(t.TempDir(), "later")
		tr := newTestRunner(t, Config{Command: testProgram + " sleep", Dir: dir, Restart: RestartOnFailure}, nil)
		tr.waitState(StateFailed)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		st := tr.waitState(StateRunning)
		if st.Restarts < 1 || !procAlive(st.PID) {
			t.Errorf("status %+v after recovery", st)
		}
		tr.stop()
	})
}

func TestRunnerStopDuringBackoff(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " exit 3"}, func(c *Config) {
		c.Backoff = Backoff{Initial: time.Minute}
	})
	tr.waitState(StateBackoff)
	begin := time.Now()
	tr.stop()
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Stop during backoff took %v", took)
	}
	st := tr.Status()
	if st.State != StateExited || st.ExitCode == nil || *st.ExitCode != 3 || tr.log.Count(StateRunning) != 1 {
		t.Errorf("final status %+v, statuses %v", st, tr.log.Keys())
	}
}

func TestRunnerStopAtOnce(t *testing.T) {
	for range 10 {
		started := make(chan int, 1)
		tr := newTestRunner(t, Config{Command: testProgram + " fork 2"}, func(c *Config) {
			c.OnStart = func(pid int, _ uint64) { started <- pid }
		})
		tr.stop()
		select {
		case pid := <-started:
			if m := proc.GroupMembers(pid); len(m) > 0 {
				t.Errorf("group %d has %v after Stop", pid, m)
			}
		default:
		}
		if s := tr.log.Keys(); len(s) > 0 && s[len(s)-1] != StateExited {
			t.Errorf("statuses %v, want none or ending in exited", s)
		}
	}
}

func TestRunnerEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		baseEnv []string
		env     []string
		want    string
	}{
		{"extra env", nil, []string{"GDPM_X=hello world"}, "hello world"},
		{"extra overrides base", append(os.Environ(), "GDPM_X=base"), []string{"GDPM_X=spec"}, "spec"},
		{"base env", append(os.Environ(), "GDPM_X=base"), nil, "base"},
		{"last wins", nil, []string{"GDPM_X=1", "GDPM_X=2"}, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := slices.Clone(tt.baseEnv)
			tr := newTestRunner(t, Config{Command: testProgram + " env GDPM_X", BaseEnv: tt.baseEnv, Env: tt.env, Dir: dir}, nil)
			// One write prints both lines.
			out := tr.waitLog(".stdout", "dir=")
			if want := fmt.Sprintf("GDPM_X=%s\ndir=%s\n", tt.want, dir); out != want {
				t.Errorf("output %q, want %q", out, want)
			}
			tr.stop()
			if !slices.Equal(base, tt.baseEnv) {
				t.Error("the shared base environment was modified")
			}
		})
	}
}

func TestRunnerOutput(t *testing.T) {
	tr := newTestRunner(t, Config{Command: testProgram + " print 5ms"}, nil)
	tr.waitLog(".stdout", "out 3\n")
	tr.waitLog(".stderr", "err 3\n")
	st := tr.Status()
	tr.stop()
	if strings.Contains(tr.readLog(".stdout"), "err") || strings.Contains(tr.readLog(".stderr"), "out") {
		t.Error("stdout and stderr mixed")
	}
	want := []string{fmt.Sprint("start ", st.PID), fmt.Sprint("exit ", 128+int(syscall.SIGTERM))}
	if got := tr.out.markers(); !slices.Equal(got, want) {
		t.Errorf("markers %q, want %q", got, want)
	}

	// Restarts append.
	tr = newTestRunner(t, Config{Command: "echo started; echo oops >&2; exit 1"}, nil)
	testkit.Poll(t, 5*time.Second, func() bool {
		return strings.Count(tr.readLog(".stdout"), "started\n") >= 3 && strings.Count(tr.readLog(".stderr"), "oops\n") >= 3
	}, "output of 3 runs")
	tr.stop()

	// No Output: output is discarded and nothing breaks.
	tr = newTestRunner(t, Config{Command: testProgram + " print 5ms"}, func(c *Config) { c.Output = nil })
	st = tr.waitState(StateRunning)
	if !procAlive(st.PID) {
		t.Errorf("pid %d not alive", st.PID)
	}
	tr.stop()
}

// TestRunnerIdleCost checks what running processes cost while nothing
// happens: no goroutine per runner (the steps ran on the shared pool,
// which has ended), and three descriptors per process (its pidfd, the read
// ends of its two output pipes).
func TestRunnerIdleCost(t *testing.T) {
	const n = 20
	fds := func() int { ents, _ := os.ReadDir("/proc/self/fd"); return len(ents) }
	// The poller runs while any runner does; start it first.
	first := newTestRunner(t, Config{Command: testProgram + " sleep"}, nil)
	first.waitState(StateRunning)
	testkit.Poll(t, 5*time.Second, func() bool { pool.Lock(); defer pool.Unlock(); return pool.workers == 0 }, "the pool to end")
	g0, fd0 := runtime.NumGoroutine(), fds()
	var trs []*testRunner
	for range n {
		trs = append(trs, newTestRunner(t, Config{Command: testProgram + " sleep"}, nil))
	}
	for _, tr := range trs {
		tr.waitState(StateRunning)
	}
	testkit.Poll(t, 5*time.Second, func() bool { pool.Lock(); defer pool.Unlock(); return pool.workers == 0 }, "the pool to end")
	if g := runtime.NumGoroutine() - g0; g > 0 {
		t.Errorf("%d running processes hold %d goroutines", n, g)
	}
	// The test's fileOutput holds two files per runner besides.
	if d := fds() - fd0 - 2*n; d > 3*n {
		t.Errorf("%d running processes hold %d descriptors, want at most %d", n, d, 3*n)
	}
	for _, tr := range trs {
		tr.stop()
	}
}

// TestRunnerOutputHeldOpen: a process that left the group (setsid) keeps
// the output pipe open after the group is gone. The exit is concluded a
// moment later, with the output written before it, and nothing waits
// meanwhile (the drain is a callback).
func TestRunnerOutputHeldOpen(t *testing.T) {
	// The shell exits only once the escaped process has left the group.
	mark := filepath.Join(t.TempDir(), "escaped")
	cmd := fmt.Sprintf(`setsid sh -c 'echo $$ > %s; exec sleep 1' & while [ ! -s %s ]; do :; done; echo bye; exit 3`, mark, mark)
	tr := newTestRunner(t, Config{Command: cmd, Restart: RestartNever}, nil)
	st := tr.waitState(StateExited)
	if st.ExitCode == nil || *st.ExitCode != 3 {
		t.Errorf("status %+v, want exit code 3", st)
	}
	if out := tr.readLog(".stdout"); out != "bye\n" {
		t.Errorf("output %q", out)
	}
	if m := tr.out.markers(); len(m) != 2 || m[1] != "exit 3" {
		t.Errorf("markers %q, want a start and exit 3", m)
	}
	tr.stop()
}
