package gdpm_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/gdpmtest"
)

// cluster is a whole gdpm cluster inside the test process: an embedded etcd,
// masters and slaves, all on loopback ports chosen by the kernel. It is
// the test kit's (gdpmtest.Cluster) with the root tests' shortcuts.
type cluster struct {
	t       testing.TB
	kit     *gdpmtest.Cluster
	etcd    *gdpm.EmbeddedEtcd
	masters []*gdpm.Master
	slaves  []*gdpm.Slave
	client  *gdpm.Client
	token   string
	mcfg    func(*gdpm.MasterConfig)
	scfg    func(*gdpm.SlaveConfig)
	eps     []string
	// A secured cluster's CA, the etcd client config the masters use,
	// and the https client that trusts the CA; nil when not secured.
	ca      *gdpm.CA
	etcdTLS *tls.Config
	httpc   *http.Client
}

type clusterOpts struct {
	slaves int
	token  string
	// master adjusts each master's config; slave each slave's.
	master func(*gdpm.MasterConfig)
	slave  func(*gdpm.SlaveConfig)
	// endpoints, when set, is an etcd cluster to use instead of an
	// embedded one.
	endpoints []string
	// secure runs the cluster with TLS everywhere: a cluster CA, an
	// embedded etcd that requires client certificates from it, masters
	// with that CA and slaves that join by pinning its hash.
	secure bool
}

func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, token: o.token, mcfg: o.master, scfg: o.slave, httpc: http.DefaultClient}
	c.kit = gdpmtest.Start(t, gdpmtest.Options{
		Token:     o.token,
		Secure:    o.secure,
		Endpoints: o.endpoints,
		Master: func(cfg *gdpm.MasterConfig) {
			// Short timers keep the failure tests quick.
			cfg.RequestTimeout, cfg.ElectionTTL, cfg.LeaseTTL = 2*time.Second, 2*time.Second, 2*time.Second
			if c.mcfg != nil {
				c.mcfg(cfg)
			}
		},
		Slave: func(cfg *gdpm.SlaveConfig) {
			cfg.LogAddr = "127.0.0.1:0"
			if c.ca != nil { // trust may have changed it
				cfg.CAHash = c.ca.Hash()
			}
			if c.scfg != nil {
				c.scfg(cfg)
			}
		},
	})
	c.etcd, c.eps, c.masters = c.kit.Etcd, c.kit.Endpoints(), c.kit.Masters
	if o.secure {
		var err error
		if c.etcdTLS, err = c.kit.CA.EtcdClientTLS("test master"); err != nil {
			t.Fatal(err)
		}
		c.trust(c.kit.CA)
	}
	c.client = c.newClient(c.master(), o.token)
	for i := 0; i < o.slaves; i++ {
		c.addSlave()
	}
	return c
}

func (c *cluster) newClient(m *gdpm.Master, token string) *gdpm.Client {
	c.t.Helper()
	cfg := gdpm.ClientConfig{Addr: "http://" + m.HTTPAddr(), Token: token}
	if c.ca != nil {
		cfg.Addr, cfg.CAHash = "https://"+m.HTTPAddr(), c.ca.Hash()
	}
	cl, err := gdpm.NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// addMaster starts one more master on the cluster's etcd; adjust, if
// given, changes its config after the cluster's own adjustments.
func (c *cluster) addMaster(adjust ...func(*gdpm.MasterConfig)) *gdpm.Master {
	c.t.Helper()
	m := c.kit.AddMaster(adjust...)
	c.masters = c.kit.Masters
	return m
}

func (c *cluster) master() *gdpm.Master { return c.masters[0] }

func (c *cluster) addSlave() *gdpm.Slave {
	c.t.Helper()
	return c.addSlaveVia(c.master())
}

// addSlaveVia starts a slave that registers through master m.
func (c *cluster) addSlaveVia(m *gdpm.Master) *gdpm.Slave {
	c.t.Helper()
	s := c.kit.AddSlave(func(cfg *gdpm.SlaveConfig) { cfg.Masters = []string{m.TCPAddr()} })
	c.slaves = c.kit.Slaves
	return s
}

// waitFor, alive and waitDead are the test kit's (gdpmtest).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	gdpmtest.WaitFor(t, timeout, what, cond)
}

func alive(pid int) bool { return gdpmtest.Alive(pid) }

func waitDead(t testing.TB, pids []int) {
	t.Helper()
	gdpmtest.WaitDead(t, 20*time.Second, pids)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// create makes a service and fails the test on error.
func (c *cluster) create(cmd string, n int) string {
	c.t.Helper()
	id, err := c.client.CreateService(ctxT(c.t), gdpm.CreateRequest{Command: cmd, InstanceNum: &n})
	if err != nil {
		c.t.Fatalf("create %q: %v", cmd, err)
	}
	return id
}

// running returns the pids of a service's running instances that the OS
// confirms are alive, and the per-node counts.
func (c *cluster) running(id string) (pids []int, perNode map[string]int, err error) {
	d, err := c.client.Service(ctxT(c.t), id)
	if err != nil {
		return nil, nil, err
	}
	perNode = map[string]int{}
	for _, in := range d.Instances {
		if in.State == gdpm.StateRunning && alive(in.PID) {
			pids = append(pids, in.PID)
			perNode[in.Node]++
		}
	}
	return pids, perNode, nil
}

// waitRunning waits until exactly n instances of id run as live processes.
func (c *cluster) waitRunning(id string, n int) []int {
	c.t.Helper()
	var pids []int
	waitFor(c.t, 20*time.Second, fmt.Sprintf("%d running instances of %s", n, id), func() (bool, string) {
		var perNode map[string]int
		var err error
		pids, perNode, err = c.running(id)
		if err != nil {
			return false, err.Error()
		}
		return len(pids) == n, fmt.Sprintf("%d running %v", len(pids), perNode)
	})
	return pids
}

// do sends a raw request to the master's API and returns status and body.
func (c *cluster) do(method, path, contentType, body string, header ...string) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.apiURL(c.master())+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// secure makes the cluster's CA, the masters' etcd client config and an
// https client that trusts the CA.
func (c *cluster) secure() {
	c.t.Helper()
	ca, err := gdpm.NewCA()
	if err != nil {
		c.t.Fatal(err)
	}
	if c.etcdTLS, err = ca.EtcdClientTLS("test master"); err != nil {
		c.t.Fatal(err)
	}
	c.trust(ca)
}

// trust makes ca the CA the cluster's slaves pin and its clients trust.
func (c *cluster) trust(ca *gdpm.CA) {
	c.ca = ca
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	c.httpc = &http.Client{Transport: tr}
	c.t.Cleanup(tr.CloseIdleConnections)
}

// apiURL is the base URL of m's API.
func (c *cluster) apiURL(m *gdpm.Master) string {
	if c.ca != nil {
		return "https://" + m.HTTPAddr()
	}
	return "http://" + m.HTTPAddr()
}
