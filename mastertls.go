package gdpm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm/internal/backoff"
)

// MasterTLS secures a master: HTTPS for the API, TLS on the registration
// port, mutual TLS to the slaves' log servers, and certificates for the
// slaves that join.
type MasterTLS struct {
	// CA is the cluster CA. It signs the certificates of joining slaves
	// and, without Cert, this master's own. nil: the CA kept in etcd
	// under PREFIX/pki/, created there by the first master that starts
	// (a create-if-absent transaction), so every master of the cluster
	// issues from the same CA and a restart keeps it. A CA given here is
	// written there too when etcd has none, and must be the one etcd has
	// otherwise (Start fails).
	CA *CA
	// Cert is this master's certificate, to bring your own: it needs
	// server and client usage (it is also the client certificate for the
	// log servers). nil: issued from CA at Start for the listen
	// addresses, the loopback names and Advertise.
	Cert *tls.Certificate
	// RootCAs are the CAs that issued the slaves' certificates (whom the
	// master fetches logs from). Default: CA's certificate.
	RootCAs *x509.CertPool
	// Advertise are extra DNS names or IP addresses for this master's
	// certificate: the names clients and slaves reach it by.
	Advertise []string
	// SlaveEtcd, when set, is handed to every slave that joins, for an
	// external etcd that does not trust the cluster CA: every slave then
	// has these credentials' access. nil: slaves use the certificate they
	// were issued and trust the cluster CA (right for the embedded etcd),
	// and the master makes the slave's etcd user, confined to its keys,
	// when etcd has auth on (etcdauth.go).
	SlaveEtcd *EtcdCredentials
}

// masterSec is a secured master's TLS state, fixed at Start.
type masterSec struct {
	ca    *CA // nil when the master only has its own certificate
	cert  *tls.Certificate
	roots *x509.CertPool
}

// CAHash is the cluster CA's pin ("sha256:HEX") slaves and clients join
// with; "" for a master without TLS, or before Start.
func (m *Master) CAHash() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sec == nil || m.sec.ca == nil {
		return ""
	}
	return m.sec.ca.Hash()
}

// CA is the cluster CA the master issues from (nil without TLS, before
// Start, or when it only has its own certificate).
func (m *Master) CA() *CA {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sec == nil {
		return nil
	}
	return m.sec.ca
}

// setupTLS settles the CA (from etcd when not given), issues this master's
// certificate and arms the log client. Called by Start before listening.
func (m *Master) setupTLS(ctx context.Context, cli *clientv3.Client) (*masterSec, error) {
	tc := m.cfg.TLS
	sec := &masterSec{ca: tc.CA, cert: tc.Cert, roots: tc.RootCAs}
	if tc.Cert == nil || tc.CA != nil {
		ca, err := m.clusterCA(ctx, cli, tc.CA)
		if err != nil {
			return nil, err
		}
		sec.ca = ca
	}
	if sec.roots == nil {
		if sec.ca == nil {
			return nil, fmt.Errorf("%w: TLS.Cert without a CA needs TLS.RootCAs", ErrInvalidConfig)
		}
		sec.roots = sec.ca.Pool()
	}
	if sec.cert == nil {
		ic, err := sec.ca.issue(certRequest{
			commonName: "gdpm master " + m.cfg.ID, ou: ouMaster,
			hosts:  hostsFor([]string{m.cfg.HTTPAddr, m.cfg.TCPAddr}, tc.Advertise),
			client: true, server: true,
		})
		if err != nil {
			return nil, err
		}
		sec.cert = ic.tlsCert()
	}
	roots := sec.roots
	m.logTransport.DialTLSContext = dialTLSWith(func(string) *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*sec.cert},
			// Slaves are reached at whatever address they published;
			// what matters is that the certificate is a node's from
			// the cluster CA, checked here.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				_, err := verifyChain(cs.PeerCertificates, roots, x509.ExtKeyUsageServerAuth)
				return err
			},
		}
	})
	return sec, nil
}

// clusterCA returns the CA kept in etcd, writing given (or a new CA) there
// first when etcd has none. It retries until ctx ends while etcd cannot
// be reached.
func (m *Master) clusterCA(ctx context.Context, cli *clientv3.Client, given *CA) (*CA, error) {
	mine := given
	if mine == nil {
		var err error
		if mine, err = NewCA(); err != nil {
			return nil, err
		}
	}
	keyPEM, err := mine.KeyPEM()
	if err != nil {
		return nil, err
	}
	certKey, keyKey := m.k.p+"pki/ca.crt", m.k.p+"pki/ca.key"
	retry := backoff.NewDelay(100*time.Millisecond, 2*time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		resp, err := cli.Txn(cctx).
			If(clientv3.Compare(clientv3.CreateRevision(certKey), "=", 0)).
			Then(clientv3.OpPut(keyKey, string(keyPEM)), clientv3.OpPut(certKey, string(mine.CertPEM()))).
			Else(clientv3.OpGet(certKey), clientv3.OpGet(keyKey)).
			Commit()
		cancel()
		if errors.Is(err, rpctypes.ErrPermissionDenied) {
			// No retry helps: etcd has auth on and no root user for
			// this certificate's common name (etcdauth.go).
			return nil, fmt.Errorf("%w: etcd refuses this master's certificate (%v): with auth on, a master's etcd certificate needs the common name %q, as CA.EtcdClientTLS issues", ErrInvalidConfig, err, etcdRootUser)
		}
		if err != nil {
			m.log.Warn("cannot read the cluster CA from etcd yet", "err", err)
			if !retry.Wait(ctx) {
				return nil, storeErr("gdpm: cluster CA", err)
			}
			continue
		}
		if resp.Succeeded {
			m.log.Info("cluster CA stored in etcd", "hash", mine.Hash())
			return mine, nil
		}
		certs, keys := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		if len(certs) != 1 || len(keys) != 1 {
			return nil, fmt.Errorf("gdpm: cluster CA in etcd: %s without %s", certKey, keyKey)
		}
		ca, err := ParseCA(certs[0].Value, keys[0].Value)
		if err != nil {
			return nil, fmt.Errorf("gdpm: cluster CA in etcd: %w", err)
		}
		if given != nil && !bytes.Equal(ca.Cert.Raw, given.Cert.Raw) {
			return nil, fmt.Errorf("%w: the given CA (%s) is not the cluster CA in etcd (%s)", ErrInvalidConfig, given.Hash(), ca.Hash())
		}
		return ca, nil
	}
}

// wrapTLS makes ln a TLS listener when the master is secured.
func (m *Master) wrapTLS(ln net.Listener, sec *masterSec) net.Listener {
	if sec == nil {
		return ln
	}
	return tls.NewListener(ln, serverTLS(sec.cert))
}

// logScheme is how the slaves' log servers are reached: mutual TLS when
// the master is secured (then without the token: the certificate is the
// credential).
func (m *Master) logScheme() string {
	if m.sec != nil {
		return "https"
	}
	return "http"
}
