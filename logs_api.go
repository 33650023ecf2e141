package gdpm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
)

// GET /service/:id/logs: the master finds the nodes the service's
// instances are placed on, asks each node's slave for its lines (the
// slave's log server, at the address in its node record, with the
// cluster token) and passes them on as one newline-delimited stream.

// newLogTransport is the master's HTTP transport to the slaves' log
// servers: connecting and the first answer are bounded like an etcd call;
// a following stream then lasts as long as the client's request.
func newLogTransport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
}

func (m *Master) handleServiceLogs(w http.ResponseWriter, r *http.Request, p httprouter.Params) {
	lq, err := parseLogQuery(r.URL.Query())
	if err != nil {
		m.fail(w, r, err)
		return
	}
	if len(lq.instances) > 1 {
		m.fail(w, r, fmt.Errorf("give one instance, or none for all: %w", ErrBadRequest))
		return
	}
	if m.runCtx == nil {
		m.fail(w, r, fmt.Errorf("gdpm: logs: master not started: %w", ErrUnavailable))
		return
	}
	sources, err := m.logSources(r, p.ByName("id"), lq.instances)
	if err != nil {
		m.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(m.runCtx, cancel)()

	// Open every node's stream before answering, so that an unreachable
	// node is an error status, not a stream that silently lacks it.
	bodies := make([]io.ReadCloser, len(sources))
	defer func() {
		for _, b := range bodies {
			if b != nil {
				b.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(sources))
	for i, src := range sources {
		wg.Go(func() { bodies[i], errs[i] = m.openNodeLogs(ctx, src, lq) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			m.fail(w, r, err)
			return
		}
	}
	m.copyLogStreams(ctx, w, bodies, lq.follow)
}

// logSource is one node's part of a logs request.
type logSource struct {
	node, addr, service string
	instances           []string
}

// logSources resolves the service's instances (or the one asked for) to
// the nodes they are placed on, in node order; pending instances have no
// logs yet.
func (m *Master) logSources(r *http.Request, svc string, only []string) ([]logSource, error) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	s, _, rev, err := m.getService(ctx, svc)
	if err != nil {
		return nil, err
	}
	t, err := m.readInstances(ctx, rev, s.ID)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]string{}
	for inst, node := range t.where[s.ID] {
		if len(only) > 0 && !slices.Contains(only, inst) {
			continue
		}
		if node != "" {
			byNode[node] = append(byNode[node], inst)
		}
	}
	if len(only) > 0 {
		if _, ok := t.where[s.ID][only[0]]; !ok {
			return nil, fmt.Errorf("service %q has no instance %q: %w", s.ID, only[0], ErrNotFound)
		}
	}
	if len(byNode) == 0 {
		return nil, nil
	}
	nodes, _, err := m.readNodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []logSource
	for _, n := range nodes {
		insts, ok := byNode[n.ID]
		if !ok {
			continue
		}
		if n.LogAddr == "" {
			return nil, fmt.Errorf("node %s serves no logs (gdpm %s): %w", n.ID, n.Version, ErrUnavailable)
		}
		slices.Sort(insts)
		out = append(out, logSource{node: n.ID, addr: n.LogAddr, service: s.ID, instances: insts})
	}
	return out, nil
}

// openNodeLogs asks one slave for its lines.
func (m *Master) openNodeLogs(ctx context.Context, src logSource, lq logQuery) (io.ReadCloser, error) {
	q := url.Values{"tail": {strconv.Itoa(lq.tail)}}
	for _, inst := range src.instances {
		q.Add("instance", inst)
	}
	if lq.follow {
		q.Set("follow", "1")
	}
	u := url.URL{Scheme: "http", Host: src.addr, Path: "/logs/" + src.service, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("gdpm: logs of node %s: %w", src.node, err)
	}
	if m.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+m.cfg.Token)
	}
	resp, err := m.logClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gdpm: logs of node %s at %s: %v: %w", src.node, src.addr, err, ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("gdpm: logs of node %s: %s: %s: %w", src.node, resp.Status, b, ErrUnavailable)
	}
	return resp.Body, nil
}

// copyLogStreams writes the nodes' lines to w: one node after another when
// the answer is finite (so each instance's lines stay together), all at
// once as they come when following.
func (m *Master) copyLogStreams(ctx context.Context, w http.ResponseWriter, bodies []io.ReadCloser, follow bool) {
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	var mu sync.Mutex // one writer at a time
	broken := false
	send := func(line []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return false
		}
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := w.Write(line)
		if err == nil && follow {
			err = rc.Flush()
		}
		broken = err != nil
		return !broken
	}
	relay := func(body io.Reader) {
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 0, 64<<10), 8*MaxLogLine)
		for sc.Scan() {
			if !send(append(sc.Bytes(), '\n')) {
				return
			}
		}
	}
	if !follow {
		for _, b := range bodies {
			relay(b)
		}
		return
	}
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Go(func() { relay(b) })
	}
	// The stream ends with the request, the master, or once every node's
	// part has ended (their slaves went away).
	stop := context.AfterFunc(ctx, func() { closeAll(bodies) })
	defer stop()
	wg.Wait()
}

func closeAll(bodies []io.ReadCloser) {
	for _, b := range bodies {
		b.Close()
	}
}
