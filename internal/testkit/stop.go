package testkit

import (
	"context"
	"testing"
	"time"
)

// Stoppable is a runner under test: internal/runner's Runner and the
// slave's adapter over it.
type Stoppable interface {
	Stop(ctx context.Context) error
	Done() <-chan struct{}
}

// stopTimeout bounds a test's Stop of a runner.
const stopTimeout = 10 * time.Second

// Stop stops r, failing t if that fails or if Done is not closed once
// Stop returns.
func Stop(t testing.TB, r Stoppable) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed after Stop returned")
	}
}

// StopAtCleanup stops r when the test ends, failing it if that fails.
func StopAtCleanup(t testing.TB, r Stoppable) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
	})
}
