package runner

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The pure policy of a runner: the restart delay, the restart limit, the
// argv of a command, how an exit reads.

// Backoff shapes the delay between restarts; zero fields take the
// DefaultBackoff* constants.
type Backoff struct {
	Initial time.Duration // first restart delay
	Max     time.Duration // cap
	Reset   time.Duration // a run this long resets the delay to Initial
}

// Backoff defaults. Initial is short so that a single crash costs little
// downtime; Reset is long enough that a crash loop cannot hide behind it.
const (
	DefaultBackoffInitial = 25 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultBackoffReset   = 10 * time.Second
)

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Reset <= 0 {
		b.Reset = DefaultBackoffReset
	}
	return b
}

// restartDelay is the restart delay state of one runner.
type restartDelay struct{ next time.Duration }

// delay returns the wait before the next start, given the shape and how
// long the last run lasted, and advances the state.
func (b *restartDelay) delay(cfg Backoff, ran time.Duration) time.Duration {
	if b.next == 0 || ran >= cfg.Reset {
		b.next = cfg.Initial
	}
	d := b.next
	b.next = min(2*b.next, cfg.Max)
	return d
}

// restartLimit counts restarts within a sliding window (MaxRestarts
// within RestartWindow), as Nomad's restart attempts within an interval
// and PM2's max_restarts do: a crash loop that the limit ends leaves the
// instance down for a person to look at, instead of restarting forever.
// Only the runner's goroutine uses it.
type restartLimit struct {
	max    int
	window time.Duration
	times  []time.Time
}

func newRestartLimit(max int, window time.Duration) *restartLimit {
	if window <= 0 {
		window = DefaultRestartWindow
	}
	return &restartLimit{max: max, window: window}
}

// allow records a restart at now and reports whether the limit allows it.
func (l *restartLimit) allow(now time.Time) bool {
	if l.max <= 0 {
		return true
	}
	keep := l.times[:0]
	for _, t := range l.times {
		if now.Sub(t) < l.window {
			keep = append(keep, t)
		}
	}
	l.times = keep
	if len(l.times) >= l.max {
		return false
	}
	l.times = append(l.times, now)
	return true
}

// reason is the instance's error once the limit stopped it.
func (l *restartLimit) reason() string {
	return fmt.Sprintf("restart limit reached: %d restarts within %s", l.max, l.window)
}

func (p Policy) restartAfter(code int) bool {
	switch p {
	case RestartNever:
		return false
	case RestartOnFailure:
		return code != 0
	}
	return true
}

// shellChars are the characters that make a command need /bin/sh.
const shellChars = "|&;<>()$`\\\"'*?[]#~={}%!\n"

// CommandArgv returns the argv that runs command: its words when it is a
// plain command line, so that the pid is the program itself and no shell
// is forked; /bin/sh -c otherwise.
func CommandArgv(command string) []string {
	if strings.ContainsAny(command, shellChars) {
		return []string{"/bin/sh", "-c", command}
	}
	return strings.Fields(command)
}

// exitText says how a process ended, for LastError: the error text the
// runner has (oom, unhealthy, a wait failure), else the exit code or the
// signal.
func exitText(code int, errText string) string {
	switch {
	case errText != "":
		return errText
	case code > 128 && code < 128+65:
		return "killed by signal " + strconv.Itoa(code-128)
	}
	return "exit code " + strconv.Itoa(code)
}

// ErrOOM is the exit reason of a process the kernel killed at its memory
// limit (Limits.OOM).
var ErrOOM = errors.New("oom")

// errUnhealthy is the exit reason of a process its health check replaced.
var errUnhealthy = errors.New("unhealthy")

// environ is a process's environment: base (os.Environ() when nil) and
// extra on top, a later entry of a name replacing an earlier one where it
// stood (as os/exec does: a program would see the first). It is built at
// each start and not kept, so that a thousand runners share one base
// instead of holding a copy each.
func environ(base, extra []string) []string {
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+len(extra))
	at := make(map[string]int, len(base)+len(extra)) // name -> index in env
	for _, kv := range slices.Concat(base, extra) {
		name, _, ok := strings.Cut(kv, "=")
		if !ok {
			env = append(env, kv)
			continue
		}
		if i, dup := at[name]; dup {
			env[i] = kv
			continue
		}
		at[name] = len(env)
		env = append(env, kv)
	}
	return env
}

// envLookup looks a name up in an environment list; the last entry of a
// name wins, as for exec.
func envLookup(env []string) func(string) string {
	return func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if name, v, ok := strings.Cut(env[i], "="); ok && name == k {
				return v
			}
		}
		return ""
	}
}
