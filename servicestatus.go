package gdpm

import (
	"time"
)

// The service status words besides rollout.go's. One word per service,
// derived on the master from its instances each time it is read, so every
// view (API, CLI, web page, metrics) says the same.
const (
	ServiceDegraded     ServiceStatus = "degraded"     // fewer instances run (or are healthy) than desired
	ServiceCrashLooping ServiceStatus = "crashlooping" // an instance waits to restart, cannot start, or restarted within CrashLoopWindow
	ServiceFailed       ServiceStatus = "failed"       // an instance reached its restart limit, or ended badly and its policy does not restart it
	ServicePending      ServiceStatus = "pending"      // nothing runs yet: its instances wait for a node or for their slave to start them
)

// CrashLoopWindow is how recent a restart must be for the service to count
// as crash-looping while the instance happens to be running again.
const CrashLoopWindow = time.Minute

// ServiceHealth is what GET /service/ and GET /service/:id/ say about how a
// service's instances fare, beside Status.
type ServiceHealth struct {
	// Restarts is the sum of the restart counts of its instances.
	Restarts int `json:"Restarts"`
	// LastError is the most recent bad exit or failed start of any of its
	// instances; nil when none went down on its own.
	LastError *LastError `json:"LastError,omitempty"`
	// CPU is the CPU use of all its instances, in percent of one core;
	// RSS their resident memory in bytes (usage.go).
	CPU float64 `json:"CPU"`
	RSS int64   `json:"RSS"`
}

// LastError is how an instance last went down, and since when.
type LastError struct {
	Instance string    `json:"Instance"`
	Message  string    `json:"Message"` // "exit code 3", "oom", "restart limit reached: ...", a start error
	Since    time.Time `json:"Since"`
}

// serviceStatus derives a service's status word and health from its
// instances. ro is rolloutState's verdict (stopped, halted, updating,
// running), which this refines. The order says what matters most to the
// person looking: a stop they asked for, then a failure that needs them,
// then a rollout in flight, then a crash loop, then what runs.
func (t instanceTable) serviceStatus(s Service, ro ServiceStatus, now time.Time) (ServiceStatus, ServiceHealth) {
	var h ServiceHealth
	var failed, looping bool
	var runningOK, waiting, cleanExits, total int
	for inst := range t.where[s.ID] {
		in := t.info(s.ID, inst)
		total++
		h.Restarts += in.Restarts
		h.CPU += in.CPU
		h.RSS += in.RSS
		if in.LastError != "" && (h.LastError == nil || in.LastErrorAt.After(h.LastError.Since)) {
			h.LastError = &LastError{Instance: inst, Message: in.LastError, Since: in.LastErrorAt}
		}
		switch in.State {
		case StateRunning:
			if in.Health != HealthUnhealthy {
				runningOK++
			}
			if in.Restarts > 0 && !in.StartedAt.IsZero() && now.Sub(in.StartedAt) < CrashLoopWindow {
				looping = true
			}
		case StateBackoff, StateFailed:
			looping = true
		case StateExited:
			if (in.ExitCode != nil && *in.ExitCode != 0) || in.Error != "" {
				failed = true
			} else {
				cleanExits++
			}
		case StatePending, StateAssigned:
			waiting++
		}
	}
	switch {
	case ro == ServiceStopped || s.InstanceNum == 0:
		return ServiceStopped, h
	case failed:
		return ServiceFailed, h
	case ro != ServiceRunning:
		return ro, h // halted or updating
	case looping:
		return ServiceCrashLooping, h
	case runningOK == 0 && (waiting > 0 || total == 0):
		return ServicePending, h
	case total > 0 && cleanExits == total:
		// Every instance ended well and its policy does not restart it:
		// a job that is done.
		return ServiceStopped, h
	case runningOK < s.InstanceNum:
		return ServiceDegraded, h
	}
	return ServiceRunning, h
}
