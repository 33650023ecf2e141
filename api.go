package gdpm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/julienschmidt/httprouter"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func (m *Master) handleHealth(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	if _, err := m.cli.Get(ctx, m.k.cursor(), clientv3.WithCountOnly()); err != nil {
		m.fail(w, r, storeErr("gdpm: health", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "leader": m.IsLeader(), "id": m.cfg.ID})
}

// --- nodes ---

func (m *Master) handleListNodes(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	nodes, rev, err := m.readNodes(ctx)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	perNode := map[string]map[string]bool{}
	instances := map[string]int{}
	err = m.scanKeys(ctx, m.k.assignAll(), rev, func(key string) {
		if node, svc, _, ok := m.k.splitAssign(key); ok {
			if perNode[node] == nil {
				perNode[node] = map[string]bool{}
			}
			perNode[node][svc] = true
			instances[node]++
		}
	})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	usage, err := m.readUsage(ctx, rev)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	out := NodeList{Ids: []string{}, ServiceNum: []int{}, Status: []int{}, Times: []string{},
		Hostnames: []string{}, Instances: []int{}, CPU: []float64{}, RSS: []int64{},
		Cores: []int{}, MemTotal: []int64{}, MemAvailable: []int64{}, Load1: []float64{}}
	for _, n := range nodes {
		out.Ids = append(out.Ids, n.ID)
		out.ServiceNum = append(out.ServiceNum, len(perNode[n.ID]))
		out.Status = append(out.Status, n.Status)
		out.Times = append(out.Times, n.RegisteredAt.Local().Format(time.RFC822))
		u := usage[n.ID]
		out.Hostnames = append(out.Hostnames, n.Hostname)
		out.Instances = append(out.Instances, instances[n.ID])
		out.CPU = append(out.CPU, u.CPU)
		out.RSS = append(out.RSS, u.RSS)
		out.Cores = append(out.Cores, u.Cores)
		out.MemTotal = append(out.MemTotal, u.MemTotal)
		out.MemAvailable = append(out.MemAvailable, u.MemAvailable)
		out.Load1 = append(out.Load1, u.Load1)
	}
	writeJSON(w, http.StatusOK, out)
}

func (m *Master) handleGetNode(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	id := p.ByName("id")
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	resp, err := m.cli.Get(ctx, m.k.node(id))
	if err != nil {
		m.fail(w, r, storeErr("gdpm: read node", err))
		return
	}
	if len(resp.Kvs) == 0 {
		m.fail(w, r, fmt.Errorf("node %q: %w", id, ErrNotFound))
		return
	}
	rev := resp.Header.Revision
	counts := map[string]int{}
	err = m.scanKeys(ctx, m.k.assigns(id), rev, func(key string) {
		if _, svc, _, ok := m.k.splitAssign(key); ok {
			counts[svc]++
		}
	})
	if err != nil {
		m.fail(w, r, err)
		return
	}
	services, err := m.readServices(ctx, rev)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	out := NodeServices{Command: []string{}, Ids: []string{}, Number: []int{}}
	for _, svc := range sortedKeys(counts) {
		out.Ids = append(out.Ids, svc)
		out.Command = append(out.Command, services[svc].Command)
		out.Number = append(out.Number, counts[svc])
	}
	writeJSON(w, http.StatusOK, out)
}

// --- services: reads ---

func (m *Master) handleListServices(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	services, err := m.readServices(ctx, 0)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	rev, err := m.currentRev(ctx)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	t, err := m.readInstances(ctx, rev, "")
	if err != nil {
		m.fail(w, r, err)
		return
	}
	failed, err := m.readSchedFailures(ctx, rev, "")
	if err != nil {
		m.fail(w, r, err)
		return
	}
	halts, err := m.readHalts(ctx, rev, "")
	if err != nil {
		m.fail(w, r, err)
		return
	}
	out := ServiceList{Services: []ServiceSummary{}}
	now := time.Now()
	for _, s := range services {
		running, pending := t.counts(s.ID)
		sum := ServiceSummary{
			ID: s.ID, Name: s.Name, Command: s.Command, InstanceNum: s.InstanceNum,
			Running: running, Pending: pending, Restart: s.restartPolicy(), CreatedAt: s.CreatedAt,
			SchedError: failed[s.ID],
		}
		sum.RolloutState = t.rolloutState(s, halts[s.ID])
		sum.Status, sum.ServiceHealth = t.serviceStatus(s, sum.Status, now)
		out.Services = append(out.Services, sum)
	}
	sort.Slice(out.Services, func(i, j int) bool {
		a, b := out.Services[i], out.Services[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	writeJSON(w, http.StatusOK, out)
}

func (m *Master) handleGetService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	id, err := m.resolveService(ctx, p.ByName("id"))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	s, _, rev, err := m.getService(ctx, id)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	t, err := m.readInstances(ctx, rev, s.ID)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	failed, err := m.readSchedFailures(ctx, rev, s.ID)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	halts, err := m.readHalts(ctx, rev, s.ID)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	out := ServiceDetail{Service: s, Instances: []InstanceInfo{}, SchedError: failed[s.ID], RolloutState: t.rolloutState(s, halts[s.ID])}
	out.Restart = s.restartPolicy()
	if out.StopTimeout == 0 {
		out.StopTimeout = Duration(DefaultStopTimeout)
	}
	out.Running, out.Pending = t.counts(s.ID)
	out.Status, out.ServiceHealth = t.serviceStatus(s, out.Status, time.Now())
	for _, inst := range sortedKeys(t.where[s.ID]) {
		out.Instances = append(out.Instances, t.info(s.ID, inst))
	}
	// By index: a rollout's new instance beside the old one it replaces.
	sort.SliceStable(out.Instances, func(i, j int) bool { return out.Instances[i].Index < out.Instances[j].Index })
	writeJSON(w, http.StatusOK, out)
}

// --- services: writes ---

func (m *Master) handleCreateService(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	req, err := m.decodeCreate(w, r)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	s, err := m.validateCreate(req)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	if err := checkIdempotencyKey(key); err != nil || len(r.Header.Values(IdempotencyKeyHeader)) > 1 {
		if err == nil {
			err = fmt.Errorf("give one %s header: %w", IdempotencyKeyHeader, ErrBadRequest)
		}
		m.fail(w, r, err)
		return
	}
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	if err := m.checkEnforceable(ctx, s.Spec); err != nil {
		m.fail(w, r, err)
		return
	}
	id, created, err := m.createService(ctx, s, key)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	if created {
		m.log.Info("service created", "id", s.ID, "name", s.Name, "command", logValue(s.Command), "instances", s.InstanceNum)
	} else {
		m.log.Info("service create retried", "id", id, "idempotency_key", key)
		w.Header().Set(IdempotentReplayedHeader, "true")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, id)
}

// decodeCreate reads a create request from JSON or from form fields (what
// the original server actually read), strictly (decode.go).
func (m *Master) decodeCreate(w http.ResponseWriter, r *http.Request) (CreateRequest, error) {
	body, kind, err := readBody(w, r, m.cfg.MaxBodyBytes)
	if err != nil {
		return CreateRequest{}, err
	}
	return decodeCreateBody(body, kind)
}

// validateCreate checks every field and builds the service to store.
func (m *Master) validateCreate(req CreateRequest) (Service, error) {
	bad := func(format string, args ...any) (Service, error) {
		return Service{}, fmt.Errorf(format+": %w", append(args, ErrBadRequest)...)
	}
	if err := checkSpecSize(Spec{Command: req.Command, Env: req.Env, Dir: req.Dir, Restart: req.Restart, StopTimeout: req.StopTimeout, Ports: req.Ports, Supervision: req.Supervision}); err != nil {
		return Service{}, err
	}
	if req.Name != "" {
		if err := checkName(req.Name); err != nil {
			return Service{}, err
		}
	}
	if err := checkPorts(req.Ports); err != nil {
		return Service{}, err
	}
	if err := req.Rollout.check(); err != nil {
		return Service{}, err
	}
	if err := req.Supervision.check(); err != nil {
		return Service{}, err
	}
	cmd := strings.TrimSpace(req.Command)
	switch {
	case cmd == "":
		return bad("Command is empty")
	case strings.ContainsRune(cmd, 0):
		return bad("Command contains a NUL byte")
	}
	n := 1
	if req.InstanceNum != nil {
		n = *req.InstanceNum
	}
	if err := m.checkInstanceNum(n); err != nil {
		return Service{}, err
	}
	if !req.Restart.valid() {
		return bad("Restart must be always, on-failure or never, got %q", req.Restart)
	}
	if req.StopTimeout < 0 || time.Duration(req.StopTimeout) > time.Hour {
		return bad("StopTimeout must be between 0 and 1h")
	}
	if req.Dir != "" && !filepath.IsAbs(req.Dir) {
		return bad("Dir must be an absolute path, got %q", req.Dir)
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return bad("Env name %q is not a valid variable name", k)
		}
	}
	return Service{
		ID:   uuid.NewString(),
		Name: req.Name,
		Spec: Spec{
			Command: cmd, Env: req.Env, Dir: req.Dir,
			Restart: req.Restart, StopTimeout: req.StopTimeout, Ports: req.Ports,
			Supervision: req.Supervision,
		},
		InstanceNum: n,
		CreatedAt:   time.Now().UTC(),
		Rollout:     req.Rollout,
	}, nil
}

func (m *Master) checkInstanceNum(n int) error {
	if n < 0 || n > m.cfg.MaxInstances {
		return fmt.Errorf("InstanceNum must be between 0 and %d, got %d: %w", m.cfg.MaxInstances, n, ErrBadRequest)
	}
	return nil
}

func (m *Master) handleScaleService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	id := p.ByName("id")
	body, kind, err := readBody(w, r, m.cfg.MaxBodyBytes)
	var n int
	if err == nil {
		n, err = decodeScaleBody(body, kind, id)
	}
	if err == nil {
		err = m.checkInstanceNum(n)
	}
	if err != nil {
		m.fail(w, r, err)
		return
	}
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	if id, err = m.resolveService(ctx, id); err != nil {
		m.fail(w, r, err)
		return
	}
	s, err := m.scale(ctx, id, n)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// scale sets a service's instance count; concurrent scales all land (the
// last one wins), see updateService.
func (m *Master) scale(ctx context.Context, id string, n int) (Service, error) {
	from := 0
	s, err := m.updateService(ctx, id, "scale service", func(s *Service) bool {
		from = s.InstanceNum
		s.InstanceNum = n
		return from != n
	})
	if err == nil && from != n {
		m.log.Info("service scaled", "id", id, "from", from, "to", n)
	}
	return s, err
}

func (m *Master) handleDeleteService(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	id, err := m.resolveService(ctx, p.ByName("id"))
	if err != nil {
		m.fail(w, r, err)
		return
	}
	if err := m.deleteService(ctx, id); err != nil {
		m.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ID": id, "Deleted": true})
}

// deleteService removes a service record with its name, its pending queue
// and its rollout record, in one transaction; the scheduler removes the
// placed instances and their slaves stop them.
func (m *Master) deleteService(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		s, modRev, _, err := m.getService(ctx, id)
		if err != nil {
			return err
		}
		key := m.k.service(id)
		ops := []clientv3.Op{clientv3.OpDelete(key), clientv3.OpDelete(m.k.pending(id, ""), clientv3.WithPrefix()), clientv3.OpDelete(m.k.halt(id))}
		if s.Name != "" {
			ops = append(ops, clientv3.OpDelete(m.k.name(s.Name)))
		}
		wctx, sent := withSentFlag(ctx)
		resp, err := m.cli.Txn(wctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(ops...).Commit()
		if err != nil {
			return writeErr("gdpm: delete service", sent, err)
		}
		if resp.Succeeded {
			m.log.Info("service deleted", "id", id, "name", s.Name)
			return nil
		}
		if attempt == 5 {
			return fmt.Errorf("gdpm: delete service %s: %w", id, ErrConflict)
		}
	}
}
