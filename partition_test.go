package gdpm_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// netnsLink is a network namespace the test created, linked to the test's
// own namespace by a veth pair with a private /30 that is routed nowhere
// else: host is the address on this side, peer the one inside.
type netnsLink struct {
	t              *testing.T
	ns             string
	hostIf, peerIf string
	host, peer     string
}

// ipCmd runs ip with args and returns its combined output.
func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// newNetnsLink creates the namespace and the link, or skips the test where
// that is not permitted. Everything is removed in t.Cleanup, even when the
// test fails halfway.
func newNetnsLink(t *testing.T) *netnsLink {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root; skipping the partition test")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ip (iproute2) not installed; .ci/run installs it")
		}
		t.Skip("ip (iproute2) not installed; skipping the partition test")
	}
	// Unique per test process, so that parallel runs do not collide: the
	// names, and a /30 out of 10.231.0.0/16 picked by the pid.
	id := os.Getpid() % 16384
	l := &netnsLink{
		t:      t,
		ns:     fmt.Sprintf("gdpmt-%d", os.Getpid()),
		hostIf: fmt.Sprintf("gdpmh%d", id),
	}
	l.peerIf = fmt.Sprintf("gdpmp%d", id)
	peerIf := l.peerIf
	base := fmt.Sprintf("10.231.%d.%d", id/64, (id%64)*4)
	b := strings.Split(base, ".")
	last, _ := strconv.Atoi(b[3])
	l.host = fmt.Sprintf("%s.%s.%s.%d", b[0], b[1], b[2], last+1)
	l.peer = fmt.Sprintf("%s.%s.%s.%d", b[0], b[1], b[2], last+2)

	if out, err := ipCmd("netns", "add", l.ns); err != nil {
		t.Skipf("ip netns add not permitted here (%v: %s); skipping the partition test", err, out)
	}
	t.Cleanup(func() {
		if out, err := ipCmd("netns", "del", l.ns); err != nil {
			t.Errorf("ip netns del %s: %v: %s", l.ns, err, out)
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := ipCmd(args...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "add", l.hostIf, "type", "veth", "peer", "name", peerIf)
	t.Cleanup(func() {
		// Deleting one end deletes both; it is gone already if the
		// namespace went first.
		ipCmd("link", "del", l.hostIf)
	})
	run("link", "set", peerIf, "netns", l.ns)
	run("addr", "add", l.host+"/30", "dev", l.hostIf)
	run("link", "set", l.hostIf, "up")
	run("-n", l.ns, "addr", "add", l.peer+"/30", "dev", peerIf)
	run("-n", l.ns, "link", "set", peerIf, "up")
	run("-n", l.ns, "link", "set", "lo", "up")
	return l
}

// setLink sets the namespace's end of the link up or down. Not the host's:
// an interface set down loses its local routes, which would cut this
// process off from its own address too (etcd and the master listen on it).
func (l *netnsLink) setLink(up bool) {
	l.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := ipCmd("-n", l.ns, "link", "set", l.peerIf, state); err != nil {
		l.t.Fatalf("ip -n %s link set %s %s: %v: %s", l.ns, l.peerIf, state, err, out)
	}
}

// TestPartitionedSlaveNeverRunsDuplicates runs a gdpm-slave in a network
// namespace of its own, reaching the master and etcd through a veth pair;
// the test cuts the link for longer than the lease. The cut-off slave
// fences itself, its instances move to the other slave, and at no sampled
// moment (every 100 ms) do more copies run than desired; once the link is
// back, the slave registers again and the service converges to exactly
// its instance count (issue 10, partition tests).
func TestPartitionedSlaveNeverRunsDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gdpm-slave and runs it in a network namespace")
	}
	l := newNetnsLink(t)
	bin := buildBinary(t, "gdpm-slave")
	const ttl = 2 * time.Second
	const token = "partition-test-token"

	// etcd and the master listen on the host end of the link (the test's
	// own interface), which both the in-process slave and the namespace
	// reach.
	etcd, err := gdpm.StartEmbeddedEtcd(ctxT(t), gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), ClientAddr: l.host + ":0", UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{slaves: 1, token: token, endpoints: etcd.Endpoints(), master: func(c *gdpm.MasterConfig) {
		c.LeaseTTL = ttl
		c.TCPAddr = l.host + ":0"
	}})
	t.Cleanup(func() { etcd.Close() }) // after the cluster's cleanup, which runs first

	data := t.TempDir()
	args := []string{"netns", "exec", l.ns, bin,
		"-master", c.master().TCPAddr(), "-token", token, "-data", data,
		"-logs-addr", l.peer + ":0", "-log-level", "debug"}
	if hash := c.master().CAHash(); hash != "" {
		args = append(args, "-ca-hash", hash)
	} else {
		args = append(args, "-tls=false")
	}
	sp := &slaveProc{binProc: startBinProc(t, "ip", args...), t: t, data: data}
	binNode := sp.waitRegistered()
	waitNodes(t, c, 2)

	const n = 8
	svc, mark, onBin := c.createMarked("GDPM_PARTITION_MARK", n, binNode)

	sampler := startSampler(mark, n)
	t.Cleanup(func() { sampler.finish() })
	begin := time.Now()
	l.setLink(false)
	t.Cleanup(func() { ipCmd("-n", l.ns, "link", "set", l.peerIf, "up") })
	other := c.slaves[0].NodeID()
	c.waitOnlyOn(svc, n, other)
	moved := time.Since(begin)
	for time.Since(begin) < 3*ttl {
		time.Sleep(100 * time.Millisecond)
	}
	cut := time.Since(begin)
	l.setLink(true)

	maxSeen, samples, over := convergesAfter(t, c, sp, "the partitioned slave", 30*time.Second, svc, mark, n, sampler)
	t.Logf("link cut %v (lease TTL %v): %d of %d instances on the partitioned slave moved after %v; %d samples every 100 ms, max %d processes for %d desired",
		cut.Round(time.Millisecond), ttl, onBin, n, moved.Round(time.Millisecond), samples, maxSeen, n)
	if len(over) > 0 {
		t.Errorf("more than %d copies running at %d samples: %v", n, len(over), over)
	}
}
