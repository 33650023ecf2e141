package gdpm

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm/internal/backoff"
)

// statusWriter batches instance statuses into etcd. Runners report every
// change; the writer keeps only the latest per instance and writes whatever
// is dirty in transactions bounded by operations and bytes, several at
// once, so a slave that starts ten thousand processes makes a few hundred
// round trips, not ten thousand, and is not held up by one slow round trip.
// Statuses are bound to the slave's lease, that of its node record: a lost
// slave's statuses vanish with its node record, and the masters believe a
// status only on the lease of the node record it names (statustrust.go).
// A session's writer and instances end with it (Slave.session stops every
// instance), so after a registration on a new lease every status is
// written anew on it.
//
// An instance's status key is shared by every node that runs it in turn,
// and a draining node stops its copy while the next node already runs it.
// So a status is written only while this node holds the instance's
// assignment, and deleted only while it is the one this node wrote (its
// lease): a node that lost the instance can neither overwrite nor delete
// the status of the node that has it now.
type statusWriter struct {
	cli   *clientv3.Client
	k     keyspace
	node  string
	lease clientv3.LeaseID
	log   *slog.Logger

	mu     sync.Mutex
	dirty  map[string]*InstanceStatus // svc/inst -> latest (nil = delete)
	flying map[string]bool            // svc/inst in a transaction not yet answered
	kick   chan struct{}
	failed atomic.Bool // a transaction failed: back off before the next
}

// statusInFlight is how many status transactions are written at once
// (each bounded as txnbatch.go says): under load one round trip can take
// a second, and statuses written one transaction at a time then fall
// behind a launch of thousands.
const statusInFlight = 4

func newStatusWriter(cli *clientv3.Client, k keyspace, node string, lease clientv3.LeaseID, log *slog.Logger) *statusWriter {
	return &statusWriter{cli: cli, k: k, node: node, lease: lease, log: log,
		dirty: map[string]*InstanceStatus{}, flying: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// set queues st as the instance's status.
func (w *statusWriter) set(st InstanceStatus) {
	w.mu.Lock()
	w.dirty[st.Service+"/"+st.Instance] = &st
	w.mu.Unlock()
	w.signal()
}

// remove queues the deletion of an instance's status.
func (w *statusWriter) remove(svc, inst string) {
	w.mu.Lock()
	w.dirty[svc+"/"+inst] = nil
	w.mu.Unlock()
	w.signal()
}

func (w *statusWriter) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// statusWrite is one instance's pending write: its status, encoded, or
// nil to delete it.
type statusWrite struct {
	key string // svc/inst
	st  *InstanceStatus
	val []byte
}

// run writes until ctx ends, at most statusInFlight transactions at once.
// A failed write keeps its statuses dirty; they are retried after a delay
// that grows while writes keep failing.
func (w *statusWriter) run(ctx context.Context, timeout time.Duration) {
	retry := backoff.NewDelay(50*time.Millisecond, 2*time.Second)
	slots := make(chan struct{}, statusInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		for {
			if w.failed.Swap(false) {
				if !retry.Wait(ctx) {
					return
				}
			} else {
				retry.Reset()
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			batch := w.take()
			if len(batch) == 0 {
				<-slots
				break
			}
			wg.Go(func() {
				err := w.write(ctx, batch, timeout)
				<-slots
				if err != nil && ctx.Err() == nil {
					w.log.Warn("status write failed", "statuses", len(batch), "err", err)
					w.failed.Store(true)
				}
				w.done(batch, err)
			})
		}
	}
}

// take removes a batch of dirty statuses, at most txnMaxOps and about
// txnMaxBytes (a single larger status goes alone), and marks them in
// flight. An instance whose last status is still in flight waits: two
// transactions racing for one key could land the older status last.
func (w *statusWriter) take() []statusWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	var batch []statusWrite
	var budget txnBudget
	for key, st := range w.dirty {
		if w.flying[key] {
			continue
		}
		var val []byte
		if st != nil {
			val, _ = json.Marshal(st)
		}
		if !budget.add(len(key) + len(val)) {
			continue // a smaller one may still fit
		}
		batch = append(batch, statusWrite{key: key, st: st, val: val})
		delete(w.dirty, key)
		w.flying[key] = true
		if budget.full() {
			break
		}
	}
	return batch
}

// done ends a batch's flight. A failed batch's statuses are dirty again
// unless a newer status came meanwhile; either way the writer looks again,
// since statuses that waited for this flight may be dirty.
func (w *statusWriter) done(batch []statusWrite, err error) {
	w.mu.Lock()
	for _, s := range batch {
		delete(w.flying, s.key)
		if _, newer := w.dirty[s.key]; err != nil && !newer {
			w.dirty[s.key] = s.st
		}
	}
	w.mu.Unlock()
	w.signal()
}

func (w *statusWriter) write(ctx context.Context, batch []statusWrite, timeout time.Duration) error {
	ops := make([]clientv3.Op, 0, len(batch))
	for _, s := range batch {
		sk := w.k.statusAll() + s.key
		if s.st == nil {
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(sk), "=", w.lease)},
				[]clientv3.Op{clientv3.OpDelete(sk)}, nil))
			continue
		}
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(w.k.assign(w.node, s.st.Service, s.st.Instance)), ">", 0)},
			[]clientv3.Op{clientv3.OpPut(sk, string(s.val), clientv3.WithLease(w.lease))}, nil))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := w.cli.Txn(cctx).Then(ops...).Commit()
	return storeErr("gdpm: write status", err)
}
