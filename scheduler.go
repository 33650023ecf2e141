package gdpm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errNotLeader ends a scheduling term: the election key this master won is
// gone, so its writes are fenced off and another master schedules.
var errNotLeader = errors.New("gdpm: no longer the scheduling leader")

// scheduler runs on the elected master. It keeps a clusterView current from
// one watch and, whenever a service or the node set changes, compares the
// desired instance counts with the placements and writes the difference:
// new instances round-robin over the online nodes (or into the pending
// queue), instances of lost nodes moved, excess instances removed from the
// nodes that hold the most of their service.
//
// Every write is a transaction guarded by the leader's election key, so a
// deposed leader cannot write, and by the mod revision of each service it
// read, so a plan made from a stale spec is thrown away and made again.
// Transactions are cut by operations and by bytes. A transaction etcd
// refuses for what it holds (not for being unreachable) is written again
// service by service, and a service whose own writes are refused is
// reported (sched/failed/SERVICE, an event) and skipped, so one service
// never holds up the others.
type scheduler struct {
	cli       *clientv3.Client
	k         keyspace
	leaderKey string
	leaderRev int64
	maxOps    int
	maxBytes  int
	timeout   time.Duration
	resync    time.Duration
	log       *slog.Logger
	stats     *schedStats

	view      *clusterView
	dirty     map[string]bool
	allDirty  bool
	lastWrite int64
	// own holds the revisions of this term's writes not yet seen in the
	// watch: a placement change at any other revision was made by
	// someone else (a previous leader, an operator) and is looked at.
	own map[int64]bool
	// seen is when the watch brought each changed service not yet
	// planned; observe, when set, is told how long it took until the
	// placements for that change were committed.
	seen    map[string]time.Time
	observe func(time.Duration)

	// Rollouts (rollout.go): the services with a rollout in flight are
	// looked at every rolloutTick; their instances' statuses are read
	// before each plan, and runningSince holds when this term first saw
	// each new instance running.
	rolling      map[string]bool
	statuses     map[string]map[string]InstanceStatus
	runningSince map[string]map[string]time.Time
}

// schedStats counts the scheduler's work; read by benchmarks and metrics.
type schedStats struct {
	Placements atomic.Int64 // instances put on a node
	Removals   atomic.Int64 // instances removed
	Txns       atomic.Int64 // write transactions committed
	TxnBytes   atomic.Int64 // bytes of keys and values written
	Passes     atomic.Int64 // reconcile passes that wrote something
}

// run schedules until ctx ends, leadership is lost or the watch breaks; the
// caller starts a new term (with a fresh read) in the last case.
func (s *scheduler) run(ctx context.Context) error {
	if err := s.load(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// The range [assign/, status/) holds everything placement depends on
	// and leaves out the busy status keys.
	wch := s.cli.Watch(wctx, s.k.assignAll(), clientv3.WithRange(s.k.statusAll()), clientv3.WithRev(s.view.rev+1))
	ticker := time.NewTicker(s.resync)
	defer ticker.Stop()
	rollTicker := time.NewTicker(rolloutTick)
	defer rollTicker.Stop()
	for {
		if (s.allDirty || len(s.dirty) > 0) && s.view.rev >= s.lastWrite {
			if err := s.reconcile(ctx); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
			s.allDirty = true
		case <-rollTicker.C:
			for id := range s.rolling {
				s.dirty[id] = true
			}
		case wr, ok := <-wch:
			if !ok {
				return fmt.Errorf("gdpm: scheduler watch closed")
			}
			if err := s.applyWatch(wr); err != nil {
				return err
			}
			// Fold whatever else has arrived before planning.
			for drained := false; !drained; {
				select {
				case wr, ok := <-wch:
					if !ok {
						return fmt.Errorf("gdpm: scheduler watch closed")
					}
					if err := s.applyWatch(wr); err != nil {
						return err
					}
				default:
					drained = true
				}
			}
		}
	}
}

func (s *scheduler) applyWatch(wr clientv3.WatchResponse) error {
	if err := wr.Err(); err != nil {
		return fmt.Errorf("gdpm: scheduler watch: %w", err)
	}
	for _, ev := range wr.Events {
		c := s.view.apply(ev.Kv, ev.Type == clientv3.EventTypeDelete)
		if c.nodes {
			s.allDirty = true
		}
		if c.service != "" {
			s.dirty[c.service] = true
			if _, ok := s.seen[c.service]; !ok {
				s.seen[c.service] = time.Now()
			}
		}
		if c.placement != "" && !s.own[ev.Kv.ModRevision] {
			s.dirty[c.placement] = true
		}
		s.view.rev = max(s.view.rev, ev.Kv.ModRevision)
	}
	s.view.rev = max(s.view.rev, wr.Header.Revision)
	for rev := range s.own {
		if rev <= s.view.rev {
			delete(s.own, rev)
		}
	}
	return nil
}

// load reads the placement state at one revision.
func (s *scheduler) load(ctx context.Context) error {
	s.view = newClusterView(s.k)
	s.dirty = map[string]bool{}
	s.own = map[int64]bool{}
	s.seen = map[string]time.Time{}
	s.rolling = map[string]bool{}
	s.statuses = map[string]map[string]InstanceStatus{}
	s.runningSince = map[string]map[string]time.Time{}
	s.allDirty = true
	var rev int64
	for _, prefix := range []string{s.k.nodes(), s.k.services(), s.k.assignAll(), s.k.pendingAll(), s.k.cursor(), s.k.failedAll(), s.k.haltAll()} {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.cli.Get(cctx, prefix, opts...)
		cancel()
		if err != nil {
			return storeErr("gdpm: scheduler load", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			s.view.apply(kv, false)
		}
	}
	s.view.rev = rev
	return nil
}

// unit is the smallest piece of a plan that must be written atomically: a
// put, a delete, or a move (delete the old key, put the new one).
type unit struct {
	service string
	del     string // key to delete, or ""
	put     string // key to put, or ""
	val     string
	placed  bool   // put an instance on a node
	cursor  string // the rotation cursor after this unit, when placed
	meta    bool   // bookkeeping (a failure record), not an instance
}

func (u unit) ops() int {
	n := 0
	if u.del != "" {
		n++
	}
	if u.put != "" {
		n++
	}
	return n
}

// reconcile plans every dirty service and writes the plan in as few
// transactions as the op limit allows.
func (s *scheduler) reconcile(ctx context.Context) error {
	var ids []string
	if s.allDirty {
		seen := map[string]bool{}
		for id := range s.view.services {
			seen[id] = true
		}
		for id := range s.view.instances {
			seen[id] = true
		}
		for id := range s.view.failed {
			seen[id] = true
		}
		for id := range seen {
			ids = append(ids, id)
		}
	} else {
		for id := range s.dirty {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	s.allDirty = false
	clear(s.dirty)

	if err := s.readRolloutStatuses(ctx, ids); err != nil {
		return err
	}
	startCursor := s.view.cursor
	now := time.Now().UTC()
	var units []unit
	for _, id := range ids {
		units = s.plan(id, now, units)
	}
	if len(units) == 0 {
		s.observeLatency(ids, nil)
		return nil
	}
	done, err := s.write(ctx, units)
	committed := units[:done:done]
	var refused *placementError
	if errors.As(err, &refused) {
		var more []unit
		more, err = s.isolate(ctx, units[done:])
		committed = append(committed, more...)
		// The rotation in etcd is where the last committed placement
		// left it; the refused ones advanced only the plan's.
		s.view.cursor = cursorAfter(committed, startCursor)
	}
	if err != nil {
		// Roll the rotation back to what etcd has and look at every
		// service again once the view has caught up.
		s.view.cursor = cursorAfter(committed, startCursor)
		s.allDirty = true
		if errors.Is(err, ErrConflict) {
			return nil
		}
		return err
	}
	s.stats.Passes.Add(1)
	s.observeLatency(ids, committed)
	return nil
}

// isolate writes units service by service after a transaction holding them
// was refused: a service whose own writes are refused is recorded as failed
// and skipped, and the others are placed. It returns the units committed.
// A plan appends each service's units together, so they are contiguous.
func (s *scheduler) isolate(ctx context.Context, units []unit) ([]unit, error) {
	var committed []unit
	for len(units) > 0 {
		n := 1
		for n < len(units) && units[n].service == units[0].service {
			n++
		}
		group := units[:n]
		units = units[n:]
		done, err := s.write(ctx, group)
		committed = append(committed, group[:done]...)
		var refused *placementError
		if errors.As(err, &refused) {
			err = s.markFailed(ctx, group[0].service, refused)
		}
		if err != nil {
			return committed, err
		}
	}
	return committed, nil
}

// schedFailure is the value of sched/failed/SERVICE: the scheduler could
// not place the service as its record stood at SpecRev.
type schedFailure struct {
	SpecRev int64     `json:"SpecRev"`
	Error   string    `json:"Error"`
	Time    time.Time `json:"Time"`
}

// maxFailureRecord bounds the failure record's key and value: under etcd's
// default request limit whatever TxnBytes says. A service id longer than
// that is reported in the log only.
const maxFailureRecord = 1 << 20

// markFailed records that svc cannot be placed at its current revision, so
// that the API and the events show why and the scheduler stops trying
// until the service changes.
func (s *scheduler) markFailed(ctx context.Context, svc string, cause *placementError) error {
	rev := s.view.services[svc].modRev
	s.log.Warn("a service cannot be placed; scheduling the others", "service", logValue(svc), "err", logValue(cause.Error()))
	s.view.failed[svc] = rev
	val, _ := json.Marshal(schedFailure{SpecRev: rev, Error: truncate(cause.Error(), 1024), Time: time.Now().UTC()})
	key := s.k.failed(svc)
	if len(key)+len(val) > maxFailureRecord {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	resp, err := s.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.leaderKey), "=", s.leaderRev)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	cancel()
	switch {
	case err != nil && refusedTxn(err):
		return nil // remembered in the view; nothing more to do
	case err != nil:
		return storeErr("gdpm: scheduler failure record", err)
	case !resp.Succeeded:
		return s.whyFailed(ctx, resp.Header.Revision)
	}
	s.lastWrite = resp.Header.Revision
	s.own[resp.Header.Revision] = true
	return nil
}

// placementError is a scheduler transaction that etcd (or the client)
// refused for what it holds, not because etcd is unreachable: the same
// writes would be refused again, so they are not retried as they are. It
// is not ErrUnavailable: etcd works.
type placementError struct{ err error }

func (e *placementError) Error() string { return "placement refused: " + e.err.Error() }
func (e *placementError) Unwrap() error { return e.err }

// refusedTxn reports whether etcd or the client refused a request for its
// content (too large, too many operations) rather than failed to deliver
// it: the same request would be refused again.
func refusedTxn(err error) bool {
	for _, e := range []error{rpctypes.ErrRequestTooLarge, rpctypes.ErrTooManyOps, rpctypes.ErrDuplicateKey, rpctypes.ErrEmptyKey} {
		if errors.Is(err, e) {
			return true
		}
	}
	// The client's own limit on what it sends (grpc ResourceExhausted).
	return strings.Contains(rpctypes.ErrorDesc(err), "larger than max")
}

// observeLatency reports, for each planned service whose change brought
// placements that are now committed, how long ago the change was seen, and
// forgets when the planned services were seen.
func (s *scheduler) observeLatency(ids []string, committed []unit) {
	placed := map[string]bool{}
	for _, u := range committed {
		placed[u.service] = placed[u.service] || u.placed
	}
	for _, id := range ids {
		if t, ok := s.seen[id]; ok {
			if placed[id] && s.observe != nil {
				s.observe(time.Since(t))
			}
			delete(s.seen, id)
		}
	}
}

// cursorAfter returns the rotation cursor once units are written.
func cursorAfter(units []unit, start string) string {
	c := start
	for _, u := range units {
		if u.placed {
			c = u.cursor
		}
	}
	return c
}

// opBytes is what etcd's request size counts for one operation or compare
// beyond its key and value (protobuf framing, revisions), rounded up.
const opBytes = 32

// bytes is what u adds to a transaction's request.
func (u unit) bytes() int {
	n := 0
	if u.del != "" {
		n += len(u.del) + opBytes
	}
	if u.put != "" {
		n += len(u.put) + len(u.val) + opBytes
	}
	return n
}

// write commits units in transactions of at most maxOps operations and
// maxBytes bytes. It returns how many units were committed before an
// error; a *placementError when etcd refused a transaction for what it
// holds, or a unit alone is over maxBytes.
func (s *scheduler) write(ctx context.Context, units []unit) (int, error) {
	// The leader's compare and the rotation cursor's put.
	base := len(s.leaderKey) + len(s.k.cursor()) + 64 + 2*opBytes
	done := 0
	for done < len(units) {
		ops := []clientv3.Op{}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.leaderKey), "=", s.leaderRev)}
		inTxn := map[string]bool{}
		cursor := ""
		var written int64
		size := base
		end := done
		for end < len(units) {
			u := units[end]
			extra, extraBytes := u.ops(), u.bytes()
			// A failure record goes without the service's compare:
			// it is removed whatever the service's state.
			compare := !inTxn[u.service] && !u.meta
			if compare {
				extra++ // its compare
				extraBytes += len(s.k.service(u.service)) + opBytes
			}
			if len(ops)+extra+1 > s.maxOps || size+extraBytes > s.maxBytes {
				if end > done {
					break
				}
				if size+extraBytes > s.maxBytes {
					return done, &placementError{fmt.Errorf("one placement of service %s needs %d bytes in a transaction, over TxnBytes (%d)",
						logValue(u.service), base+extraBytes, s.maxBytes)}
				}
			}
			if compare {
				inTxn[u.service] = true
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.k.service(u.service)), "=", s.view.services[u.service].modRev))
			}
			if u.del != "" {
				ops = append(ops, clientv3.OpDelete(u.del))
				written += int64(len(u.del))
			}
			if u.put != "" {
				ops = append(ops, clientv3.OpPut(u.put, u.val))
				written += int64(len(u.put) + len(u.val))
			}
			if u.placed {
				cursor = u.cursor
			}
			size += extraBytes
			end++
		}
		if cursor != "" {
			ops = append(ops, clientv3.OpPut(s.k.cursor(), cursor))
		}
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.cli.Txn(cctx).If(cmps...).Then(ops...).Commit()
		cancel()
		if err != nil {
			if refusedTxn(err) {
				return done, &placementError{err}
			}
			return done, storeErr("gdpm: scheduler write", err)
		}
		if !resp.Succeeded {
			return done, s.whyFailed(ctx, resp.Header.Revision)
		}
		s.lastWrite = resp.Header.Revision
		s.own[resp.Header.Revision] = true
		s.stats.Txns.Add(1)
		s.stats.TxnBytes.Add(written)
		for _, u := range units[done:end] {
			switch {
			case u.placed:
				s.stats.Placements.Add(1)
			case u.put == "" && !u.meta:
				s.stats.Removals.Add(1)
			}
		}
		done = end
	}
	return done, nil
}

// whyFailed tells a lost election from a service changed under the plan.
func (s *scheduler) whyFailed(ctx context.Context, rev int64) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	resp, err := s.cli.Get(cctx, s.leaderKey)
	cancel()
	if err != nil {
		return storeErr("gdpm: scheduler", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != s.leaderRev {
		return errNotLeader
	}
	s.lastWrite = max(s.lastWrite, rev)
	return ErrConflict
}

// newInstanceID returns 12 random hex digits for which used is false.
func newInstanceID(used func(string) bool) string {
	for {
		var b [6]byte
		rand.Read(b[:])
		if id := hex.EncodeToString(b[:]); !used(id) {
			return id
		}
	}
}
