package gdpm

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
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

// Handler returns the master's HTTP API. Start serves it on HTTPAddr; an
// embedding program may mount it elsewhere instead.
func (m *Master) Handler() http.Handler {
	r := httprouter.New()
	// Paths answer with and without the trailing slash, never by redirect:
	// clients of the seed API POST to both forms.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed on this route")
	})
	r.PanicHandler = func(w http.ResponseWriter, _ *http.Request, v any) {
		m.log.Error("api handler panic", "panic", v)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	names := httprouter.New() // route patterns, for the request metrics
	both := func(method, path string, h httprouter.Handle) {
		r.Handle(method, path, h)
		r.Handle(method, path+"/", h)
		nameRoute(names, method, path, path)
		nameRoute(names, method, path+"/", path)
	}
	both(http.MethodGet, "/node", m.handleListNodes)
	both(http.MethodGet, "/node/:id", m.handleGetNode)
	both(http.MethodGet, "/service", m.handleListServices)
	both(http.MethodPost, "/service", m.handleCreateService)
	both(http.MethodGet, "/service/:id", m.handleGetService)
	both(http.MethodPost, "/service/:id", m.handleScaleService)
	both(http.MethodDelete, "/service/:id", m.handleDeleteService)
	both(http.MethodPut, "/service/:id", m.handlePutService)
	both(http.MethodGet, "/service/:id/logs", m.handleServiceLogs)
	both(http.MethodPost, "/service/:id/stop", m.handleStopService)
	both(http.MethodPost, "/service/:id/start", m.handleStartService)
	both(http.MethodPost, "/service/:id/restart", m.handleRestartService)
	both(http.MethodGet, "/events", m.handleEvents)
	both(http.MethodGet, "/metrics", m.handleMetrics)
	m.routeUI(r, names)
	r.GET("/healthz", m.handleHealth)
	nameRoute(names, http.MethodGet, "/healthz", "/healthz")
	return m.metrics.instrument(names, m.csrf(m.authorize(r)))
}

// bearerOK reports whether r carries "Authorization: Bearer TOKEN"; any
// request does when token is empty. The scheme is case-insensitive (RFC
// 9110). The compare is of digests, so it takes the same time wherever the
// first difference is and whatever the lengths.
func bearerOK(r *http.Request, token string) bool {
	if token == "" {
		return true
	}
	scheme, got, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	want, have := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(strings.TrimLeft(got, " ")))
	return strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

// authorize requires the cluster token on every route but /healthz and the
// web interface's files under /ui.
func (m *Master) authorize(next http.Handler) http.Handler {
	if m.cfg.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && !isUIPath(r.URL.Path) && !bearerOK(r, m.cfg.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gdpm"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// fail answers err with the status its sentinel calls for (statusTable).
func (m *Master) fail(w http.ResponseWriter, r *http.Request, err error) {
	m.metrics.countEtcdError(err)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = fmt.Errorf("request body exceeds %d bytes: %w", tooBig.Limit, ErrTooLarge)
	}
	status := statusOf(err)
	if status >= 500 {
		m.log.Warn("api error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, apiMessage(err))
}

// apiMessage is err's text for a client, without the package prefixes that
// wrapping adds and without the "bad request" the status already says.
func apiMessage(err error) string {
	msg := strings.ReplaceAll(err.Error(), "gdpm: ", "")
	for _, sentinel := range []string{": bad request", ": too large", ": unsupported media type", ": name taken"} {
		msg = strings.TrimSuffix(msg, sentinel)
	}
	return msg
}

func (m *Master) etcdCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), m.cfg.RequestTimeout)
}

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

// readNodes returns the registered nodes by registration time, and the
// revision read.
func (m *Master) readNodes(ctx context.Context) ([]Node, int64, error) {
	resp, err := m.cli.Get(ctx, m.k.nodes(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, storeErr("gdpm: read nodes", err)
	}
	nodes := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n Node
		if json.Unmarshal(kv.Value, &n) == nil {
			nodes = append(nodes, n)
		}
	}
	sort.Slice(nodes, func(i, j int) bool {
		if !nodes[i].RegisteredAt.Equal(nodes[j].RegisteredAt) {
			return nodes[i].RegisteredAt.Before(nodes[j].RegisteredAt)
		}
		return nodes[i].ID < nodes[j].ID
	})
	return nodes, resp.Header.Revision, nil
}

// scanKeys calls fn for every key under prefix at rev, in pages, so a large
// cluster is never read in one response.
func (m *Master) scanKeys(ctx context.Context, prefix string, rev int64, fn func(key string)) error {
	return m.scan(ctx, prefix, rev, true, func(key string, _ []byte) { fn(key) })
}

// scanKVs is scanKeys with the values.
func (m *Master) scanKVs(ctx context.Context, prefix string, rev int64, fn func(key string, val []byte)) error {
	return m.scan(ctx, prefix, rev, false, fn)
}

func (m *Master) scan(ctx context.Context, prefix string, rev int64, keysOnly bool, fn func(key string, val []byte)) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithRev(rev),
			clientv3.WithLimit(10000), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		resp, err := m.cli.Get(ctx, from, opts...)
		if err != nil {
			return storeErr("gdpm: read "+strings.TrimPrefix(prefix, m.k.p), err)
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// --- services: reads ---

func (m *Master) readServices(ctx context.Context, rev int64) (map[string]Service, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := m.cli.Get(ctx, m.k.services(), opts...)
	if err != nil {
		return nil, storeErr("gdpm: read services", err)
	}
	out := make(map[string]Service, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var s Service
		if json.Unmarshal(kv.Value, &s) == nil {
			out[s.ID] = s
		}
	}
	return out, nil
}

// instanceTable is where every instance of some services is, at one
// revision: inst -> node ("" for pending), and the slaves' statuses.
type instanceTable struct {
	where  map[string]map[string]string // svc -> inst -> node
	status map[string]InstanceStatus    // svc/inst -> status
	placed map[string]placement         // svc/inst -> what its assignment says
	usage  map[string]InstanceUsage     // svc/inst -> its slave's last sample
}

// readInstances reads placements and statuses; svc "" means all services.
func (m *Master) readInstances(ctx context.Context, rev int64, svc string) (instanceTable, error) {
	t := instanceTable{where: map[string]map[string]string{}, status: map[string]InstanceStatus{}, placed: map[string]placement{}}
	put := func(s, inst, node string, val []byte) {
		if t.where[s] == nil {
			t.where[s] = map[string]string{}
		}
		t.where[s][inst] = node
		t.placed[s+"/"+inst] = placementOf(node, val)
	}
	err := m.scanKVs(ctx, m.k.assignAll(), rev, func(key string, val []byte) {
		if node, s, inst, ok := m.k.splitAssign(key); ok && (svc == "" || s == svc) {
			put(s, inst, node, val)
		}
	})
	if err != nil {
		return t, err
	}
	pendingPrefix, statusPrefix := m.k.pendingAll(), m.k.statusAll()
	if svc != "" {
		pendingPrefix, statusPrefix = m.k.pending(svc, ""), m.k.statuses(svc)
	}
	err = m.scanKVs(ctx, pendingPrefix, rev, func(key string, val []byte) {
		if s, inst, ok := splitPair(key, m.k.pendingAll()); ok {
			put(s, inst, "", val)
		}
	})
	if err != nil {
		return t, err
	}
	resp, err := m.cli.Get(ctx, statusPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return t, storeErr("gdpm: read status", err)
	}
	usage, err := m.readUsage(ctx, rev)
	if err != nil {
		return t, err
	}
	t.usage = map[string]InstanceUsage{}
	for _, u := range usage {
		for key, iu := range u.Instances {
			if svc == "" || strings.HasPrefix(key, svc+"/") {
				t.usage[key] = iu
			}
		}
	}
	for _, kv := range resp.Kvs {
		var st InstanceStatus
		if json.Unmarshal(kv.Value, &st) == nil {
			t.status[st.Service+"/"+st.Instance] = st
		}
	}
	return t, nil
}

// readSchedFailures reads why the scheduler cannot place services (svc ""
// means all), by service id. The scheduler removes a record once it
// places the service.
func (m *Master) readSchedFailures(ctx context.Context, rev int64, svc string) (map[string]string, error) {
	key, opts := m.k.failed(svc), []clientv3.OpOption{clientv3.WithRev(rev)}
	if svc == "" {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := m.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, storeErr("gdpm: read scheduling failures", err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		var f schedFailure
		if json.Unmarshal(kv.Value, &f) == nil {
			out[strings.TrimPrefix(string(kv.Key), m.k.failedAll())] = f.Error
		}
	}
	return out, nil
}

// info describes one instance: its placement joined with the status its
// node reported (a status from another node is stale and ignored).
func (t instanceTable) info(svc, inst string) InstanceInfo {
	node := t.where[svc][inst]
	p := t.placed[svc+"/"+inst]
	in := InstanceInfo{ID: inst, Node: node, State: StatePending, Index: p.index, Version: p.version}
	if node == "" {
		return in
	}
	in.State = StateAssigned
	if st, ok := t.status[svc+"/"+inst]; ok && st.Node == node {
		in.State, in.PID, in.ExitCode, in.Restarts, in.StartedAt, in.Error, in.Ports =
			st.State, st.PID, st.ExitCode, st.Restarts, st.StartedAt, st.Error, st.Ports
		in.Health, in.LastError, in.LastErrorAt = st.Health, st.LastError, st.LastErrorAt
		if u, ok := t.usage[svc+"/"+inst]; ok && u.PID == st.PID {
			in.CPU, in.RSS = u.CPU, u.RSS
		}
	}
	return in
}

// counts returns how many instances of svc run and how many wait.
func (t instanceTable) counts(svc string) (running, pending int) {
	for inst, node := range t.where[svc] {
		switch {
		case node == "":
			pending++
		case t.info(svc, inst).State == StateRunning:
			running++
		}
	}
	return running, pending
}

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

func (m *Master) currentRev(ctx context.Context) (int64, error) {
	resp, err := m.cli.Get(ctx, m.k.cursor(), clientv3.WithCountOnly())
	if err != nil {
		return 0, storeErr("gdpm: read", err)
	}
	return resp.Header.Revision, nil
}

// getService reads one service; ErrNotFound when it does not exist.
func (m *Master) getService(ctx context.Context, id string) (Service, int64, int64, error) {
	resp, err := m.cli.Get(ctx, m.k.service(id))
	if err != nil {
		return Service{}, 0, 0, storeErr("gdpm: read service", err)
	}
	if len(resp.Kvs) == 0 {
		return Service{}, 0, 0, fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	var s Service
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return Service{}, 0, 0, fmt.Errorf("gdpm: service %q is corrupt: %v", id, err)
	}
	return s, resp.Kvs[0].ModRevision, resp.Header.Revision, nil
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

// scale sets a service's instance count. A compare-and-swap that loses a
// race with another writer of the service is retried here, after a
// jittered wait, so that concurrent scales all land (the last one wins)
// and a client sees 409 only when the races never end.
func (m *Master) scale(ctx context.Context, id string, n int) (Service, error) {
	unlock, err := m.writes.lock(ctx, m.k.service(id))
	if err != nil {
		// Nothing of this request was written.
		return Service{}, storeErr("gdpm: scale service", err)
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		s, modRev, _, err := m.getService(ctx, id)
		if err != nil {
			return s, err
		}
		if s.InstanceNum == n {
			return s, nil
		}
		from := s.InstanceNum
		s.InstanceNum = n
		val, _ := json.Marshal(s)
		key := m.k.service(id)
		wctx, sent := withSentFlag(ctx)
		resp, err := m.cli.Txn(wctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return s, writeErr("gdpm: scale service", sent, err)
		}
		if resp.Succeeded {
			m.log.Info("service scaled", "id", id, "from", from, "to", n)
			return s, nil
		}
		if attempt+1 >= maxConflictRetries {
			return s, fmt.Errorf("gdpm: scale service %s: other writers kept changing it (%d attempts): %w", id, attempt+1, ErrConflict)
		}
		if !sleepCtx(ctx, retryWait(attempt, time.Millisecond, 50*time.Millisecond)) {
			// Nothing of this request was written.
			return s, storeErr("gdpm: scale service", ctx.Err())
		}
	}
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
