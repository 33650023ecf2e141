package gdpm

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxConflictRetries bounds how often the master retries a write that lost
// an optimistic-concurrency race (a compare on a key's revision) before it
// answers 409. Every round some writer wins, so 50 writers of one key all
// get through well within it.
const maxConflictRetries = 100

// jitter returns a random wait in [d/2, d): concurrent losers of one race
// spread out instead of colliding again in lockstep.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// retryWait is the wait before retry number attempt (0-based): base doubled
// each time up to ceiling, jittered.
func retryWait(attempt int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	return jitter(min(d, ceiling))
}

// sleepCtx waits d or until ctx ends; it reports whether the whole wait
// passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
