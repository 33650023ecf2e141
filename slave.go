package gdpm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm/internal/backoff"
	"github.com/capy-pl/gdpm/internal/netaddr"
	"github.com/capy-pl/gdpm/internal/proc"
)

// SlaveConfig configures a Slave. Zero fields take the defaults noted.
type SlaveConfig struct {
	// Masters are the masters' registration addresses (HOST:PORT); the
	// slave registers through the first that answers. Default
	// ["127.0.0.1:8888"].
	Masters []string
	// Token is the cluster token sent in the hello.
	Token string
	// CAHash pins the cluster CA, as "sha256:HEX" (what a secured master
	// prints at start): the slave then registers over TLS, trusts only a
	// master whose certificate chains to that CA (so the token is never
	// sent to another), sends a CSR for a key that never leaves it, and
	// uses the certificate the master signs for etcd and its log server.
	// Empty with RootCAs nil: plain text, for a master without TLS.
	CAHash string
	// RootCAs trusts these CAs instead of a hash (gdpm-slave -tls-ca).
	RootCAs *x509.CertPool
	// Cert is the slave's own certificate, to bring your own PKI: it
	// needs client and server usage from a CA the masters trust. With it
	// the slave sends no CSR. Needs CAHash or RootCAs.
	Cert *tls.Certificate
	// DataDir holds the slave's state: its node id, its instances' logs
	// and the record of its live process groups (DataDir/pgroups), which
	// lets a slave started again on the same dir kill what a previous run
	// that was SIGKILLed left behind. One slave at a time may use it
	// (DataDir/lock); Start fails with ErrInvalidConfig otherwise.
	// Default: a new temporary directory that Close removes.
	DataDir string
	// Hostname is reported to the master. Default os.Hostname().
	Hostname string
	// RetryMax caps the delay between registration attempts. Default 2s.
	RetryMax time.Duration
	// RequestTimeout bounds every etcd call. Default 3s.
	RequestTimeout time.Duration
	// LogLimits are the log server's timeouts and connection cap; see
	// ServerLimits for the defaults.
	LogLimits ServerLimits
	// UsageInterval is how often the slave samples its instances' CPU and
	// memory and reports them with its host's (usage.go). Default
	// DefaultUsageInterval.
	UsageInterval time.Duration
	// Logger receives the slave's logs. Default: discard.
	Logger *slog.Logger
	// Subreaper makes the whole process a child subreaper
	// (PR_SET_CHILD_SUBREAPER) while the slave runs: processes that an
	// instance forks and then orphans are adopted by this process instead
	// of init, and the slave reaps them. Default false, because it changes
	// the embedding process: orphans of its other children are adopted
	// too, and the slave leaves those for the program to reap. The
	// instances' orphans are killed with their process group either way.
	// gdpm-slave turns it on.
	Subreaper bool
	// LogAddr is where the slave serves its instances' logs to the
	// masters (HOST:PORT, authenticated with Token); the address goes in
	// its node record. An unspecified host is advertised as the address
	// this host used to reach the master. Default ":0" (every interface,
	// any free port) with a Token; without one, as the master, loopback
	// only: "127.0.0.1:0", and any other address is refused.
	LogAddr string
	// LogMaxSize is the size at which an instance's stdout or stderr file
	// is rotated; LogMaxFiles how many files each stream keeps, the
	// current one included. Defaults DefaultLogMaxSize (10 MiB) and
	// DefaultLogMaxFiles (3).
	LogMaxSize  int64
	LogMaxFiles int
	// DiscardOutput sends every instance's stdout and stderr to
	// /dev/null instead of capturing them: no log files, no pipes, and
	// the logs API shows nothing new from this slave. An instance then
	// holds one descriptor of the slave's (its pidfd) instead of three,
	// so three times as many fit within RLIMIT_NOFILE. For programs that
	// log elsewhere (journald, syslog, their own files), as supervisord's
	// stdout_logfile=NONE. Default false: output is captured.
	DiscardOutput bool
	// LogRetention is how long the logs of an instance that no longer
	// runs on this slave (deleted, scaled down, moved) are kept after
	// their last write; the slave looks every hour. Default
	// DefaultLogRetention (24h); negative keeps them forever.
	LogRetention time.Duration
}

func (c SlaveConfig) withDefaults() (SlaveConfig, error) {
	if len(c.Masters) == 0 {
		c.Masters = []string{DefaultTCPAddr}
	}
	for _, a := range c.Masters {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return c, fmt.Errorf("%w: master address %q: %v", ErrInvalidConfig, a, err)
		}
	}
	if c.Hostname == "" {
		c.Hostname = hostname()
	}
	if c.LogAddr == "" {
		c.LogAddr = ":0"
		if c.Token == "" {
			c.LogAddr = "127.0.0.1:0"
		}
	}
	if _, _, err := net.SplitHostPort(c.LogAddr); err != nil {
		return c, fmt.Errorf("%w: log address %q: %v", ErrInvalidConfig, c.LogAddr, err)
	}
	if c.Token == "" && !netaddr.IsLoopbackListen(c.LogAddr) {
		return c, fmt.Errorf("%w: without a token the slave serves logs on loopback only; set a token to listen on %q", ErrInvalidConfig, c.LogAddr)
	}
	if c.LogMaxSize < 0 || c.LogMaxFiles < 0 {
		return c, fmt.Errorf("%w: LogMaxSize and LogMaxFiles must not be negative", ErrInvalidConfig)
	}
	c.LogMaxSize = orDefault(c.LogMaxSize, DefaultLogMaxSize)
	c.LogMaxFiles = orDefault(c.LogMaxFiles, DefaultLogMaxFiles)
	c.LogRetention = orDefault(c.LogRetention, DefaultLogRetention)
	c.RetryMax = orDefault(c.RetryMax, 2*time.Second)
	c.LogLimits = c.LogLimits.withDefaults()
	c.RequestTimeout = orDefault(c.RequestTimeout, DefaultRequestTimeout)
	c.UsageInterval = orDefault(c.UsageInterval, DefaultUsageInterval)
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
	return c, nil
}

// Slave registers with a master, watches etcd for the instances assigned to
// its node and runs them as OS processes.
type Slave struct {
	cfg    SlaveConfig
	log    *slog.Logger
	sec    *slaveSec // nil without TLS
	tmpDir string
	groups *proc.Groups               // set by Start
	ports  *portPool                  // the instances' named ports
	logs   *logServer                 // set by Start
	sup    atomic.Pointer[supervisor] // the session's; nil between sessions

	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.Mutex
	nodeID  string
	lastErr error // the last registration failure, for WaitReady
	// refused is closed when a master refused the token or the slave
	// refused the master's CA: retrying alone will not fix either.
	refused     chan struct{}
	refusedOnce sync.Once
	started     bool
	closed      bool
	cancel      context.CancelFunc
	done        chan struct{}
}

// NewSlave validates cfg and returns a slave that has not started. On a
// system other than Linux it fails with ErrUnsupportedOS.
func NewSlave(cfg SlaveConfig) (*Slave, error) {
	if !proc.Supported {
		return nil, fmt.Errorf("%w (this is %s)", ErrUnsupportedOS, runtime.GOOS)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	sec, err := newSlaveSec(cfg)
	if err != nil {
		return nil, err
	}
	return &Slave{cfg: cfg, log: cfg.Logger, sec: sec, ports: newPortPool(), ready: make(chan struct{}), done: make(chan struct{}), refused: make(chan struct{})}, nil
}

// Start begins registering and running work in the background and returns
// at once; WaitReady tells when the slave has registered. Start waits for
// nothing, so ctx's deadline and cancellation do not apply (its values
// are kept): the background work lives until Close, not until ctx ends,
// because a slave's processes must not stop with the context of the call
// that started them.
func (s *Slave) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return nil
	}
	if s.cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "gdpm-slave-")
		if err != nil {
			return fmt.Errorf("gdpm: slave data dir: %w", err)
		}
		s.cfg.DataDir, s.tmpDir = dir, dir
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("gdpm: slave data dir: %w", err)
	}
	// Before registering: a previous run's leftovers die before this run
	// is given work, and every instance is guarded from its first start.
	groups, err := proc.OpenGroups(s.cfg.DataDir, s.cfg.Subreaper, s.log)
	if errors.Is(err, proc.ErrDataDirInUse) {
		err = fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err != nil {
		if s.tmpDir != "" {
			s.removeTmpDir()
			s.cfg.DataDir = ""
		}
		return err
	}
	// A secured slave's log server takes the masters' certificates
	// instead of the token.
	logToken, logTLS := s.cfg.Token, (*tls.Config)(nil)
	if s.sec != nil {
		logToken, logTLS = "", s.sec.logServerTLS()
	}
	logs, err := startLogServer(s.cfg.LogAddr, s.logDir(), logToken, logTLS, s.cfg.LogLimits, s.NodeID, s.log)
	if err != nil {
		groups.Close()
		if s.tmpDir != "" {
			s.removeTmpDir()
			s.cfg.DataDir = ""
		}
		return err
	}
	s.groups, s.logs = groups, logs
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.started = true
	go func() {
		defer close(s.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		if s.cfg.LogRetention > 0 {
			wg.Go(func() { s.sweepLogs(runCtx) })
		}
		s.run(runCtx)
	}()
	return nil
}

// WaitReady waits until the slave has registered and read its assignments.
// It returns early, with an error that wraps ErrUnauthorized or
// ErrUntrusted, when a master refused the token or the slave refused a
// master whose certificate does not chain to the pinned CA: the slave
// keeps trying, but only a change of configuration can fix those.
func (s *Slave) WaitReady(ctx context.Context) error {
	refused := s.refused
	for {
		select {
		case <-s.ready:
			return nil
		case <-s.done:
			return ErrClosed
		case <-refused:
			select {
			case <-s.ready:
				return nil
			default:
			}
			s.mu.Lock()
			cause := s.lastErr
			s.mu.Unlock()
			if cause != nil {
				return fmt.Errorf("gdpm: slave not ready: %w", cause)
			}
			// Registered since a refusal: wait for the rest.
			refused = nil
			continue
		case <-ctx.Done():
			s.mu.Lock()
			cause := s.lastErr
			s.mu.Unlock()
			if cause != nil {
				// The reason (a wrong pin or token) tells more than the
				// deadline; errors.Is finds both.
				return fmt.Errorf("gdpm: slave not ready: %w (%w)", cause, ctx.Err())
			}
			return fmt.Errorf("gdpm: slave not ready: %w", ctx.Err())
		}
	}
}

// NodeID is the id the master gave this slave ("" before registration).
func (s *Slave) NodeID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeID
}

// Close marks the node draining, so that its instances are placed on
// other nodes at once, stops every instance (SIGTERM, then SIGKILL after
// its stop timeout), removes the node from the cluster and waits for every
// goroutine. It is idempotent and safe on nil.
func (s *Slave) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	s.cancel()
	<-s.done
	s.logs.Close()
	// Every instance has stopped: the watchdog has nothing left to kill.
	err := s.groups.Close()
	s.removeTmpDir()
	if err != nil {
		return fmt.Errorf("gdpm: slave close: %w", err)
	}
	return nil
}

func (s *Slave) removeTmpDir() {
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
		s.tmpDir = ""
	}
}

func (s *Slave) nodeIDFile() string { return filepath.Join(s.cfg.DataDir, "node-id") }

// sweepLogs removes expired logs a minute after the start (once the
// slave has registered) and then every logSweepInterval, until ctx ends.
// It skips a round between sessions, when nothing can tell what runs.
func (s *Slave) sweepLogs(ctx context.Context) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if sup := s.sup.Load(); sup != nil {
			if n := sweepLogDir(s.logDir(), s.cfg.LogRetention, time.Now(), sup.has); n > 0 {
				s.log.Info("removed expired instance logs", "files", n)
			}
		}
		t.Reset(logSweepInterval)
	}
}

// logDir holds the instances' logs: logDir/SERVICE/INSTANCE.stdout|stderr.
func (s *Slave) logDir() string { return filepath.Join(s.cfg.DataDir, "logs") }

// instanceLogDir is where the runners write their instances' output: ""
// (discard) with DiscardOutput.
func (s *Slave) instanceLogDir() string {
	if s.cfg.DiscardOutput {
		return ""
	}
	return s.logDir()
}

// LogAddr is the address the slave serves its logs on ("" before Start).
func (s *Slave) LogAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs == nil {
		return ""
	}
	return s.logs.ln.Addr().String()
}

// run registers, serves one session per registration, and registers again
// when a session ends, until closed.
func (s *Slave) run(ctx context.Context) {
	retry := backoff.NewDelay(50*time.Millisecond, s.cfg.RetryMax)
	prev := ""
	if b, err := os.ReadFile(s.nodeIDFile()); err == nil {
		prev = strings.TrimSpace(string(b))
	}
	var stale *leaseLostError
	for ctx.Err() == nil {
		if stale != nil {
			if err := s.revokeStale(ctx, stale.endpoints, stale.etcdTLS, stale.lease); err != nil {
				s.log.Warn("cannot revoke the lost lease yet", "err", err)
			} else {
				stale = nil
			}
		}
		w, err := s.register(ctx, prev)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUntrusted) {
			s.refusedOnce.Do(func() { close(s.refused) })
		}
		if err != nil {
			s.log.Warn("registration failed", "err", err)
			if !retry.Wait(ctx) {
				return
			}
			continue
		}
		retry.Reset()
		err = s.session(ctx, w)
		switch {
		case errors.Is(err, errNodeTaken):
			prev = ""
		case err != nil && ctx.Err() == nil:
			s.log.Warn("session ended; registering again", "node", w.NodeID, "err", err)
			prev = w.NodeID
			errors.As(err, &stale)
			if !retry.Wait(ctx) {
				return
			}
		default:
			prev = w.NodeID
		}
	}
}

// revokeStale drops the lease of a session that lost contact with etcd. An
// etcd that restarted restores leases with a fresh TTL, so without this the
// old node record would look alive, holding its instances, for one more
// TTL after this slave had already killed them.
func (s *Slave) revokeStale(ctx context.Context, endpoints []string, etcdTLS *tls.Config, id clientv3.LeaseID) error {
	cli, err := newEtcdClient(endpoints, s.cfg.RequestTimeout, etcdTLS)
	if err != nil {
		return err
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, err = cli.Revoke(cctx, id)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return storeErr("gdpm: revoke stale lease", err)
	}
	return nil
}

// register says hello to each master in turn until one welcomes us.
func (s *Slave) register(ctx context.Context, prev string) (welcome, error) {
	var errs []error
	for _, addr := range s.cfg.Masters {
		d := net.Dialer{Timeout: registerTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h := hello{
			Magic: protoMagic, Version: protoVersion, Token: s.cfg.Token,
			Hostname: s.cfg.Hostname, PrevID: prev, Release: Version,
		}
		var ca *x509.Certificate
		if s.sec != nil {
			if conn, ca, err = s.sec.dial(ctx, conn, addr); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", addr, err))
				continue
			}
			if h.CSR, err = s.sec.csr(s.cfg.Hostname); err != nil {
				conn.Close()
				return welcome{}, fmt.Errorf("gdpm: CSR: %w", err)
			}
			h.Addrs = localAddrs(conn, s.logs.ln.Addr().(*net.TCPAddr).IP)
		}
		w, err := exchangeHello(conn, h)
		conn.Close()
		if s.sec == nil && errors.Is(err, ErrProtocol) {
			err = fmt.Errorf("%w (a master with TLS closes plain-text registrations: give the CA hash it prints, -ca-hash)", err)
		}
		if err == nil && s.sec != nil {
			err = s.sec.accept(&w, ca)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if tcp, ok := conn.LocalAddr().(*net.TCPAddr); ok {
			w.local = tcp.IP
		}
		return w, nil
	}
	return welcome{}, errors.Join(errs...)
}

// errNodeTaken means a live node already holds the id we were given.
var errNodeTaken = errors.New("gdpm: node id already registered")

// session is one registration's life: lease, node record, assignments.
// It returns when ctx ends (after a graceful stop of every instance and the
// removal of the node) or when the lease is lost (after killing every
// instance: they are being placed elsewhere).
func (s *Slave) session(ctx context.Context, w welcome) error {
	cli, err := newEtcdClient(w.Endpoints, s.cfg.RequestTimeout, w.etcdTLS)
	if err != nil {
		return err
	}
	defer cli.Close()
	k := newKeyspace(w.Prefix)

	granting := time.Now() // etcd starts the lease after this
	cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	lease, err := cli.Grant(cctx, int64(w.LeaseTTL))
	cancel()
	if err != nil {
		return storeErr("gdpm: lease", err)
	}
	ttl := time.Duration(lease.TTL) * time.Second
	// Armed before any instance can start here; kept armed by every
	// renewal (fenceOnLeaseLoss), lifted when the session ends.
	s.groups.Arm(granting.Add(ttl - fenceMargin(ttl)))
	defer s.groups.Disarm()
	node := Node{ID: w.NodeID, Hostname: s.cfg.Hostname, Status: NodeOnline, RegisteredAt: time.Now().UTC(), Version: Version,
		LogAddr: s.logs.advertise(w.local)}
	val, _ := json.Marshal(node)
	cctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
	resp, err := cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(k.node(node.ID)), "=", 0)).
		Then(clientv3.OpPut(k.node(node.ID), string(val), clientv3.WithLease(lease.ID))).
		Commit()
	cancel()
	if err != nil {
		return storeErr("gdpm: node record", err)
	}
	if !resp.Succeeded {
		s.revoke(cli, lease.ID)
		return errNodeTaken
	}
	s.mu.Lock()
	s.nodeID = node.ID
	s.mu.Unlock()
	if err := os.WriteFile(s.nodeIDFile(), []byte(node.ID+"\n"), 0o644); err != nil {
		s.log.Warn("cannot record node id", "err", err)
	}
	s.log.Info("registered", "node", node.ID, "etcd", w.Endpoints)

	sctx, scancel := context.WithCancelCause(ctx)
	defer scancel(nil)
	renewals := make(chan time.Time)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.keepLease(sctx, cli, lease.ID, ttl, renewals)
	}()
	go func() {
		defer wg.Done()
		s.fenceOnLeaseLoss(renewals, granting.Add(ttl), ttl, scancel)
	}()

	sw := newStatusWriter(cli, k, node.ID, lease.ID, s.log)
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() { defer wg.Done(); sw.run(wctx, s.cfg.RequestTimeout) }()
	defer wcancel()

	sup := newSupervisor(slaveDeps{
		logDir: s.instanceLogDir(), logMaxSize: s.cfg.LogMaxSize, logMaxFiles: s.cfg.LogMaxFiles,
		hostname: s.cfg.Hostname, groups: s.groups, ports: s.ports, log: s.log,
	}, node.ID, sw)
	s.sup.Store(sup)
	defer s.sup.Store(nil)
	uctx, ucancel := context.WithCancel(sctx)
	defer ucancel() // before wg.Wait
	wg.Add(1)
	go func() {
		defer wg.Done()
		sup.reportUsage(uctx, cli, k, lease.ID, s.cfg.UsageInterval, s.cfg.RequestTimeout)
	}()
	err = s.follow(sctx, cli, k, node.ID, sup)
	if ctx.Err() != nil {
		// Closing: mark the node draining, so that the scheduler places
		// its instances elsewhere while they stop here; stop gracefully;
		// then drop the lease so the node and its statuses disappear.
		s.markDraining(cli, k, node, lease.ID)
		// A graceful stop may outlast the lease: the node is draining
		// and its instances are being placed elsewhere already.
		s.groups.Disarm()
		sup.stopAll(context.Background(), false)
		wcancel()
		s.revoke(cli, lease.ID)
		return nil
	}
	// Lost the lease or the watch: the instances are (or will be) placed
	// elsewhere; kill ours now so nothing runs twice.
	sup.stopAll(context.Background(), true)
	if cause := context.Cause(sctx); errors.Is(cause, errLeaseLost) {
		return &leaseLostError{lease: lease.ID, endpoints: w.Endpoints, etcdTLS: w.etcdTLS}
	}
	s.revoke(cli, lease.ID)
	return err
}

// markDraining rewrites the node record with Status NodeDraining, on the
// same lease. Best effort: without it the instances move once the record
// is gone, a stop timeout later.
func (s *Slave) markDraining(cli *clientv3.Client, k keyspace, node Node, lease clientv3.LeaseID) {
	node.Status = NodeDraining
	val, _ := json.Marshal(node)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if _, err := cli.Put(ctx, k.node(node.ID), string(val), clientv3.WithLease(lease)); err != nil {
		s.log.Warn("cannot mark the node draining", "err", err)
	}
}

var errLeaseLost = errors.New("gdpm: lease lost")

// keepLease renews the lease every third of its TTL, one KeepAliveOnce at
// a time, and sends on renewals the earliest moment each renewal can
// expire: the time the request was sent plus the TTL etcd answered, since
// etcd renewed it after that. (clientv3's KeepAlive counts from when the
// answer arrived: an answer read late, after the slave was stopped, would
// extend a lease that may have expired meanwhile.) It closes renewals
// when the lease is gone or ctx ends; errors it retries.
func (s *Slave) keepLease(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID, ttl time.Duration, renewals chan<- time.Time) {
	defer close(renewals)
	every := max(ttl/3, 100*time.Millisecond)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, min(s.cfg.RequestTimeout, ttl))
		resp, err := cli.KeepAliveOnce(cctx, id)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return
		case err != nil:
			s.log.Debug("lease renewal failed; retrying", "err", err)
			t.Reset(min(every, 200*time.Millisecond))
			continue
		case resp.TTL <= 0:
			return
		}
		select {
		case renewals <- sent.Add(time.Duration(resp.TTL) * time.Second):
		case <-ctx.Done():
			return
		}
		t.Reset(max(every-time.Since(sent), 0))
	}
}

// fenceOnLeaseLoss ends the session (cancel with errLeaseLost) when the
// lease may be about to expire: once etcd lets it go, the scheduler places
// this node's instances elsewhere, so ours must be dead by then. It fences
// a margin before the earliest expiry the last renewal allows rather than
// waiting for the expiry itself, trading a short gap for never running an
// instance twice. Every renewal also moves the watchdog's deadline, which
// fences in the slave's place when the slave itself cannot act (stopped,
// frozen, starved).
func (s *Slave) fenceOnLeaseLoss(renewals <-chan time.Time, expiry time.Time, ttl time.Duration, cancel context.CancelCauseFunc) {
	fence := time.NewTimer(time.Until(expiry) - fenceMargin(ttl))
	defer fence.Stop()
	for {
		select {
		case exp, ok := <-renewals:
			if !ok {
				cancel(errLeaseLost)
				return
			}
			// Past the deadline (the slave was stalled), the watchdog
			// has fenced already: so does the session, even if the lease
			// turns out alive, rather than restart what was killed as if
			// it had crashed.
			if time.Now().Before(expiry.Add(-fenceMargin(ttl))) {
				if exp.After(expiry) {
					expiry = exp
					s.groups.Arm(expiry.Add(-fenceMargin(ttl)))
					fence.Reset(time.Until(expiry) - fenceMargin(ttl))
				}
				continue
			}
		case <-fence.C:
		}
		s.log.Warn("lease not renewed in time; stopping every instance before it expires")
		cancel(errLeaseLost)
		for range renewals {
		}
		return
	}
}

// fenceMargin is how long before a lease's expiry the slave fences: a fifth
// of the TTL, at most one second.
func fenceMargin(ttl time.Duration) time.Duration {
	return min(ttl/5, time.Second)
}

// leaseLostError ends a session whose lease could not be renewed for its
// TTL; it names the lease so the next session can revoke it.
type leaseLostError struct {
	lease     clientv3.LeaseID
	endpoints []string
	etcdTLS   *tls.Config
}

func (e *leaseLostError) Error() string { return errLeaseLost.Error() }
func (e *leaseLostError) Unwrap() error { return errLeaseLost }

func (s *Slave) revoke(cli *clientv3.Client, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if _, err := cli.Revoke(ctx, id); err != nil {
		s.log.Warn("lease revoke failed; the node expires with its TTL", "err", err)
	}
}

// follow reads the node's assignments, then watches for changes from the
// revision it read; after a compaction it reads again. It returns when ctx
// ends or etcd cannot be read. An assignment names its spec by revision;
// specs resolves it before the supervisor sees it.
func (s *Slave) follow(ctx context.Context, cli *clientv3.Client, k keyspace, nodeID string, sup *supervisor) error {
	prefix := k.assigns(nodeID)
	specs := newSpecCache(cli, k, s.cfg.RequestTimeout, s.log)
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := cli.Get(cctx, prefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			return storeErr("gdpm: read assignments", err)
		}
		desired := map[string]Assignment{}
		for _, kv := range resp.Kvs {
			if a, ok := parseAssignment(k, kv.Key, kv.Value); ok {
				desired[a.Service+"/"+a.Instance] = a
			}
		}
		if err := specs.resolve(ctx, desired); err != nil {
			return err
		}
		sup.sync(desired) // the supervisor's now: follow keeps no copy
		s.readyOnce.Do(func() { close(s.ready) })

		wch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				s.log.Warn("assignment watch broke; reading again", "err", err)
				break
			}
			// Only the batch's changes: the supervisor holds the
			// assignments (one copy), and a batch costs what it changes.
			changes := make(map[string]Assignment, len(wr.Events))
			for _, ev := range wr.Events {
				_, svc, inst, ok := k.splitAssign(string(ev.Kv.Key))
				if !ok {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					changes[svc+"/"+inst] = Assignment{} // Service "": delete
				} else if a, ok := parseAssignment(k, ev.Kv.Key, ev.Kv.Value); ok {
					changes[svc+"/"+inst] = a
				}
			}
			if err := specs.fill(ctx, changes); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("cannot read the specs of new assignments; reading again", "err", err)
				}
				break
			}
			sup.apply(changes)
			specs.keep(sup.specsInUse())
		}
	}
	return ctx.Err()
}

// parseAssignment reads an assignment key and value; the key names the
// service, instance and node.
func parseAssignment(k keyspace, key, val []byte) (Assignment, bool) {
	var a Assignment
	node, svc, inst, ok := k.splitAssign(string(key))
	if !ok || json.Unmarshal(val, &a) != nil {
		return a, false
	}
	a.Node, a.Service, a.Instance = node, svc, inst
	return a, true
}
