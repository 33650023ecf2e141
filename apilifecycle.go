package gdpm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The lifecycle verbs change one field of the service record; the
// scheduler does the rest. POST /service/:id/stop sets Stopped (every
// instance is removed, InstanceNum is kept), /start clears it, /restart
// counts one more restart, which changes the service's version and so
// rolls every instance over (rollout.go), one index at a time.

func (m *Master) handleStopService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	m.lifecycle(w, r, p, "stopped", func(s *Service) bool {
		changed := !s.Stopped
		s.Stopped = true
		return changed
	})
}

func (m *Master) handleStartService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	m.lifecycle(w, r, p, "started", func(s *Service) bool {
		changed := s.Stopped
		s.Stopped = false
		return changed
	})
}

func (m *Master) handleRestartService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	m.lifecycle(w, r, p, "restarted", func(s *Service) bool {
		s.Restarted++
		return true
	})
}

// lifecycle applies change to the service the route names and answers
// with the service as stored.
func (m *Master) lifecycle(w http.ResponseWriter, r *http.Request, p httprouter.Params, what string, change func(*Service) bool) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	id, err := m.resolveService(ctx, p.ByName("id"))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	s, err := m.updateService(ctx, id, "update service", change)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	m.log.Info("service "+what, "id", id, "name", s.Name)
	writeJSON(w, http.StatusOK, s)
}

// updateService applies change to a service record and writes it, unless
// change reports no change. This master's writers of one service take
// turns (keyLock); a compare-and-swap that still loses a race with
// another master is retried after a jittered wait, so a client sees 409
// only when the races never end. op names the action in errors.
func (m *Master) updateService(ctx context.Context, id, op string, change func(*Service) bool) (Service, error) {
	unlock, err := m.writes.lock(ctx, m.k.service(id))
	if err != nil {
		// Nothing of this request was written.
		return Service{}, storeErr("gdpm: "+op, err)
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		s, modRev, _, err := m.getService(ctx, id)
		if err != nil {
			return s, err
		}
		if !change(&s) {
			return s, nil
		}
		val, _ := json.Marshal(s)
		key := m.k.service(id)
		wctx, sent := withSentFlag(ctx)
		resp, err := m.cli.Txn(wctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return s, writeErr("gdpm: "+op, sent, err)
		}
		if resp.Succeeded {
			return s, nil
		}
		if attempt+1 >= maxConflictRetries {
			return s, fmt.Errorf("gdpm: %s %s: other writers kept changing it (%d attempts): %w", op, id, attempt+1, ErrConflict)
		}
		if !sleepCtx(ctx, retryWait(attempt, time.Millisecond, 50*time.Millisecond)) {
			return s, storeErr("gdpm: "+op, ctx.Err())
		}
	}
}
