//go:build linux

package gdpm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
)

// Backoff defaults. Initial is short so that a single crash costs little
// downtime; Reset is long enough that a crash loop cannot hide behind it.
const (
	defaultBackoffInitial = 25 * time.Millisecond
	defaultBackoffMax     = 30 * time.Second
	defaultBackoffReset   = 10 * time.Second
)

// groupKillWait bounds how long a runner waits for the rest of a process
// group to die after SIGKILL. Only a process stuck in uninterruptible sleep
// survives that long, and waiting for it forever would wedge Stop.
const groupKillWait = 2 * time.Second

func (b backoffConfig) withDefaults() backoffConfig {
	if b.Initial <= 0 {
		b.Initial = defaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = defaultBackoffMax
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Reset <= 0 {
		b.Reset = defaultBackoffReset
	}
	return b
}

// restartDelay is the restart delay state of one runner.
type restartDelay struct {
	cfg  backoffConfig
	next time.Duration
}

// delay returns the wait before the next start, given how long the last
// run lasted, and advances the state.
func (b *restartDelay) delay(ran time.Duration) time.Duration {
	if b.next == 0 || ran >= b.cfg.Reset {
		b.next = b.cfg.Initial
	}
	d := b.next
	b.next = min(2*b.next, b.cfg.Max)
	return d
}

// shellChars are the characters that make a command need /bin/sh.
const shellChars = "|&;<>()$`\\\"'*?[]#~={}%!\n"

// commandArgv returns the argv that runs command: its words when it is a
// plain command line, so that the pid is the program itself and no shell
// is forked; /bin/sh -c otherwise.
func commandArgv(command string) []string {
	if strings.ContainsAny(command, shellChars) {
		return []string{"/bin/sh", "-c", command}
	}
	return strings.Fields(command)
}

// runner supervises one instance's process through its whole life. One
// goroutine (run) owns the lifecycle; the methods only signal it.
type runner struct {
	cfg    runnerConfig
	log    *slog.Logger
	env    []string
	dir    string
	policy RestartPolicy

	stopCh   chan struct{} // closed by Stop: graceful stop
	killCh   chan struct{} // closed by Kill or an expired Stop: SIGKILL now
	stopOnce sync.Once
	killOnce sync.Once
	fenced   atomic.Bool // Kill was called: report nothing more
	done     chan struct{}

	logs    *instanceLogs   // nil: output discarded
	logsErr error           // bad ids: every start fails with it
	poller  *proc.Poller    // watches the processes' exits and pipes
	pollErr error           // no poller: every start fails with it
	cg      *instanceCgroup // the instance's limits (cgroup.go); nil without
	cgErr   error           // limits that cannot be enforced: every start fails with it

	mu     sync.Mutex
	status InstanceStatus
	// Set by the runner's goroutine and the health checker, copied into
	// every status (emit): the last bad exit, and the health.
	lastError   string
	lastErrorAt time.Time
	health      Health
	healthError string // why the last check failed, while unhealthy
}

// startRunner starts supervising cfg's instance and returns at once.
func startRunner(cfg runnerConfig) *runner {
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := cfg.Assignment
	r := &runner{
		cfg:    cfg,
		log:    cfg.Logger.With("service", a.Service, "instance", a.Instance),
		env:    append(buildEnv(cfg.Env, a.Spec.Env), cfg.Identity...),
		dir:    workDir(cfg.BaseDir, a.Spec.Dir),
		policy: a.Spec.restartPolicy(),
		stopCh: make(chan struct{}),
		killCh: make(chan struct{}),
		done:   make(chan struct{}),
		status: InstanceStatus{Service: a.Service, Instance: a.Instance, Node: cfg.Node, State: StateAssigned},
	}
	if cfg.LogDir != "" {
		r.logs, r.logsErr = newInstanceLogs(cfg.LogDir, a.Service, a.Instance,
			orDefault(cfg.LogMaxSize, DefaultLogMaxSize), orDefault(cfg.LogMaxFiles, DefaultLogMaxFiles))
	}
	r.poller, r.pollErr = proc.AcquirePoller()
	r.cg, r.cgErr = newInstanceCgroup(a.Spec.Supervision, a.Service+"-"+a.Instance+"-"+shortNode(cfg.Node))
	go r.run()
	return r
}

// Stop stops the instance gracefully: SIGTERM to its process group, then
// SIGKILL after the spec's stop timeout. It returns once the group is gone
// and the runner's goroutine has exited. If ctx ends first the group is
// SIGKILLed at once and the wrapped ctx error is returned. Stop is
// idempotent and safe to call concurrently.
func (r *runner) Stop(ctx context.Context) error {
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
	return fmt.Errorf("gdpm: stop %s/%s: %w", r.cfg.Assignment.Service, r.cfg.Assignment.Instance, ctx.Err())
}

// Kill SIGKILLs the process group at once, without a grace period or a
// restart, and waits for the runner's goroutine. It reports no status: it
// is for fencing, when the instance may already belong to another node.
func (r *runner) Kill() {
	if r == nil {
		return
	}
	r.fenced.Store(true)
	r.killOnce.Do(func() { close(r.killCh) })
	<-r.done
}

// Status returns the latest status.
func (r *runner) Status() InstanceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Done is closed when the runner's goroutine has exited, which happens only
// after Stop or Kill.
func (r *runner) Done() <-chan struct{} { return r.done }

func (r *runner) emit(st InstanceStatus) {
	a := r.cfg.Assignment
	st.Service, st.Instance, st.Node, st.Ports = a.Service, a.Instance, r.cfg.Node, r.cfg.Ports
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

// run is the lifecycle: start, watch, restart per policy, until Stop/Kill.
func (r *runner) run() {
	defer close(r.done)
	defer r.cg.remove() // after the last process is gone
	defer r.logs.Close()
	if r.pollErr == nil {
		defer proc.ReleasePoller()
	}
	bo := restartDelay{cfg: r.cfg.Backoff}
	limit := newRestartLimit(r.cfg.Assignment.Spec.Supervision)
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
			if r.policy != RestartNever && !limit.allow(time.Now()) {
				r.emit(InstanceStatus{State: StateExited, Restarts: restarts, Error: limit.reason()})
				r.idle()
				return
			}
			r.emit(InstanceStatus{State: StateFailed, Restarts: restarts, Error: err.Error()})
			if r.policy == RestartNever {
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
		r.emit(InstanceStatus{State: StateRunning, PID: p.pid, StartedAt: p.started, Restarts: restarts})

		res, stopped := r.watch(p, restarts)
		if stopped {
			return
		}
		if r.cg.newOOM() {
			res.err = errOOM // the kernel killed it at MemoryLimit
		}
		code := res.code
		r.log.Info("exited", "pid", p.pid, "code", code, "ran", res.ran)
		if code != 0 || res.err != nil {
			r.noteError(exitText(code, res.errText()))
		}
		replace := errors.Is(res.err, errUnhealthy) // whatever the policy
		if (replace || r.restartAfter(code)) && !limit.allow(time.Now()) {
			r.log.Warn("restart limit reached", "restarts", restarts)
			r.emit(InstanceStatus{State: StateExited, ExitCode: &code, Restarts: restarts, Error: limit.reason()})
			r.idle()
			return
		}
		if !replace && !r.restartAfter(code) {
			r.emit(InstanceStatus{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
			r.idle()
			return
		}
		r.emit(InstanceStatus{State: StateBackoff, ExitCode: &code, Restarts: restarts, Error: res.errText()})
		if !r.sleep(bo.delay(res.ran)) {
			// Stopped while waiting: nothing runs and nothing will.
			r.emit(InstanceStatus{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
			return
		}
		restarts++
	}
}

func (r *runner) restartAfter(code int) bool {
	switch r.policy {
	case RestartNever:
		return false
	case RestartOnFailure:
		return code != 0
	}
	return true
}

// idle waits for Stop or Kill once the policy allows no more starts.
func (r *runner) idle() {
	select {
	case <-r.stopCh:
	case <-r.killCh:
	}
}

// sleep waits d; false if Stop or Kill came first.
func (r *runner) sleep(d time.Duration) bool {
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
func (r *runner) watch(p *child, restarts int) (res exitResult, stopped bool) {
	hc := r.startHealth(p) // healthcheck.go; nil without a check
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
	r.emit(InstanceStatus{State: StateStopping, PID: p.pid, StartedAt: p.started, Restarts: restarts})
	proc.SignalGroup(p.pid, syscall.SIGTERM)
	t := time.NewTimer(r.cfg.Assignment.Spec.stopTimeout())
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
	r.emit(InstanceStatus{State: StateExited, ExitCode: &code, Restarts: restarts, Error: res.errText()})
	return res, true
}

// child is one started process.
type child struct {
	pid       int // also the process group id
	started   time.Time
	cmd       *exec.Cmd
	onExit    func(pid int)
	exitReady <-chan struct{} // closed when the leader has exited, unreaped
	pumps     *proc.Pumps     // its output's pumps; nil when discarded
	logs      *instanceLogs   // where its start and exit are marked; nil when discarded
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

// start starts the spec's command in a new process group.
func (r *runner) start() (*child, error) {
	argv := commandArgv(r.cfg.Assignment.Spec.Command)
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	if r.dir != "" {
		// Otherwise a bad dir reads as "fork/exec PROGRAM: no such file".
		if fi, err := os.Stat(r.dir); err != nil {
			return nil, fmt.Errorf("working dir: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("working dir %s: not a directory", r.dir)
		}
	}
	argv = wrapArgv(argv, r.cg, r.cfg.Assignment.Spec.Rlimits) // cgroup.go
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Dir = r.dir
	// Pdeathsig is tied to the starting OS thread; Go only ends a thread
	// when a goroutine exits while locked to it, which this package never
	// does, so in practice it fires when gdpm itself dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var pp *proc.Pumps
	for _, err := range []error{r.pollErr, r.logsErr, r.cgErr} {
		if err != nil {
			return nil, err
		}
	}
	if r.logs != nil {
		var stdout, stderr *os.File
		var err error
		if pp, stdout, stderr, err = proc.OpenPumps(r.poller, r.logs.out, r.logs.err); err != nil {
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
	if pp != nil {
		p.logs = r.logs
		// Before any output is read, so the marker precedes it.
		if err := r.logs.markStart(p.pid); err != nil {
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
		p.logs.markExit(res.code) // after the last output
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
