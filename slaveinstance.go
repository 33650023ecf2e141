package gdpm

import (
	"log/slog"
	"maps"
	"path/filepath"
	"slices"

	"github.com/capy-pl/gdpm/internal/runner"
)

// What the slave says about one instance to start it: its assignment,
// identity, ports, where its logs go, and the callbacks. slaverunner.go
// turns it into internal/runner's Config.

// runnerConfig configures the supervision of one instance.
type runnerConfig struct {
	Assignment Assignment // ids (Service, Instance) and Spec to run
	Node       string     // node id, copied into every status
	// BaseDir is the working dir when Spec.Dir is empty, and the base of a
	// relative Spec.Dir; "" inherits this process's.
	BaseDir string
	// LogDir receives stdout/stderr, appended to
	// <LogDir>/<svc>/<inst>.stdout and .stderr (dirs created) and rotated
	// at LogMaxSize bytes, keeping LogMaxFiles files per stream; "" discards.
	LogDir      string
	LogMaxSize  int64 // SlaveConfig's, defaults applied
	LogMaxFiles int
	// Env is the base environment; nil means os.Environ(). Spec.Env is
	// added on top, and Identity on top of that.
	Env []string
	// Identity is the instance's GDPM_* variables (see instanceEnv).
	Identity []string
	// Ports are the ports reserved for the instance, shown in its status.
	Ports map[string]int
	// OnStatus is called from the runner's goroutine on every state change,
	// in order; it must not block. After Kill it is not called again.
	OnStatus func(InstanceStatus)
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
	OnExit  func(pid int)
	Logger  *slog.Logger   // nil = silent
	Backoff runner.Backoff // zero: the runner's defaults
}

// specEnv is a spec's Env as NAME=VALUE entries, sorted by name, to go on
// top of the base environment (a later entry of a name wins).
func specEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func workDir(base, dir string) string {
	if dir == "" {
		return base
	}
	if filepath.IsAbs(dir) || base == "" {
		return dir
	}
	return filepath.Join(base, dir)
}
