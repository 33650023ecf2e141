package gdpm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// handleEvents serves GET /events: newline-delimited JSON Events, one per
// line and flushed at once, from one etcd watch of the whole prefix, so
// every master serves the same stream. ?since=REV resumes after revision
// REV (410 when etcd has compacted it away); without it the stream starts
// at the request. An empty line every EventHeartbeat keeps proxies from
// closing an idle stream. The stream ends when the client goes away, the
// master closes, or the watch breaks (a compaction it fell behind, etcd
// losing its leader): the client resumes with the last Revision it read.
func (m *Master) handleEvents(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	since, resume, err := parseSince(r.URL.Query().Get("since"))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	if m.runCtx == nil {
		m.fail(w, r, fmt.Errorf("gdpm: events: master not started: %w", ErrUnavailable))
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Close ends the streams, or Shutdown would wait for them.
	defer context.AfterFunc(m.runCtx, cancel)()

	start, err := m.watchStart(ctx, since, resume)
	var gone *historyGoneError
	switch {
	case errors.As(err, &gone):
		writeError(w, http.StatusGone, gone.msg)
		return
	case err != nil:
		m.fail(w, r, err)
		return
	}
	// The leases of the node records as the watch starts; the watch
	// covers nodes/ and keeps them current from there.
	lctx, lcancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	leases, err := readNodeLeases(lctx, m.cli, m.k, start-1)
	lcancel()
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		writeError(w, http.StatusGone, fmt.Sprintf("the events after revision %d are compacted away; start again without since", start-1))
		return
	case err != nil:
		m.fail(w, r, err)
		return
	}
	wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.k.p, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithRev(start))

	m.metrics.streams.Add(1)
	defer m.metrics.streams.Add(-1)
	rc := http.NewResponseController(w)
	streamDeadlines(rc)
	// A deadline left on a kept-alive connection would hit its next request.
	defer rc.SetWriteDeadline(time.Time{})
	send := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each line on at once
	h.Set(RevisionHeader, strconv.FormatInt(start-1, 10))
	w.WriteHeader(http.StatusOK)
	// The client learns that the stream is open, and from which revision
	// it runs, before the first event.
	if rc.Flush() != nil {
		return
	}

	heartbeat := time.NewTicker(m.cfg.EventHeartbeat)
	defer heartbeat.Stop()
	d := newEventDeriver(m.k, leases)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if !send([]byte("\n")) {
				return
			}
		case wr, ok := <-wch:
			if !ok {
				return
			}
			if err := wr.Err(); err != nil {
				if ctx.Err() == nil {
					if !errors.Is(err, rpctypes.ErrCompacted) {
						m.metrics.countEtcdError(storeErr("gdpm: events", err))
					}
					m.log.Info("event stream ends: watch broke", "err", err)
				}
				return
			}
			evs := d.derive(wr.Events, time.Now().UTC())
			for _, ev := range evs {
				b, _ := json.Marshal(ev)
				if !send(append(b, '\n')) {
					return
				}
			}
			if len(evs) > 0 {
				heartbeat.Reset(m.cfg.EventHeartbeat)
			}
		}
	}
}

// historyGoneError is a since that etcd's history no longer holds: the
// client must start again without it (410 Gone).
type historyGoneError struct{ msg string }

func (e *historyGoneError) Error() string { return e.msg }

// parseSince reads ?since=REV; resume is false when it is absent.
func parseSince(v string) (since int64, resume bool, err error) {
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("since must be an etcd revision (a whole number, 0 or more), got %q: %w", v, ErrBadRequest)
	}
	return n, true, nil
}

// watchStart returns the revision an event stream's watch starts at: the
// one after the current revision, or after since when resuming.
func (m *Master) watchStart(ctx context.Context, since int64, resume bool) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	cur, err := m.currentRev(cctx)
	switch {
	case err != nil:
		return 0, err
	case !resume || since == cur:
		return cur + 1, nil
	case since > cur:
		return 0, &historyGoneError{fmt.Sprintf("revision %d is ahead of this cluster's %d: its history was reset; start again without since", since, cur)}
	}
	_, err = m.cli.Get(cctx, m.k.cursor(), clientv3.WithRev(since+1), clientv3.WithCountOnly())
	if errors.Is(err, rpctypes.ErrCompacted) {
		return 0, &historyGoneError{fmt.Sprintf("the events after revision %d are compacted away; start again without since", since)}
	}
	if err != nil {
		return 0, storeErr("gdpm: events", err)
	}
	return since + 1, nil
}

// eventDeriver turns the watch events of the key prefix into Events. It
// compares each value with the one before (WithPrevKV), and reads the keys
// of one revision together, since one transaction is one change: a
// placement that deletes the pending key and puts the assignment is a
// placement, not a removal. Its state is which instances it saw taken off
// their node, so that their exit reads as a stop, and the lease of each
// node record, so that only statuses on their node's lease make events
// (statustrust.go).
type eventDeriver struct {
	k        keyspace
	removing map[string]bool  // svc/inst
	leases   map[string]int64 // node id -> lease of its record
}

// maxRemoving bounds eventDeriver.removing: an instance removed before its
// slave reported it is never heard of again.
const maxRemoving = 100000

// newEventDeriver starts from leases, the node records' leases at the
// revision before the first event it is given.
func newEventDeriver(k keyspace, leases map[string]int64) *eventDeriver {
	return &eventDeriver{k: k, removing: map[string]bool{}, leases: leases}
}

// derive returns the Events of evs, in order; now is the Time of events
// whose record carries no time of its own.
func (d *eventDeriver) derive(evs []*clientv3.Event, now time.Time) []Event {
	var out []Event
	for len(evs) > 0 {
		n := 1
		for n < len(evs) && evs[n].Kv.ModRevision == evs[0].Kv.ModRevision {
			n++
		}
		out = d.revision(evs[:n], now, out)
		evs = evs[n:]
	}
	return out
}

// revisionFacts is what the keys of one revision say together.
type revisionFacts struct {
	placed    map[string]bool   // svc/inst put on a node or in the queue
	from      map[string]string // svc/inst -> node it left ("" = the queue)
	goneNodes map[string]bool   // node records deleted
}

// facts also brings the node records' leases up to this revision: its
// statuses are judged by the node records as they are after it (a lease
// revoked here takes both away).
func (d *eventDeriver) facts(evs []*clientv3.Event) revisionFacts {
	f := revisionFacts{placed: map[string]bool{}, from: map[string]string{}, goneNodes: map[string]bool{}}
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		put := ev.Type == clientv3.EventTypePut
		if id, ok := strings.CutPrefix(key, d.k.nodes()); ok {
			if put {
				d.leases[id] = ev.Kv.Lease
			} else {
				delete(d.leases, id)
				f.goneNodes[id] = true
			}
			continue
		}
		if !put {
			continue
		}
		if _, svc, inst, ok := d.k.splitAssign(key); ok {
			f.placed[svc+"/"+inst] = true
		} else if svc, inst, ok := splitPair(key, d.k.pendingAll()); ok {
			f.placed[svc+"/"+inst] = true
		}
	}
	for _, ev := range evs {
		if ev.Type != clientv3.EventTypeDelete {
			continue
		}
		key := string(ev.Kv.Key)
		if node, svc, inst, ok := d.k.splitAssign(key); ok && f.placed[svc+"/"+inst] {
			f.from[svc+"/"+inst] = node
		} else if svc, inst, ok := splitPair(key, d.k.pendingAll()); ok && f.placed[svc+"/"+inst] {
			f.from[svc+"/"+inst] = ""
		}
	}
	return f
}

func (d *eventDeriver) revision(evs []*clientv3.Event, now time.Time, out []Event) []Event {
	f := d.facts(evs)
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		base := Event{Time: now, Revision: ev.Kv.ModRevision}
		if id, ok := strings.CutPrefix(key, d.k.nodes()); ok {
			out = d.node(ev, id, base, out)
		} else if id, ok := strings.CutPrefix(key, d.k.services()); ok {
			out = d.service(ev, id, base, out)
		} else if node, svc, inst, ok := d.k.splitAssign(key); ok {
			out = d.placement(ev, f, svc, inst, node, base, out)
		} else if svc, inst, ok := splitPair(key, d.k.pendingAll()); ok {
			out = d.placement(ev, f, svc, inst, "", base, out)
		} else if svc, inst, ok := splitPair(key, d.k.statusAll()); ok {
			out = d.status(ev, f, svc, inst, base, out)
		} else if svc, ok := strings.CutPrefix(key, d.k.failedAll()); ok {
			out = d.failed(ev, svc, base, out)
		} else if svc, ok := strings.CutPrefix(key, d.k.haltAll()); ok {
			out = d.halt(ev, svc, base, out)
		}
	}
	return out
}

// failed reports the scheduler's record that a service cannot be placed.
func (d *eventDeriver) failed(ev *clientv3.Event, svc string, e Event, out []Event) []Event {
	var f schedFailure
	if ev.Type == clientv3.EventTypeDelete || !decode(ev.Kv, &f) {
		return out
	}
	e.Type, e.Service, e.Message = EventServiceUnschedulable, svc, f.Error
	if !f.Time.IsZero() {
		e.Time = f.Time
	}
	return append(out, e)
}

// decode reads a value; false when it is missing or not what it should be.
func decode[T any](kv *mvccpb.KeyValue, v *T) bool {
	return kv != nil && len(kv.Value) > 0 && json.Unmarshal(kv.Value, v) == nil
}

func (d *eventDeriver) node(ev *clientv3.Event, id string, e Event, out []Event) []Event {
	e.Node = id
	var prev, cur Node
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		// Expiry and revocation look alike; a node that said it was
		// draining has left on purpose.
		e.Type, e.Message = EventNodeLost, "the node's lease was revoked or expired; its instances move to other nodes"
		if decode(ev.PrevKv, &prev) && prev.Status == NodeDraining {
			e.Type, e.Message = EventNodeLeft, "the node left; its instances move to other nodes"
		}
	case ev.IsCreate() && decode(ev.Kv, &cur):
		e.Type, e.Message = EventNodeJoined, "hostname "+cur.Hostname
		if !cur.RegisteredAt.IsZero() {
			e.Time = cur.RegisteredAt
		}
	default:
		return out
	}
	return append(out, e)
}

func (d *eventDeriver) service(ev *clientv3.Event, id string, e Event, out []Event) []Event {
	e.Service = id
	var prev, cur Service
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		e.Type = EventServiceDeleted
	case !decode(ev.Kv, &cur):
		return out
	case ev.IsCreate():
		e.Type, e.InstanceNum, e.Message = EventServiceCreated, &cur.InstanceNum, cur.Command
		if !cur.CreatedAt.IsZero() {
			e.Time = cur.CreatedAt
		}
	case !decode(ev.PrevKv, &prev):
		e.Type, e.InstanceNum = EventServiceScaled, &cur.InstanceNum
	default:
		// One write may change several things (an apply): one event
		// each.
		if prev.InstanceNum != cur.InstanceNum {
			s := e
			s.Type, s.InstanceNum = EventServiceScaled, &cur.InstanceNum
			s.Message = fmt.Sprintf("from %d to %d instances", prev.InstanceNum, cur.InstanceNum)
			out = append(out, s)
		}
		if prev.Stopped != cur.Stopped {
			s := e
			s.Type, s.Message = EventServiceStarted, "its instances start again"
			if cur.Stopped {
				s.Type, s.Message = EventServiceStopped, "its instances stop; InstanceNum is kept"
			}
			out = append(out, s)
		}
		if prev.Restarted != cur.Restarted {
			s := e
			s.Type, s.Message = EventServiceRestarted, "a rolling restart of every instance, version "+cur.version()
			out = append(out, s)
		} else if prev.version() != cur.version() {
			s := e
			s.Type, s.Message = EventServiceUpdated, "the spec changed: rolling out version "+cur.version()
			out = append(out, s)
		}
		return out
	}
	return append(out, e)
}

// halt reports the scheduler's record that a rollout stopped.
func (d *eventDeriver) halt(ev *clientv3.Event, svc string, e Event, out []Event) []Event {
	var h rolloutHalt
	if ev.Type == clientv3.EventTypeDelete || !decode(ev.Kv, &h) {
		return out
	}
	e.Type, e.Service, e.Instance, e.Message = EventServiceHalted, svc, h.Instance, h.Error
	if !h.Time.IsZero() {
		e.Time = h.Time
	}
	return append(out, e)
}

// placement reports an assignment (node != "") or queue (node == "") key.
func (d *eventDeriver) placement(ev *clientv3.Event, f revisionFacts, svc, inst, node string, e Event, out []Event) []Event {
	key := svc + "/" + inst
	e.Service, e.Instance, e.Node = svc, inst, node
	if ev.Type == clientv3.EventTypeDelete {
		if f.placed[key] {
			return out // moved: the put reports it
		}
		e.Type = EventInstanceRemoved
		if node == "" {
			e.Message = "taken out of the queue"
		} else if len(d.removing) < maxRemoving {
			d.removing[key] = true
		}
		return append(out, e)
	}
	if !ev.IsCreate() {
		return out // the same placement written again
	}
	delete(d.removing, key)
	var a Assignment
	if decode(ev.Kv, &a) && !a.PlacedAt.IsZero() {
		e.Time = a.PlacedAt
	}
	from, moved := f.from[key]
	switch {
	case node != "":
		e.Type = EventInstancePlaced
		if moved && from == "" {
			e.Message = "from the queue"
		} else if moved {
			e.Message = "moved off node " + from
		}
	case moved:
		e.Type, e.Message = EventInstancePending, "moved off node "+from+"; no node online"
	default:
		e.Type, e.Message = EventInstancePending, "no node online"
	}
	return append(out, e)
}

// status reports a slave's InstanceStatus change. Slaves write only the
// latest status of each instance, so a fast exit and restart can arrive as
// one change: both events are reported. Only a status on the lease of its
// node's record counts (statustrust.go), before and after: a forged one
// makes no event, and a change from one is told as if from no status.
func (d *eventDeriver) status(ev *clientv3.Event, f revisionFacts, svc, inst string, e Event, out []Event) []Event {
	key := svc + "/" + inst
	e.Service, e.Instance = svc, inst
	prev, hasPrev := d.k.trustedStatus(ev.PrevKv, d.leases)
	if ev.Type == clientv3.EventTypeDelete {
		_, removed := d.removing[key]
		delete(d.removing, key)
		// A status deleted with its node's record went with the lease:
		// node.lost says so, and the instance is placed elsewhere.
		if !hasPrev || f.goneNodes[prev.Node] {
			return out
		}
		switch prev.State {
		case StateRunning, StateStopping, StateBackoff:
			e.Type, e.Node, e.PID, e.Restarts = EventInstanceStopped, prev.Node, prev.PID, prev.Restarts
			if !removed {
				e.Message = "its slave stopped it"
			}
			return append(out, e)
		}
		return out
	}
	cur, ok := d.k.trustedStatus(ev.Kv, d.leases)
	if !ok {
		return out
	}
	if hasPrev && prev.Node != cur.Node {
		hasPrev = false // another node's instance of the same id
	}
	same := hasPrev && prev.State == cur.State && prev.Restarts == cur.Restarts
	e.Node, e.Restarts = cur.Node, cur.Restarts
	if unhealthyNews(hasPrev, prev, cur) {
		// Reported from whichever status shows the verdict first: the
		// slave writes only an instance's latest status, so the
		// unhealthy one can arrive merged with the replacement's stop.
		u := e
		u.Type, u.PID, u.Restarts, u.Message = EventInstanceUnhealthy, cur.PID, cur.Restarts, cur.HealthError
		if u.Message == "" {
			u.Message = cmp.Or(cur.Error, cur.LastError)
		}
		if hasPrev && u.PID == 0 {
			u.PID = prev.PID
		}
		out = append(out, u)
	}
	switch cur.State {
	case StateRunning:
		if hasPrev && prev.State == StateRunning {
			if cur.Restarts <= prev.Restarts {
				return healthEvent(prev, cur, e, out)
			}
			x := e
			x.Type, x.PID, x.Restarts = EventInstanceExited, prev.PID, prev.Restarts
			x.Message = "exited and restarted before its slave reported the exit"
			out = append(out, x)
		}
		e.Type, e.PID = EventInstanceStarted, cur.PID
		if cur.Restarts > 0 {
			e.Type = EventInstanceRestarted
		}
		if !cur.StartedAt.IsZero() {
			e.Time = cur.StartedAt
		}
	case StateBackoff:
		if same {
			return out
		}
		e.Type, e.ExitCode, e.Message = EventInstanceExited, cur.ExitCode, withErr("restarting", cur.Error)
		if hasPrev {
			e.PID = prev.PID
		}
	case StateExited:
		if hasPrev && prev.State == StateExited {
			return out
		}
		e.Type, e.ExitCode, e.Message = EventInstanceExited, cur.ExitCode, withErr("not restarted (restart policy)", cur.Error)
		if d.removing[key] || hasPrev && (prev.State == StateStopping || prev.State == StateBackoff) {
			e.Type, e.Message = EventInstanceStopped, ""
			delete(d.removing, key)
		}
		if hasPrev {
			e.PID = prev.PID
		}
	case StateFailed:
		if same {
			return out
		}
		e.Type, e.Message = EventInstanceFailed, cur.Error
	default:
		return out // assigned, stopping: the next state says more
	}
	return append(out, e)
}

// healthEvent reports a running instance's change of health.
func healthEvent(prev, cur InstanceStatus, e Event, out []Event) []Event {
	if prev.Health == cur.Health || prev.PID != cur.PID {
		return out
	}
	if cur.Health != HealthHealthy {
		return out // unhealthy: unhealthyNews reported it
	}
	e.Type = EventInstanceHealthy
	e.PID = cur.PID
	return append(out, e)
}

// unhealthyShown reports whether a status shows an unhealthy verdict: the
// running (or stopping) process's health, or the error of the exit that
// replaced it.
func unhealthyShown(st InstanceStatus) bool {
	return st.Health == HealthUnhealthy ||
		(st.State == StateBackoff || st.State == StateExited) && strings.HasPrefix(st.Error, "unhealthy")
}

// unhealthyNews reports whether cur tells of an unhealthy verdict that
// prev did not: one per run of the process.
func unhealthyNews(hasPrev bool, prev, cur InstanceStatus) bool {
	prevShown := hasPrev && unhealthyShown(prev)
	switch {
	case unhealthyShown(cur):
		return !prevShown || prev.Restarts != cur.Restarts
	case cur.State == StateRunning && hasPrev && cur.Restarts > prev.Restarts:
		// Running again after a replacement no status showed.
		return !prevShown && strings.HasPrefix(cur.LastError, "unhealthy") && !cur.LastErrorAt.Before(prev.StartedAt)
	}
	return false
}

// withErr is msg, followed by a slave's error text when there is one.
func withErr(msg, errText string) string {
	if errText == "" {
		return msg
	}
	return msg + ": " + errText
}
