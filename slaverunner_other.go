//go:build !linux

package gdpm

import "context"

// Slaves run on Linux only (NewSlave answers ErrUnsupportedOS elsewhere);
// this stand-in for slaverunner.go's runner lets the package build.

type runner struct{ cfg runnerConfig }

func startRunner(cfg runnerConfig) *runner {
	panic("gdpm: " + ErrUnsupportedOS.Error())
}

func (r *runner) Stop(ctx context.Context) error { return nil }
func (r *runner) Kill()                          {}
func (r *runner) Status() InstanceStatus         { return InstanceStatus{} }
func (r *runner) Done() <-chan struct{}          { return nil }
