package gdpm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The cluster CA. A secured cluster has one certificate authority: it signs
// the masters' server certificates, the slaves' certificates (from the CSR
// a slave sends when it joins) and the embedded etcd's. Everything is
// ECDSA P-256 through crypto/x509: no external tool.

// Certificate lifetimes. Nothing renews a certificate: a slave gets a new
// one each time it registers, a master each time it starts.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	// certBackdate covers clocks that are a little behind the issuer's.
	certBackdate = 5 * time.Minute
)

// Organizational units that tell what a certificate was issued to. The
// slaves' log servers accept only master certificates.
const (
	ouMaster = "gdpm-master"
	ouNode   = "gdpm-node"
	ouEtcd   = "gdpm-etcd"
)

// CA is a cluster certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a new self-signed cluster CA with an ECDSA P-256 key.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "gdpm cluster CA " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ParseCA reads a CA from its PEM certificate and PEM private key (PKCS#8,
// EC or PKCS#1) and checks that they belong together.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("gdpm: CA certificate: %q is not a CA", cert.Subject.CommonName)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("gdpm: CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadOrCreateCAFiles reads DIR/ca.crt and DIR/ca.key, or creates a new CA
// there (key mode 0600) when neither exists. created says which.
func LoadOrCreateCAFiles(dir string) (ca *CA, created bool, err error) {
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, cerr := os.ReadFile(certFile)
	keyPEM, kerr := os.ReadFile(keyFile)
	switch {
	case cerr == nil && kerr == nil:
		ca, err := ParseCA(certPEM, keyPEM)
		return ca, false, err
	case !errors.Is(cerr, os.ErrNotExist) || !errors.Is(kerr, os.ErrNotExist):
		return nil, false, fmt.Errorf("gdpm: CA files in %s: need both ca.crt and ca.key: %v", dir, errors.Join(cerr, kerr))
	}
	ca, err = NewCA()
	if err != nil {
		return nil, false, err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// WriteFiles writes DIR/ca.crt and DIR/ca.key (0600), creating DIR (0700).
// It refuses to overwrite either file.
func (ca *CA) WriteFiles(dir string) error {
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("gdpm: CA dir: %w", err)
	}
	// The key first: a crash in between leaves a key without a certificate,
	// which the next start reports instead of silently making a new CA.
	if err := writeNewFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600); err != nil {
		return err
	}
	return writeNewFile(filepath.Join(dir, "ca.crt"), ca.CertPEM(), 0o644)
}

func writeNewFile(name string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("gdpm: %w", err)
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("gdpm: writing %s: %w", name, err)
	}
	return nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM is the CA private key in PKCS#8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("gdpm: CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Hash is the pin slaves and clients use to trust the CA:
// "sha256:" and the hex SHA-256 of the CA certificate's DER, as kubeadm's
// discovery-token-ca-cert-hash.
func (ca *CA) Hash() string { return CertHash(ca.Cert) }

// CertHash is "sha256:HEX" of a certificate's DER.
func CertHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Pool is a certificate pool holding the CA certificate alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// certRequest is what to put in an issued certificate.
type certRequest struct {
	commonName string
	ou         string
	extraOU    string   // a name for people, after ou
	hosts      []string // DNS names and IP addresses
	client     bool
	server     bool
}

// sign issues a certificate for pub.
func (ca *CA) sign(pub crypto.PublicKey, r certRequest) (*x509.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: r.commonName, OrganizationalUnit: []string{r.ou}},
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if r.extraOU != "" {
		tmpl.Subject.OrganizationalUnit = append(tmpl.Subject.OrganizationalUnit, r.extraOU)
	}
	if r.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if r.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	seen := map[string]bool{}
	for _, h := range r.hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("gdpm: issuing a certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// issue makes a new P-256 key and a certificate for it, returned as a TLS
// certificate whose chain includes the CA (so that a peer that pins the CA
// by hash finds it in the handshake).
func (ca *CA) issue(r certRequest) (*issuedCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gdpm: key: %w", err)
	}
	cert, err := ca.sign(key.Public(), r)
	if err != nil {
		return nil, err
	}
	return &issuedCert{cert: cert, key: key, ca: ca.Cert}, nil
}

// issuedCert is a certificate with its key and issuing CA.
type issuedCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	ca   *x509.Certificate
}

func (ic *issuedCert) tlsCert() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{ic.cert.Raw, ic.ca.Raw}, PrivateKey: ic.key, Leaf: ic.cert}
}

func (ic *issuedCert) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.cert.Raw})
}

func (ic *issuedCert) keyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ic.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// signCSR issues a slave's certificate from its CSR: the key in the CSR,
// the names the master decides (the CSR's own names are ignored).
func (ca *CA) signCSR(csrDER []byte, r certRequest) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: bad CSR: %v", ErrBadRequest, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature: %v", ErrBadRequest, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: CSR key curve %s not accepted", ErrBadRequest, k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("%w: CSR key type %T not accepted (ECDSA P-256 or P-384)", ErrBadRequest, k)
	}
	return ca.sign(csr.PublicKey, r)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	certs, err := parseCertsPEM(b)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key block")
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		var k any
		var err error
		switch blk.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key type %T cannot sign", k)
		}
		return s, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// ParseCAHash reads a "sha256:HEX" pin (64 hex digits).
func ParseCAHash(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(strings.TrimSpace(s), "sha256:")
	if !ok {
		return nil, fmt.Errorf("%w: CA hash %q must start with \"sha256:\"", ErrInvalidConfig, s)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("%w: CA hash %q must be sha256: and 64 hex digits", ErrInvalidConfig, s)
	}
	return b, nil
}

// hashMatches reports whether cert's DER hashes to pin.
func hashMatches(cert *x509.Certificate, pin []byte) bool {
	sum := sha256.Sum256(cert.Raw)
	return bytes.Equal(sum[:], pin)
}

// EtcdClientTLS issues a master's etcd client certificate and returns the
// TLS config to reach an etcd that serves a certificate from this CA and
// requires client certificates from it (the embedded etcd started with
// EmbeddedEtcdConfig.CA). The common name is "root", etcd's user with
// every permission (etcd takes the user from the common name), so a
// master can never find etcd without a user for it, whatever name it
// passes and whichever process started the etcd; name goes in the subject
// beside, as a second organizational unit, to tell the masters apart.
func (ca *CA) EtcdClientTLS(name string) (*tls.Config, error) {
	ic, err := ca.issue(certRequest{commonName: etcdRootUser, ou: ouMaster, extraOU: name, client: true})
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool(), Certificates: []tls.Certificate{*ic.tlsCert()}}, nil
}
