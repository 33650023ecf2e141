package gdpm

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The slave's log server: GET /logs/SERVICE?instance=ID&tail=N&follow=1
// answers the lines of the instance logs in the slave's data dir as
// newline-delimited LogLines. Only masters call it (they merge the
// answers of every slave into GET /service/:id/logs), with the cluster
// token; its address is in the slave's node record.

// logPollInterval is how often a follow looks for new lines.
const logPollInterval = 100 * time.Millisecond

// logHeartbeat is how often an idle follow sends an empty line, which
// tells a dead reader apart and keeps proxies from closing the stream.
const logHeartbeat = 10 * time.Second

// maxLogTail bounds tail=N.
const maxLogTail = 100_000

type logServer struct {
	dir   string // DataDir/logs
	token string
	log   *slog.Logger
	node  func() string // the node id, for LogLine.Node

	ln     net.Listener
	srv    *http.Server
	ctx    context.Context // ends the follows on close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startLogServer listens on addr and serves in the background.
// With tlsCfg the log server speaks TLS (and tlsCfg checks the masters'
// client certificates); ln keeps the plain listener for its address.
func startLogServer(addr, dir, token string, tlsCfg *tls.Config, limits ServerLimits, node func() string, log *slog.Logger) (*logServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gdpm: log server: %w", err)
	}
	limits = limits.withDefaults()
	refusal := refuseHTTP // plain HTTP: under TLS a refused connection is just closed
	if tlsCfg != nil {
		refusal = ""
	}
	ln = newLimitListener(ln, "logs", limits.MaxConns, refusal, log)
	serveLn := ln
	if tlsCfg != nil {
		serveLn = tls.NewListener(ln, tlsCfg)
	}
	ls := &logServer{dir: dir, token: token, log: log, node: node, ln: ln}
	ls.ctx, ls.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs/{service}", ls.handle)
	ls.srv = limits.httpServer(mux, log)
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		ls.srv.Serve(serveLn)
	}()
	return ls, nil
}

// advertise is the address to register: the listener's, with an
// unspecified host replaced by local, the address this host used to reach
// a master (so the master can reach us back the same way).
func (ls *logServer) advertise(local net.IP) string {
	tcp := ls.ln.Addr().(*net.TCPAddr)
	ip := tcp.IP
	if ip.IsUnspecified() && local != nil {
		ip = local
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

func (ls *logServer) Close() {
	ls.cancel()
	ls.srv.Close()
	ls.wg.Wait()
}

// logQuery is a parsed log request.
type logQuery struct {
	instances []string // empty: all
	tail      int      // the last lines, across instances and streams; 0: none
	follow    bool
}

// parseLogQuery reads instance, tail and follow; bad values are
// ErrBadRequest. tail defaults to DefaultLogTail, -1 means none.
func parseLogQuery(q map[string][]string) (logQuery, error) {
	lq := logQuery{tail: DefaultLogTail}
	// Strict, as the API's bodies: a misspelt or repeated parameter is
	// refused rather than read as something else.
	for _, k := range sortedKeys(q) {
		switch {
		case k != "instance" && k != "tail" && k != "follow":
			return lq, fmt.Errorf("unknown query parameter %q: the parameters are instance, tail and follow: %w", k, ErrBadRequest)
		case k != "instance" && len(q[k]) > 1:
			return lq, fmt.Errorf("query parameter %q is given %d times: %w", k, len(q[k]), ErrBadRequest)
		}
	}
	for _, v := range q["instance"] {
		for id := range strings.SplitSeq(v, ",") {
			if !pathSafeID(id) {
				return lq, fmt.Errorf("instance %q is not an instance id: %w", id, ErrBadRequest)
			}
			lq.instances = append(lq.instances, id)
		}
	}
	if v := first(q["tail"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 || n > maxLogTail {
			return lq, fmt.Errorf("tail must be a number of lines from -1 (none) to %d, not %q: %w", maxLogTail, v, ErrBadRequest)
		}
		lq.tail = max(n, 0)
	}
	switch v := first(q["follow"]); v {
	case "", "0", "false":
	case "1", "true":
		lq.follow = true
	default:
		return lq, fmt.Errorf("follow must be 1 or 0, not %q: %w", v, ErrBadRequest)
	}
	return lq, nil
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func (ls *logServer) handle(w http.ResponseWriter, r *http.Request) {
	if !bearerOK(r, ls.token) {
		writeError(w, http.StatusUnauthorized, "missing or wrong token")
		return
	}
	svc := r.PathValue("service")
	lq, err := parseLogQuery(r.URL.Query())
	if err == nil && !pathSafeID(svc) {
		err = fmt.Errorf("log files: bad id %q: %w", svc, ErrBadRequest)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, apiMessage(err))
		return
	}
	insts := lq.instances
	if len(insts) == 0 {
		insts = ls.instancesOf(svc)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(ls.ctx, cancel)()
	streamLogs(ctx, w, ls.node(), ls.dir, svc, insts, lq)
}

// instancesOf lists the instances of svc that have log files here.
func (ls *logServer) instancesOf(svc string) []string {
	ents, err := os.ReadDir(filepath.Join(ls.dir, svc))
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range ents {
		if id, ok := logFileInstance(e.Name()); ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// logTailEnd is the line a slave sends after the tail of a follow (when
// it set the logTailEndHeader), so that a master can merge the tails of
// several nodes by time before it relays their new lines. No LogLine
// encodes to it.
var logTailEnd = []byte(`{"TailEnd":true}`)

const logTailEndHeader = "Gdpm-Log-Tail-End"

// taggedItem is a logItem of one instance's stream.
type taggedItem struct {
	logItem
	inst   string
	stream LogStreamName
}

// sortByTime orders items by capture time; items of equal time keep their
// order (a stream's own order, then instance and stream order).
func sortByTime(items []taggedItem) {
	slices.SortStableFunc(items, func(a, b taggedItem) int { return cmp.Compare(a.t, b.t) })
}

// streamLogs writes the last lq.tail lines of the instances' streams (the
// newest by capture time, across every instance and stream), oldest first;
// then with follow the new lines of all of them as they come, until ctx
// ends. A follow orders the lines of each poll by time: lines captured
// within one logPollInterval of each other may come out of order when
// they arrive in different polls, never otherwise.
func streamLogs(ctx context.Context, w http.ResponseWriter, node, dir, svc string, insts []string, lq logQuery) {
	rc := http.NewResponseController(w)
	if lq.follow {
		streamDeadlines(rc)
	}
	defer rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	if lq.follow {
		w.Header().Set(logTailEndHeader, "1")
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var failed error
	sent := 0
	send := func(items []taggedItem) {
		sortByTime(items)
		for _, it := range items {
			if failed != nil {
				return
			}
			l := LogLine{Service: svc, Instance: it.inst, Node: node, Stream: it.stream, Line: string(it.line), Mark: it.mark}
			if it.mark != "" {
				l.Stream = "" // no output, though kept in the stdout index
			}
			if it.t != 0 {
				l.Time = time.Unix(0, it.t).UTC()
			}
			failed = enc.Encode(l)
			sent++
		}
	}
	var batch []taggedItem
	collector := func(inst string, s LogStreamName) func(logItem) {
		return func(it logItem) {
			it.line = bytes.Clone(it.line) // the cursor reuses its buffers
			batch = append(batch, taggedItem{it, inst, s})
		}
	}
	type followed struct {
		c    *logCursor
		emit func(logItem)
	}
	var cursors []followed
	defer func() {
		for _, f := range cursors {
			f.c.Close()
		}
	}()
	for _, inst := range insts {
		for _, s := range []LogStreamName{Stdout, Stderr} {
			path, err := logFilePath(dir, svc, inst, s)
			if err != nil {
				continue
			}
			emit := collector(inst, s)
			c, err := openLogCursor(path, lq.tail, emit)
			if err != nil {
				continue // unreadable: as if empty
			}
			if !lq.follow {
				// The unfinished last line belongs to a finished answer.
				c.finish(emit)
				c.Close()
				continue
			}
			cursors = append(cursors, followed{c, emit})
		}
	}
	// Each stream gave its last lq.tail: the last lq.tail of them all.
	sortByTime(batch)
	if len(batch) > lq.tail {
		batch = batch[len(batch)-lq.tail:]
	}
	send(batch)
	batch = nil
	if lq.follow && failed == nil {
		bw.Write(logTailEnd)
		bw.WriteByte('\n')
	}
	flush := func() bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		return failed == nil && bw.Flush() == nil && rc.Flush() == nil
	}
	if !flush() || !lq.follow {
		return
	}
	tick := time.NewTicker(logPollInterval)
	defer tick.Stop()
	idle := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, f := range cursors {
			f.c.poll(f.emit) // an unreadable file is as if empty, and may heal
		}
		n := len(batch)
		send(batch)
		batch = batch[:0]
		switch {
		case n > 0:
			idle = time.Now()
		case time.Since(idle) >= logHeartbeat:
			bw.WriteByte('\n')
			idle = time.Now()
		default:
			continue
		}
		if !flush() {
			return
		}
	}
}
