package gdpm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Version is the gdpm release this package builds.
const Version = "0.1.0"

// RestartPolicy says when a slave restarts an instance whose process exited.
type RestartPolicy string

// The restart policies. The zero value means RestartAlways.
const (
	RestartAlways    RestartPolicy = "always"     // restart on any exit
	RestartOnFailure RestartPolicy = "on-failure" // restart on a non-zero exit or a signal
	RestartNever     RestartPolicy = "never"      // never restart
)

func (p RestartPolicy) valid() bool {
	switch p {
	case "", RestartAlways, RestartOnFailure, RestartNever:
		return true
	}
	return false
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("10s"); it also reads a plain number as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return d.parse(s)
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"10s\" or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

func (d *Duration) parse(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// Spec is how to run one instance of a service. It is stored once, in the
// service's record; an assignment refers to it by revision (see
// Assignment), so placing an instance costs the same whatever the spec.
type Spec struct {
	// Command is run through /bin/sh -c, or directly when it has no shell
	// syntax.
	Command string `json:"Command"`
	// Env is added to the slave's environment.
	Env map[string]string `json:"Env,omitempty"`
	// Dir is the working directory; empty means the slave's own.
	Dir string `json:"Dir,omitempty"`
	// Restart is the restart policy; empty means RestartAlways.
	Restart RestartPolicy `json:"Restart,omitempty"`
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL;
	// zero means DefaultStopTimeout.
	StopTimeout Duration `json:"StopTimeout,omitempty"`
	// Ports names the TCP ports each instance needs: the slave reserves a
	// free port per name per instance and passes it as GDPM_PORT_<NAME>
	// (upper case, '-' as '_').
	Ports []string `json:"Ports,omitempty"`
	// Supervision is the health check, restart limit and resource limits.
	Supervision
}

func (s Spec) stopTimeout() time.Duration {
	if s.StopTimeout <= 0 {
		return DefaultStopTimeout
	}
	return time.Duration(s.StopTimeout)
}

func (s Spec) restartPolicy() RestartPolicy {
	if s.Restart == "" {
		return RestartAlways
	}
	return s.Restart
}

// Service is the desired state of one service: its spec and how many
// instances should run.
type Service struct {
	ID string `json:"ID"`
	// Name is the service's unique name; optional.
	Name string `json:"Name,omitempty"`
	Spec
	InstanceNum int       `json:"InstanceNum"`
	CreatedAt   time.Time `json:"CreatedAt"`
	// Stopped keeps every instance down while InstanceNum is kept.
	Stopped bool `json:"Stopped,omitempty"`
	// Restarted counts the restarts asked for (POST /service/:id/restart):
	// it is part of the service's Version, so a restart is a rollout of
	// the same spec.
	Restarted int `json:"Restarted,omitempty"`
	// Rollout shapes how a changed spec replaces the instances.
	Rollout RolloutPolicy `json:"Rollout,omitzero"`
}

// Assignment is one instance placed on a node (or, with Node empty, waiting
// in the pending queue). Its key (assign/NODE/SERVICE/INSTANCE or
// pending/SERVICE/INSTANCE) names the service, instance and node, so the
// value the scheduler writes holds only SpecRev and PlacedAt: a few dozen
// bytes whatever the spec.
type Assignment struct {
	Service  string `json:"Service,omitempty"`
	Instance string `json:"Instance,omitempty"`
	Node     string `json:"Node,omitempty"`
	// SpecRev is the mod revision of the service record the scheduler
	// placed the instance from: the instance runs the Spec of that
	// record. The scheduler's write is guarded by that revision, so the
	// record at SpecRev exists; the slave reads it there.
	SpecRev int64 `json:"SpecRev,omitempty"`
	// Spec is what the instance runs. The scheduler leaves it out (SpecRev
	// names it) and the slave fills it in; an assignment written with a
	// Spec and no SpecRev (by gdpm 0.1, or by hand) runs that Spec.
	Spec     Spec      `json:"Spec,omitzero"`
	PlacedAt time.Time `json:"PlacedAt"`
	// Index is the instance's ordinal, 0..InstanceNum-1: a replacement
	// (after a crash, a node loss or in a rollout) takes the index of the
	// instance it replaces. It lives in the assignment so that it
	// survives the node.
	Index int `json:"Index"`
	// Version is the service's Version the instance was placed for; a
	// rollout replaces the instances of other versions.
	Version string `json:"Version,omitempty"`
	// Name is the service's name, filled in by the slave with the Spec.
	Name string `json:"-"`

	resolved bool // Spec is known: filled in by the slave, or inline
}

// InstanceState is where an instance is in its life.
type InstanceState string

// Instance states, as shown in the API.
const (
	StatePending  InstanceState = "pending"  // no node yet
	StateAssigned InstanceState = "assigned" // placed; the slave has not reported yet
	StateRunning  InstanceState = "running"  // process alive
	StateBackoff  InstanceState = "backoff"  // exited; waiting to restart
	StateExited   InstanceState = "exited"   // exited; will not be restarted (policy)
	StateFailed   InstanceState = "failed"   // could not be started
	StateStopping InstanceState = "stopping" // SIGTERM sent, waiting for exit
)

// InstanceStatus is what a slave reports about one instance it runs.
type InstanceStatus struct {
	Service   string        `json:"Service"`
	Instance  string        `json:"Instance"`
	Node      string        `json:"Node"`
	State     InstanceState `json:"State"`
	PID       int           `json:"PID,omitempty"`
	StartedAt time.Time     `json:"StartedAt,omitzero"`
	ExitCode  *int          `json:"ExitCode,omitempty"`
	Restarts  int           `json:"Restarts"`
	Error     string        `json:"Error,omitempty"`
	// Ports are the TCP ports reserved for the instance, by name.
	Ports map[string]int `json:"Ports,omitempty"`
	// Health is the health check's verdict (HealthNone without a check).
	Health Health `json:"Health,omitempty"`
	// HealthError is why the last check failed, while Health is unhealthy.
	HealthError string `json:"HealthError,omitempty"`
	// LastError is how the instance last went down on its own (exit
	// code 3, killed by signal 9, oom, unhealthy, restart limit) or
	// why it could not start, kept across restarts; LastErrorAt is when.
	LastError   string    `json:"LastError,omitempty"`
	LastErrorAt time.Time `json:"LastErrorAt,omitzero"`
}

// NodeStatus values in the seed API's Status array.
const (
	NodeOnline   = 1 // registered and its lease is alive
	NodeDraining = 2 // shutting down: its instances are being moved away
)

// Node is a registered slave. Its record lives as long as the slave's lease.
type Node struct {
	ID           string    `json:"ID"`
	Hostname     string    `json:"Hostname"`
	Status       int       `json:"Status"`
	RegisteredAt time.Time `json:"RegisteredAt"`
	Version      string    `json:"Version"`
	// LogAddr is where the slave serves its instances' logs to masters.
	LogAddr string `json:"LogAddr,omitempty"`
}
