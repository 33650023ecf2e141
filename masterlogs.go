package gdpm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	clientv3 "go.etcd.io/etcd/client/v3"
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
	rctx, rcancel := m.etcdCtx(r)
	svc, err := m.resolveService(rctx, p.ByName("id"))
	rcancel()
	if err != nil {
		m.fail(w, r, err)
		return
	}
	sources, rev, err := m.logSources(r, svc, lq.instances)
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
	defer closeAll(bodies)
	var wg sync.WaitGroup
	errs := make([]error, len(sources))
	marked := make([]bool, len(sources))
	for i, src := range sources {
		wg.Go(func() { bodies[i], marked[i], errs[i] = m.openNodeLogs(ctx, src, lq) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			m.fail(w, r, err)
			return
		}
	}
	// The tails of every node, merged by time: the last lq.tail of all.
	scanners := make([]*bufio.Scanner, len(bodies))
	tails := make([][]timedLine, len(bodies))
	for i, b := range bodies {
		scanners[i] = newLogScanner(b)
		if !lq.follow || marked[i] {
			wg.Go(func() { tails[i] = readTail(scanners[i]) })
		}
	}
	wg.Wait()
	out := newLogRelay(w)
	for _, l := range mergeTails(tails, lq.tail) {
		if !out.send(l.line) {
			return
		}
	}
	if !lq.follow {
		return
	}
	for i, b := range bodies {
		out.add(b, scanners[i], pairsOf(sources[i]))
	}
	m.followPlacements(ctx, svc, lq, rev, out)
	// Closing the streams ends their relays.
	cancel()
	out.closeStreams()
	out.wait()
}

// timedLine is one line of a slave's answer (with its newline) and the
// time it carries.
type timedLine struct {
	t    time.Time
	line []byte
}

func newLogScanner(body io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(body)
	// A line is at most MaxLogLine bytes, more once escaped as JSON.
	sc.Buffer(make([]byte, 0, 64<<10), 8*MaxLogLine)
	return sc
}

// readTail reads a slave's tail: to the end of the answer, or to the
// logTailEnd line of a follow.
func readTail(sc *bufio.Scanner) []timedLine {
	var out []timedLine
	for sc.Scan() {
		b := sc.Bytes()
		if bytes.Equal(b, logTailEnd) {
			break
		}
		if len(b) == 0 {
			continue
		}
		var l struct{ Time time.Time }
		json.Unmarshal(b, &l) // a line without a time sorts first
		out = append(out, timedLine{t: l.Time, line: append(bytes.Clone(b), '\n')})
	}
	return out
}

// mergeTails merges the nodes' tails (each in time order) by time and
// keeps the last n; lines of equal time keep node order.
func mergeTails(tails [][]timedLine, n int) []timedLine {
	var all []timedLine
	for _, t := range tails {
		all = append(all, t...)
	}
	slices.SortStableFunc(all, func(a, b timedLine) int { return a.t.Compare(b.t) })
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all
}

// followPlacements opens a stream for every instance placed on a node
// after revision rev (a scale-up, a move off a lost or draining node), so
// that a follow goes on wherever the service runs, and sends a heartbeat
// while nothing else is sent. It returns when ctx ends or the watch fails.
func (m *Master) followPlacements(ctx context.Context, svc string, lq logQuery, rev int64, out *logRelay) {
	wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), m.k.assignAll(), clientv3.WithPrefix(),
		clientv3.WithFilterDelete(), clientv3.WithRev(rev+1))
	heartbeat := time.NewTicker(logHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if !out.send([]byte("\n")) {
				return
			}
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return
			}
			for _, ev := range wr.Events {
				node, s, inst, ok := m.k.splitAssign(string(ev.Kv.Key))
				if !ok || s != svc || len(lq.instances) > 0 && inst != lq.instances[0] || out.following(node+"/"+inst) {
					continue
				}
				src := logSource{node: node, service: svc, instances: []string{inst}}
				if src.addr, ok = m.nodeLogAddr(ctx, node); !ok {
					continue
				}
				b, _, err := m.openNodeLogs(ctx, src, lq)
				if err != nil {
					m.log.Warn("logs: cannot follow a new instance", "service", svc, "instance", inst, "err", err)
					continue
				}
				out.add(b, newLogScanner(b), pairsOf(src))
			}
		}
	}
}

// nodeLogAddr reads where node serves its logs.
func (m *Master) nodeLogAddr(ctx context.Context, node string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Get(ctx, m.k.node(node))
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	var n Node
	if json.Unmarshal(resp.Kvs[0].Value, &n) != nil || n.LogAddr == "" {
		return "", false
	}
	return n.LogAddr, true
}

func pairsOf(src logSource) []string {
	pairs := make([]string, len(src.instances))
	for i, inst := range src.instances {
		pairs[i] = src.node + "/" + inst
	}
	return pairs
}

// logRelay writes the lines of several node streams to one response, one
// line at a time.
type logRelay struct {
	w  http.ResponseWriter
	rc *http.ResponseController

	mu      sync.Mutex
	broken  bool
	streams map[io.ReadCloser][]string // open follow streams -> node/instance pairs
	pairs   map[string]bool
	wg      sync.WaitGroup
}

func newLogRelay(w http.ResponseWriter) *logRelay {
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &logRelay{w: w, rc: http.NewResponseController(w), streams: map[io.ReadCloser][]string{}, pairs: map[string]bool{}}
	streamDeadlines(out.rc)
	out.flush()
	return out
}

func (o *logRelay) flush() {
	o.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if o.rc.Flush() != nil {
		o.broken = true
	}
}

// send writes one line (with its newline) and flushes it.
func (o *logRelay) send(line []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken {
		return false
	}
	o.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := o.w.Write(line); err != nil {
		o.broken = true
		return false
	}
	o.flush()
	return !o.broken
}

// copy relays a stream to its end; false once the client is gone. A
// new instance's tail is relayed as it comes, without its logTailEnd.
func (o *logRelay) copy(sc *bufio.Scanner) bool {
	for sc.Scan() {
		if bytes.Equal(sc.Bytes(), logTailEnd) {
			continue
		}
		if !o.send(append(sc.Bytes(), '\n')) {
			return false
		}
	}
	return true
}

// add relays a follow stream on its own goroutine until it ends; pairs
// are the node/instance pairs it carries, followed while it lasts.
func (o *logRelay) add(body io.ReadCloser, sc *bufio.Scanner, pairs []string) {
	o.mu.Lock()
	o.streams[body] = pairs
	for _, p := range pairs {
		o.pairs[p] = true
	}
	o.mu.Unlock()
	o.wg.Go(func() {
		o.copy(sc)
		body.Close()
		o.mu.Lock()
		for _, p := range o.streams[body] {
			delete(o.pairs, p)
		}
		delete(o.streams, body)
		o.mu.Unlock()
	})
}

// following reports whether a stream carries node/instance pair.
func (o *logRelay) following(pair string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pairs[pair]
}

func (o *logRelay) closeStreams() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for b := range o.streams {
		b.Close()
	}
}

func (o *logRelay) wait() { o.wg.Wait() }

// logSource is one node's part of a logs request.
type logSource struct {
	node, addr, service string
	instances           []string
}

// logSources resolves the service's instances (or the one asked for) to
// the nodes they are placed on, in node order, at the returned revision;
// pending instances have no logs yet.
func (m *Master) logSources(r *http.Request, svc string, only []string) ([]logSource, int64, error) {
	ctx, cancel := m.etcdCtx(r)
	defer cancel()
	s, _, rev, err := m.getService(ctx, svc)
	if err != nil {
		return nil, 0, err
	}
	t, err := m.readInstances(ctx, rev, s.ID)
	if err != nil {
		return nil, 0, err
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
			return nil, 0, fmt.Errorf("service %q has no instance %q: %w", s.ID, only[0], ErrNotFound)
		}
	}
	if len(byNode) == 0 {
		return nil, rev, nil
	}
	nodes, _, err := m.readNodes(ctx)
	if err != nil {
		return nil, 0, err
	}
	var out []logSource
	for _, n := range nodes {
		insts, ok := byNode[n.ID]
		if !ok {
			continue
		}
		if n.LogAddr == "" {
			return nil, 0, fmt.Errorf("node %s serves no logs (gdpm %s): %w", n.ID, n.Version, ErrUnavailable)
		}
		slices.Sort(insts)
		out = append(out, logSource{node: n.ID, addr: n.LogAddr, service: s.ID, instances: insts})
	}
	return out, rev, nil
}

// openNodeLogs asks one slave for its lines; marked says that a follow
// ends its tail with logTailEnd (a slave before capture times does not).
func (m *Master) openNodeLogs(ctx context.Context, src logSource, lq logQuery) (_ io.ReadCloser, marked bool, _ error) {
	q := url.Values{"tail": {strconv.Itoa(lq.tail)}}
	for _, inst := range src.instances {
		q.Add("instance", inst)
	}
	if lq.follow {
		q.Set("follow", "1")
	}
	u := url.URL{Scheme: m.logScheme(), Host: src.addr, Path: "/logs/" + src.service, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, fmt.Errorf("gdpm: logs of node %s: %w", src.node, err)
	}
	if m.cfg.Token != "" && m.sec == nil {
		req.Header.Set("Authorization", "Bearer "+m.cfg.Token)
	}
	resp, err := m.logClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("gdpm: logs of node %s at %s: %v: %w", src.node, src.addr, err, ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, false, fmt.Errorf("gdpm: logs of node %s: %s: %s: %w", src.node, resp.Status, b, ErrUnavailable)
	}
	return resp.Body, resp.Header.Get(logTailEndHeader) != "", nil
}

func closeAll(bodies []io.ReadCloser) {
	for _, b := range bodies {
		b.Close()
	}
}
