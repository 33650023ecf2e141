package gdpm

import (
	"time"
)

// The JSON shapes of the HTTP API. NodeList and NodeServices are the seed
// API's parallel arrays and never change shape; the rest are gdpm's own.

// NodeList is the body of GET /node/: index i of every array describes the
// same node.
type NodeList struct {
	Ids        []string `json:"Ids"`
	ServiceNum []int    `json:"ServiceNum"`
	Status     []int    `json:"Status"`
	Times      []string `json:"Times"` // registration time, time.RFC822
	// gdpm's own arrays, index i of each again node i: its hostname, how
	// many instances it holds, and its last usage report (usage.go):
	// CPU (percent of one core) and RSS (bytes) of its instances, its
	// cores, memory and one-minute load; zero before its first report.
	Hostnames    []string  `json:"Hostnames"`
	Instances    []int     `json:"Instances"`
	CPU          []float64 `json:"CPU"`
	RSS          []int64   `json:"RSS"`
	Cores        []int     `json:"Cores"`
	MemTotal     []int64   `json:"MemTotal"`
	MemAvailable []int64   `json:"MemAvailable"`
	Load1        []float64 `json:"Load1"`
}

// NodeServices is the body of GET /node/:id/: one entry per service with
// instances on the node.
type NodeServices struct {
	Command []string `json:"Command"`
	Ids     []string `json:"Ids"`
	Number  []int    `json:"Number"`
}

// CreateRequest is the body of POST /service/. A missing InstanceNum means 1.
type CreateRequest struct {
	// Name is optional; unique in the cluster (see checkName).
	Name    string `json:"Name,omitempty"`
	Command string `json:"Command"`
	// InstanceNum is how many instances to run; nil means 1. It is a
	// pointer so that 0 (create it stopped) differs from absent; in Go
	// write new(3). ScaleService and ScaleRequest always carry a count.
	InstanceNum *int              `json:"InstanceNum,omitempty"`
	Env         map[string]string `json:"Env,omitempty"`
	Dir         string            `json:"Dir,omitempty"`
	Restart     RestartPolicy     `json:"Restart,omitempty"`
	StopTimeout Duration          `json:"StopTimeout,omitempty"`
	Ports       []string          `json:"Ports,omitempty"`
	Rollout     RolloutPolicy     `json:"Rollout,omitzero"`
	// Supervision: Check, MaxRestarts, RestartWindow, MemoryLimit,
	// CPULimit, Rlimits (JSON only).
	Supervision
}

// ScaleRequest is the body of POST /service/:id/.
type ScaleRequest struct {
	InstanceNum *int `json:"InstanceNum"`
}

// ServiceSummary is one entry of GET /service/.
type ServiceSummary struct {
	ID          string        `json:"ID"`
	Name        string        `json:"Name,omitempty"`
	Command     string        `json:"Command"`
	InstanceNum int           `json:"InstanceNum"` // desired
	Running     int           `json:"Running"`
	Pending     int           `json:"Pending"` // waiting for a node
	Restart     RestartPolicy `json:"Restart"`
	CreatedAt   time.Time     `json:"CreatedAt"`
	// SchedError says why the scheduler cannot place the service; empty
	// while it can.
	SchedError string `json:"SchedError,omitempty"`
	RolloutState
	ServiceHealth
}

// ServiceStatus is a service's state as a whole.
type ServiceStatus string

// The service statuses.
const (
	ServiceRunning  ServiceStatus = "running"  // every desired instance runs the current version (and is not unhealthy)
	ServiceUpdating ServiceStatus = "updating" // a rollout replaces instances of an older version
	ServiceHalted   ServiceStatus = "halted"   // the rollout stopped: a new instance failed (RolloutError says why)
	ServiceStopped  ServiceStatus = "stopped"  // stopped: no instance runs, InstanceNum is kept
)

// RolloutState is what GET /service/ and GET /service/:id/ say about a
// service's version and rollout.
type RolloutState struct {
	Status ServiceStatus `json:"Status"`
	// Version is the service's current version (Service.Version).
	Version string `json:"Version"`
	// Updated counts the instances placed for Version.
	Updated int `json:"Updated"`
	// RolloutError says why the rollout to Version halted.
	RolloutError string `json:"RolloutError,omitempty"`
}

// ServiceList is the body of GET /service/.
type ServiceList struct {
	Services []ServiceSummary `json:"Services"`
}

// InstanceInfo is one instance in GET /service/:id/.
type InstanceInfo struct {
	ID        string        `json:"ID"`
	Node      string        `json:"Node"` // empty while pending
	State     InstanceState `json:"State"`
	PID       int           `json:"PID,omitempty"`
	ExitCode  *int          `json:"ExitCode,omitempty"`
	Restarts  int           `json:"Restarts"`
	StartedAt time.Time     `json:"StartedAt,omitzero"`
	Error     string        `json:"Error,omitempty"`
	// Index is the instance's stable ordinal (GDPM_INSTANCE_INDEX).
	Index int `json:"Index"`
	// Version is the service version it was placed for.
	Version string `json:"Version,omitempty"`
	// Ports are its named ports, as its slave reserved them.
	Ports map[string]int `json:"Ports,omitempty"`
	// Health is the health check's verdict: none, starting, healthy,
	// unhealthy (empty while it does not run).
	Health Health `json:"Health,omitempty"`
	// HealthError is why the last check failed, while Health is unhealthy.
	HealthError string `json:"HealthError,omitempty"`
	// CPU is the instance's CPU use in percent of one core, RSS the
	// resident memory of its whole process group in bytes, as its slave
	// last sampled them (usage.go); zero when not known.
	CPU float64 `json:"CPU"`
	RSS int64   `json:"RSS"`
	// LastError is how the instance last went down on its own, kept
	// across restarts; LastErrorAt is when.
	LastError   string    `json:"LastError,omitempty"`
	LastErrorAt time.Time `json:"LastErrorAt,omitzero"`
}

// ServiceDetail is the body of GET /service/:id/.
type ServiceDetail struct {
	Service
	Running   int            `json:"Running"`
	Pending   int            `json:"Pending"`
	Instances []InstanceInfo `json:"Instances"`
	// SchedError says why the scheduler cannot place the service; empty
	// while it can.
	SchedError string `json:"SchedError,omitempty"`
	RolloutState
	ServiceHealth
}

// errorBody is every error answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// EventType names what an Event reports.
type EventType string

// The event types of GET /events.
const (
	EventNodeJoined           EventType = "node.joined"           // a slave registered
	EventNodeLeft             EventType = "node.left"             // a draining node's record went away
	EventNodeLost             EventType = "node.lost"             // a node's record went away: lease revoked or expired
	EventServiceCreated       EventType = "service.created"       // InstanceNum is the desired count
	EventServiceScaled        EventType = "service.scaled"        // InstanceNum is the new desired count
	EventServiceDeleted       EventType = "service.deleted"       // its queue goes with it; its instances are removed next
	EventServiceUnschedulable EventType = "service.unschedulable" // the scheduler cannot place it (Message says why); the others go on
	EventServiceUpdated       EventType = "service.updated"       // its spec changed: a rollout to the new version begins
	EventServiceStopped       EventType = "service.stopped"       // stopped: its instances are removed, InstanceNum kept
	EventServiceStarted       EventType = "service.started"       // started again after a stop
	EventServiceRestarted     EventType = "service.restarted"     // a rolling restart of every instance begins
	EventServiceHalted        EventType = "service.halted"        // its rollout stopped: a new instance failed (Message says why); the old ones run on
	EventInstancePlaced       EventType = "instance.placed"       // put on Node: new, from the queue, or moved off a node that went away
	EventInstancePending      EventType = "instance.pending"      // queued: no node online
	EventInstanceRemoved      EventType = "instance.removed"      // taken off Node (scale-down, delete), or out of the queue
	EventInstanceStarted      EventType = "instance.started"      // first start on Node; PID
	EventInstanceExited       EventType = "instance.exited"       // the process exited on its own; ExitCode when known
	EventInstanceRestarted    EventType = "instance.restarted"    // started again after an exit or a failure; PID, Restarts
	EventInstanceStopped      EventType = "instance.stopped"      // stopped by its slave (removed, deleted, slave closing)
	EventInstanceFailed       EventType = "instance.failed"       // could not be started; Message says why
	EventInstanceHealthy      EventType = "instance.healthy"      // its health check passed (after starting or being unhealthy)
	EventInstanceUnhealthy    EventType = "instance.unhealthy"    // its health check failed Failures times in a row; Message says why
)

// Event is one line of GET /events: one change in the cluster, derived from
// a change of an etcd key, so every master serves the same events. Fields
// that do not apply are left out of the JSON.
type Event struct {
	// Time is when the record says the change happened (a service's
	// creation, a placement, a process start, a registration), or else
	// when the master serving the stream saw it. Revision, not Time,
	// orders events.
	Time time.Time `json:"Time"`
	// Revision is the etcd revision of the change. Several events can
	// share one revision (one transaction); GET /events?since=REV resumes
	// with the events after REV.
	Revision    int64     `json:"Revision"`
	Type        EventType `json:"Type"`
	Service     string    `json:"Service,omitempty"`
	Instance    string    `json:"Instance,omitempty"`
	Node        string    `json:"Node,omitempty"`
	PID         int       `json:"PID,omitempty"`
	ExitCode    *int      `json:"ExitCode,omitempty"`
	Restarts    int       `json:"Restarts,omitempty"`
	InstanceNum *int      `json:"InstanceNum,omitempty"`
	Message     string    `json:"Message,omitempty"`
}

// LogStreamName names an instance's output stream.
type LogStreamName string

// The two streams an instance writes.
const (
	Stdout LogStreamName = "stdout"
	Stderr LogStreamName = "stderr"
)

// LogLine is one line of GET /service/:id/logs: one line an instance wrote,
// without its newline. A line longer than MaxLogLine is cut into pieces of
// that size, each its own LogLine.
//
// Time is when the slave captured the line (read it from the instance's
// pipe); it never goes back within one stream. It is the zero time (and
// absent from the JSON) for lines written by a gdpm that did not record
// times yet. The last lines come in time order across instances, streams
// and nodes; a follow's new lines come in time order within each node's
// poll (100 ms), so lines captured that close together on different
// streams or nodes may arrive out of order; a stream's own never do.
//
// Mark is set on a marker line, which the slave adds where an instance's
// process started ("started", Line says the pid) or ended ("exited", Line
// says the exit code; 128+N for signal N): a restart shows as an exited
// marker followed by a started one. A marker is no output: it has no
// Stream.
type LogLine struct {
	Service  string        `json:"Service"`
	Instance string        `json:"Instance"`
	Node     string        `json:"Node"`
	Stream   LogStreamName `json:"Stream,omitempty"`
	Line     string        `json:"Line"`
	Time     time.Time     `json:"Time,omitzero"`
	Mark     string        `json:"Mark,omitempty"`
}

// RevisionHeader, in the answer to GET /events, is the etcd revision the
// stream starts after: resuming from it with ?since misses nothing, even
// when the stream ended before its first event.
const RevisionHeader = "Gdpm-Revision"
