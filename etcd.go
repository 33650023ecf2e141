package gdpm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// EmbeddedEtcdConfig configures StartEmbeddedEtcd. The zero value starts a
// single-member etcd on a random loopback port with its data in a new
// temporary directory.
type EmbeddedEtcdConfig struct {
	// Dir holds etcd's data; it is kept across restarts. Empty means a new
	// temporary directory that Close removes.
	Dir string
	// ClientAddr is the HOST:PORT etcd serves clients on. Default
	// "127.0.0.1:0" (a random free port; see Endpoints).
	ClientAddr string
	// PeerAddr is the HOST:PORT for raft peers. Default "127.0.0.1:0".
	PeerAddr string
	// Name is the member name. Default "gdpm".
	Name string
	// StartTimeout bounds how long StartEmbeddedEtcd waits for etcd to be
	// ready. Default 30s.
	StartTimeout time.Duration
	// CA, when set, makes etcd serve clients over TLS with a server
	// certificate issued from it (for ClientAddr's host, the loopback
	// names and Hosts) and require a client certificate issued by it:
	// only masters and slaves that joined the cluster can read or write.
	// It also turns etcd's auth on (etcdauth.go): a certificate's common
	// name is its etcd user, "root" for the masters' (CA.EtcdClientTLS),
	// the node id for a slave's, which reaches the slave's own keys only.
	// A certificate you issue from CA yourself needs the common name
	// "root", or a user you add. The certificate and key are written to
	// Dir/pki/etcd.crt and etcd.key. Peers stay on PeerAddr in plain
	// text: keep that on loopback (a single member has no peers).
	CA *CA
	// Prefix is the key prefix of the gdpm cluster on this etcd
	// (MasterConfig.Prefix), whose nodes get etcd users when a data dir
	// from before auth is started with CA. Default DefaultPrefix.
	Prefix string
	// Hosts are extra DNS names or IPs for etcd's certificate: the
	// addresses slaves reach it at when ClientAddr is unspecified.
	Hosts []string
	// UnsafeNoFsync skips fsync: for tests and benchmarks only, where losing
	// the data on a machine crash does not matter.
	UnsafeNoFsync bool
	// Logger receives etcd's own logs (raft, WAL, compaction, client
	// streams), at their levels. Default: discard.
	Logger *slog.Logger
}

// EmbeddedEtcd is an etcd server running inside this process.
type EmbeddedEtcd struct {
	e       *embed.Etcd
	scheme  string
	streams *streamCutter
	tmpDir  string
	closeMu sync.Once
}

// StartEmbeddedEtcd starts an in-process, single-member etcd and waits until
// it serves clients. Its logs are discarded.
func StartEmbeddedEtcd(ctx context.Context, cfg EmbeddedEtcdConfig) (*EmbeddedEtcd, error) {
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = "127.0.0.1:0"
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = "127.0.0.1:0"
	}
	if cfg.Name == "" {
		cfg.Name = "gdpm"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	ee := &EmbeddedEtcd{streams: newStreamCutter()}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "gdpm-etcd-")
		if err != nil {
			return nil, fmt.Errorf("gdpm: embedded etcd: %w", err)
		}
		cfg.Dir, ee.tmpDir = dir, dir
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ee.scheme = "http"
	if cfg.CA != nil {
		ee.scheme = "https"
		tlsInfo, err := writeEtcdServerCert(cfg.CA, filepath.Join(cfg.Dir, "pki"), hostsFor([]string{cfg.ClientAddr}, cfg.Hosts))
		if err != nil {
			ee.removeTmp()
			return nil, err
		}
		ec.ClientTLSInfo = tlsInfo
	}
	client := url.URL{Scheme: ee.scheme, Host: cfg.ClientAddr}
	peer := url.URL{Scheme: "http", Host: cfg.PeerAddr}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	// Scheduling writes placements in batches; allow larger transactions
	// than etcd's default of 128 operations.
	ec.MaxTxnOps = 1024
	// Keep history bounded: watches that fall behind re-list anyway.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "5m"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToSlog(cfg.Logger))
	// Close ends the client streams rather than wait for them.
	ec.GRPCAdditionalServerOptions = append(ec.GRPCAdditionalServerOptions, ee.streams.option())

	e, err := embed.StartEtcd(ec)
	if err != nil {
		ee.removeTmp()
		return nil, fmt.Errorf("gdpm: embedded etcd: %w", err)
	}
	ee.e = e
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		if cfg.CA == nil {
			return ee, nil
		}
		if err := ee.enableAuth(ctx, cfg.StartTimeout, newKeyspace(cfg.Prefix)); err != nil {
			ee.Close()
			return nil, fmt.Errorf("gdpm: embedded etcd auth: %w", err)
		}
		return ee, nil
	case err := <-e.Err():
		ee.Close()
		return nil, fmt.Errorf("gdpm: embedded etcd: %w", err)
	case <-timer.C:
		ee.Close()
		return nil, fmt.Errorf("gdpm: embedded etcd not ready after %v", cfg.StartTimeout)
	case <-ctx.Done():
		ee.Close()
		return nil, fmt.Errorf("gdpm: embedded etcd: %w", ctx.Err())
	}
}

// enableAuth turns etcd's auth on through an in-process client (no TLS
// identity needed: auth is off until the last step) before any caller can
// rely on the etcd.
func (ee *EmbeddedEtcd) enableAuth(ctx context.Context, timeout time.Duration, k keyspace) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cli := v3client.New(ee.e.Server)
	defer cli.Close()
	return enableEtcdAuth(ctx, cli, k)
}

// Endpoints returns the client URLs etcd listens on, with the real port when
// port 0 was asked for.
func (ee *EmbeddedEtcd) Endpoints() []string {
	var eps []string
	for _, l := range ee.e.Clients {
		eps = append(eps, ee.scheme+"://"+l.Addr().String())
	}
	return eps
}

// Close stops etcd and removes its data directory if it was temporary. It
// ends the clients' open watches and keepalives first (in this process or
// not), which etcd would otherwise wait for. Close is idempotent and safe
// on nil.
func (ee *EmbeddedEtcd) Close() error {
	if ee == nil {
		return nil
	}
	ee.closeMu.Do(func() {
		if ee.e != nil {
			ee.streams.cutAll()
			ee.e.Close()
		}
		ee.removeTmp()
	})
	return nil
}

func (ee *EmbeddedEtcd) removeTmp() {
	if ee.tmpDir != "" {
		os.RemoveAll(ee.tmpDir)
	}
}

// newEtcdClient dials etcd without blocking; calls fail (with a timeout) until
// it is reachable.
// A non-nil tlsCfg is used for https:// endpoints.
func newEtcdClient(endpoints []string, dialTimeout time.Duration, tlsCfg *tls.Config) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		TLS:                  tlsCfg,
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		// Tells a write that may have been applied from one that was
		// never sent (etcdwrite.go).
		DialOptions: []grpc.DialOption{grpc.WithStatsHandler(sentTracker{})},
	})
	if err != nil {
		return nil, fmt.Errorf("gdpm: etcd client: %w", err)
	}
	return c, nil
}

// storeErr turns an etcd failure into ErrUnavailable so the API can answer
// 503; context cancellation by the caller stays as it is.
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
}

// writeEtcdServerCert issues etcd's server certificate from ca into dir
// (replacing the one a previous start wrote: the names may have changed)
// and returns the TLS settings that require client certificates from ca.
func writeEtcdServerCert(ca *CA, dir string, hosts []string) (transport.TLSInfo, error) {
	ic, err := ca.issue(certRequest{commonName: "gdpm etcd", ou: ouEtcd, hosts: hosts, server: true, client: true})
	if err != nil {
		return transport.TLSInfo{}, err
	}
	keyPEM, err := ic.keyPEM()
	if err != nil {
		return transport.TLSInfo{}, fmt.Errorf("gdpm: etcd key: %w", err)
	}
	info := transport.TLSInfo{
		CertFile:       filepath.Join(dir, "etcd.crt"),
		KeyFile:        filepath.Join(dir, "etcd.key"),
		TrustedCAFile:  filepath.Join(dir, "etcd-ca.crt"),
		ClientCertAuth: true,
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return info, fmt.Errorf("gdpm: etcd pki dir: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{info.KeyFile, keyPEM, 0o600}, {info.CertFile, ic.certPEM(), 0o644}, {info.TrustedCAFile, ca.CertPEM(), 0o644}} {
		if err := os.WriteFile(f.name, f.data, f.mode); err != nil {
			return info, fmt.Errorf("gdpm: etcd pki: %w", err)
		}
	}
	return info, nil
}
