package gdpm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/connectivity"

	"github.com/capy-pl/gdpm/internal/backoff"
	"github.com/capy-pl/gdpm/internal/netaddr"
)

// MasterConfig configures a Master. Zero fields take the defaults noted.
type MasterConfig struct {
	// Endpoints are the etcd client URLs. Required.
	Endpoints []string
	// AdvertiseEndpoints are the etcd URLs handed to slaves at
	// registration. Default: Endpoints.
	AdvertiseEndpoints []string
	// Prefix is the etcd key prefix. Default DefaultPrefix ("/gdpm/").
	Prefix string
	// HTTPAddr is the API's listen address. Empty means DefaultHTTPAddr
	// ("127.0.0.1:8989"); port 0 takes any free port, which HTTPAddr()
	// then tells (an embedding program, a test). ListenerOff ("-") serves
	// no API: for a program that mounts Handler() in a server of its own.
	HTTPAddr string
	// TCPAddr is the slave registration address. Empty means
	// DefaultTCPAddr ("127.0.0.1:8888"); port 0 takes any free port (see
	// TCPAddr()); ListenerOff takes no registrations (the slaves register
	// through other masters).
	TCPAddr string
	// Token, when set, is required as "Authorization: Bearer TOKEN" on the
	// API and in every slave's hello. Without it, listen on loopback only.
	Token string
	// TLS, when set, secures every channel the master serves or dials
	// (see MasterTLS). nil: plain text, which is only safe on loopback.
	TLS *MasterTLS
	// EtcdTLS is the TLS config for the etcd client (https://
	// endpoints), with a client certificate for an etcd that requires
	// one. nil: plain text.
	EtcdTLS *tls.Config
	// ID names this master in the leader election. Default: a new UUID.
	ID string
	// LeaseTTL is the liveness lease given to slaves: a slave silent for
	// this long is lost and its instances are placed elsewhere. Default 5s;
	// etcd counts it in whole seconds.
	LeaseTTL time.Duration
	// ElectionTTL is how long a dead leader keeps the scheduler before
	// another master takes over. Default 5s (whole seconds).
	ElectionTTL time.Duration
	// RequestTimeout bounds every etcd call, so the API answers 503 rather
	// than hang when etcd is unreachable. Default 3s.
	RequestTimeout time.Duration
	// MaxInstances caps InstanceNum of one service. Default
	// DefaultMaxInstances (10000).
	MaxInstances int
	// MaxBodyBytes caps a request body. Default DefaultMaxBodyBytes
	// (1 MiB). The size limits of a spec are in limits.go.
	MaxBodyBytes int64
	// TxnOps is the most operations one scheduler transaction holds; etcd
	// refuses more than its --max-txn-ops (default 128). Default
	// DefaultTxnOps (128).
	TxnOps int
	// TxnBytes is the most bytes (keys, values and compares) one
	// scheduler transaction holds; etcd refuses a request over its
	// --max-request-bytes (default 1.5 MiB), so keep it well under that.
	// Default DefaultTxnBytes (256 KiB); at least MinTxnBytes (1 KiB).
	TxnBytes int
	// ResyncInterval is how often the scheduler compares every service
	// with its placements even when nothing changed. Default 30s.
	ResyncInterval time.Duration
	// EventHeartbeat is how often an idle GET /events stream sends an
	// empty line, so that proxies keep it open. Default
	// DefaultEventHeartbeat (15s).
	EventHeartbeat time.Duration
	// CORSOrigins are the browser origins ("https://app.example.com")
	// allowed to drive the API from their pages: they get CORS answers and
	// their state-changing requests pass. Other origins' state-changing
	// requests are refused with 403 (csrf.go). Default: none; "*" is
	// refused.
	CORSOrigins []string
	// Limits are the API's timeouts and the connection cap of the API
	// and of the registration port; see ServerLimits for the defaults.
	Limits ServerLimits
	// Logger receives the master's logs. Default: discard.
	Logger *slog.Logger
}

func (c MasterConfig) withDefaults() (MasterConfig, error) {
	if len(c.Endpoints) == 0 {
		return c, fmt.Errorf("%w: no etcd endpoints", ErrInvalidConfig)
	}
	if len(c.AdvertiseEndpoints) == 0 {
		c.AdvertiseEndpoints = c.Endpoints
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.TCPAddr == "" {
		c.TCPAddr = DefaultTCPAddr
	}
	if c.Token == "" {
		for _, a := range []string{c.HTTPAddr, c.TCPAddr} {
			if a != ListenerOff && !netaddr.IsLoopbackListen(a) {
				return c, fmt.Errorf("%w: without a token the master listens on loopback only; set a token to listen on %q", ErrInvalidConfig, a)
			}
		}
	}
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	c.LeaseTTL = orDefault(c.LeaseTTL, DefaultLeaseTTL)
	c.ElectionTTL = orDefault(c.ElectionTTL, DefaultElectionTTL)
	c.RequestTimeout = orDefault(c.RequestTimeout, DefaultRequestTimeout)
	c.ResyncInterval = orDefault(c.ResyncInterval, DefaultResync)
	c.EventHeartbeat = orDefault(c.EventHeartbeat, DefaultEventHeartbeat)
	c.Limits = c.Limits.withDefaults()
	if c.LeaseTTL < time.Second || c.ElectionTTL < time.Second {
		return c, fmt.Errorf("%w: LeaseTTL and ElectionTTL must be at least 1s", ErrInvalidConfig)
	}
	c.MaxInstances = orDefault(c.MaxInstances, DefaultMaxInstances)
	c.MaxBodyBytes = orDefault(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.TxnOps = orDefault(c.TxnOps, DefaultTxnOps)
	if c.TxnOps < 4 {
		return c, fmt.Errorf("%w: TxnOps must be at least 4", ErrInvalidConfig)
	}
	c.TxnBytes = orDefault(c.TxnBytes, DefaultTxnBytes)
	if c.TxnBytes < MinTxnBytes {
		return c, fmt.Errorf("%w: TxnBytes must be at least %d", ErrInvalidConfig, MinTxnBytes)
	}
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
	return c, nil
}

// ListenerOff, as MasterConfig.HTTPAddr or TCPAddr, turns that listener
// off.
const ListenerOff = "-"

// Master serves slave registration and the HTTP API, and schedules while it
// is the elected leader. It keeps no state that etcd does not have.
type Master struct {
	cfg   MasterConfig
	k     keyspace
	log   *slog.Logger
	cli   *clientv3.Client
	stats schedStats

	httpLn  net.Listener
	tcpLn   net.Listener
	httpSrv *http.Server
	fresh   freshConns // httpSrv's connections with no request yet
	leader  atomic.Bool
	metrics *masterMetrics
	cors    map[string]bool // allowed origins, normalized
	idem    idemLeases
	// writes makes this master's writers of one service take turns.
	writes keyLock
	// logClient reaches the slaves' log servers.
	logClient    *http.Client
	logTransport *http.Transport
	sec          *masterSec // TLS state; nil without TLS

	mu       sync.Mutex
	started  bool
	closed   bool
	conns    map[net.Conn]struct{}
	cancel   context.CancelFunc
	leadDone chan struct{} // closed when the election loop has returned
	// ready is closed once etcd has answered (WaitReady); done once the
	// master stops serving, for good: Close or a failure (failErr).
	ready    chan struct{}
	done     chan struct{}
	failErr  error
	probeErr error // the last failed etcd probe, for WaitReady
	wg       sync.WaitGroup
	// runCtx is set by Start and ended by Close: event streams and
	// metric scrapes end with it.
	runCtx context.Context
}

// NewMaster validates cfg and returns a master that has not started.
func NewMaster(cfg MasterConfig) (*Master, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cors, err := parseOrigins(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	m := &Master{cfg: cfg, k: newKeyspace(cfg.Prefix), log: cfg.Logger, conns: map[net.Conn]struct{}{}, cors: cors,
		ready: make(chan struct{}), done: make(chan struct{})}
	m.metrics = newMasterMetrics(m)
	m.logTransport = newLogTransport(cfg.RequestTimeout)
	m.logClient = &http.Client{Transport: m.logTransport}
	return m, nil
}

// Start binds the HTTP and TCP listeners and starts serving and campaigning
// for leadership in the background. It does not wait for etcd: until etcd
// answers, the API returns 503 and registrations are refused. A master
// with TLS is the exception: it first settles the cluster CA in etcd,
// retrying until ctx ends.
func (m *Master) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.started {
		return nil
	}
	if m.cfg.Token == "" {
		m.log.Warn("no token set: the API and registration are open to anyone who reaches them; set a token before listening beyond loopback")
	}
	cli, err := newEtcdClient(m.cfg.Endpoints, m.cfg.RequestTimeout, m.cfg.EtcdTLS)
	if err != nil {
		return err
	}
	var sec *masterSec
	if m.cfg.TLS != nil {
		if sec, err = m.setupTLS(ctx, cli); err != nil {
			cli.Close()
			return err
		}
	}
	// Accept survives descriptor exhaustion; connections are capped. The
	// cap's 503 is plain HTTP: under TLS a refused connection is just
	// closed. The listeners keep their plain addresses (Addr) under TLS.
	refusal := refuseHTTP
	if sec != nil {
		refusal = ""
	}
	listen := func(addr, name, refusal string) (net.Listener, error) {
		if addr == ListenerOff {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("gdpm: master %s listen: %w", name, err)
		}
		return m.wrapTLS(newLimitListener(ln, name, m.cfg.Limits.MaxConns, refusal, m.log), sec), nil
	}
	httpLn, err := listen(m.cfg.HTTPAddr, "api", refusal)
	if err != nil {
		cli.Close()
		return err
	}
	tcpLn, err := listen(m.cfg.TCPAddr, "registration", "")
	if err != nil {
		cli.Close()
		if httpLn != nil {
			httpLn.Close()
		}
		return err
	}
	m.cli, m.httpLn, m.tcpLn, m.sec = cli, httpLn, tcpLn, sec
	m.httpSrv = m.cfg.Limits.httpServer(m.Handler(), m.log)
	m.fresh.track(m.httpSrv)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel, m.runCtx = cancel, runCtx
	m.started = true
	if httpLn != nil {
		m.wg.Go(func() {
			if err := m.httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.failed(fmt.Errorf("gdpm: master API server stopped: %w", err))
			}
		})
	}
	if tcpLn != nil {
		m.wg.Go(func() { m.acceptLoop(runCtx) })
	}
	m.leadDone = make(chan struct{})
	m.wg.Go(func() { defer close(m.leadDone); m.leadLoop(runCtx) })
	m.wg.Go(func() { m.probeEtcd(runCtx) })
	m.log.Info("master started", "id", m.cfg.ID, "http", m.HTTPAddr(), "tcp", m.TCPAddr())
	return nil
}

// WaitReady waits until the master has started and etcd has answered it,
// so that the API answers with data rather than 503. It fails with
// ErrClosed once the master is closed, with the cause if it failed (see
// Err), and with ctx's error, wrapped with the last etcd error seen, when
// ctx ends first. It may be called before Start.
func (m *Master) WaitReady(ctx context.Context) error {
	select {
	case <-m.ready:
		return nil
	case <-m.done:
		return m.Err()
	case <-ctx.Done():
	}
	m.mu.Lock()
	cause := m.probeErr
	m.mu.Unlock()
	if cause != nil {
		return fmt.Errorf("gdpm: master not ready: %w (%w)", cause, ctx.Err())
	}
	return fmt.Errorf("gdpm: master not ready: %w", ctx.Err())
}

// Done is closed when the master stops serving for good: after Close, or
// when one of its listeners fails (the API server stops, the registration
// port can no longer accept). Err tells which. A master that failed keeps
// whatever still works running until Close; an embedding program usually
// closes it and exits, as gdpm-master does.
func (m *Master) Done() <-chan struct{} { return m.done }

// Err is nil while the master runs (or has not started), the failure
// that closed Done, or ErrClosed after Close.
func (m *Master) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failErr
}

// failed records the first failure and closes Done.
func (m *Master) failed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failErr != nil {
		return
	}
	m.log.Error("master failed", "err", err)
	m.failErr = err
	close(m.done)
}

// probeEtcd reads from etcd until it answers once, which makes the master
// ready (WaitReady), or ctx ends.
func (m *Master) probeEtcd(ctx context.Context) {
	retry := backoff.NewDelay(20*time.Millisecond, time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		_, err := m.cli.Get(pctx, m.k.p, clientv3.WithCountOnly())
		cancel()
		if err == nil {
			close(m.ready)
			return
		}
		m.mu.Lock()
		m.probeErr = storeErr("gdpm: etcd", err)
		m.mu.Unlock()
		if !retry.Wait(ctx) {
			return
		}
	}
}

// HTTPAddr is the address the API listens on (with the real port).
func (m *Master) HTTPAddr() string { return addrOf(m.httpLn) }

// TCPAddr is the address slaves register on (with the real port).
func (m *Master) TCPAddr() string { return addrOf(m.tcpLn) }

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// ID is this master's id in the election.
func (m *Master) ID() string { return m.cfg.ID }

// IsLeader reports whether this master runs the scheduler now.
func (m *Master) IsLeader() bool { return m.leader.Load() }

// SchedulerStats returns the counts of placements, removals and etcd
// transactions this master's scheduler made, and the bytes it wrote.
func (m *Master) SchedulerStats() (placements, removals, txns, bytes int64) {
	return m.stats.Placements.Load(), m.stats.Removals.Load(), m.stats.Txns.Load(), m.stats.TxnBytes.Load()
}

// Close stops serving, resigns leadership and waits for every goroutine.
// It is idempotent and safe on nil.
func (m *Master) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	started := m.started
	for c := range m.conns {
		c.Close()
	}
	if m.failErr == nil {
		m.failErr = ErrClosed
		close(m.done)
	}
	m.mu.Unlock()
	if !started {
		return nil
	}
	m.cancel()
	if m.tcpLn != nil {
		m.tcpLn.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.httpSrv.SetKeepAlivesEnabled(false)
	m.fresh.closeAll()
	err := m.httpSrv.Shutdown(sctx)
	if err != nil {
		m.httpSrv.Close()
	}
	// Let the leader resign while the client works, so a standby takes
	// over at once. A campaign cancelled while etcd is unreachable resigns
	// on the client's own context, which only closing the client ends:
	// wait no longer than one request timeout for it, and not at all once
	// the connection to etcd is down (an embedding program that closed
	// its embedded etcd first).
	wctx, wcancel := context.WithTimeout(context.Background(), m.cfg.RequestTimeout)
	select {
	case <-m.leadDone:
	case <-wctx.Done():
	case <-etcdDown(wctx, m.cli):
	}
	wcancel()
	if cerr := m.cli.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	m.wg.Wait()
	m.logTransport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("gdpm: master close: %w", err)
	}
	return nil
}

// etcdDown returns a channel closed once cli's connection is not ready,
// or ctx ends; its goroutine ends with ctx.
func etcdDown(ctx context.Context, cli *clientv3.Client) <-chan struct{} {
	down := make(chan struct{})
	go func() {
		defer close(down)
		conn := cli.ActiveConnection()
		for ctx.Err() == nil && conn.GetState() == connectivity.Ready {
			conn.WaitForStateChange(ctx, connectivity.Ready)
		}
	}()
	return down
}

// leadLoop campaigns for leadership and schedules while it holds it.
func (m *Master) leadLoop(ctx context.Context) {
	retry := backoff.NewDelay(100*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		if err := m.leadTerm(ctx); err != nil && ctx.Err() == nil {
			m.metrics.countEtcdError(err)
			m.log.Warn("scheduler term ended", "err", err)
			if !retry.Wait(ctx) {
				return
			}
			continue
		}
		retry.Reset()
	}
}

// leadTerm wins one election and schedules until leadership or ctx is lost.
func (m *Master) leadTerm(ctx context.Context) error {
	sess, err := concurrency.NewSession(m.cli, concurrency.WithTTL(ttlSeconds(m.cfg.ElectionTTL)), concurrency.WithContext(ctx))
	if err != nil {
		return storeErr("gdpm: election session", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, m.k.election())
	if err := el.Campaign(ctx, m.cfg.ID); err != nil {
		return storeErr("gdpm: campaign", err)
	}
	m.log.Info("elected scheduling leader", "id", m.cfg.ID)
	m.leader.Store(true)
	defer m.leader.Store(false)

	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	s := &scheduler{
		cli: m.cli, k: m.k, leaderKey: el.Key(), leaderRev: el.Rev(),
		maxOps: m.cfg.TxnOps, maxBytes: m.cfg.TxnBytes, timeout: m.cfg.RequestTimeout, resync: m.cfg.ResyncInterval,
		log: m.log, stats: &m.stats, observe: m.metrics.observeSchedLatency,
	}
	err = s.run(tctx)
	// On the client's context, so that Close, closing the client, ends a
	// resign that cannot reach etcd.
	rctx, rcancel := context.WithTimeout(m.cli.Ctx(), m.cfg.RequestTimeout)
	el.Resign(rctx)
	rcancel()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func ttlSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// acceptLoop serves slave registrations until the listener closes; the
// limitListener waits out every other accept error.
func (m *Master) acceptLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := m.tcpLn.Accept()
		if err != nil {
			if ctx.Err() == nil {
				m.failed(fmt.Errorf("gdpm: master registration listener stopped: %w", err))
			}
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			conn.Close()
			return
		}
		m.conns[conn] = struct{}{}
		m.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.serveRegistration(ctx, conn)
			m.mu.Lock()
			delete(m.conns, conn)
			m.mu.Unlock()
			conn.Close()
		}()
	}
}

// serveRegistration answers one hello with a node id or an error.
func (m *Master) serveRegistration(ctx context.Context, conn net.Conn) {
	conn.SetDeadline(time.Now().Add(registerTimeout))
	reply := welcome{Magic: protoMagic, Version: protoVersion}
	var h hello
	err := readFrame(conn, &h)
	if err == nil {
		err = checkHello(h, m.cfg.Token)
	}
	if err == nil {
		reply.NodeID, err = m.nodeIDFor(ctx, h.PrevID)
	}
	if err == nil {
		err = m.joinCert(ctx, h, conn.RemoteAddr(), &reply)
	}
	if err != nil {
		m.metrics.countEtcdError(err)
		m.log.Warn("registration refused", "remote", conn.RemoteAddr().String(), "err", err)
		reply.Error, reply.Code = err.Error(), errorCode(err)
		reply.NodeID = ""
	} else {
		reply.Endpoints = m.cfg.AdvertiseEndpoints
		reply.Prefix = m.k.p
		reply.LeaseTTL = ttlSeconds(m.cfg.LeaseTTL)
		m.log.Info("slave registered", "node", reply.NodeID, "hostname", h.Hostname, "remote", conn.RemoteAddr().String())
	}
	if werr := writeFrame(conn, reply); werr != nil {
		m.log.Debug("registration reply failed", "err", werr)
		return
	}
	// Closing with unread bytes would reset the connection and could
	// destroy the reply; half-close and drain what the peer still sends.
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(conn, maxFrame))
	}
}

// nodeIDFor gives a restarted slave its previous id back when no live node
// holds it, so its unmoved assignments resume; otherwise a new UUID. The
// slave's create-if-absent of its node key settles any race.
func (m *Master) nodeIDFor(ctx context.Context, prev string) (string, error) {
	if _, err := uuid.Parse(prev); prev == "" || err != nil {
		return uuid.NewString(), nil
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := m.cli.Get(cctx, m.k.node(prev), clientv3.WithCountOnly())
	if err != nil {
		return "", storeErr("gdpm: register", err)
	}
	if resp.Count > 0 {
		return uuid.NewString(), nil
	}
	return prev, nil
}
