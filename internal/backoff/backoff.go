// Package backoff is the capped exponential delay that every retry loop of
// gdpm waits with: a slave registering, a master campaigning, a status
// writer, a watchdog being replaced.
package backoff

import (
	"context"
	"time"
)

// Delay is a capped exponential delay between attempts. It is not safe for
// concurrent use: each loop owns its own.
type Delay struct{ cur, min, max time.Duration }

// NewDelay starts at lo and doubles up to hi.
func NewDelay(lo, hi time.Duration) *Delay { return &Delay{cur: lo, min: lo, max: hi} }

// Reset starts over from the lowest delay, after a success.
func (d *Delay) Reset() { d.cur = d.min }

// Wait sleeps the current delay and doubles it; false if ctx ended first.
func (d *Delay) Wait(ctx context.Context) bool {
	t := time.NewTimer(d.cur)
	defer t.Stop()
	d.cur = min(2*d.cur, d.max)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
