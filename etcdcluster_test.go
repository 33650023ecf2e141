package gdpm_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// The tests in this file run gdpm against a real three-member etcd cluster:
// separate etcd processes (Debian's etcd-server package) on loopback, one of
// which is stopped and started again while gdpm works.

// etcdMember is one etcd process of a test cluster. It can be stopped and
// started again with the same data directory and flags.
type etcdMember struct {
	name      string
	clientURL string
	args      []string
	logPath   string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been reaped
}

// etcdCluster is a test's etcd cluster; cleanup kills and reaps every member.
type etcdCluster struct {
	t       testing.TB
	members []*etcdMember
}

// etcdBinary returns the etcd executable, or skips the test without one;
// in CI (CI set) a missing etcd fails instead, so the test cannot silently
// stop running.
func etcdBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: starts a real three-member etcd cluster")
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd binary not found and CI is set: .ci/run must install etcd-server (%v)", err)
		}
		t.Skip("etcd binary not found: apt-get install etcd-server")
	}
	return bin
}

// startEtcdCluster starts an n-member etcd cluster on free loopback ports
// and waits until it has a leader and accepts a write. Ports are picked by
// listening on port 0 and closing, so another process can take one before
// etcd binds it; a start that fails is retried on new ports.
func startEtcdCluster(t testing.TB, n int) *etcdCluster {
	t.Helper()
	bin := etcdBinary(t)
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		start := time.Now()
		ec, err := tryStartEtcdCluster(t, bin, n)
		if err == nil {
			t.Logf("%d-member etcd cluster ready in %v: %s", n, time.Since(start).Round(time.Millisecond), strings.Join(ec.endpoints(), ","))
			return ec
		}
		errs = append(errs, err)
		t.Logf("etcd cluster start attempt %d failed: %v", attempt+1, err)
	}
	t.Fatalf("cannot start a %d-member etcd cluster: %v", n, errors.Join(errs...))
	return nil
}

func tryStartEtcdCluster(t testing.TB, bin string, n int) (*etcdCluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	// A token unique to this cluster keeps members of another test's
	// cluster (were a port reused) from joining this one.
	token := fmt.Sprintf("gdpm-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	var initial []string
	for i := 0; i < n; i++ {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	ec := &etcdCluster{t: t}
	for i := 0; i < n; i++ {
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		m := &etcdMember{
			name:      fmt.Sprintf("m%d", i),
			clientURL: client,
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		m.args = []string{bin,
			"--name", m.name,
			"--data-dir", filepath.Join(dir, m.name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			// Fast timers: a lost leader is replaced in about a second.
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-outputs", "stderr",
		}
		ec.members = append(ec.members, m)
	}
	// Members start concurrently: each waits for the others to form a
	// quorum, so starting them one by one would only add waiting.
	for _, m := range ec.members {
		if err := m.start(); err != nil {
			ec.close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ec.waitReady(ctx); err != nil {
		logs := ec.logs()
		ec.close()
		return nil, fmt.Errorf("%w\n%s", err, logs)
	}
	t.Cleanup(func() {
		ec.close()
		if t.Failed() {
			t.Logf("etcd logs (last lines of each member):\n%s", ec.logs())
		}
	})
	return ec, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start runs the member's process with its flags, appending to its log.
// Exactly one goroutine waits for the process.
func (m *etcdMember) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("etcd %s already running", m.name)
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.args[0], m.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = etcdEnv()
	// Its own process group, and killed if the test process dies; the
	// environment keeps GDPM_TEST_RUN so TestMain finds a leaked member.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.name, err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	return nil
}

// etcdEnv is this process's environment without ETCD_* variables, which
// etcd would read as flags.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	if runtime.GOARCH != "amd64" {
		// etcd 3.4 refuses to start on other architectures without it.
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+runtime.GOARCH)
	}
	return env
}

// stop sends SIGTERM and waits for the process to exit; after 10 s it kills
// the process group. It is a no-op on a stopped member.
func (m *etcdMember) stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd, m.done = nil, nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Anything etcd started in its group goes too.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// kill SIGKILLs the member's process group and reaps it, as a crash would;
// start brings it back. It is a no-op on a stopped member.
func (m *etcdMember) kill() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd, m.done = nil, nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

func (ec *etcdCluster) close() {
	var wg sync.WaitGroup
	for _, m := range ec.members {
		wg.Go(m.kill)
	}
	wg.Wait()
}

// endpoints returns every member's client URL.
func (ec *etcdCluster) endpoints() []string {
	var eps []string
	for _, m := range ec.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

// client returns an etcd client for the given endpoints, closed on cleanup.
func (ec *etcdCluster) client(eps ...string) *clientv3.Client {
	ec.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		ec.t.Fatal(err)
	}
	ec.t.Cleanup(func() { cli.Close() })
	return cli
}

// waitReady waits until every member reports the same leader and the
// cluster accepts a write.
func (ec *etcdCluster) waitReady(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: ec.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	var last error
	for {
		for _, m := range ec.members {
			if m.exited() {
				return fmt.Errorf("etcd %s exited during start", m.name)
			}
		}
		last = ec.checkHealthy(ctx, cli, ec.members)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd cluster not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkHealthy asks each of members for its status and requires one
// leader that all of them know, then writes a key.
func (ec *etcdCluster) checkHealthy(ctx context.Context, cli *clientv3.Client, members []*etcdMember) error {
	leaders := map[uint64]bool{}
	for _, m := range members {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.clientURL)
		cancel()
		if err != nil {
			return fmt.Errorf("status of %s: %w", m.name, err)
		}
		if st.Leader == 0 {
			return fmt.Errorf("%s has no leader", m.name)
		}
		leaders[st.Leader] = true
	}
	if len(leaders) != 1 {
		return fmt.Errorf("members disagree on the leader: %v", leaders)
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := cli.Put(pctx, "/gdpm-test/ready", time.Now().String())
	return err
}

func (m *etcdMember) exited() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return true
	}
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// leader returns the member that is the raft leader now.
func (ec *etcdCluster) leader(cli *clientv3.Client) *etcdMember {
	ec.t.Helper()
	var found *etcdMember
	waitFor(ec.t, 10*time.Second, "an etcd leader", func() (bool, string) {
		var seen []string
		for _, m := range ec.members {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.clientURL)
			cancel()
			if err != nil {
				seen = append(seen, fmt.Sprintf("%s: %v", m.name, err))
				continue
			}
			if st.Header.MemberId == st.Leader {
				found = m
				return true, ""
			}
			seen = append(seen, fmt.Sprintf("%s: follower of %x", m.name, st.Leader))
		}
		return false, strings.Join(seen, "; ")
	})
	return found
}

// logs returns the last lines of each member's log.
func (ec *etcdCluster) logs() string {
	var b strings.Builder
	for _, m := range ec.members {
		data, err := os.ReadFile(m.logPath)
		if err != nil {
			fmt.Fprintf(&b, "== %s: %v\n", m.name, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-40):]
		fmt.Fprintf(&b, "== %s (%s)\n%s\n", m.name, m.logPath, strings.Join(lines, "\n"))
	}
	return b.String()
}

// TestEtcdClusterClientCompat checks that the etcd client gdpm is built with
// works against the packaged etcd server for everything gdpm uses: KV,
// transactions, leases with keepalive, watches and the election recipe.
func TestEtcdClusterClientCompat(t *testing.T) {
	ec := startEtcdCluster(t, 3)
	cli := ec.client(ec.endpoints()...)
	ctx := ctxT(t)

	for _, m := range ec.members {
		st, err := cli.Status(ctx, m.clientURL)
		if err != nil {
			t.Fatalf("status %s: %v", m.name, err)
		}
		t.Logf("%s: etcd %s, leader %x", m.name, st.Version, st.Leader)
	}

	wch := cli.Watch(ctx, "/compat/", clientv3.WithPrefix())
	if _, err := cli.Put(ctx, "/compat/a", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value("/compat/a"), "=", "1")).
		Then(clientv3.OpPut("/compat/b", "2"), clientv3.OpGet("/compat/", clientv3.WithPrefix())).
		Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("txn: %v %+v", err, resp)
	}
	if got := len(resp.Responses[1].GetResponseRange().Kvs); got != 2 {
		t.Errorf("txn get saw %d keys, want 2", got)
	}
	for _, want := range []string{"/compat/a", "/compat/b"} {
		select {
		case wr := <-wch:
			if err := wr.Err(); err != nil || len(wr.Events) != 1 || string(wr.Events[0].Kv.Key) != want {
				t.Fatalf("watch: %v %+v, want a put of %s", err, wr.Events, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watch: no event for %s", want)
		}
	}

	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := cli.Put(ctx, "/compat/leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("put with lease: %v", err)
	}
	kctx, kcancel := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		t.Fatalf("keepalive: %v", err)
	}
	// Kept alive for three TTLs, the key stays.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case _, ok := <-ka:
			if !ok {
				t.Fatal("keepalive channel closed while the cluster is healthy")
			}
		case <-time.After(time.Until(deadline)):
		}
	}
	if r, err := cli.Get(ctx, "/compat/leased"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("leased key after keepalive: %v %+v", err, r)
	}
	kcancel()
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}

	s1, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s1.Close()
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s2.Close()
	e1, e2 := concurrency.NewElection(s1, "/compat/election"), concurrency.NewElection(s2, "/compat/election")
	if err := e1.Campaign(ctx, "one"); err != nil {
		t.Fatalf("campaign: %v", err)
	}
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "two") }()
	select {
	case err := <-won:
		t.Fatalf("second campaign returned while the first leads: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if l, err := e1.Leader(ctx); err != nil || string(l.Kvs[0].Value) != "one" {
		t.Fatalf("leader: %v %+v", err, l)
	}
	if err := e1.Resign(ctx); err != nil {
		t.Fatalf("resign: %v", err)
	}
	select {
	case err := <-won:
		if err != nil {
			t.Fatalf("second campaign: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second candidate not elected after the first resigned")
	}

	// A member stopped gracefully comes back as the same member from its
	// data dir with the same flags: once the data dir exists etcd ignores
	// --initial-cluster-state new.
	m := ec.members[0]
	before, err := cli.Status(ctx, m.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	m.stop()
	if _, err := cli.Put(ctx, "/compat/while-down", "x"); err != nil {
		t.Fatalf("put with %s stopped: %v", m.name, err)
	}
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the restarted member to rejoin", func() (bool, string) {
		err := ec.checkHealthy(ctx, cli, ec.members)
		return err == nil, fmt.Sprint(err)
	})
	after, err := cli.Status(ctx, m.clientURL)
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.MemberId != before.Header.MemberId || after.Header.ClusterId != before.Header.ClusterId {
		t.Fatalf("restarted %s is member %x of cluster %x, want member %x of cluster %x", m.name,
			after.Header.MemberId, after.Header.ClusterId, before.Header.MemberId, before.Header.ClusterId)
	}
}

// TestEtcdClusterMemberDownKeepsServing runs a gdpm cluster on a real
// three-member etcd cluster and crashes the etcd leader: the API keeps
// answering, the processes keep running untouched, a scale-up works on the
// two remaining members, and after the member is back a scale-down leaves
// exactly the asked number. A second master, and the gdpm-master binary with
// -etcd URL,URL,URL, see the same state.
func TestEtcdClusterMemberDownKeepsServing(t *testing.T) {
	ec := startEtcdCluster(t, 3)
	cli := ec.client(ec.endpoints()...)
	c := newCluster(t, clusterOpts{slaves: 2, endpoints: ec.endpoints(), master: func(cfg *gdpm.MasterConfig) {
		// gdpm's own defaults, not the harness's shortened 2 s, because
		// both must outlive an etcd leader election. A request waits for
		// the new leader (up to two election timeouts, more on a split
		// vote). A slave's etcd client gives its lease up when no
		// keepalive answer came for one TTL: the gap is up to TTL/3 since
		// the last answer, plus the election, plus 0.5 s before the
		// client retries on another member. With etcd's default timers a
		// 2 s lease kills every process on most leader crashes.
		cfg.LeaseTTL = gdpm.DefaultLeaseTTL
		cfg.RequestTimeout = gdpm.DefaultRequestTimeout
	}})

	id := c.create(sleepCmd(), 4)
	pids := c.waitRunning(id, 4)
	slices.Sort(pids)

	// The leader crashes: SIGKILL, so there is no leadership transfer (a
	// SIGTERM'd etcd leader hands over first) and the other two members
	// must notice the silence and elect a new leader.
	down := ec.leader(cli)
	stopped := time.Now()
	down.kill()
	t.Logf("killed the etcd leader %s", down.name)

	// While it is down the API answers, and the same four processes run:
	// nothing restarted, nothing started twice.
	var slowest time.Duration
	polls := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); polls++ {
		for _, path := range []string{"/service/", "/node/"} {
			start := time.Now()
			code, _, body := c.do("GET", path, "", "")
			slowest = max(slowest, time.Since(start))
			if code != 200 {
				t.Fatalf("GET %s %v after the etcd leader stopped: %d %s", path, time.Since(stopped).Round(time.Millisecond), code, body)
			}
		}
		for _, p := range pids {
			if !alive(p) {
				t.Fatalf("pid %d died %v after the etcd leader stopped", p, time.Since(stopped).Round(time.Millisecond))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("API answered %d polls of /service/ and /node/ with one member down; slowest %v", polls, slowest.Round(time.Millisecond))
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var now []int
	for _, in := range d.Instances {
		if in.State != gdpm.StateRunning || in.Restarts != 0 {
			t.Errorf("instance %+v: want running with no restart", in)
		}
		now = append(now, in.PID)
	}
	slices.Sort(now)
	if !slices.Equal(now, pids) {
		t.Fatalf("with one etcd member down the instances are %v, want the same %v", now, pids)
	}

	// A scale-up commits on the two members left.
	if err := c.client.ScaleService(ctxT(t), id, 6); err != nil {
		t.Fatalf("scale to 6 with one etcd member down: %v", err)
	}
	six := c.waitRunning(id, 6)
	for _, p := range pids {
		if !slices.Contains(six, p) {
			t.Fatalf("scale-up replaced pid %d: had %v, now %v", p, pids, six)
		}
	}

	// The member comes back with its data and catches up.
	restarted := time.Now()
	if err := down.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the restarted etcd member to rejoin", func() (bool, string) {
		err := ec.checkHealthy(context.Background(), cli, ec.members)
		return err == nil, fmt.Sprint(err)
	})
	t.Logf("etcd member %s healthy again %v after its restart", down.name, time.Since(restarted).Round(time.Millisecond))
	// Its own endpoint serves a linearizable read that sees the scale-up.
	solo := ec.client(down.clientURL)
	waitFor(t, 10*time.Second, "the restarted member to serve the current state", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := solo.Get(ctx, gdpm.DefaultPrefix+"services/"+id)
		if err != nil || len(r.Kvs) != 1 {
			return false, fmt.Sprint(r, err)
		}
		return bytes.Contains(r.Kvs[0].Value, []byte(`"InstanceNum":6`)), string(r.Kvs[0].Value)
	})

	if err := c.client.ScaleService(ctxT(t), id, 3); err != nil {
		t.Fatal(err)
	}
	three := c.waitRunning(id, 3)
	var removed []int
	for _, p := range six {
		if !slices.Contains(three, p) {
			removed = append(removed, p)
		}
	}
	if len(removed) != 3 {
		t.Fatalf("scale 6->3 kept %v of %v", three, six)
	}
	waitDead(t, removed)
	if d, err := c.client.Service(ctxT(t), id); err != nil || d.InstanceNum != 3 || len(d.Instances) != 3 {
		t.Fatalf("after scale-down: InstanceNum %d, %d instances, err %v; want 3 and 3", d.InstanceNum, len(d.Instances), err)
	}

	// A second master on the same etcd cluster sees the same service.
	m2 := c.addMaster()
	c2 := c.newClient(m2, "")
	waitFor(t, 10*time.Second, "the second master to list the service", func() (bool, string) {
		list, err := c2.Services(ctxT(t))
		ok := err == nil && len(list) == 1 && list[0].ID == id && list[0].InstanceNum == 3 && list[0].Running == 3
		return ok, fmt.Sprintf("%+v %v", list, err)
	})

	// The gdpm-master binary takes the same cluster as -etcd URL,URL,URL.
	t.Run("binary", func(t *testing.T) {
		addr := startMasterBinary(t, strings.Join(ec.endpoints(), ","))
		cb, err := gdpm.NewClient(gdpm.ClientConfig{Addr: "http://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "gdpm-master -etcd to list the service", func() (bool, string) {
			d, err := cb.Service(ctxT(t), id)
			return err == nil && d.InstanceNum == 3 && d.Running == 3, fmt.Sprintf("%+v %v", d, err)
		})
	})
}

// startMasterBinary builds and runs gdpm-master against etcd and returns
// its API address; cleanup stops it with SIGTERM and waits.
func startMasterBinary(t *testing.T, etcd string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gdpm-master")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/gdpm-master").CombinedOutput(); err != nil {
		t.Fatalf("go build gdpm-master: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-etcd", etcd, "-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-log-level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	addrc := make(chan string, 1)
	var out strings.Builder
	var outMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			outMu.Lock()
			out.WriteString(line + "\n")
			outMu.Unlock()
			if _, rest, ok := strings.Cut(line, "API on http://"); ok {
				addr, _, _ := strings.Cut(rest, ",")
				select {
				case addrc <- addr:
				default:
				}
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gdpm-master exited with %v after SIGTERM", err)
			}
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("gdpm-master still running 10s after SIGTERM")
		}
		if t.Failed() {
			outMu.Lock()
			t.Logf("gdpm-master stderr:\n%s", out.String())
			outMu.Unlock()
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		done <- err
		t.Fatalf("gdpm-master exited at start: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("gdpm-master printed no API address in 20s")
	}
	return ""
}
