package gdpm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/capy-pl/gdpm/internal/backoff"
)

// ClientConfig configures NewClient. Zero fields take the documented defaults.
type ClientConfig struct {
	// Addr is the master's base URL. Default DefaultClientAddr
	// ("http://127.0.0.1:8989"). A "host:port" without a scheme gets
	// "http://"; a path ("https://proxy/gdpm") is kept as a prefix of every
	// route.
	Addr string
	// Token, when set, is sent as "Authorization: Bearer TOKEN".
	Token string
	// CAHash pins the cluster CA of an https:// master ("sha256:HEX", as
	// the master prints at start): the master's certificate must chain to
	// it. RootCAs trusts a pool instead. Neither: the system's roots.
	// Both are ignored when HTTPClient is set.
	CAHash  string
	RootCAs *x509.CertPool
	// Retries is how many times CreateService and ScaleService are sent
	// again after a transport error, a 503 or a 504, waiting 250ms, then
	// twice as long each time up to 4s (jittered), and never beyond ctx.
	// Both are safe to repeat: a scale sets a count, and a create carries
	// an Idempotency-Key, the same on every attempt. Default
	// DefaultClientRetries (4); negative means none.
	Retries int
	// HTTPClient sends the requests. Default: a client with a
	// DefaultClientTimeout (30s) timeout. Streaming routes (Events) send
	// through a copy without the timeout; their context bounds them.
	HTTPClient *http.Client
}

// Client speaks the master's HTTP API. It is safe for concurrent use.
type Client struct {
	base    string // scheme://host[/escaped/prefix], no trailing slash
	token   string
	retries int
	hc      *http.Client
	stream  *http.Client // hc without its timeout
}

// NewClient checks cfg and returns a client. It does not touch the network.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := parseBaseURL(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: Addr %q: %v", ErrInvalidConfig, cfg.Addr, err)
	}
	for _, r := range cfg.Token {
		// A control byte would let a token split the header.
		if r < 0x20 || r == 0x7f {
			return nil, fmt.Errorf("%w: Token contains a control character", ErrInvalidConfig)
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultClientTimeout}
		if cfg.CAHash != "" || cfg.RootCAs != nil {
			dial, err := ClientTLS(cfg.CAHash, cfg.RootCAs)
			if err != nil {
				return nil, err
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.DialTLSContext = dial
			hc.Transport = tr
		}
	}
	stream := *hc
	stream.Timeout = 0
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = DefaultClientRetries
	case retries < 0:
		retries = 0
	}
	return &Client{base: base, token: cfg.Token, retries: retries, hc: hc, stream: &stream}, nil
}

func parseBaseURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		addr = DefaultClientAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("scheme must be http or https, got %q", u.Scheme)
	case u.Host == "":
		return "", errors.New("no host")
	case u.User != nil:
		return "", errors.New("user info is not supported: use Token")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", errors.New("must not have a query or fragment")
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// APIError is a non-2xx answer from the master. errors.Is(err, ErrNotFound)
// and the other sentinels work through Unwrap, by the table the master
// answers with: 400 is ErrBadRequest, 413 ErrTooLarge and 415
// ErrUnsupportedMedia (both also ErrBadRequest), 401 ErrUnauthorized, 403
// ErrForbidden, 404 ErrNotFound, 409 ErrConflict, 503 ErrUnavailable and
// 504 ErrOutcomeUnknown.
type APIError struct {
	StatusCode int    // the HTTP status
	Message    string // the body's "error" field, or a short excerpt of a non-JSON body
}

func (e *APIError) Error() string {
	return fmt.Sprintf("gdpm: %s (HTTP %d)", e.Message, e.StatusCode)
}

// Unwrap returns the sentinel error for the status, or nil.
func (e *APIError) Unwrap() error { return errorOf(e.StatusCode) }

// Nodes lists the registered nodes (GET /node/).
func (c *Client) Nodes(ctx context.Context) (NodeList, error) {
	var out NodeList
	err := c.do(ctx, http.MethodGet, apiPath("node"), nil, &out)
	return out, err
}

// Node lists the services with instances on node id (GET /node/:id/).
func (c *Client) Node(ctx context.Context, id string) (NodeServices, error) {
	var out NodeServices
	if err := checkID("node", id); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodGet, apiPath("node", id), nil, &out)
	return out, err
}

// Services lists every service, oldest first (GET /service/).
func (c *Client) Services(ctx context.Context) ([]ServiceSummary, error) {
	var out ServiceList
	if err := c.do(ctx, http.MethodGet, apiPath("service"), nil, &out); err != nil {
		return nil, err
	}
	if out.Services == nil {
		out.Services = []ServiceSummary{}
	}
	return out.Services, nil
}

// Service describes one service and its instances (GET /service/:id/).
func (c *Client) Service(ctx context.Context, id string) (ServiceDetail, error) {
	var out ServiceDetail
	if err := checkID("service", id); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodGet, apiPath("service", id), nil, &out)
	return out, err
}

// CreateService creates a service and returns its id (POST /service/).
// It sends a new Idempotency-Key, so its retries (ClientConfig.Retries)
// never create a second service.
func (c *Client) CreateService(ctx context.Context, req CreateRequest) (string, error) {
	return c.CreateServiceWithKey(ctx, uuid.NewString(), req)
}

// CreateServiceWithKey is CreateService with the caller's Idempotency-Key:
// a program that may itself be restarted keeps the key with its intent,
// and a create sent again with the same key and request, within
// IdempotencyKeyTTL, answers the same id and creates nothing. The same key
// with another request is an error wrapping ErrConflict.
func (c *Client) CreateServiceWithKey(ctx context.Context, key string, req CreateRequest) (string, error) {
	var id string
	hdr := http.Header{IdempotencyKeyHeader: {key}}
	if err := c.retry(ctx, func() error { return c.do(ctx, http.MethodPost, apiPath("service"), req, &id, hdr) }); err != nil {
		return "", err
	}
	// The body is the bare id; anything else (an HTML page from a proxy
	// answering 200) must not be mistaken for one.
	if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("gdpm: create service: the answer is not a service id: %.60q", id)
	}
	return id, nil
}

// ScaleService sets how many instances of service id should run
// (POST /service/:id/, a ScaleRequest). Unlike CreateRequest.InstanceNum,
// n is not optional here, hence an int.
func (c *Client) ScaleService(ctx context.Context, id string, n int) error {
	if err := checkID("service", id); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("gdpm: instance count must not be negative, got %d: %w", n, ErrBadRequest)
	}
	return c.retry(ctx, func() error {
		return c.do(ctx, http.MethodPost, apiPath("service", id), ScaleRequest{InstanceNum: &n}, nil)
	})
}

// retry calls send until it succeeds, fails in a way a retry cannot mend,
// or c.retries retries are spent or ctx ends; it returns the last error.
// Retried: transport errors (no answer), 503 (nothing was written) and
// 504 (the outcome is unknown: only for requests safe to repeat).
func (c *Client) retry(ctx context.Context, send func() error) error {
	for attempt := 0; ; attempt++ {
		err := send()
		if err == nil || attempt >= c.retries || ctx.Err() != nil || !retriable(err) {
			return err
		}
		if !sleepCtx(ctx, retryWait(attempt, 250*time.Millisecond, 4*time.Second)) {
			return err
		}
	}
}

func retriable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode == http.StatusServiceUnavailable || ae.StatusCode == http.StatusGatewayTimeout
	}
	// Not an answer from the master: the request or the answer was lost
	// on the way. Errors of our own making (encoding) are not retried.
	var ue *url.Error
	return errors.As(err, &ue)
}

// DeleteService stops every instance of service id and removes it
// (DELETE /service/:id/).
func (c *Client) DeleteService(ctx context.Context, id string) error {
	if err := checkID("service", id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, apiPath("service", id), nil, nil)
}

// checkID refuses an empty id locally: "/service//" would name a different
// route, not an unknown service.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("gdpm: empty %s id: %w", what, ErrBadRequest)
	}
	return nil
}

// apiPath joins route segments into an escaped path with the seed API's
// trailing slash: apiPath("service", id) is "/service/<id>/". Every segment
// is escaped, so an id can never reach another route.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	b.WriteByte('/')
	return b.String()
}

// newRequest builds a request for path (from apiPath) under the base URL,
// with the token and, when query is not empty, a query string. Streaming
// routes use it directly and read the response themselves.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Request, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("gdpm: %s %s: %w", method, path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "gdpm-client/"+Version)
	return req, nil
}

// send performs req and turns a non-2xx answer into an *APIError, closing
// its body. On success the caller owns resp.Body.
func (c *Client) send(hc *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error already names the method and URL.
		return nil, fmt.Errorf("gdpm: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return nil, apiError(resp.StatusCode, b)
}

func apiError(status int, body []byte) *APIError {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return &APIError{StatusCode: status, Message: eb.Error}
	}
	// Not gdpm's JSON: a proxy page or a plain-text error. Keep a short,
	// single-line excerpt.
	msg := strings.Join(strings.Fields(string(body)), " ")
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	if msg == "" {
		msg = strings.ToLower(http.StatusText(status))
	}
	if msg == "" {
		msg = "status " + strconv.Itoa(status)
	}
	return &APIError{StatusCode: status, Message: msg}
}

// do sends body (JSON-encoded unless nil) to path and decodes the answer
// into out: a *string receives the plain-text body trimmed of white space,
// nil discards the body, anything else is decoded as JSON.
func (c *Client) do(ctx context.Context, method, path string, body, out any, header ...http.Header) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("gdpm: %s %s: encode request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, nil, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for _, h := range header {
		for k, vs := range h {
			req.Header[k] = vs
		}
	}
	resp, err := c.send(c.hc, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("gdpm: %s %s: read response: %w", method, path, err)
	}
	if len(b) > MaxResponseBytes {
		return fmt.Errorf("gdpm: %s %s: response exceeds %d bytes", method, path, MaxResponseBytes)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *string:
		*o = strings.TrimSpace(string(b))
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("gdpm: %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// Events opens the cluster's event stream (GET /events). With since > 0 it
// resumes after that etcd revision, replaying what happened since;
// otherwise it starts now. Once Events returns the stream is open, so every
// change made after that is in it. Only ctx ends the stream (and Close):
// the HTTPClient's timeout does not apply. A since that etcd has compacted
// away is an *APIError with StatusCode 410 (http.StatusGone): start again
// with since 0.
func (c *Client) Events(ctx context.Context, since int64) (*EventStream, error) {
	var query url.Values
	if since > 0 {
		query = url.Values{"since": {strconv.FormatInt(since, 10)}}
	}
	st := ndjsonStream{what: "events", kind: "an event stream", end: "the master ended the stream"}
	h, err := c.openNDJSON(ctx, &st, apiPath("events"), query, MaxResponseBytes)
	if err != nil {
		return nil, err
	}
	rev := since
	if r, err := strconv.ParseInt(h.Get(RevisionHeader), 10, 64); err == nil {
		rev = max(rev, r)
	}
	return &EventStream{st: st, rev: rev}, nil
}

// ndjsonStream reads an open newline-delimited JSON answer (GET /events,
// GET /service/:id/logs): one value a line; empty lines, and lines that
// start with ':', are heartbeats.
type ndjsonStream struct {
	what string // the errors' prefix: "events", "logs"
	kind string // what the answer should have been: "an event stream"
	end  string // what the end of the stream means
	ctx  context.Context
	body io.ReadCloser
	sc   *bufio.Scanner
}

// openNDJSON sends GET path?query and opens st on the answer, which must
// be application/x-ndjson with lines of at most maxLine bytes; it returns
// the answer's header. Only ctx (and closing the body) ends the stream.
func (c *Client) openNDJSON(ctx context.Context, st *ndjsonStream, path string, query url.Values, maxLine int) (http.Header, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.send(c.stream, req)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/x-ndjson" {
		resp.Body.Close()
		return nil, fmt.Errorf("gdpm: %s: the answer is %q, not %s", st.what, mt, st.kind)
	}
	st.ctx, st.body = ctx, resp.Body
	st.sc = bufio.NewScanner(resp.Body)
	st.sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return resp.Header, nil
}

// next decodes the next value into v. At the end it returns the context's
// error (wrapped) when ctx was cancelled, else one wrapping io.EOF.
func (s *ndjsonStream) next(v any) error {
	for s.sc.Scan() {
		line := bytes.TrimSpace(s.sc.Bytes())
		if len(line) == 0 || line[0] == ':' {
			continue // a heartbeat
		}
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("gdpm: %s: bad line %.60q: %w", s.what, line, err)
		}
		return nil
	}
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("gdpm: %s: %w", s.what, err)
	}
	if err := s.sc.Err(); err != nil {
		return fmt.Errorf("gdpm: %s: %w", s.what, err)
	}
	return fmt.Errorf("gdpm: %s: %s: %w", s.what, s.end, io.EOF)
}

// EventStream is an open GET /events stream: Next reads its events in
// order. It is not safe for concurrent use.
type EventStream struct {
	st  ndjsonStream
	rev int64
}

// Next waits for the next event. Once the stream has ended it returns an
// error: the context's (wrapped) when it was cancelled, one wrapping
// io.EOF when the master ended the stream (it closed, or fell too far
// behind); resume with Events(ctx, s.Revision()).
func (s *EventStream) Next() (Event, error) {
	var ev Event
	if err := s.st.next(&ev); err != nil {
		return Event{}, err
	}
	s.rev = max(s.rev, ev.Revision)
	return ev, nil
}

// Revision is the revision of the last event read, or before the first
// the one the stream started after: the point to resume from.
func (s *EventStream) Revision() int64 { return s.rev }

// Close ends the stream; Next returns an error afterwards. Close may be
// called while Next waits in another goroutine, to end the wait.
func (s *EventStream) Close() error { return s.st.body.Close() }

// LogsOptions selects what Logs returns.
type LogsOptions struct {
	// Instance limits the lines to one instance; "" means all of the
	// service's instances.
	Instance string
	// Tail is how many of the last lines to send first, counted across
	// every instance and stream (and marker lines), newest by capture
	// time; 0 means the master's default (DefaultLogTail), a negative
	// value none (with Follow: only new lines).
	Tail int
	// Follow keeps the stream open and sends new lines as they are
	// written, across log rotation, until ctx ends.
	Follow bool
}

// Logs opens GET /service/:id/logs: the last lines the instances of
// service wrote to stdout and stderr, interleaved by capture time
// (LogLine.Time) with marker lines (LogLine.Mark) where a process started
// or exited, then with Follow the new lines as they come (ordered by time
// within each node's poll, see LogLine). Instances still pending have no logs. Only ctx ends a
// following stream (and Close): the HTTPClient's timeout does not apply.
func (c *Client) Logs(ctx context.Context, service string, opts LogsOptions) (*LogStream, error) {
	if err := checkID("service", service); err != nil {
		return nil, err
	}
	query := url.Values{}
	if opts.Instance != "" {
		query.Set("instance", opts.Instance)
	}
	if opts.Tail != 0 {
		query.Set("tail", strconv.Itoa(max(opts.Tail, -1)))
	}
	if opts.Follow {
		query.Set("follow", "1")
	}
	st := ndjsonStream{what: "logs", kind: "a log stream", end: "end of stream"}
	// A line is at most MaxLogLine bytes, more once escaped as JSON.
	if _, err := c.openNDJSON(ctx, &st, apiPath("service", service, "logs"), query, 8*MaxLogLine); err != nil {
		return nil, err
	}
	return &LogStream{st: st}, nil
}

// LogStream is an open GET /service/:id/logs stream. It is not safe for
// concurrent use.
type LogStream struct {
	st ndjsonStream
}

// Next waits for the next line. At the end it returns an error wrapping
// io.EOF (all lines sent, or the master ended a follow), or the context's
// error when ctx was cancelled.
func (s *LogStream) Next() (LogLine, error) {
	var l LogLine
	if err := s.st.next(&l); err != nil {
		return LogLine{}, err
	}
	return l, nil
}

// Close ends the stream; it may be called while Next waits.
func (s *LogStream) Close() error { return s.st.body.Close() }

// ApplyService makes the service called spec.Name match spec, creating it
// when there is none (PUT /service/:name/); the answer says whether it was
// created, updated or unchanged.
func (c *Client) ApplyService(ctx context.Context, spec CreateRequest) (ApplyResult, error) {
	var out ApplyResult
	if err := checkID("service", spec.Name); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodPut, apiPath("service", spec.Name), spec, &out)
	return out, err
}

// StopService stops every instance of a service and keeps its InstanceNum
// (POST /service/:id/stop/); id may be the service's name.
func (c *Client) StopService(ctx context.Context, id string) error {
	return c.lifecycle(ctx, id, "stop")
}

// StartService starts a stopped service again (POST /service/:id/start/).
func (c *Client) StartService(ctx context.Context, id string) error {
	return c.lifecycle(ctx, id, "start")
}

// RestartService replaces every instance of a service, one index at a
// time, as a rollout does (POST /service/:id/restart/).
func (c *Client) RestartService(ctx context.Context, id string) error {
	return c.lifecycle(ctx, id, "restart")
}

func (c *Client) lifecycle(ctx context.Context, id, verb string) error {
	if err := checkID("service", id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, apiPath("service", id, verb), nil, nil)
}

// WaitRunning waits until exactly n instances of service id (an id or a
// name) are running, and returns the service as it was then. It asks the
// API every 50 ms at first, backing off to every second, so that a program
// that starts a service need not write that loop itself. It ends with
// ctx's error (wrapped, with the last count seen) or with the first error
// of the API that is not ErrUnavailable (ErrNotFound: the service is
// gone). n = 0 waits until none runs.
func (c *Client) WaitRunning(ctx context.Context, id string, n int) (ServiceDetail, error) {
	if n < 0 {
		return ServiceDetail{}, fmt.Errorf("%w: WaitRunning for %d instances", ErrBadRequest, n)
	}
	wait := backoff.NewDelay(50*time.Millisecond, time.Second)
	last := "no answer yet"
	for {
		d, err := c.Service(ctx, id)
		switch {
		case err == nil:
			running := 0
			for _, in := range d.Instances {
				if in.State == StateRunning {
					running++
				}
			}
			if running == n {
				return d, nil
			}
			last = fmt.Sprintf("%d of %d instances running", running, n)
		case ctx.Err() != nil:
			return ServiceDetail{}, fmt.Errorf("gdpm: wait for %d running instances of %s (%s): %w", n, id, last, ctx.Err())
		case errors.Is(err, ErrUnavailable):
			last = err.Error()
		default:
			return ServiceDetail{}, err
		}
		if !wait.Wait(ctx) {
			return ServiceDetail{}, fmt.Errorf("gdpm: wait for %d running instances of %s (%s): %w", n, id, last, ctx.Err())
		}
	}
}
