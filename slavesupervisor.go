package gdpm

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
)

// supervisor makes the set of running instances match a node's
// assignments: it starts a runner for each new assignment and stops the
// runners whose assignment is gone. Stops run concurrently, so one slow
// instance does not hold up the others.
type supervisor struct {
	deps   slaveDeps
	node   string
	status *statusWriter

	mu       sync.Mutex
	running  map[string]*instanceRunner // svc/inst
	stopping map[string]*instanceRunner
	// desired is the node's assignments by svc/inst: the slave's only
	// copy of them. follow hands a full read over (sync) and then each
	// watch batch's changes (apply); it keeps none itself, so 1,000
	// instances cost one map of Assignments, not two, and a batch costs
	// its changes, not a clone of the whole map.
	desired map[string]Assignment
	wg      sync.WaitGroup

	// New instances start only within the descriptor budget (slavefds.go);
	// those that do not fit are reported failed once and tried again on
	// a timer while they stay desired.
	fds      *fdBudget
	queue    []string        // svc/inst waiting to start, oldest first
	queued   map[string]bool // what queue holds
	deferred map[string]bool
	retry    *time.Timer
	retryIn  time.Duration
	kick     chan struct{} // a start is done (pace)
	quit     chan struct{} // closed by stopAll: pace returns
	paced    chan struct{} // closed when pace has returned
	quitOnce sync.Once
}

// slaveDeps is what a supervisor takes from its slave, handed over rather
// than read through a back-pointer.
type slaveDeps struct {
	logDir      string // "" discards the instances' output
	logMaxSize  int64
	logMaxFiles int
	hostname    string
	groups      *proc.Groups
	ports       *portPool
	log         *slog.Logger
}

// newSupervisor returns a supervisor with its pacing goroutine running;
// stopAll ends it.
func newSupervisor(deps slaveDeps, node string, sw *statusWriter) *supervisor {
	sup := &supervisor{deps: deps, node: node, status: sw, running: map[string]*instanceRunner{}, stopping: map[string]*instanceRunner{},
		fds: newFDBudget(deps.logDir == ""), queued: map[string]bool{}, deferred: map[string]bool{},
		kick: make(chan struct{}, 1), quit: make(chan struct{}), paced: make(chan struct{})}
	go sup.pace()
	return sup
}

// sync starts and stops runners to match desired, which it takes over:
// the caller must not use the map afterwards.
func (sup *supervisor) sync(desired map[string]Assignment) {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	sup.desired = desired
	sup.syncLocked()
}

// apply changes the desired assignments by a watch batch (an entry whose
// Service is "" deletes its key) and starts and stops runners to match.
// It keeps none of changes, and looks at the changed keys only: a batch
// costs its changes, not the instances.
func (sup *supervisor) apply(changes map[string]Assignment) {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if sup.desired == nil {
		sup.desired = make(map[string]Assignment, len(changes))
	}
	for key, a := range changes {
		if a.Service == "" {
			delete(sup.desired, key)
		} else {
			sup.desired[key] = a
		}
		sup.reconcileLocked(key)
	}
	sup.startQueued()
}

// specsInUse returns the spec references the desired assignments name,
// for the spec cache to forget the others.
func (sup *supervisor) specsInUse() map[specRef]bool {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	used := map[specRef]bool{}
	for _, a := range sup.desired {
		if a.SpecRev != 0 {
			used[specRef{a.Service, a.SpecRev}] = true
		}
	}
	return used
}

// syncLocked brings every instance in line with desired.
func (sup *supervisor) syncLocked() {
	for key := range sup.running {
		sup.reconcileLocked(key)
	}
	for key := range sup.desired {
		sup.reconcileLocked(key)
	}
	sup.startQueued()
}

// reconcileLocked brings one instance in line with desired: it stops the
// runner of an instance no longer desired, and queues the start of a
// desired one that has none. startQueued then starts what was queued.
func (sup *supervisor) reconcileLocked(key string) {
	a, want := sup.desired[key]
	if r, ok := sup.running[key]; ok {
		if !want {
			delete(sup.running, key)
			sup.stopping[key] = r
			sup.wg.Add(1)
			go sup.stop(key, r)
		}
		return
	}
	if !want {
		return
	}
	if _, ok := sup.stopping[key]; ok {
		return // started again once its old runner is gone
	}
	if !a.resolved || sup.queued[key] {
		return // its spec is unknown (the service is gone), or it waits
	}
	sup.queue = append(sup.queue, key)
	sup.queued[key] = true
}

// dequeue drops the queue's first instance.
func (sup *supervisor) dequeue() {
	delete(sup.queued, sup.queue[0])
	sup.queue = sup.queue[1:]
}

// maxStarting bounds the instances whose first start is under way. Starts
// are serialized by the fork anyway (one process at a time copies the
// slave's descriptor table); ten thousand runners starting at once only
// make ten thousand goroutines runnable, and the lease renewal waits
// behind them: a slave that started 3,000 instances at once lost its lease.
const maxStarting = 64

// startQueued starts queued instances, oldest first, while fewer than
// maxStarting are starting and the descriptor budget admits them.
func (sup *supervisor) startQueued() {
	newlyDeferred, deferErr := 0, error(nil)
	for len(sup.queue) > 0 && sup.fds.starting() < maxStarting {
		key := sup.queue[0]
		a, ok := sup.desired[key]
		if !ok || !a.resolved || sup.running[key] != nil || sup.stopping[key] != nil {
			sup.dequeue()
			continue
		}
		err := sup.fds.admit(key)
		if errors.Is(err, errStartsUnderWay) {
			break // stays first: a finished start kicks pace, which tries again
		}
		sup.dequeue()
		if err != nil {
			if !sup.deferred[key] {
				sup.deferred[key] = true
				newlyDeferred, deferErr = newlyDeferred+1, err
				sup.status.set(InstanceStatus{Service: a.Service, Instance: a.Instance, Node: sup.node, State: StateFailed,
					Error: err.Error(), LastError: err.Error(), LastErrorAt: time.Now().UTC()})
			}
			continue
		}
		ports, err := sup.deps.ports.reserve(a.Spec.Ports)
		if err != nil {
			sup.fds.started(key)
			sup.deferred[key] = true // tried again with the deferred ones
			sup.deps.log.Warn("instance cannot start: no free port", "service", a.Service, "instance", a.Instance, "err", err)
			continue
		}
		delete(sup.deferred, key)
		sup.running[key] = startRunner(runnerConfig{
			Assignment:  a,
			Identity:    instanceEnv(a, sup.node, sup.deps.hostname, ports),
			Ports:       ports,
			Node:        sup.node,
			LogDir:      sup.deps.logDir,
			LogMaxSize:  sup.deps.logMaxSize,
			LogMaxFiles: sup.deps.logMaxFiles,
			OnStatus:    sup.onStatus(key),
			OnStart:     func(pid int, startTime uint64) { sup.deps.groups.Add(pid, startTime) },
			OnExit:      sup.deps.groups.Remove,
			Logger:      sup.deps.log,
		})
	}
	if len(sup.queue) == 0 {
		sup.queue = nil // let the array go
	}
	if newlyDeferred > 0 {
		sup.deps.log.Warn("instances cannot start: descriptors", "instances", newlyDeferred, "err", deferErr)
	}
	// Here, not in syncLocked: pace defers instances too.
	sup.retryDeferred()
}

// retryDeferred forgets the deferred instances that are no longer desired
// (and their failed status) and, while some remain, runs the sync again
// after a delay that grows to 5 s.
func (sup *supervisor) retryDeferred() {
	for key := range sup.deferred {
		if _, ok := sup.desired[key]; !ok {
			delete(sup.deferred, key)
			if svc, inst, ok := strings.Cut(key, "/"); ok {
				sup.status.remove(svc, inst)
			}
		}
	}
	if len(sup.deferred) == 0 {
		sup.retryIn = 0
		return
	}
	if sup.retry != nil {
		return
	}
	sup.retryIn = min(max(2*sup.retryIn, 250*time.Millisecond), 5*time.Second)
	sup.retry = time.AfterFunc(sup.retryIn, func() {
		sup.mu.Lock()
		defer sup.mu.Unlock()
		sup.retry = nil
		if sup.desired != nil {
			sup.syncLocked()
		}
	})
}

// onStatus passes a runner's statuses on: a reported start ends its count
// in the descriptor budget, and a start that failed on a full table says
// whose limit it hit.
func (sup *supervisor) onStatus(key string) func(InstanceStatus) {
	return func(st InstanceStatus) {
		st.Error, st.LastError = sup.fds.explain(st.Error), sup.fds.explain(st.LastError)
		sup.status.set(st)
		if st.State != StateAssigned && sup.fds.started(key) {
			sup.kickPace()
		}
	}
}

// kickPace says a start is done: the next queued instance may go. Not
// started from here: the caller (a status) must not wait for the
// supervisor's lock.
func (sup *supervisor) kickPace() {
	select {
	case sup.kick <- struct{}{}:
	default:
	}
}

// pace starts queued instances whenever a start is done, until stopAll.
func (sup *supervisor) pace() {
	defer close(sup.paced)
	for {
		select {
		case <-sup.quit:
			return
		case <-sup.kick:
		}
		sup.mu.Lock()
		if sup.desired != nil {
			sup.startQueued()
		}
		sup.mu.Unlock()
	}
}

// has reports whether svc/inst runs (or is stopping) here.
func (sup *supervisor) has(svc, inst string) bool {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	key := svc + "/" + inst
	_, running := sup.running[key]
	_, stopping := sup.stopping[key]
	return running || stopping
}

func (sup *supervisor) stop(key string, r *instanceRunner) {
	defer sup.wg.Done()
	r.Stop(context.Background())
	if sup.fds.started(key) { // stopped before its start was reported
		sup.kickPace()
	}
	sup.deps.ports.release(r.cfg.Ports)
	st := r.Status()
	sup.status.remove(st.Service, st.Instance)
	sup.mu.Lock()
	delete(sup.stopping, key)
	if sup.desired != nil {
		// Only this instance can have waited for its old runner: a
		// scale-down of n instances costs n, not n times the instances.
		sup.reconcileLocked(key)
		sup.startQueued()
	}
	sup.mu.Unlock()
}

// stopAll stops every instance and waits: gracefully, or with SIGKILL at
// once when kill is set (the node has lost its lease).
func (sup *supervisor) stopAll(ctx context.Context, kill bool) {
	sup.mu.Lock()
	sup.desired = nil
	sup.queue, sup.queued = nil, map[string]bool{}
	if sup.retry != nil {
		sup.retry.Stop()
		sup.retry = nil
	}
	runners := sup.running
	sup.running = map[string]*instanceRunner{}
	sup.mu.Unlock()
	sup.quitOnce.Do(func() { close(sup.quit) })
	<-sup.paced
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if kill {
				r.Kill()
			} else {
				r.Stop(ctx)
			}
			sup.deps.ports.release(r.cfg.Ports)
		}()
	}
	wg.Wait()
	sup.wg.Wait()
}

// instanceEnv is what an instance is told about itself, on top of its
// spec's Env: a program reads who it is and where instead of being
// configured per instance.
func instanceEnv(a Assignment, node, host string, ports map[string]int) []string {
	env := []string{
		"GDPM_SERVICE_ID=" + a.Service,
		"GDPM_SERVICE_NAME=" + a.Name,
		"GDPM_INSTANCE_ID=" + a.Instance,
		"GDPM_INSTANCE_INDEX=" + strconv.Itoa(a.Index),
		"GDPM_NODE_ID=" + node,
		"GDPM_NODE_HOST=" + host,
	}
	for _, name := range a.Spec.Ports {
		env = append(env, portVar(name)+"="+strconv.Itoa(ports[name]))
	}
	return env
}
