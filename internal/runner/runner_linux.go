//go:build linux

package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Runner supervises one process through its whole life.
//
// It is driven by events, and holds no goroutine while nothing happens: a
// slave with a thousand instances kept a thousand goroutine stacks (and
// what a start had grown them to) when each runner had one waiting for
// its process. The events are the process's exit (a callback from the
// shared poller, internal/proc), a timer (the restart delay, the stop
// timeout), a health verdict, Stop and Kill. Each records what happened
// under mu and kicks the runner: a worker of a small shared pool takes its
// steps one at a time (so statuses are reported in order) until none is
// left. Forking, reaping and the status callbacks run on it, never under
// mu.
type Runner struct {
	cfg    Config
	fenced atomic.Bool // Kill was called: report nothing more

	poller *proc.Poller // watches the processes' exits and pipes; nil: none (cfg.Err says why)

	mu      sync.Mutex
	phase   phase
	stopReq bool // Stop was called
	killReq bool // Kill was called, or Stop's context ended
	busy    bool // queued for a worker, or on one
	closed  bool // done: the last process is gone, and what it held released
	// done is Done's channel, made when first asked for: most runners are
	// not waited for until they stop, and a slave holds thousands.
	done     chan struct{}
	cur      *child
	timer    *time.Timer // the restart delay or the stop timeout
	timerGen uint64      // bumped by every arm and cancel: a stale timer does nothing
	restarts int
	bo       restartDelay
	limit    restartLimit
	lastExit *exitResult // the exit a restart waits after (phBackoff); nil after a failed start

	// status is the latest status; its LastError and LastErrorAt, and
	// the health, go into every next one (emit).
	status      Status
	health      Health
	healthError string // why the last check failed, while unhealthy
}

// phase is what a runner is doing.
type phase uint8

const (
	phStart    phase = iota // a start is due
	phRunning               // cur runs
	phStopping              // cur was sent SIGTERM (Stop, or an unhealthy verdict)
	phBackoff               // the timer starts it again
	phIdle                  // no more starts: waiting for Stop or Kill
	phDone                  // over: Done is closed or about to be
)

// child is one started process. The flags are guarded by Runner.mu.
type child struct {
	pid     int // also the process group id
	started time.Time
	pumps   *proc.Pumps    // its output's pumps; nil when discarded
	health  *healthChecker // nil without a check
	env     []string       // its environment, until the health check has it

	exited    bool // the leader has exited
	reaped    bool // and has been reaped, with res
	drained   bool // and its output is drained
	res       exitResult
	killSent  bool
	timedOut  bool // the stop timeout passed
	replacing bool // stopped because unhealthy: restart it
	why       string
	verdicts  []healthVerdict // not handled yet
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
		cfg:   cfg,
		limit: *newRestartLimit(cfg.MaxRestarts, cfg.RestartWindow),
	}
	if poller, err := proc.AcquirePoller(); err != nil {
		r.cfg.Err = err // every start fails with it
	} else {
		r.poller = poller
	}
	r.mu.Lock()
	r.kick()
	r.mu.Unlock()
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
	r.mu.Lock()
	r.stopReq = true
	r.kick()
	done := r.doneLocked()
	r.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-done:
		return nil
	default:
	}
	r.mu.Lock()
	r.killReq = true
	r.kick()
	r.mu.Unlock()
	<-done
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
	r.mu.Lock()
	r.killReq = true
	r.kick()
	done := r.doneLocked()
	r.mu.Unlock()
	<-done
}

// Status returns the latest status; the zero Status before the first.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Done is closed when the runner is done, which happens only after Stop
// or Kill.
func (r *Runner) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.doneLocked()
}

func (r *Runner) doneLocked() chan struct{} {
	if r.done == nil {
		r.done = make(chan struct{})
		if r.closed {
			close(r.done)
		}
	}
	return r.done
}

// logf logs msg with the Config's LogAttrs before args. The attributes
// are added per message rather than once with Logger.With, which would
// keep a formatted copy of them per runner.
func (r *Runner) logf(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !r.cfg.Logger.Enabled(ctx, level) {
		return
	}
	r.cfg.Logger.Log(ctx, level, msg, append(slices.Clip(r.cfg.LogAttrs), args...)...)
}

// kick queues r for a worker unless it has one; r.mu is held.
func (r *Runner) kick() {
	if !r.busy && r.phase != phDone {
		r.busy = true
		schedule(r)
	}
}

// The steps of every runner run on a small pool of goroutines, started on
// demand and ended when no runner has work. A goroutine per runner with
// work would do, but a thousand instances placed at once then made a
// thousand goroutines, each grown by a start, and the runtime keeps the
// memory of their stacks (and a stack with every exited goroutine) long
// after: the slave's resident memory grew by 8 MB per thousand. Forks are
// serialized in the kernel and the runtime anyway (syscall.ForkLock);
// maxWorkers bounds what a step that waits (a group slow to die, output
// still draining) can hold up.
const maxWorkers = 8

var pool struct {
	sync.Mutex
	queue   []*Runner // runners with work, in order
	workers int
}

func schedule(r *Runner) {
	pool.Lock()
	defer pool.Unlock()
	pool.queue = append(pool.queue, r)
	if pool.workers < maxWorkers {
		pool.workers++
		go worker()
	}
}

// worker takes runners off the queue and runs each one's steps until it
// has none left.
func worker() {
	for {
		pool.Lock()
		if len(pool.queue) == 0 {
			pool.workers--
			pool.queue = nil // drop the grown backing array
			pool.Unlock()
			return
		}
		r := pool.queue[0]
		pool.queue[0] = nil
		pool.queue = pool.queue[1:]
		pool.Unlock()
		for r.step() {
		}
	}
}

// step takes the next step, if there is one.
func (r *Runner) step() bool {
	r.mu.Lock()
	p := r.cur
	switch {
	case r.phase == phDone:
	case p != nil && p.exited:
		switch {
		case !p.reaped:
			r.mu.Unlock()
			r.reap(p)
			return true
		case p.drained:
			r.mu.Unlock()
			r.finish(p)
			return true
		}
		// Its output is still draining: drained kicks.
	case p != nil:
		switch {
		case (r.killReq || p.timedOut) && !p.killSent:
			p.killSent = true
			timedOut := !r.killReq
			r.mu.Unlock()
			if timedOut {
				r.logf(slog.LevelWarn, "stop timeout, killing", "pid", p.pid)
			}
			proc.SignalGroup(p.pid, syscall.SIGKILL)
			return true
		case r.stopReq && r.phase == phRunning:
			r.mu.Unlock()
			r.beginStop(p, false, "")
			return true
		case len(p.verdicts) > 0:
			v := p.verdicts[0]
			p.verdicts = p.verdicts[1:]
			running := r.phase == phRunning
			r.mu.Unlock()
			if running {
				r.onHealth(p, v)
			}
			return true
		}
	case r.stopReq || r.killReq:
		// No process: before the first start, waiting to restart, or
		// idle. Nothing runs and nothing will.
		r.cancelTimerLocked()
		last := r.lastExit
		if r.phase != phBackoff {
			last = nil
		}
		st := Status{State: StateExited, Restarts: r.restarts}
		r.phase = phDone
		r.mu.Unlock()
		if last != nil {
			st.ExitCode, st.Error = &last.code, last.errText()
			r.emit(st)
		}
		r.close()
		return true
	case r.phase == phStart:
		r.mu.Unlock()
		r.startStep()
		return true
	}
	r.busy = false
	r.mu.Unlock()
	return false
}

// close releases what the runner holds, once its last process is gone,
// and closes Done.
func (r *Runner) close() {
	if r.cfg.Limits != nil {
		r.cfg.Limits.Close()
	}
	if r.cfg.Output != nil {
		r.cfg.Output.Close()
	}
	if r.poller != nil {
		proc.ReleasePoller()
	}
	r.mu.Lock()
	r.closed = true
	if r.done != nil {
		close(r.done)
	}
	r.mu.Unlock()
}

// armLocked sets the timer to call fire, under r.mu, after d, and kick.
func (r *Runner) armLocked(d time.Duration, fire func()) {
	r.cancelTimerLocked()
	gen := r.timerGen
	r.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.timerGen != gen {
			return // cancelled, or replaced
		}
		r.timer = nil
		fire()
		r.kick()
	})
}

func (r *Runner) cancelTimerLocked() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.timerGen++
}

func (r *Runner) emit(st Status) {
	r.mu.Lock()
	st.LastError, st.LastErrorAt, st.Health = r.status.LastError, r.status.LastErrorAt, r.healthLocked(st.State)
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
	r.status.LastError, r.status.LastErrorAt = text, time.Now().UTC()
	r.mu.Unlock()
}

// startStep starts the process, or handles a failed start.
func (r *Runner) startStep() {
	p, err := r.start()
	r.mu.Lock()
	restarts := r.restarts
	if err != nil {
		r.mu.Unlock()
		r.logf(slog.LevelWarn, "start failed", "err", err, "restarts", restarts)
		r.noteError(err.Error())
		r.mu.Lock()
		never := r.cfg.Restart == RestartNever
		if !never && !r.limit.allow(time.Now()) {
			r.phase = phIdle
			r.mu.Unlock()
			r.emit(Status{State: StateExited, Restarts: restarts, Error: r.limit.reason()})
			return
		}
		if never {
			r.phase = phIdle
		} else {
			r.phase, r.lastExit = phBackoff, nil
		}
		r.mu.Unlock()
		r.emit(Status{State: StateFailed, Restarts: restarts, Error: err.Error()})
		if !never {
			r.restartAfter(r.bo.delay(r.cfg.Backoff, 0))
		}
		return
	}
	r.health, r.healthError = "", "" // a new process: no verdict yet
	r.cur, r.phase = p, phRunning
	r.mu.Unlock()
	r.logf(slog.LevelInfo, "started", "pid", p.pid, "restarts", restarts)
	r.emit(Status{State: StateRunning, PID: p.pid, StartedAt: p.started, Restarts: restarts})
	if r.cfg.Check != nil {
		p.health = startHealth(r.cfg.Check, p.env, r.cfg.Dir, p.started, func(v healthVerdict) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.cur == p && r.phase == phRunning {
				p.verdicts = append(p.verdicts, v)
				r.kick()
			}
		})
		p.env = nil
	}
}

// restartAfter arms the restart delay, unless the runner was stopped
// meanwhile (then the next step ends it).
func (r *Runner) restartAfter(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase != phBackoff {
		return
	}
	r.armLocked(d, func() {
		r.phase = phStart
		r.restarts++
	})
}

// beginStop sends SIGTERM to the group, and SIGKILL after the stop
// timeout: for Stop, or to replace an unhealthy process (replacing).
func (r *Runner) beginStop(p *child, replacing bool, why string) {
	r.mu.Lock()
	r.phase = phStopping
	p.replacing, p.why = replacing, why
	restarts := r.restarts
	r.armLocked(r.cfg.StopTimeout, func() { p.timedOut = true })
	r.mu.Unlock()
	r.emit(Status{State: StateStopping, PID: p.pid, StartedAt: p.started, Restarts: restarts})
	proc.SignalGroup(p.pid, syscall.SIGTERM)
}

// onHealth records a verdict in the status, and replaces the process if
// it is unhealthy and the check says so.
func (r *Runner) onHealth(p *child, v healthVerdict) {
	r.mu.Lock()
	r.health, r.healthError = v.health, v.reason
	st := r.status
	r.mu.Unlock()
	if v.health == HealthUnhealthy {
		r.logf(slog.LevelWarn, "unhealthy", "pid", p.pid, "reason", v.reason)
	}
	r.emit(st)
	if v.health == HealthUnhealthy && r.cfg.Check.Restart {
		r.beginStop(p, true, v.reason)
	}
}

// finish decides what comes after a process that has been reaped and
// whose output is drained: done (it was stopped or killed), a restart
// after a delay, or nothing more (idle).
func (r *Runner) finish(p *child) {
	res := p.res
	if p.pumps != nil {
		r.cfg.Output.MarkExit(res.code) // after the last output
	}
	r.mu.Lock()
	r.cur = nil
	r.cancelTimerLocked() // the stop timeout
	graceful := r.phase == phStopping && !p.replacing
	stopped := graceful || (r.killReq && !p.replacing)
	restarts := r.restarts
	if stopped {
		r.phase = phDone
	}
	r.mu.Unlock()
	code := res.code
	if stopped {
		if graceful {
			r.logf(slog.LevelInfo, "stopped", "pid", p.pid, "code", code)
			r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
		}
		r.close()
		return
	}
	if p.replacing {
		r.logf(slog.LevelInfo, "replacing unhealthy process", "pid", p.pid, "code", code)
		res.err = fmt.Errorf("%w: %s", errUnhealthy, p.why)
	}
	if r.cfg.Limits != nil && r.cfg.Limits.OOM() {
		res.err = ErrOOM // the kernel killed it at its memory limit
	}
	r.logf(slog.LevelInfo, "exited", "pid", p.pid, "code", code, "ran", res.ran)
	if code != 0 || res.err != nil {
		r.noteError(exitText(code, res.errText()))
	}
	restart := p.replacing || r.cfg.Restart.restartAfter(code) // unhealthy: whatever the policy
	r.mu.Lock()
	if restart && !r.limit.allow(time.Now()) {
		r.phase = phIdle
		r.mu.Unlock()
		r.logf(slog.LevelWarn, "restart limit reached", "restarts", restarts)
		r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: r.limit.reason()})
		return
	}
	if !restart {
		r.phase = phIdle
		r.mu.Unlock()
		r.emit(Status{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
		return
	}
	r.phase, r.lastExit = phBackoff, &res
	r.mu.Unlock()
	r.emit(Status{State: StateBackoff, ExitCode: &code, Restarts: restarts, Error: res.errText()})
	r.restartAfter(r.bo.delay(r.cfg.Backoff, res.ran))
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

// start starts the command in a new process group. Nothing of the start
// (the argv, the environment) is kept but what watching the process needs.
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
	if r.cfg.Err != nil {
		return nil, r.cfg.Err
	}
	if r.cfg.Limits != nil {
		argv = r.cfg.Limits.Wrap(argv)
	}
	path := argv[0]
	if filepath.Base(path) == path {
		// As os/exec: a bare name is looked up in this process's PATH.
		lp, err := exec.LookPath(path)
		if err != nil {
			return nil, err
		}
		path = lp
	}
	env := environ(r.cfg.BaseEnv, r.cfg.Env)
	// What the child gets for stdin, and for its output when discarded.
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("open "+os.DevNull, err)
	}
	defer syscall.Close(null)
	files := [3]uintptr{uintptr(null), uintptr(null), uintptr(null)}
	var pp *proc.Pumps
	out := r.cfg.Output
	if out != nil {
		var stdout, stderr *os.File
		if pp, stdout, stderr, err = proc.OpenPumps(r.poller, out.Stdout(), out.Stderr()); err != nil {
			return nil, err
		}
		// The child holds its own copies once started; the pumps see the
		// end of file only once every writer has closed its copy.
		defer stdout.Close()
		defer stderr.Close()
		files[1], files[2] = stdout.Fd(), stderr.Fd()
	}
	pid, pidfd, err := proc.Spawn(path, argv, env, r.cfg.Dir, files)
	if err != nil {
		if pp != nil {
			pp.CloseReaders()
		}
		return nil, err
	}
	p := &child{pid: pid, started: time.Now(), pumps: pp}
	if r.cfg.Check != nil {
		p.env = env
	}
	if pp != nil {
		// Before any output is read, so the marker precedes it.
		if err := out.MarkStart(pid); err != nil {
			r.logf(slog.LevelWarn, "log capture", "err", err)
		}
		pp.Start(func(err error) { r.logf(slog.LevelWarn, "log capture", "err", err) })
	}
	// Read before the process may be reaped, so the pid cannot be reused
	// yet.
	startTime := proc.StartTime(pid)
	// OnStart runs before the exit is watched, so it always precedes OnExit.
	if r.cfg.OnStart != nil {
		r.cfg.OnStart(pid, startTime)
	}
	proc.WatchExit(r.poller, pid, pidfd, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		p.exited = true
		r.kick()
	})
	return p, nil
}

// reap finishes a process whose leader has exited. The group is SIGKILLed
// while the unreaped leader still pins the group id, so the signal cannot
// reach a new group that reused it; then OnExit runs, the leader is
// reaped and the rest of the group awaited. The output pipes drain
// without a worker waiting (a process that left the group may hold them
// open for a while): finish comes once they have.
func (r *Runner) reap(p *child) {
	p.health.stop()
	proc.SignalGroup(p.pid, syscall.SIGKILL)
	if r.cfg.OnExit != nil {
		r.cfg.OnExit(p.pid)
	}
	code, err := proc.Reap(p.pid)
	res := exitResult{code: code, err: err, ran: time.Since(p.started)}
	proc.KillGroupsUntilGone([]int{p.pid}, groupKillWait)
	r.mu.Lock()
	p.res, p.reaped, p.drained = res, true, p.pumps == nil
	r.mu.Unlock()
	if p.pumps != nil {
		p.pumps.Finish(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			p.drained = true
			r.kick()
		})
	}
}
