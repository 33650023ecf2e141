package gdpm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
)

// TLS for every channel of a secured cluster. Who proves what:
//
//	client/slave -> master (API, registration): the master's chain ends at
//	  the cluster CA, pinned by hash or given as a pool; the leaf is a
//	  gdpm master certificate or names the host dialled.
//	master -> slave log server: mutual; the slave's chain ends at the CA,
//	  the master presents its own certificate, which must not be a node's.
//	master/slave -> etcd: etcd's usual TLS; the embedded etcd requires a
//	  client certificate from the cluster CA.

// trust authenticates masters: by the SHA-256 of the CA certificate (the
// CA is found in the chain the server presents), or by a pool of CAs.
type trust struct {
	pin   []byte
	roots *x509.CertPool
}

func newTrust(caHash string, roots *x509.CertPool) (trust, error) {
	t := trust{roots: roots}
	if caHash != "" {
		pin, err := ParseCAHash(caHash)
		if err != nil {
			return t, err
		}
		t.pin = pin
	}
	return t, nil
}

func (t trust) enabled() bool { return t.pin != nil || t.roots != nil }

// verifyMaster checks a server's chain and returns the root CA it ends at.
func (t trust) verifyMaster(chain []*x509.Certificate, host string) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrUntrusted)
	}
	roots := t.roots
	if t.pin != nil {
		var pinned *x509.Certificate
		for _, c := range chain {
			if hashMatches(c, t.pin) {
				pinned = c
			}
		}
		if pinned == nil {
			got := "no CA certificate in its chain (a master with its own certificate: trust its CA file with -tls-ca)"
			if last := chain[len(chain)-1]; last.IsCA {
				got = CertHash(last)
			}
			return nil, fmt.Errorf("%w: the master's CA is not the pinned one: want sha256:%x, the master presents %s (check -ca-hash against the line the master prints at start)", ErrUntrusted, t.pin, got)
		}
		roots = x509.NewCertPool()
		roots.AddCert(pinned)
	}
	root, err := verifyChain(chain, roots, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !hasOU(leaf, ouMaster) && (host == "" || leaf.VerifyHostname(host) != nil) {
		return nil, fmt.Errorf("%w: certificate %q is neither a gdpm master's nor issued for %q", ErrUntrusted, leaf.Subject.CommonName, host)
	}
	return root, nil
}

// clientConfig is the TLS config to dial a master at host; onCA, when set,
// gets the CA the master's chain ended at.
func (t trust) clientConfig(host string, onCA func(*x509.Certificate)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// Verification is done by VerifyConnection, with the pinned CA
		// that only the presented chain can supply.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := t.verifyMaster(cs.PeerCertificates, host)
			if err == nil && onCA != nil {
				onCA(ca)
			}
			return err
		},
	}
}

// verifyChain verifies chain[0] against roots for usage and returns the
// root the chain ends at.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrUntrusted)
	}
	if roots == nil {
		return nil, fmt.Errorf("%w: no trusted CA yet", ErrUntrusted)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	c := chains[0]
	return c[len(c)-1], nil
}

func hasOU(c *x509.Certificate, ou string) bool {
	return slices.Contains(c.Subject.OrganizationalUnit, ou)
}

// dialTLSWith is an http.Transport DialTLSContext that builds the TLS
// config for each host, so a verifier knows the host even when it is an
// IP address (which TLS does not send as the server name).
func dialTLSWith(cfgFor func(host string) *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d := tls.Dialer{Config: cfgFor(host)}
		return d.DialContext(ctx, network, addr)
	}
}

// ClientTLS is how a client authenticates a master: CAHash pins the
// cluster CA by "sha256:HEX" (what the master prints at start); RootCAs
// trusts a pool instead (gdpm-client -tls-ca). It returns a function for
// http.Transport.DialTLSContext.
func ClientTLS(caHash string, roots *x509.CertPool) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	t, err := newTrust(caHash, roots)
	if err != nil {
		return nil, err
	}
	if !t.enabled() {
		return nil, fmt.Errorf("%w: give a CA hash or a CA pool", ErrInvalidConfig)
	}
	return dialTLSWith(func(host string) *tls.Config { return t.clientConfig(host, nil) }), nil
}

// LoadCertPool reads PEM CA certificates from a file.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA file: %w", err)
	}
	certs, err := parseCertsPEM(b)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA file %s: %w", file, err)
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}

// serverTLS is a server config presenting cert; HTTP/1.1 only (the API's
// streams are plain chunked responses).
func serverTLS(cert *tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{"http/1.1"},
	}
}

// hostsFor lists the names to put in a certificate for servers listening
// on addrs: each listen host; for an unspecified host (":8989",
// "0.0.0.0:8989") this machine's hostname and every interface address;
// always the loopback names; then extra (the operator's -advertise).
func hostsFor(addrs []string, extra []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	wild := false
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			h = a
		}
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			wild = true
			continue
		}
		hosts = append(hosts, h)
	}
	if wild {
		if hn, err := os.Hostname(); err == nil {
			hosts = append(hosts, hn)
		}
		if ifas, err := net.InterfaceAddrs(); err == nil {
			for _, ifa := range ifas {
				if ipn, ok := ifa.(*net.IPNet); ok {
					hosts = append(hosts, ipn.IP.String())
				}
			}
		}
	}
	hosts = append(hosts, extra...)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// EtcdCredentials are PEM files' contents for an etcd client: the CA that
// signed etcd's server certificate and, for an etcd that requires client
// certificates, a client certificate and key.
type EtcdCredentials struct {
	CA   []byte `json:"CA,omitempty"`
	Cert []byte `json:"Cert,omitempty"`
	Key  []byte `json:"Key,omitempty"`
}

// tlsConfig builds the etcd client config; own is used as the client
// certificate when the credentials carry none, roots when they carry no CA.
func (ec *EtcdCredentials) tlsConfig(own *tls.Certificate, roots *x509.CertPool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if own != nil {
		cfg.Certificates = []tls.Certificate{*own}
	}
	if ec == nil {
		return cfg, nil
	}
	if len(ec.CA) > 0 {
		certs, err := parseCertsPEM(ec.CA)
		if err != nil {
			return nil, fmt.Errorf("gdpm: etcd CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			cfg.RootCAs.AddCert(c)
		}
	}
	if len(ec.Cert) > 0 {
		c, err := tls.X509KeyPair(ec.Cert, ec.Key)
		if err != nil {
			return nil, fmt.Errorf("gdpm: etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// LoadEtcdCredentials reads the three PEM files; empty names are skipped.
func LoadEtcdCredentials(caFile, certFile, keyFile string) (*EtcdCredentials, error) {
	var ec EtcdCredentials
	var errs []error
	read := func(name string, dst *[]byte) {
		if name == "" {
			return
		}
		b, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, err)
		}
		*dst = b
	}
	read(caFile, &ec.CA)
	read(certFile, &ec.Cert)
	read(keyFile, &ec.Key)
	if (len(ec.Cert) > 0) != (len(ec.Key) > 0) {
		errs = append(errs, errors.New("an etcd client certificate needs both the certificate and the key"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("gdpm: etcd credentials: %w", err)
	}
	if _, err := ec.tlsConfig(nil, nil); err != nil {
		return nil, err
	}
	return &ec, nil
}

// EtcdClientTLS is a TLS config for etcd with these credentials.
func (ec *EtcdCredentials) EtcdClientTLS() (*tls.Config, error) { return ec.tlsConfig(nil, nil) }
