//go:build linux

package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
)

// groupKillWait bounds how long a runner waits for the rest of a process
// group to die after SIGKILL. Only a process stuck in uninterruptible sleep
// survives that long, and waiting for it forever would wedge Stop.
const groupKillWait = 2 * time.Second

// Runner supervises one process through its whole life. One goroutine
// (run) owns the lifecycle; the methods only signal it.
type Runner struct {
	cfg Config
	log *slog.Logger

	stopCh   chan struct{} // closed by Stop: graceful stop
	killCh   chan struct{} // closed by Kill or an expired Stop: SIGKILL now
	stopOnce sync.Once
	killOnce sync.Once
	fenced   atomic.Bool // Kill was called: report nothing more
	done     chan struct{}

	poller  *proc.Poller // watches the processes' exits and pipes
	pollErr error        // no poller: every start fails with it

	mu     sync.Mutex
	status Status
	// Set by the runner's goroutine and the health checker, copied into
	// every status (emit): the last bad exit, and the health.
	lastError   string
	lastErrorAt time.Time
	health      Health
	healthError string // why the last check failed, while unhealthy
}

// Start starts supervising cfg's process and returns at once.
func Start(cfg Config) *Runner {
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		cfg:    cfg,
		log:    cfg.Logger,
		stopCh: make(chan struct{}),
		killCh: make(chan struct{}),
		done:   make(chan struct{}),
	}
	r.poller, r.pollErr = proc.AcquirePoller()
	go r.run()
	return r
}

// Stop stops the process gracefully: SIGTERM to its process group, then
// SIGKILL after the stop timeout. It returns once the group is gone and
// the runner is done. If ctx ends first the group is SIGKILLed at once and
// ctx's error is returned. Stop is idempotent and safe to call
// concurrently.
func (r *Runner) Stop(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.stopOnce.Do(func() { close(r.stopCh) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	r.killOnce.Do(func() { close(r.killCh) })
	<-r.done
	return ctx.Err()
}

// Kill SIGKILLs the process group at once, without a grace period or a
// restart, and waits until the runner is done. It reports no status: it
// is for fencing, when the instance may already belong to another node.
func (r *Runner) Kill() {
	if r == nil {
		return
	}
	r.fenced.Store(true)
	r.killOnce.Do(func() { close(r.killCh) })
	<-r.done
}

// Status returns the latest status; the zero Status before the first.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Done is closed when the runner is done, which happens only after Stop
// or Kill.
func (r *Runner) Done() <-chan struct{} { return r.done }

func (r *Runner) emit(st Status) {
	r.mu.Lock()
	st.LastError, st.LastErrorAt, st.Health = r.lastError, r.lastErrorAt, r.healthLocked(st.State)
	if st.Health == HealthUnhealthy {
		st.HealthError = r.healthError
	}
	r.status = st
	r.mu.Unlock()
	if r.cfg.OnStatus != nil && !r.fenced.Load() {
		r.cfg.OnStatus(st)
	}
}

// healthLocked is the health to report in a status of state st.
func (r *Runner) healthLocked(st State) Health {
	if r.cfg.Check == nil {
		return HealthNone
	}
	if st != StateRunning && st != StateStopping {
		return "" // a verdict is about a live process
	}
	if r.health == "" {
		return HealthStarting
	}
	return r.health
}

// noteError records a bad exit or a failed start as the last error; every
// later status carries it, so a restarted process still says why it went
// down, and since when.
func (r *Runner) noteError(text string) {
	r.mu.Lock()
	r.lastError, r.lastErrorAt = text, time.Now().UTC()
	r.mu.Unlock()
}

// run is the lifecycle: start, watch, restart per policy, until Stop/Kill.
func (r *Runner) run() {
	defer close(r.done)
	if r.cfg.Limits != nil {
		defer r.cfg.Limits.Close() // after the last process is gone
	}
	if r.cfg.Output != nil {
		defer r.cfg.Output.Close()
	}
	if r.pollErr == nil {
		defer proc.ReleasePoller()
	}
	bo := restartDelay{cfg: r.cfg.Backoff}
	limit := newRestartLimit(r.cfg.MaxRestarts, r.cfg.RestartWindow)
	policy := r.cfg.Restart
	restarts := 0
	for {
		select {
		case <-r.stopCh:
			return
		case <-r.killCh:
			return
		default:
		}
		p, err := r.start()
		if err != nil {
			r.log.Warn("start failed", "err", err, "restarts", restarts)
			r.noteError(err.Error())
			if policy != RestartNever && !limit.allow(time.Now()) {
				r.emit(Status{State: StateExited, Restarts: restarts, Error: limit.reason()})
				r.idle()
				return
			}
			r.emit(Status{State: StateFailed, Restarts: restarts, Error: err.Error()})
			if policy == RestartNever {
				r.idle()
				return
			}
			if !r.sleep(bo.delay(0)) {
				return
			}
			restarts++
			continue
		}
		r.mu.Lock()
		r.health, r.healthError = "", "" // a new process: no verdict yet
		r.mu.Unlock()
		r.log.Info("started", "pid", p.pid, "restarts", restarts)
		r.emit(Status{State: StateRunning, PID: p.pid, StartedAt: p.started, Restarts: restarts})

		res, stopped := r.watch(p, restarts)
		if stopped {
			return
		}
		if r.cfg.Limits != nil && r.cfg.Limits.OOM() {
			res.err = ErrOOM // the kernel killed it at its memory limit
		}
		code := res.code
		r.log.Info("exited", "pid", p.pid, "code", code, "ran", res.ran)
		if code != 0 || res.err != nil {
			r.noteError(exitText(code, res.errText()))
		}
		replace := errors.Is(res.err, errUnhealthy) // whatever the policy
		if (replace || policy.restartAfter(code)) && !limit.allow(time.Now()) {
			r.log.Warn("restart limit reached", "restarts", restarts)
			r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: limit.reason()})
			r.idle()
			return
		}
		if !replace && !policy.restartAfter(code) {
			r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
			r.idle()
			return
		}
		r.emit(Status{State: StateBackoff, ExitCode: &code, Restarts: restarts, Error: res.errText()})
		if !r.sleep(bo.delay(res.ran)) {
			// Stopped while waiting: nothing runs and nothing will.
			r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
			return
		}
		restarts++
	}
}

// idle waits for Stop or Kill once the policy allows no more starts.
func (r *Runner) idle() {
	select {
	case <-r.stopCh:
	case <-r.killCh:
	}
}

// sleep waits d; false if Stop or Kill came first.
func (r *Runner) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stopCh:
		return false
	case <-r.killCh:
		return false
	}
}

// watch waits for p to exit on its own (stopped = false) or for Stop/Kill,
// which it carries out (stopped = true).
func (r *Runner) watch(p *child, restarts int) (res exitResult, stopped bool) {
	hc := startHealth(r.cfg.Check, p.env, r.cfg.Dir, p.started)
	p.env = nil
	defer hc.stop()
	unhealthy, why := false, ""
wait:
	for {
		select {
		case <-p.exitReady:
			return p.reap(), false
		case <-r.killCh:
			proc.SignalGroup(p.pid, syscall.SIGKILL)
			p.await()
			return res, true
		case <-r.stopCh:
			break wait
		case v := <-hc.results():
			if unhealthy, why = r.onHealth(v, p), v.reason; unhealthy {
				break wait // replace it: stop it as below, then restart
			}
		}
	}
	r.emit(Status{State: StateStopping, PID: p.pid, StartedAt: p.started, Restarts: restarts})
	proc.SignalGroup(p.pid, syscall.SIGTERM)
	t := time.NewTimer(r.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-p.exitReady:
		res = p.reap()
	case <-t.C:
		r.log.Warn("stop timeout, killing", "pid", p.pid)
		proc.SignalGroup(p.pid, syscall.SIGKILL)
		res = p.await()
	case <-r.killCh:
		proc.SignalGroup(p.pid, syscall.SIGKILL)
		res = p.await()
	}
	code := res.code
	if unhealthy {
		r.log.Info("replacing unhealthy process", "pid", p.pid, "code", code)
		res.err = fmt.Errorf("%w: %s", errUnhealthy, why)
		return res, false
	}
	r.log.Info("stopped", "pid", p.pid, "code", code)
	r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
	return res, true
}

// onHealth records a verdict in the status and reports whether the
// process is to be replaced. Called from the runner's goroutine.
func (r *Runner) onHealth(v healthVerdict, p *child) (replace bool) {
	r.mu.Lock()
	r.health, r.healthError = v.health, v.reason
	st := r.status
	r.mu.Unlock()
	if v.health == HealthUnhealthy {
		r.log.Warn("unhealthy", "pid", p.pid, "reason", v.reason)
	}
	r.emit(st)
	return v.health == HealthUnhealthy && r.cfg.Check.Restart
}

// child is one started process.
type child struct {
	pid       int // also the process group id
	started   time.Time
	cmd       *exec.Cmd
	env       []string // its environment, until the health check has it
	onExit    func(pid int)
	exitReady <-chan struct{} // closed when the leader has exited, unreaped
	pumps     *proc.Pumps     // its output's pumps; nil when discarded
	out       Output          // where its start and exit are marked; nil when discarded
}

type exitResult struct {
	code int           // exit status, or 128+signal
	ran  time.Duration // how long the process lived
	err  error         // a wait failure that is not an exit status
}

func (e exitResult) errText() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// start starts the command in a new process group.
func (r *Runner) start() (*child, error) {
	argv := CommandArgv(r.cfg.Command)
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	if r.cfg.Dir != "" {
		// Otherwise a bad dir reads as "fork/exec PROGRAM: no such file".
		if fi, err := os.Stat(r.cfg.Dir); err != nil {
			return nil, fmt.Errorf("working dir: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("working dir %s: not a directory", r.cfg.Dir)
		}
	}
	for _, err := range []error{r.pollErr, r.cfg.Err} {
		if err != nil {
			return nil, err
		}
	}
	if r.cfg.Limits != nil {
		argv = r.cfg.Limits.Wrap(argv)
	}
	env := environ(r.cfg.BaseEnv, r.cfg.Env)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = r.cfg.Dir
	// Pdeathsig is tied to the starting OS thread; Go only ends a thread
	// when a goroutine exits while locked to it, which this package never
	// does, so in practice it fires when gdpm itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var pp *proc.Pumps
	out := r.cfg.Output
	if out != nil {
		var stdout, stderr *os.File
		var err error
		if pp, stdout, stderr, err = proc.OpenPumps(r.poller, out.Stdout(), out.Stderr()); err != nil {
			return nil, err
		}
		// The child holds its own copies once started; the pumps see the
		// end of file only once every writer has closed its copy.
		defer stdout.Close()
		defer stderr.Close()
		cmd.Stdout, cmd.Stderr = stdout, stderr
	}
	if err := cmd.Start(); err != nil {
		if pp != nil {
			pp.CloseReaders()
		}
		return nil, err
	}
	p := &child{pid: cmd.Process.Pid, started: time.Now(), cmd: cmd, onExit: r.cfg.OnExit, pumps: pp}
	if r.cfg.Check != nil {
		p.env = env
	}
	if pp != nil {
		p.out = out
		// Before any output is read, so the marker precedes it.
		if err := out.MarkStart(p.pid); err != nil {
			r.log.Warn("log capture", "err", err)
		}
		pp.Start(func(err error) { r.log.Warn("log capture", "err", err) })
	}
	// Read before the waiter may reap it, so the pid cannot be reused yet.
	startTime := proc.StartTime(p.pid)
	// OnStart runs before the exit is watched, so it always precedes OnExit.
	if r.cfg.OnStart != nil {
		r.cfg.OnStart(p.pid, startTime)
	}
	p.exitReady = proc.WatchExit(r.poller, p.pid)
	return p, nil
}

// await waits for the leader to exit, then reaps it (see reap).
func (p *child) await() exitResult {
	<-p.exitReady
	return p.reap()
}

// reap finishes a process whose leader has exited. The group is SIGKILLed
// while the unreaped leader still pins the group id, so the signal cannot
// reach a new group that reused it; then onExit runs, the leader is
// reaped, the rest of the group awaited and the output pipes drained.
func (p *child) reap() exitResult {
	proc.SignalGroup(p.pid, syscall.SIGKILL)
	if p.onExit != nil {
		p.onExit(p.pid)
	}
	err := p.cmd.Wait()
	res := exitResult{ran: time.Since(p.started)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
	default:
		res.err = err
	}
	res.code = exitCode(p.cmd.ProcessState)
	proc.KillGroupsUntilGone([]int{p.pid}, groupKillWait)
	if p.pumps != nil {
		p.pumps.Finish()
		p.out.MarkExit(res.code) // after the last output
	}
	return res
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
