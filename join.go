package gdpm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Joining a secured cluster, as kubeadm join: the slave dials a master over
// TLS and accepts it only if its chain ends at the pinned CA; only then does
// it send the token, with a CSR for a key it made and keeps. The master
// checks the token and signs the CSR: a client and server certificate named
// after the node id and the slave's addresses, which the slave then
// presents to etcd (the node id is its etcd user) and serves its logs with.

const codeUnauthorized = "unauthorized"

func errorCode(err error) string {
	if errors.Is(err, ErrUnauthorized) {
		return codeUnauthorized
	}
	return ""
}

// joinCert signs a secured slave's CSR into w; a plain master ignores it.
// A slave that reaches etcd with that certificate (no SlaveEtcd) gets its
// etcd user before the answer when etcd has auth on (etcdauth.go); if that
// fails the join fails, and the slave tries again, so no slave holds a
// certificate etcd does not know.
func (m *Master) joinCert(ctx context.Context, h hello, remote net.Addr, w *welcome) error {
	if m.sec == nil {
		return nil
	}
	if len(h.CSR) == 0 {
		// A slave with its own certificate (bring your own PKI).
		w.Etcd = m.cfg.TLS.SlaveEtcd
		return nil
	}
	if m.sec.ca == nil {
		return fmt.Errorf("%w: this master has no CA key to sign a certificate; give the slave its own", ErrBadRequest)
	}
	hosts := []string{w.NodeID}
	if tcp, ok := remote.(*net.TCPAddr); ok {
		hosts = append(hosts, tcp.IP.String())
	}
	for _, a := range h.Addrs {
		if net.ParseIP(a) != nil {
			hosts = append(hosts, a)
		}
	}
	// The common name is the slave's etcd user.
	cert, err := m.sec.ca.signCSR(h.CSR, certRequest{commonName: w.NodeID, ou: ouNode, hosts: hosts, client: true, server: true})
	if err != nil {
		return err
	}
	if m.cfg.TLS.SlaveEtcd == nil {
		if err := m.etcdUserForSlave(ctx, w.NodeID); err != nil {
			return err
		}
	}
	w.Cert = (&issuedCert{cert: cert}).certPEM()
	w.CA = m.sec.ca.CertPEM()
	w.Etcd = m.cfg.TLS.SlaveEtcd
	return nil
}

// slaveSec is a secured slave's TLS state: its key (made once, at
// NewSlave), the CA learned from the first master it trusted and its
// current certificate, which the log server presents.
type slaveSec struct {
	trust trust
	key   *ecdsa.PrivateKey
	own   *tls.Certificate // SlaveConfig.Cert: no CSR

	mu   sync.Mutex
	cert *tls.Certificate
	ca   *x509.CertPool
}

func newSlaveSec(c SlaveConfig) (*slaveSec, error) {
	t, err := newTrust(c.CAHash, c.RootCAs)
	if err != nil {
		return nil, err
	}
	if !t.enabled() {
		if c.Cert != nil {
			return nil, fmt.Errorf("%w: Cert needs CAHash or RootCAs to trust the masters", ErrInvalidConfig)
		}
		return nil, nil
	}
	ss := &slaveSec{trust: t, own: c.Cert, ca: c.RootCAs}
	if c.Cert != nil {
		ss.cert = c.Cert
		return ss, nil
	}
	if ss.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("gdpm: slave key: %w", err)
	}
	return ss, nil
}

func (ss *slaveSec) current() (*tls.Certificate, *x509.CertPool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.cert, ss.ca
}

// dial opens a registration connection to a master and completes the
// handshake, so a master that is not trusted never sees the hello.
func (ss *slaveSec) dial(ctx context.Context, conn net.Conn, addr string) (net.Conn, *x509.Certificate, error) {
	host, _, _ := net.SplitHostPort(addr)
	var ca *x509.Certificate
	tc := tls.Client(conn, ss.trust.clientConfig(host, func(c *x509.Certificate) { ca = c }))
	hctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		if !errors.Is(err, ErrUntrusted) {
			err = fmt.Errorf("TLS handshake: %w", err)
		}
		return nil, nil, err
	}
	return tc, ca, nil
}

// csr is a certificate request for the slave's key.
func (ss *slaveSec) csr(hostname string) ([]byte, error) {
	if ss.key == nil {
		return nil, nil
	}
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: hostname}}, ss.key)
}

// accept takes the welcome's certificate and builds the etcd client
// config; ca is the root the master's chain ended at.
func (ss *slaveSec) accept(w *welcome, ca *x509.Certificate) error {
	cert := ss.own
	pool := ss.trust.roots
	if pool == nil {
		pool = x509.NewCertPool()
		pool.AddCert(ca)
	}
	if ss.key != nil {
		if len(w.Cert) == 0 {
			return fmt.Errorf("%w: the master sent no certificate", ErrProtocol)
		}
		leaf, err := parseCertPEM(w.Cert)
		if err != nil {
			return fmt.Errorf("%w: certificate from the master: %v", ErrProtocol, err)
		}
		if !publicKeysEqual(leaf.PublicKey, ss.key.Public()) {
			return fmt.Errorf("%w: the master's certificate is not for this slave's key", ErrProtocol)
		}
		if _, err := verifyChain([]*x509.Certificate{leaf}, pool, x509.ExtKeyUsageClientAuth); err != nil {
			return fmt.Errorf("certificate from the master: %w", err)
		}
		cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw, ca.Raw}, PrivateKey: ss.key, Leaf: leaf}
	}
	etcdTLS, err := w.Etcd.tlsConfig(cert, pool)
	if err != nil {
		return err
	}
	w.etcdTLS = etcdTLS
	ss.mu.Lock()
	ss.cert, ss.ca = cert, pool
	ss.mu.Unlock()
	return nil
}

// logServerTLS is the slave's log server config: its current certificate,
// and a client certificate from the cluster CA that is not a node's (so
// one slave cannot read another's logs).
func (ss *slaveSec) logServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, _ := ss.current()
			if cert == nil {
				return nil, errors.New("gdpm: not joined yet: no certificate")
			}
			return cert, nil
		},
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool := ss.current()
			if _, err := verifyChain(cs.PeerCertificates, pool, x509.ExtKeyUsageClientAuth); err != nil {
				return err
			}
			if hasOU(cs.PeerCertificates[0], ouNode) {
				return fmt.Errorf("%w: a node's certificate cannot read logs", ErrUntrusted)
			}
			return nil
		},
	}
}

// localAddrs are the slave's addresses for its certificate: the one it
// reached the master from, and its log server's when that names one.
func localAddrs(conn net.Conn, logHost net.IP) []string {
	var out []string
	if tcp, ok := conn.LocalAddr().(*net.TCPAddr); ok {
		out = append(out, tcp.IP.String())
	}
	if logHost != nil && !logHost.IsUnspecified() {
		out = append(out, logHost.String())
	}
	return out
}
