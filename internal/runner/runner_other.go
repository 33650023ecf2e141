//go:build !linux

package runner

import (
	"context"

	"github.com/capy-pl/gdpm/internal/proc"
)

// Runner is the stand-in for runner_linux.go's on systems without
// process supervision: it reports one failed start and is done at once.
type Runner struct {
	status Status
	done   chan struct{}
}

// Start reports a failed start with proc.ErrUnsupported.
func Start(cfg Config) *Runner {
	r := &Runner{status: Status{State: StateFailed, Error: proc.ErrUnsupported.Error()},
		done: make(chan struct{})}
	if cfg.OnStatus != nil {
		cfg.OnStatus(r.status)
	}
	close(r.done)
	return r
}

func (r *Runner) Stop(ctx context.Context) error { return nil }
func (r *Runner) Kill()                          {}
func (r *Runner) Status() Status                 { return r.status }
func (r *Runner) Done() <-chan struct{}          { return r.done }
