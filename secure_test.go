package gdpm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const secureToken = "s3cret-token"

func newSecureCluster(t *testing.T, slaves int) *cluster {
	t.Helper()
	return newCluster(t, clusterOpts{slaves: slaves, token: secureToken, secure: true})
}

// A whole secured cluster: two slaves join by token and CA pin, instances
// run on both, and their logs come back through the master over mutual
// TLS; the API answers only HTTPS.
func TestSecureClusterRunsAndServesLogsOverMutualTLS(t *testing.T) {
	c := newSecureCluster(t, 2)
	if got := c.master().CAHash(); got != c.ca.Hash() {
		t.Fatalf("master CA hash %s, want the cluster's %s", got, c.ca.Hash())
	}
	id := c.create(gdpm.ProgramForTests()+" lines 3 10ms", 2)
	c.waitRunning(id, 2)
	_, perNode, err := c.running(id)
	if err != nil || len(perNode) != 2 {
		t.Fatalf("instances per node %v (%v), want one on each slave", perNode, err)
	}
	waitFor(t, 20*time.Second, "3 lines from each instance through the master", func() (bool, string) {
		n := stdoutLines(readLogs(t, c.client, id, gdpm.LogsOptions{Tail: 10}))
		return n == 6, fmt.Sprintf("%d stdout lines", n)
	})

	// Plain HTTP to the API: refused, and nothing is created.
	resp, err := http.Post("http://"+c.master().HTTPAddr()+"/service/", "application/json", strings.NewReader(`{"Command":"sleep 1000"}`))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP POST: %s, want 400", resp.Status)
		}
	}
	svcs, err := c.client.Services(ctxT(t))
	if err != nil || len(svcs) != 1 {
		t.Fatalf("services after the plain POST: %v %v, want just the one", svcs, err)
	}
	// A client that does not trust the CA cannot even connect.
	if _, err := http.Get("https://" + c.master().HTTPAddr() + "/healthz"); err == nil {
		t.Error("an HTTPS client without the CA trusted the master")
	}
	// The wrong pin: refused with ErrUntrusted before anything is sent.
	other, _ := gdpm.NewCA()
	cl, err := gdpm.NewClient(gdpm.ClientConfig{Addr: "https://" + c.master().HTTPAddr(), Token: secureToken, CAHash: other.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Services(ctxT(t)); !errors.Is(err, gdpm.ErrUntrusted) {
		t.Errorf("client with a wrong pin: %v, want ErrUntrusted", err)
	}
}

// etcdRevision reads the current revision with a trusted client.
// etcdRevision is the highest mod revision of the cluster's keys, the
// slaves' usage reports left out: they are rewritten every few seconds.
func etcdRevision(t *testing.T, c *cluster) int64 {
	t.Helper()
	cli := etcdClient(t, c.eps, c.etcdTLS)
	resp, err := cli.Get(ctxT(t), "/gdpm/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), "/gdpm/usage/") {
			rev = max(rev, kv.ModRevision)
		}
	}
	return rev
}

func etcdClient(t *testing.T, eps []string, tc *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// The embedded etcd of a secured cluster refuses clients without a
// certificate from the cluster CA: nothing is read, nothing written.
func TestSecureEtcdRefusesClientsWithoutAClusterCertificate(t *testing.T) {
	c := newSecureCluster(t, 1)
	c.waitRunning(c.create("sleep 1000", 1), 1)
	before := etcdRevision(t, c)

	other, err := gdpm.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.EtcdClientTLS("intruder")
	if err != nil {
		t.Fatal(err)
	}
	// The intruder trusts the server (as if it had the CA certificate,
	// which is public) but presents no client certificate, or one from
	// another CA.
	noCert := &tls.Config{RootCAs: c.ca.Pool()}
	otherCert := &tls.Config{RootCAs: c.ca.Pool(), Certificates: foreign.Certificates}
	plainEps := []string{strings.Replace(c.eps[0], "https://", "http://", 1)}
	for _, tc := range []struct {
		name string
		eps  []string
		tls  *tls.Config
	}{
		{"no certificate", c.eps, noCert},
		{"certificate from another CA", c.eps, otherCert},
		{"plain text", plainEps, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := etcdClient(t, tc.eps, tc.tls)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			if _, err := cli.Put(ctx, "/gdpm/services/intruder", `{"ID":"intruder","Command":"sleep 7294890","InstanceNum":2}`); err == nil {
				t.Error("put succeeded")
			}
			ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel2()
			if resp, err := cli.Get(ctx2, "/gdpm/", clientv3.WithPrefix()); err == nil {
				t.Errorf("get succeeded: %d keys", resp.Count)
			}
		})
	}
	if after := etcdRevision(t, c); after != before {
		t.Errorf("etcd revision moved from %d to %d", before, after)
	}
}

// A slave that pins another CA refuses the master (and never sends the
// token); one with a wrong token gets no certificate. Neither gets work,
// and WaitReady says why, at once.
func TestSecureJoinRefusesWrongPinAndWrongToken(t *testing.T) {
	c := newSecureCluster(t, 1)
	other, err := gdpm.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		adjust func(*gdpm.SlaveConfig)
		want   error
	}{
		{"wrong pin", func(s *gdpm.SlaveConfig) { s.CAHash = other.Hash() }, gdpm.ErrUntrusted},
		{"wrong token", func(s *gdpm.SlaveConfig) { s.Token = "not-the-token" }, gdpm.ErrUnauthorized},
		{"no pin", func(s *gdpm.SlaveConfig) { s.CAHash = "" }, gdpm.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gdpm.SlaveConfig{Masters: []string{c.master().TCPAddr()}, Token: secureToken, CAHash: c.ca.Hash(), DataDir: t.TempDir(), LogAddr: "127.0.0.1:0"}
			tc.adjust(&cfg)
			s, err := gdpm.NewSlave(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A refused token or CA ends the wait at once; a slave
			// without a pin just never gets an answer it can read.
			early := !errors.Is(tc.want, gdpm.ErrProtocol)
			wait := 3 * time.Second
			if early {
				wait = 20 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err = s.WaitReady(ctx)
			if !errors.Is(err, tc.want) || errors.Is(err, context.DeadlineExceeded) == early {
				t.Fatalf("WaitReady: %v, want %v (early: %v)", err, tc.want, early)
			}
			if s.NodeID() != "" {
				t.Errorf("node id %q, want none", s.NodeID())
			}
			t.Logf("WaitReady: %v", err)
		})
	}
	nodes, err := c.client.Nodes(ctxT(t))
	if err != nil || len(nodes.Ids) != 1 {
		t.Fatalf("nodes %v (%v), want only the good slave", nodes.Ids, err)
	}
}

// A master restarted on the same etcd keeps the CA: slaves keep running
// their work without joining again, and the new master reads their logs.
// A second master started without a CA issues from the same one.
func TestSecureMasterRestartAndSecondMasterShareTheCA(t *testing.T) {
	c := newSecureCluster(t, 2)
	id := c.create(gdpm.ProgramForTests()+" lines 2 10ms", 2)
	pids := c.waitRunning(id, 2)
	nodes := []string{c.slaves[0].NodeID(), c.slaves[1].NodeID()}

	// A second master with no CA of its own: it finds the cluster's in etcd.
	m2 := c.addMaster(func(cfg *gdpm.MasterConfig) { cfg.TLS.CA = nil })
	if m2.CAHash() != c.ca.Hash() {
		t.Fatalf("second master's CA %s, want %s", m2.CAHash(), c.ca.Hash())
	}
	// The first master goes away; the second serves.
	if err := c.masters[0].Close(); err != nil {
		t.Fatal(err)
	}
	c.masters = c.masters[1:]
	c.client = c.newClient(m2, secureToken)
	waitFor(t, 20*time.Second, "the same processes through the second master", func() (bool, string) {
		got, _, err := c.running(id)
		return err == nil && samePids(got, pids), fmt.Sprintf("%v %v", got, err)
	})
	waitFor(t, 20*time.Second, "logs through the second master", func() (bool, string) {
		n := stdoutLines(readLogs(t, c.client, id, gdpm.LogsOptions{Tail: 10}))
		return n == 4, fmt.Sprintf("%d stdout lines", n)
	})
	// And a master restarted without a CA in its config: the same hash.
	m3 := c.addMaster(func(cfg *gdpm.MasterConfig) { cfg.TLS.CA = nil })
	if m3.CAHash() != c.ca.Hash() {
		t.Fatalf("restarted master's CA %s, want %s", m3.CAHash(), c.ca.Hash())
	}
	// All along, etcd's auth is on (secure_rbac_test.go).
	if st, err := etcdClient(t, c.eps, c.etcdTLS).AuthStatus(ctxT(t)); err != nil || !st.Enabled {
		t.Fatalf("etcd auth status %v (%v), want enabled", st, err)
	}
	for i, s := range c.slaves {
		if s.NodeID() != nodes[i] {
			t.Errorf("slave %d joined again: node %s, was %s", i, s.NodeID(), nodes[i])
		}
	}
}

func samePids(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[int]bool{}
	for _, p := range a {
		seen[p] = true
	}
	for _, p := range b {
		if !seen[p] {
			return false
		}
	}
	return true
}

func stdoutLines(lines []gdpm.LogLine) int {
	n := 0
	for _, l := range lines {
		if l.Stream == "stdout" {
			n++
		}
	}
	return n
}

// gdpm-master refuses a non-loopback -etcd-listen without a token (exit 2,
// saying how to secure it); with a token it prints the CA hash of the CA
// it keeps in the -embed-etcd dir and the join line.
func TestMasterBinarySecuresOrStaysOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdpm-master")
	}
	bin := buildBinary(t, "gdpm-master")
	dir := t.TempDir()
	cmd := exec.Command(bin, "-embed-etcd", dir, "-etcd-listen", "0.0.0.0:0", "-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "GDPM_TOKEN=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "-etcd-listen 0.0.0.0:0 is not loopback") || !strings.Contains(string(out), "-token") {
		t.Fatalf("non-loopback -etcd-listen without a token: %v\n%s", err, out)
	}

	p := startBinProc(t, bin, "-embed-etcd", dir, "-etcd-listen", "127.0.0.1:0", "-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-token", secureToken)
	var hash, join string
	waitFor(t, 30*time.Second, "the CA hash and the join line", func() (bool, string) {
		for _, l := range strings.Split(p.out.String(), "\n") {
			if h, ok := strings.CutPrefix(l, "gdpm-master: CA "); ok {
				hash = h
			}
			if j, ok := strings.CutPrefix(l, "gdpm-master: join with: "); ok {
				join = j
			}
		}
		return hash != "" && join != "", p.out.String()
	})
	ca, created, err := gdpm.LoadOrCreateCAFiles(filepath.Join(dir, "pki"))
	if err != nil || created {
		t.Fatalf("CA in the etcd dir: created=%v %v", created, err)
	}
	if hash != ca.Hash() || !strings.HasSuffix(join, "-token $GDPM_TOKEN -ca-hash "+ca.Hash()) || !strings.HasPrefix(join, "gdpm-slave -master 127.0.0.1:") {
		t.Fatalf("printed CA %q and join line %q; the CA in %s is %s", hash, join, dir, ca.Hash())
	}
	// A standby master on that etcd, given the CA files: the same hash.
	m := regexp.MustCompile(`endpoints=\[(https://[0-9.:]+)\]`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no etcd endpoint in the output:\n%s", p.out.String())
	}
	standby := startBinProc(t, bin, "-etcd", m[1], "-ca-dir", filepath.Join(dir, "pki"), "-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-token", secureToken)
	waitFor(t, 30*time.Second, "the standby's CA line", func() (bool, string) {
		return strings.Contains(standby.out.String(), "gdpm-master: CA "+ca.Hash()+"\n"), standby.out.String()
	})
}

// With an etcd that has a CA of its own (as an external etcd would), the
// masters keep the cluster CA in etcd: two masters started without one
// issue from the same CA, created once. Slaves get the etcd credentials
// in the welcome and need no etcd flags.
func TestSecureExternalEtcdCredentialsGoToSlaves(t *testing.T) {
	etcdCA, err := gdpm.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := gdpm.StartEmbeddedEtcd(context.Background(), gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true, CA: etcdCA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	tc, err := etcdCA.EtcdClientTLS("external etcd client")
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(tc.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	creds := &gdpm.EtcdCredentials{
		CA:   etcdCA.CertPEM(),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tc.Certificates[0].Certificate[0]}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	etcdTLS, err := creds.EtcdClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{token: secureToken, secure: true, endpoints: etcd.Endpoints(), master: func(cfg *gdpm.MasterConfig) {
		cfg.TLS.CA, cfg.TLS.SlaveEtcd, cfg.EtcdTLS = nil, creds, etcdTLS
	}})
	first := c.master().CA()
	if first == nil || first.Hash() == etcdCA.Hash() {
		t.Fatalf("master CA %v: want a cluster CA made in etcd, not etcd's own", first)
	}
	m2 := c.addMaster()
	if m2.CAHash() != first.Hash() {
		t.Fatalf("second master issues from %s, the first from %s", m2.CAHash(), first.Hash())
	}
	c.trust(first)
	c.client = c.newClient(c.master(), secureToken)
	c.addSlave()
	c.addSlaveVia(m2)
	id := c.create(gdpm.ProgramForTests()+" lines 2 10ms", 2)
	c.waitRunning(id, 2)
	waitFor(t, 20*time.Second, "logs over mutual TLS", func() (bool, string) {
		n := stdoutLines(readLogs(t, c.client, id, gdpm.LogsOptions{Tail: 10}))
		return n == 4, fmt.Sprintf("%d stdout lines", n)
	})
}

// issueForTest signs a client and server certificate for 127.0.0.1 with
// ca, as an operator's own PKI would.
func issueForTest(t *testing.T, ca *gdpm.CA, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Bring your own PKI: a master and slaves with certificates from the
// operator's CA (the master holds no CA key, so it signs nothing); slaves
// send no CSR and still get the etcd credentials.
func TestSecureBringYourOwnCertificates(t *testing.T) {
	opCA, err := gdpm.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := gdpm.StartEmbeddedEtcd(context.Background(), gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true, CA: opCA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	// That etcd has auth on and takes the user from the common name: the
	// operator names the masters' (and here the slaves') etcd certificate
	// after its root user.
	etcdCert := issueForTest(t, opCA, "root")
	keyDER, _ := x509.MarshalPKCS8PrivateKey(etcdCert.PrivateKey)
	creds := &gdpm.EtcdCredentials{
		CA:   opCA.CertPEM(),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: etcdCert.Certificate[0]}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	etcdTLS, err := creds.EtcdClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	masterCert := issueForTest(t, opCA, "master")
	c := newCluster(t, clusterOpts{token: secureToken, secure: true, endpoints: etcd.Endpoints(),
		master: func(cfg *gdpm.MasterConfig) {
			cfg.TLS = &gdpm.MasterTLS{Cert: masterCert, RootCAs: opCA.Pool(), SlaveEtcd: creds}
			cfg.EtcdTLS = etcdTLS
		},
		slave: func(cfg *gdpm.SlaveConfig) {
			cfg.CAHash, cfg.RootCAs, cfg.Cert = "", opCA.Pool(), issueForTest(t, opCA, "slave")
		},
	})
	if c.master().CAHash() != "" {
		t.Errorf("a master with its own certificate reports CA %s", c.master().CAHash())
	}
	c.trust(opCA)
	// The master's chain holds no CA to find by hash: trust the pool.
	c.client, err = gdpm.NewClient(gdpm.ClientConfig{Addr: "https://" + c.master().HTTPAddr(), Token: secureToken, RootCAs: opCA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	c.addSlave()
	id := c.create(gdpm.ProgramForTests()+" lines 2 10ms", 1)
	c.waitRunning(id, 1)
	waitFor(t, 20*time.Second, "logs over mutual TLS", func() (bool, string) {
		n := stdoutLines(readLogs(t, c.client, id, gdpm.LogsOptions{Tail: 10}))
		return n == 2, fmt.Sprintf("%d stdout lines", n)
	})
	// A slave that asks for a certificate is told this master signs none.
	s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{c.master().TCPAddr()}, Token: secureToken, RootCAs: opCA.Pool(), DataDir: t.TempDir(), LogAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "no CA key") {
		t.Errorf("a CSR to a master without a CA key: %v", err)
	}
}

// The CA kept in a directory survives a restart (the same hash), its key is
// readable by the owner only, and a master given another CA than the one
// in etcd refuses to start rather than issue from a second CA.
func TestCAFilesPersistAndAForeignCAIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, created, err := gdpm.LoadOrCreateCAFiles(dir)
	if err != nil || !created {
		t.Fatalf("first start: created=%v %v", created, err)
	}
	again, created, err := gdpm.LoadOrCreateCAFiles(dir)
	if err != nil || created || again.Hash() != ca.Hash() {
		t.Fatalf("second start: created=%v hash %s, want %s (%v)", created, again.Hash(), ca.Hash(), err)
	}
	if st, err := os.Stat(filepath.Join(dir, "ca.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v (%v), want 0600", st.Mode(), err)
	}
	if h := ca.Hash(); len(h) != len("sha256:")+64 || !strings.HasPrefix(h, "sha256:") {
		t.Fatalf("hash %q", h)
	}
	other, _ := gdpm.NewCA()
	otherKey, _ := other.KeyPEM()
	if _, err := gdpm.ParseCA(ca.CertPEM(), otherKey); err == nil {
		t.Fatal("a CA certificate with another CA's key was accepted")
	}

	c := newSecureCluster(t, 0)
	m, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: c.eps, HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Token: secureToken,
		TLS: &gdpm.MasterTLS{CA: other}, EtcdTLS: c.etcdTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(ctxT(t)); !errors.Is(err, gdpm.ErrInvalidConfig) || !strings.Contains(err.Error(), c.ca.Hash()) {
		t.Fatalf("a master with a foreign CA: %v, want ErrInvalidConfig naming the cluster CA", err)
	}
}
