package gdpm

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm/internal/backoff"
)

// statusWriter batches instance statuses into etcd. Runners report every
// change; the writer keeps only the latest per instance and writes whatever
// is dirty in transactions of up to statusBatch operations, so a slave that
// starts a thousand processes makes a few round trips, not a thousand.
// Statuses are bound to the slave's lease: a lost slave's statuses vanish
// with its node record.
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

	mu    sync.Mutex
	dirty map[string]*InstanceStatus // svc/inst -> latest (nil = delete)
	kick  chan struct{}
}

const statusBatch = 100

func newStatusWriter(cli *clientv3.Client, k keyspace, node string, lease clientv3.LeaseID, log *slog.Logger) *statusWriter {
	w := &statusWriter{cli: cli, k: k, node: node, lease: lease, log: log, dirty: map[string]*InstanceStatus{}, kick: make(chan struct{}, 1)}
	return w
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

// run writes until ctx ends. A failed write keeps its statuses dirty and is
// retried after a short delay.
func (w *statusWriter) run(ctx context.Context, timeout time.Duration) {
	retry := backoff.NewDelay(50*time.Millisecond, 2*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		for {
			batch := w.take()
			if len(batch) == 0 {
				break
			}
			if err := w.write(ctx, batch, timeout); err != nil {
				w.putBack(batch)
				if ctx.Err() != nil {
					return
				}
				w.log.Warn("status write failed", "err", err)
				if !retry.Wait(ctx) {
					return
				}
				continue
			}
			retry.Reset()
		}
	}
}

// take removes up to statusBatch dirty entries.
func (w *statusWriter) take() map[string]*InstanceStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := map[string]*InstanceStatus{}
	for key, st := range w.dirty {
		if len(batch) == statusBatch {
			break
		}
		batch[key] = st
		delete(w.dirty, key)
	}
	return batch
}

// putBack requeues a failed batch unless a newer status came meanwhile.
func (w *statusWriter) putBack(batch map[string]*InstanceStatus) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, st := range batch {
		if _, newer := w.dirty[key]; !newer {
			w.dirty[key] = st
		}
	}
}

func (w *statusWriter) write(ctx context.Context, batch map[string]*InstanceStatus, timeout time.Duration) error {
	ops := make([]clientv3.Op, 0, len(batch))
	for key, st := range batch {
		sk := w.k.statusAll() + key
		if st == nil {
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(sk), "=", w.lease)},
				[]clientv3.Op{clientv3.OpDelete(sk)}, nil))
			continue
		}
		val, _ := json.Marshal(st)
		ops = append(ops, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(w.k.assign(w.node, st.Service, st.Instance)), ">", 0)},
			[]clientv3.Op{clientv3.OpPut(sk, string(val), clientv3.WithLease(w.lease))}, nil))
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := w.cli.Txn(cctx).Then(ops...).Commit()
	return storeErr("gdpm: write status", err)
}
