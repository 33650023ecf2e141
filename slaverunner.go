package gdpm

import (
	"context"
	"fmt"

	"github.com/capy-pl/gdpm/internal/runner"
)

// The slave's side of one instance's process: an adapter from an
// assignment to internal/runner, which does the supervision (Linux only;
// NewSlave refuses elsewhere). It turns the spec into a runner.Config
// (command, environment, policies, the log files and the cgroup as hooks)
// and the runner's statuses into InstanceStatus.

// instanceRunner supervises one instance. It keeps only what its statuses
// need: a slave holds thousands.
type instanceRunner struct {
	cfg instanceIDs
	r   *runner.Runner
}

// instanceIDs is what a status says about whose it is.
type instanceIDs struct {
	Service, Instance, Node string
	Ports                   map[string]int
}

// startRunner starts supervising cfg's instance and returns at once.
func startRunner(cfg runnerConfig) *instanceRunner {
	a := cfg.Assignment
	ir := &instanceRunner{cfg: instanceIDs{Service: a.Service, Instance: a.Instance, Node: cfg.Node, Ports: cfg.Ports}}
	rc := runner.Config{
		Command:       a.Spec.Command,
		BaseEnv:       cfg.Env,
		Env:           cfg.Identity,
		Dir:           workDir(cfg.BaseDir, a.Spec.Dir),
		StopTimeout:   a.Spec.stopTimeout(),
		Restart:       runnerPolicy(a.Spec.restartPolicy()),
		Backoff:       cfg.Backoff,
		MaxRestarts:   a.Spec.MaxRestarts,
		RestartWindow: a.Spec.restartWindow(),
		Check:         runnerCheck(a.Spec.Check),
		OnStart:       cfg.OnStart,
		OnExit:        cfg.OnExit,
		Logger:        cfg.Logger,
	}
	if len(a.Spec.Env) > 0 {
		rc.Env = append(specEnv(a.Spec.Env), cfg.Identity...) // Identity last: it wins
	}
	if cfg.Logger != nil {
		rc.LogAttrs = []any{"service", a.Service, "instance", a.Instance}
	}
	if onStatus := cfg.OnStatus; onStatus != nil {
		rc.OnStatus = func(st runner.Status) { onStatus(ir.instanceStatus(st)) }
	}
	var logsErr, cgErr error
	if cfg.LogDir != "" {
		var logs *instanceLogs
		// The sizes are SlaveConfig's, defaults applied there.
		if logs, logsErr = newInstanceLogs(cfg.LogDir, a.Service, a.Instance, cfg.LogMaxSize, cfg.LogMaxFiles); logsErr == nil {
			rc.Output = logs
		}
	}
	var cg *instanceCgroup
	cg, cgErr = newInstanceCgroup(a.Spec.Supervision, a.Service+"-"+a.Instance+"-"+shortNode(cfg.Node))
	if cg != nil || len(a.Spec.Rlimits) > 0 {
		rc.Limits = &instanceLimits{cg: cg, rlimits: a.Spec.Rlimits}
	}
	if logsErr != nil {
		rc.Err = logsErr
	} else {
		rc.Err = cgErr
	}
	ir.r = runner.Start(rc)
	return ir
}

// Stop stops the instance gracefully: SIGTERM to its process group, then
// SIGKILL after the spec's stop timeout. It returns once the group is gone
// and the runner is done. If ctx ends first the group is SIGKILLed at once
// and the wrapped ctx error is returned. Stop is idempotent and safe to
// call concurrently.
func (ir *instanceRunner) Stop(ctx context.Context) error {
	if err := ir.r.Stop(ctx); err != nil {
		return fmt.Errorf("gdpm: stop %s/%s: %w", ir.cfg.Service, ir.cfg.Instance, err)
	}
	return nil
}

// Kill SIGKILLs the process group at once, without a grace period or a
// restart, and waits for the runner. It reports no status: it is for
// fencing, when the instance may already belong to another node.
func (ir *instanceRunner) Kill() { ir.r.Kill() }

// Status returns the latest status.
func (ir *instanceRunner) Status() InstanceStatus { return ir.instanceStatus(ir.r.Status()) }

// Done is closed when the runner is done, which happens only after Stop or
// Kill.
func (ir *instanceRunner) Done() <-chan struct{} { return ir.r.Done() }

// instanceStatus is st with the instance's ids and ports; assigned before
// the runner reported anything.
func (ir *instanceRunner) instanceStatus(st runner.Status) InstanceStatus {
	id := ir.cfg
	state := InstanceState(st.State)
	if state == "" {
		state = StateAssigned
	}
	return InstanceStatus{
		Service: id.Service, Instance: id.Instance, Node: id.Node, Ports: id.Ports,
		State: state, PID: st.PID, StartedAt: st.StartedAt, ExitCode: st.ExitCode,
		Restarts: st.Restarts, Error: st.Error,
		Health: Health(st.Health), HealthError: st.HealthError,
		LastError: st.LastError, LastErrorAt: st.LastErrorAt,
	}
}

func runnerPolicy(p RestartPolicy) runner.Policy {
	switch p {
	case RestartOnFailure:
		return runner.RestartOnFailure
	case RestartNever:
		return runner.RestartNever
	}
	return runner.RestartAlways
}

// runnerCheck is c with its defaults applied; nil without a check.
func runnerCheck(c *HealthCheck) *runner.Check {
	if c == nil {
		return nil
	}
	return &runner.Check{
		Exec: c.Exec, HTTP: c.HTTP, TCP: c.TCP,
		Interval: c.interval(), Timeout: c.timeout(), Grace: c.grace(),
		Failures: c.failures(), Restart: c.restarts(),
	}
}

// instanceLimits is runner.Limits for a spec's cgroup (cgroup.go) and
// rlimits.
type instanceLimits struct {
	cg      *instanceCgroup // nil without MemoryLimit and CPULimit
	rlimits map[string]uint64
}

func (l *instanceLimits) Wrap(argv []string) []string { return wrapArgv(argv, l.cg, l.rlimits) }
func (l *instanceLimits) OOM() bool                   { return l.cg.newOOM() }
func (l *instanceLimits) Close()                      { l.cg.remove() }
