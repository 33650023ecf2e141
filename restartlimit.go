//go:build linux

package gdpm

import (
	"fmt"
	"strconv"
	"time"
)

// restartLimit counts an instance's restarts within a sliding window
// (Supervision.MaxRestarts within RestartWindow), as Nomad's restart
// attempts within an interval and PM2's max_restarts do: a crash loop
// that the limit ends leaves the instance down for a person to look at,
// instead of restarting forever. Only the runner's goroutine uses it.
type restartLimit struct {
	max    int
	window time.Duration
	times  []time.Time
}

func newRestartLimit(s Supervision) *restartLimit {
	return &restartLimit{max: s.MaxRestarts, window: s.restartWindow()}
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

// noteError records a bad exit or a failed start as the instance's last
// error; every later status carries it, so a restarted instance still
// says why it went down, and since when.
func (r *runner) noteError(text string) {
	r.mu.Lock()
	r.lastError, r.lastErrorAt = text, time.Now().UTC()
	r.mu.Unlock()
}

// healthLocked is the health to report in a status of state st.
func (r *runner) healthLocked(st InstanceState) Health {
	if r.cfg.Assignment.Spec.Check == nil {
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
