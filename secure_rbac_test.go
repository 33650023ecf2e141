package gdpm_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// slaveEtcdClient is an etcd client presenting a certificate from the
// cluster CA named after node id, as the one join.go issues a slave (etcd
// reads the user from the common name alone).
func slaveEtcdClient(t *testing.T, c *cluster, node string) *clientv3.Client {
	t.Helper()
	cert := issueForTest(t, c.ca, node)
	return etcdClient(t, c.eps, &tls.Config{RootCAs: c.ca.Pool(), Certificates: []tls.Certificate{*cert}})
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("%s with a slave's certificate: %v, want permission denied", what, err)
	}
}

// secureTwoNodes starts a secured cluster of two slaves, a and b, running
// two instances of cmd (one on each), and opens a root etcd client.
func secureTwoNodes(t *testing.T, cmd string) (c *cluster, id, a, b string, root *clientv3.Client) {
	t.Helper()
	c = newSecureCluster(t, 2)
	id = c.create(cmd, 2)
	c.waitRunning(id, 2)
	return c, id, c.slaves[0].NodeID(), c.slaves[1].NodeID(), etcdClient(t, c.eps, c.etcdTLS)
}

// A slave's etcd certificate reaches its own keys only: not the CA key,
// not another node's assignments, not the desired state. Enough to do a
// slave's work, which the cluster shows by running a service on its
// slaves, one of which joins again with its previous id.
func TestSecureEtcdConfinesASlaveCertificate(t *testing.T) {
	c, id, a, b, root := secureTwoNodes(t, gdpm.ProgramForTests()+" lines 2 10ms")
	if st, err := root.AuthStatus(ctxT(t)); err != nil || !st.Enabled {
		t.Fatalf("etcd auth status %v (%v), want enabled", st, err)
	}

	cli := slaveEtcdClient(t, c, a)
	p := gdpm.DefaultPrefix
	_, err := cli.Get(ctxT(t), p+"pki/ca.key")
	wantDenied(t, "get pki/ca.key", err)
	_, err = cli.Get(ctxT(t), p, clientv3.WithPrefix())
	wantDenied(t, "get the whole prefix", err)
	_, err = cli.Get(ctxT(t), p+"assign/"+b+"/", clientv3.WithPrefix())
	wantDenied(t, "get another node's assignments", err)
	_, err = cli.Put(ctxT(t), p+"assign/"+b+"/x/0", "{}")
	wantDenied(t, "put an assignment on another node", err)
	_, err = cli.Put(ctxT(t), p+"services/intruder", `{"ID":"intruder","Command":"sleep 7294890","InstanceNum":2}`)
	wantDenied(t, "put a service", err)
	_, err = cli.Put(ctxT(t), p+"names/intruder", "intruder")
	wantDenied(t, "put a name", err)
	_, err = cli.Delete(ctxT(t), p+"nodes/"+b)
	wantDenied(t, "delete another node", err)
	_, err = cli.Put(ctxT(t), p+"usage/"+b, "{}")
	wantDenied(t, "put another node's usage", err)
	_, err = cli.Txn(ctxT(t)).If(clientv3.Compare(clientv3.CreateRevision(p+"assign/"+b+"/x/0"), "=", 0)).
		Then(clientv3.OpPut(p+"usage/"+a+"/rbac/0", "[]")).Commit()
	wantDenied(t, "a txn that compares another node's key", err)
	_, err = cli.UserAdd(ctxT(t), "intruder", "pw")
	wantDenied(t, "add an etcd user", err)
	// The other node's lease (its node record is on it) cannot be revoked.
	nodeB, err := root.Get(ctxT(t), p+"nodes/"+b)
	if err != nil || len(nodeB.Kvs) != 1 {
		t.Fatalf("node %s record: %v", b, err)
	}
	_, err = cli.Revoke(ctxT(t), clientv3.LeaseID(nodeB.Kvs[0].Lease))
	wantDenied(t, "revoke another node's lease", err)

	// What a slave does: read its assignments and the specs, write its
	// usage on a lease it renews and revokes.
	resp, err := cli.Get(ctxT(t), p+"assign/"+a+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Errorf("its own assignments: %v (%v), want one", resp, err)
	}
	if _, err := cli.Get(ctxT(t), p+"services/"+id); err != nil {
		t.Errorf("read the service: %v", err)
	}
	lease, err := cli.Grant(ctxT(t), 30)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := cli.Txn(ctxT(t)).Then(clientv3.OpPut(p+"usage/"+a+"/rbac/0", "[]", clientv3.WithLease(lease.ID))).Commit(); err != nil {
		t.Errorf("write its usage shard: %v", err)
	}
	if _, err := cli.KeepAliveOnce(ctxT(t), lease.ID); err != nil {
		t.Errorf("renew its lease: %v", err)
	}
	if _, err := cli.Revoke(ctxT(t), lease.ID); err != nil {
		t.Errorf("revoke its lease: %v", err)
	}
	if after, err := root.Get(ctxT(t), p+"services/intruder", clientv3.WithCountOnly()); err != nil || after.Count != 0 {
		t.Errorf("intruder service: %v (%v)", after, err)
	}

	// The cluster works under these rules. A slave loses its lease (its
	// instances move) and joins again with its previous id: its etcd user
	// is there already; it writes its record and usage on a new lease.
	nodeA, err := root.Get(ctxT(t), p+"nodes/"+a)
	if err != nil || len(nodeA.Kvs) != 1 {
		t.Fatalf("node %s record: %v", a, err)
	}
	if _, err := root.Revoke(ctxT(t), clientv3.LeaseID(nodeA.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "slave 0 back under its id", func() (bool, string) {
		r, err := root.Get(ctxT(t), p+"nodes/"+a)
		if err != nil || len(r.Kvs) != 1 || r.Kvs[0].Lease == nodeA.Kvs[0].Lease {
			return false, fmt.Sprintf("node record %v %v", r, err)
		}
		u, err := root.Get(ctxT(t), p+"usage/"+a)
		if err != nil || len(u.Kvs) != 1 || u.Kvs[0].Lease != r.Kvs[0].Lease {
			return false, fmt.Sprintf("usage %v %v", u, err)
		}
		return c.slaves[0].NodeID() == a, "node " + c.slaves[0].NodeID()
	})
	// A new slave joins; every slave runs instances of the scaled-up
	// service. (TestSecureMasterRestartAndSecondMasterShareTheCA changes
	// masters under auth.)
	s3 := c.addSlave()
	if err := c.client.ScaleService(ctxT(t), id, 6); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "instances on every slave", func() (bool, string) {
		_, perNode, err := c.running(id)
		return err == nil && perNode[a] > 0 && perNode[b] > 0 && perNode[s3.NodeID()] > 0, fmt.Sprintf("%v %v", perNode, err)
	})
}

// An etcd data dir from before auth (its nodes registered without etcd
// users) gets a user for each node it holds before auth is turned on, so
// the slaves keep working across the upgrade; starting again changes
// nothing.
func TestSecureEtcdUpgradeGivesExistingNodesUsers(t *testing.T) {
	dir := t.TempDir()
	plain, err := gdpm.StartEmbeddedEtcd(ctxT(t), gdpm.EmbeddedEtcdConfig{Dir: dir, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	p := gdpm.DefaultPrefix
	live, placed := "0b6c1f56-7a0e-4c38-9d64-2f1f7f3c0a11", "6f1d2c3b-1111-4a2b-8c3d-9e8f7a6b5c4d"
	pcli := etcdClient(t, plain.Endpoints(), nil)
	for k, v := range map[string]string{p + "nodes/" + live: "{}", p + "assign/" + placed + "/svc/0": "{}", p + "assign/" + live + "/svc/1": "{}"} {
		if _, err := pcli.Put(ctxT(t), k, v); err != nil {
			t.Fatal(err)
		}
	}
	pcli.Close()
	plain.Close()

	ca, err := gdpm.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		etcd, err := gdpm.StartEmbeddedEtcd(ctxT(t), gdpm.EmbeddedEtcdConfig{Dir: dir, UnsafeNoFsync: true, CA: ca})
		if err != nil {
			t.Fatalf("start %d: %v", round, err)
		}
		c := &cluster{t: t, eps: etcd.Endpoints(), ca: ca}
		rootTLS, err := ca.EtcdClientTLS("any master name")
		if err != nil {
			t.Fatal(err)
		}
		root := etcdClient(t, c.eps, rootTLS)
		if st, err := root.AuthStatus(ctxT(t)); err != nil || !st.Enabled {
			t.Fatalf("start %d: auth %v (%v), want enabled", round, st, err)
		}
		for _, n := range []string{live, placed} {
			cli := slaveEtcdClient(t, c, n)
			if r, err := cli.Get(ctxT(t), p+"assign/"+n+"/", clientv3.WithPrefix()); err != nil || len(r.Kvs) != 1 {
				t.Errorf("start %d: node %s reads its assignments: %v (%v)", round, n, r, err)
			}
			_, err := cli.Get(ctxT(t), p+"assign/", clientv3.WithPrefix())
			wantDenied(t, "start "+fmt.Sprint(round)+": read every assignment", err)
			cli.Close()
		}
		stranger := slaveEtcdClient(t, c, "9a9a9a9a-0000-4000-8000-000000000000")
		_, err = stranger.Get(ctxT(t), p+"services/", clientv3.WithPrefix())
		wantDenied(t, "a certificate with no etcd user", err)
		stranger.Close()
		users, err := root.UserList(ctxT(t))
		if err != nil || strings.Join(users.Users, ",") != strings.Join(sorted("root", live, placed), ",") {
			t.Errorf("start %d: users %v (%v)", round, users, err)
		}
		root.Close()
		etcd.Close()
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// The roles follow the master's key prefix: a cluster under another
// prefix runs its service, and its slave still cannot read the CA key.
func TestSecureEtcdRolesFollowThePrefix(t *testing.T) {
	const p = "/tenant-a/"
	c := newCluster(t, clusterOpts{slaves: 1, token: secureToken, secure: true, master: func(cfg *gdpm.MasterConfig) { cfg.Prefix = p }})
	c.waitRunning(c.create(gdpm.ProgramForTests()+" lines 2 10ms", 1), 1)
	cli := slaveEtcdClient(t, c, c.slaves[0].NodeID())
	_, err := cli.Get(ctxT(t), p+"pki/ca.key")
	wantDenied(t, "get pki/ca.key", err)
	if r, err := cli.Get(ctxT(t), p+"assign/"+c.slaves[0].NodeID()+"/", clientv3.WithPrefix()); err != nil || len(r.Kvs) != 1 {
		t.Errorf("its own assignments: %v (%v), want one", r, err)
	}
}

// A master whose etcd certificate names no etcd user (one issued by hand,
// or by a gdpm from before auth) is refused at Start, saying why, rather
// than retrying forever.
func TestSecureMasterWithoutAnEtcdUserIsRefused(t *testing.T) {
	c := newSecureCluster(t, 0)
	cert := issueForTest(t, c.ca, "gdpm master")
	m, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: c.eps, HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", Token: secureToken,
		TLS: &gdpm.MasterTLS{CA: c.ca}, EtcdTLS: &tls.Config{RootCAs: c.ca.Pool(), Certificates: []tls.Certificate{*cert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(ctxT(t)); !errors.Is(err, gdpm.ErrInvalidConfig) || !strings.Contains(err.Error(), `common name "root"`) {
		t.Fatalf("Start: %v, want ErrInvalidConfig asking for the common name root", err)
	}
}
