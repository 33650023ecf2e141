package runner

import (
	"io"
	"log/slog"
	"time"
)

// Config configures the supervision of one process. The zero value of
// each field is documented; Start does not modify the Config, and the
// slices it holds (BaseEnv in particular, which many runners may share)
// are never written to.
type Config struct {
	// Command is what runs: its words when it is a plain command line,
	// /bin/sh -c otherwise (CommandArgv).
	Command string
	// BaseEnv is the base environment; nil means os.Environ() at each
	// start. Env is added on top (a later entry of a name wins).
	BaseEnv []string
	Env     []string
	// Dir is the working dir; "" inherits this process's.
	Dir string
	// StopTimeout is the grace period between SIGTERM and SIGKILL;
	// default DefaultStopTimeout.
	StopTimeout time.Duration
	// Restart says when a process that exited on its own is started
	// again; default RestartAlways.
	Restart Policy
	// Backoff shapes the delay between restarts.
	Backoff Backoff
	// MaxRestarts, when positive, is how many restarts are allowed within
	// RestartWindow (default DefaultRestartWindow); once it is reached
	// the process is left down (state exited).
	MaxRestarts   int
	RestartWindow time.Duration
	// Output receives the processes' stdout and stderr and the start and
	// exit markers; nil discards the output.
	Output Output
	// Limits confines each process (a cgroup, rlimits); nil: none.
	Limits Limits
	// Check is the health check of each process; nil: none (Health
	// "none").
	Check *Check
	// Err, if set, fails every start with it: a configuration the runner
	// cannot carry out (log files with bad names, limits that cannot be
	// enforced) still reports, and retries, like a failed start.
	Err error
	// OnStatus is called from the runner's goroutine on every state
	// change, in order; it must not block. After Kill it is not called
	// again.
	OnStatus func(Status)
	// OnStart, if set, is called after each successful start; pid is also
	// the process group id and startTime is field 22 of /proc/pid/stat (0
	// if unreadable), which tells a reused pid apart. It is called before
	// the matching OnExit, from the runner's goroutine.
	OnStart func(pid int, startTime uint64)
	// OnExit, if set, is called once for every OnStart, when that process
	// has exited and its group has been sent SIGKILL but before the
	// process is reaped: the unreaped leader keeps the group id from being
	// reused until OnExit returns, so a record of the group can be dropped
	// here without a moment where it could name someone else's group. It
	// is called from the runner's goroutine and must return soon.
	OnExit func(pid int)
	// Logger receives the runner's messages; nil is silent. LogAttrs
	// (key-value pairs, as for Logger.With) go with every message: what
	// the process is.
	Logger   *slog.Logger
	LogAttrs []any
}

// DefaultStopTimeout is Config.StopTimeout's default.
const DefaultStopTimeout = 10 * time.Second

// DefaultRestartWindow is Config.RestartWindow's default.
const DefaultRestartWindow = time.Minute

// Policy says when a process that exited on its own is restarted.
type Policy uint8

// The restart policies.
const (
	RestartAlways    Policy = iota // on any exit
	RestartOnFailure               // on a non-zero exit or a signal
	RestartNever                   // never
)

// Output is where an instance's output goes, across its restarts. The
// writers are called from the shared poller's goroutine and must not
// block for long; a write error is logged once per process and stream.
type Output interface {
	Stdout() io.Writer
	Stderr() io.Writer
	// MarkStart records a start before any of its output; MarkExit an
	// exit, after the last of it.
	MarkStart(pid int) error
	MarkExit(code int) error
	// Close is called once the runner is done.
	Close() error
}

// Limits confines an instance's processes.
type Limits interface {
	// Wrap returns the argv that runs argv within the limits, in the
	// child itself and before the program runs (same pid).
	Wrap(argv []string) []string
	// OOM reports whether the kernel killed a process at the memory
	// limit since the last call.
	OOM() bool
	// Close releases the limits once the last process is gone.
	Close()
}

// Check is a health check, run beside each process. Exactly one of Exec,
// HTTP and TCP is set; $VAR and ${VAR} in it are expanded from the
// process's environment.
type Check struct {
	Exec string // a command, run like Command; exit status 0 is healthy
	HTTP string // a URL to GET; 2xx or 3xx is healthy
	TCP  string // HOST:PORT; a connection is healthy
	// Interval is the time between checks, Timeout bounds one; both
	// must be positive.
	Interval, Timeout time.Duration
	// Grace is how long after a start failures do not count.
	Grace time.Duration
	// Failures is how many failures in a row make a process unhealthy
	// (at least 1).
	Failures int
	// Restart replaces an unhealthy process (whatever the policy);
	// without it the verdict is only reported.
	Restart bool
}

// State is where a runner's process is in its life.
type State string

// The states. The zero value means nothing was reported yet.
const (
	StateRunning  State = "running"  // process alive
	StateBackoff  State = "backoff"  // exited; waiting to restart
	StateExited   State = "exited"   // exited; will not be restarted
	StateFailed   State = "failed"   // could not be started
	StateStopping State = "stopping" // SIGTERM sent, waiting for exit
)

// Health is the health check's verdict.
type Health string

// The verdicts; empty while no process runs.
const (
	HealthNone      Health = "none"      // no check
	HealthStarting  Health = "starting"  // no verdict yet
	HealthHealthy   Health = "healthy"   // the last check passed
	HealthUnhealthy Health = "unhealthy" // Failures checks in a row failed
)

// Status is what a runner reports.
type Status struct {
	State     State
	PID       int // also the process group id
	StartedAt time.Time
	ExitCode  *int // exit status, or 128+signal
	Restarts  int
	Error     string
	// Health is the check's verdict; HealthError why the last check
	// failed, while unhealthy.
	Health      Health
	HealthError string
	// LastError is how a process last went down on its own, or why a
	// start failed, kept across restarts; LastErrorAt is when.
	LastError   string
	LastErrorAt time.Time
}
