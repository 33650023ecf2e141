package gdpmtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// Options shape a Cluster.
type Options struct {
	Slaves int    // slaves to start and wait for
	Token  string // the cluster token
	// Secure runs TLS everywhere: a cluster CA, an embedded etcd that
	// requires client certificates from it, a master with that CA, slaves
	// that join by pinning its hash.
	Secure bool
	// Endpoints, when set, is an etcd to use instead of an embedded one.
	Endpoints []string
	// Master and Slave, when set, adjust each config before its New*.
	Master func(*gdpm.MasterConfig)
	Slave  func(*gdpm.SlaveConfig)
}

// Cluster is a whole gdpm cluster inside the test process, on loopback
// ports the kernel picks, closed when the test ends.
type Cluster struct {
	T       testing.TB
	Opts    Options
	Etcd    *gdpm.EmbeddedEtcd // nil with Options.Endpoints
	CA      *gdpm.CA           // nil unless Secure
	Masters []*gdpm.Master
	Slaves  []*gdpm.Slave
	Client  *gdpm.Client // talks to the first master
}

// startTimeout bounds each start and readiness wait.
const startTimeout = 30 * time.Second

// Start runs a cluster: etcd, one master, o.Slaves slaves (each ready),
// and a client of the master. Everything is closed, in reverse order,
// when the test ends; a close error fails the test.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	c := &Cluster{T: t, Opts: o}
	if o.Secure {
		ca, err := gdpm.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		c.CA = ca
	}
	if len(o.Endpoints) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		etcd, err := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true, CA: c.CA})
		if err != nil {
			t.Fatal(err)
		}
		c.Etcd = etcd
		t.Cleanup(func() { etcd.Close() })
	}
	m := c.AddMaster()
	for range o.Slaves {
		c.AddSlave()
	}
	ccfg := gdpm.ClientConfig{Addr: c.APIURL(m), Token: o.Token}
	if c.CA != nil {
		ccfg.CAHash = c.CA.Hash()
	}
	cl, err := gdpm.NewClient(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Client = cl
	return c
}

// Endpoints are etcd's client URLs.
func (c *Cluster) Endpoints() []string {
	if c.Etcd != nil {
		return c.Etcd.Endpoints()
	}
	return c.Opts.Endpoints
}

// AddMaster starts another master on the cluster's etcd.
func (c *Cluster) AddMaster(adjust ...func(*gdpm.MasterConfig)) *gdpm.Master {
	c.T.Helper()
	cfg := gdpm.MasterConfig{
		Endpoints: c.Endpoints(),
		HTTPAddr:  "127.0.0.1:0",
		TCPAddr:   "127.0.0.1:0",
		Token:     c.Opts.Token,
	}
	if c.CA != nil {
		cfg.TLS = &gdpm.MasterTLS{CA: c.CA}
		tc, err := c.CA.EtcdClientTLS(fmt.Sprintf("test master %d", len(c.Masters)))
		if err != nil {
			c.T.Fatal(err)
		}
		cfg.EtcdTLS = tc
	}
	if c.Opts.Master != nil {
		c.Opts.Master(&cfg)
	}
	for _, f := range adjust {
		f(&cfg)
	}
	m, err := gdpm.NewMaster(cfg)
	if err != nil {
		c.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		c.T.Fatal(err)
	}
	c.T.Cleanup(func() { c.closeOrFail("master", m.Close) })
	c.Masters = append(c.Masters, m)
	return m
}

// AddSlave starts a slave that registers through the first master and
// waits until it is ready.
func (c *Cluster) AddSlave(adjust ...func(*gdpm.SlaveConfig)) *gdpm.Slave {
	c.T.Helper()
	cfg := gdpm.SlaveConfig{Masters: []string{c.Masters[0].TCPAddr()}, Token: c.Opts.Token, DataDir: c.T.TempDir()}
	if c.CA != nil {
		cfg.CAHash = c.CA.Hash()
	}
	if c.Opts.Slave != nil {
		c.Opts.Slave(&cfg)
	}
	for _, f := range adjust {
		f(&cfg)
	}
	s, err := gdpm.NewSlave(cfg)
	if err != nil {
		c.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		c.T.Fatal(err)
	}
	c.T.Cleanup(func() { c.closeOrFail("slave", s.Close) })
	if err := s.WaitReady(ctx); err != nil {
		c.T.Fatal(err)
	}
	c.Slaves = append(c.Slaves, s)
	return s
}

func (c *Cluster) closeOrFail(what string, close func() error) {
	if err := close(); err != nil {
		c.T.Errorf("%s close: %v", what, err)
	}
}

// APIURL is m's API as a URL: https:// in a secured cluster.
func (c *Cluster) APIURL(m *gdpm.Master) string {
	if c.CA != nil {
		return "https://" + m.HTTPAddr()
	}
	return "http://" + m.HTTPAddr()
}

// WaitRunning waits until exactly n instances of service id are running as
// live processes, as the OS sees them, and returns their pids.
func (c *Cluster) WaitRunning(id string, n int) []int {
	c.T.Helper()
	var pids []int
	WaitFor(c.T, startTimeout, fmt.Sprintf("%d running instances of %s", n, id), func() (bool, string) {
		d, err := c.Client.Service(context.Background(), id)
		if err != nil {
			return false, err.Error()
		}
		pids = pids[:0]
		perNode := map[string]int{}
		for _, in := range d.Instances {
			if in.State == gdpm.StateRunning && Alive(in.PID) {
				pids = append(pids, in.PID)
				perNode[in.Node]++
			}
		}
		return len(pids) == n, fmt.Sprintf("%d running %v", len(pids), perNode)
	})
	return pids
}
