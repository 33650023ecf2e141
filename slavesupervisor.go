package gdpm

import (
	"context"
	"log/slog"
	"maps"
	"strconv"
	"sync"

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
	desired  map[string]Assignment
	wg       sync.WaitGroup
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

func newSupervisor(deps slaveDeps, node string, sw *statusWriter) *supervisor {
	return &supervisor{deps: deps, node: node, status: sw, running: map[string]*instanceRunner{}, stopping: map[string]*instanceRunner{}}
}

// sync starts and stops runners to match desired, keeping a copy.
func (sup *supervisor) sync(desired map[string]Assignment) {
	sup.mu.Lock()
	defer sup.mu.Unlock()
	sup.desired = maps.Clone(desired)
	sup.syncLocked()
}

func (sup *supervisor) syncLocked() {
	for key, r := range sup.running {
		if _, ok := sup.desired[key]; !ok {
			delete(sup.running, key)
			sup.stopping[key] = r
			sup.wg.Add(1)
			go sup.stop(key, r)
		}
	}
	for key, a := range sup.desired {
		if _, ok := sup.running[key]; ok {
			continue
		}
		if _, ok := sup.stopping[key]; ok {
			continue // started again once its old runner is gone
		}
		if !a.resolved {
			continue // its spec is unknown: the service is gone
		}
		ports, err := sup.deps.ports.reserve(a.Spec.Ports)
		if err != nil {
			sup.deps.log.Warn("instance cannot start: no free port", "service", a.Service, "instance", a.Instance, "err", err)
			continue
		}
		sup.running[key] = startRunner(runnerConfig{
			Assignment:  a,
			Identity:    instanceEnv(a, sup.node, sup.deps.hostname, ports),
			Ports:       ports,
			Node:        sup.node,
			LogDir:      sup.deps.logDir,
			LogMaxSize:  sup.deps.logMaxSize,
			LogMaxFiles: sup.deps.logMaxFiles,
			OnStatus:    sup.status.set,
			OnStart:     func(pid int, startTime uint64) { sup.deps.groups.Add(pid, startTime) },
			OnExit:      sup.deps.groups.Remove,
			Logger:      sup.deps.log,
		})
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
	sup.deps.ports.release(r.cfg.Ports)
	st := r.Status()
	sup.status.remove(st.Service, st.Instance)
	sup.mu.Lock()
	delete(sup.stopping, key)
	if sup.desired != nil {
		sup.syncLocked()
	}
	sup.mu.Unlock()
}

// stopAll stops every instance and waits: gracefully, or with SIGKILL at
// once when kill is set (the node has lost its lease).
func (sup *supervisor) stopAll(ctx context.Context, kill bool) {
	sup.mu.Lock()
	sup.desired = nil
	runners := sup.running
	sup.running = map[string]*instanceRunner{}
	sup.mu.Unlock()
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
