package gdpm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// TestSlaveFailures runs the gdpm-slave binary next to an in-process
// cluster and kills it in the ways a machine can: kill -9 of the slave,
// kill -9 of the slave and its watchdog, SIGTERM.
func TestSlaveFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the gdpm-slave binary")
	}
	bin := filepath.Join(t.TempDir(), "gdpm-slave")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/gdpm-slave").CombinedOutput(); err != nil {
		t.Fatalf("building gdpm-slave: %v\n%s", err, out)
	}
	t.Run("Kill9StopsGrandchildrenAndWorkMoves", func(t *testing.T) { testKill9(t, bin) })
	t.Run("Kill9WithWatchdogThenRestartKillsOrphans", func(t *testing.T) { testKill9WatchdogRestart(t, bin) })
	t.Run("WatchdogIsReplacedWhenKilled", func(t *testing.T) { testWatchdogReplaced(t, bin) })
	t.Run("SIGTERMStopsAndLeavesAtOnce", func(t *testing.T) { testSIGTERM(t, bin) })
	t.Run("Kill9KeepsInstanceIndices", func(t *testing.T) { testKill9KeepsIndices(t, bin) })
}

// testKill9: after kill -9 of the slave, every process its instances
// started dies, grandchildren included, and the instances run on the other
// slave, each exactly once.
func testKill9(t *testing.T, bin string) {
	c := newCluster(t, clusterOpts{slaves: 1, master: func(c *gdpm.MasterConfig) { c.LeaseTTL = 2 * time.Second }})
	sp := startSlaveBinary(t, bin, c.master().TCPAddr(), t.TempDir())
	binNode := sp.waitRegistered()
	waitNodes(t, c, 2)
	prog := gdpm.ProgramForTests()
	forkSvc := c.create(prog+" fork 2", 4)
	shSvc := c.create(fmt.Sprintf("sh -c '%s sleep & %s sleep; wait'", prog, prog), 2)
	c.waitRunning(forkSvc, 4)
	c.waitRunning(shSvc, 2)

	// Every process of the binary slave's instances: the leaders and what
	// they forked (two test programs under each).
	var procs []procID
	kept := map[string]int{} // the other slave's instances: svc/inst -> pid
	for _, svc := range []string{forkSvc, shSvc} {
		onBin := 0
		for _, in := range c.instances(svc) {
			if in.Node != binNode {
				kept[svc+"/"+in.ID] = in.PID
				continue
			}
			onBin++
			procs = append(procs, waitGroup(t, in.PID, 2)...)
		}
		if onBin == 0 {
			t.Fatalf("no instance of %s on the binary slave %s", svc, binNode)
		}
	}
	wd := sp.watchdog()

	begin := time.Now()
	sp.kill9()
	waitGone(t, 5*time.Second, append(procs, wd))
	dead := time.Since(begin)
	other := c.slaves[0].NodeID()
	c.waitOnlyOn(forkSvc, 4, other)
	c.waitOnlyOn(shSvc, 2, other)
	t.Logf("kill -9 of the slave: its %d processes dead after %v, all instances running again after %v",
		len(procs), dead.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))

	// The instances that were on the other slave did not move or restart.
	for _, svc := range []string{forkSvc, shSvc} {
		for _, in := range c.instances(svc) {
			if pid, ok := kept[svc+"/"+in.ID]; ok && pid != in.PID {
				t.Errorf("instance %s/%s on the surviving slave changed pid %d -> %d", svc, in.ID, pid, in.PID)
			}
		}
	}
}

// testKill9WatchdogRestart: with the watchdog killed too, the instances'
// grandchildren survive as orphans; the slave started again on the same
// data dir kills them before it registers, and nothing else.
func testKill9WatchdogRestart(t *testing.T, bin string) {
	c := newCluster(t, clusterOpts{slaves: 1, master: func(c *gdpm.MasterConfig) { c.LeaseTTL = 2 * time.Second }})
	data := t.TempDir()
	sp := startSlaveBinary(t, bin, c.master().TCPAddr(), data)
	binNode := sp.waitRegistered()
	waitNodes(t, c, 2)
	svc := c.create(gdpm.ProgramForTests()+" fork 2", 4)
	c.waitRunning(svc, 4)

	// A process of the same kind that is not the slave's.
	bystander := exec.Command(gdpm.ProgramForTests(), "sleep")
	bystander.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bystander.Process.Kill()
		bystander.Wait()
	})
	bystanderID := procIDOf(bystander.Process.Pid)

	var leaders, orphans []procID
	for _, in := range c.instances(svc) {
		if in.Node != binNode {
			continue
		}
		for _, p := range waitGroup(t, in.PID, 2) {
			if p.pid == in.PID {
				leaders = append(leaders, p)
			} else {
				orphans = append(orphans, p)
			}
		}
	}
	if len(leaders) == 0 {
		t.Fatalf("no instance on the binary slave %s", binNode)
	}
	wd := sp.watchdog()

	// Stopped first, so that it cannot replace its watchdog in between.
	syscall.Kill(sp.pid(), syscall.SIGSTOP)
	syscall.Kill(wd.pid, syscall.SIGKILL)
	sp.kill9()
	waitGone(t, 5*time.Second, append(leaders, wd)) // Pdeathsig
	for _, p := range orphans {
		if !p.alive() {
			t.Fatalf("orphan %d died with the slave and its watchdog; this test needs it alive", p.pid)
		}
	}

	sp2 := startSlaveBinary(t, bin, c.master().TCPAddr(), data)
	sp2.waitRegistered()
	// Killed before registering, not some time after.
	for _, p := range orphans {
		if p.alive() {
			t.Errorf("orphan %d of the previous run alive after the restarted slave registered", p.pid)
		}
	}
	if !bystanderID.alive() {
		t.Errorf("the restarted slave killed an unrelated process")
	}
	c.waitRunning(svc, 4)
}

// testWatchdogReplaced: a watchdog that dies is replaced by one that holds
// every live group, so a later kill -9 of the slave still kills them.
func testWatchdogReplaced(t *testing.T, bin string) {
	c := newCluster(t, clusterOpts{slaves: 0})
	sp := startSlaveBinary(t, bin, c.master().TCPAddr(), t.TempDir())
	sp.waitRegistered()
	waitNodes(t, c, 1)
	svc := c.create(gdpm.ProgramForTests()+" fork 2", 3)
	var procs []procID
	for _, pid := range c.waitRunning(svc, 3) {
		procs = append(procs, waitGroup(t, pid, 2)...)
	}
	wd := sp.watchdog()
	syscall.Kill(wd.pid, syscall.SIGKILL)
	var wd2 procID
	waitFor(t, 10*time.Second, "a new watchdog", func() (bool, string) {
		wd2 = findWatchdog(sp.pid(), sp.data)
		return wd2.pid != 0 && wd2 != wd, fmt.Sprint(wd2)
	})
	// Once this is logged the groups are in the new watchdog's pipe, where
	// they stay readable after the slave dies.
	waitFor(t, 5*time.Second, "the slave to hand the groups to the new watchdog", func() (bool, string) {
		return strings.Contains(sp.out.String(), "new watchdog holds the instance groups"), ""
	})
	sp.kill9()
	waitGone(t, 5*time.Second, append(procs, wd2))
}

// testSIGTERM: SIGTERM stops the instances gracefully, removes the node at
// once (not after its lease expires), moves the work and exits 0.
func testSIGTERM(t *testing.T, bin string) {
	const ttl = 10 * time.Second
	c := newCluster(t, clusterOpts{slaves: 1, master: func(c *gdpm.MasterConfig) { c.LeaseTTL = ttl }})
	sp := startSlaveBinary(t, bin, c.master().TCPAddr(), t.TempDir())
	binNode := sp.waitRegistered()
	waitNodes(t, c, 2)
	svc := c.create(gdpm.ProgramForTests()+" fork 2", 4)
	c.waitRunning(svc, 4)
	var procs []procID
	for _, in := range c.instances(svc) {
		if in.Node == binNode {
			procs = append(procs, waitGroup(t, in.PID, 2)...)
		}
	}
	if len(procs) == 0 {
		t.Fatalf("no instance on the binary slave %s", binNode)
	}
	wd := sp.watchdog()

	begin := time.Now()
	syscall.Kill(sp.pid(), syscall.SIGTERM)
	waitFor(t, ttl/2, "the node to leave GET /node/", func() (bool, string) {
		nodes, err := c.client.Nodes(ctxT(t))
		return err == nil && !slices.Contains(nodes.Ids, binNode), fmt.Sprint(nodes.Ids, err)
	})
	left := time.Since(begin)
	waitGone(t, 5*time.Second, append(procs, wd))
	c.waitOnlyOn(svc, 4, c.slaves[0].NodeID())
	t.Logf("SIGTERM: node gone after %v (lease TTL %v), instances running elsewhere after %v",
		left.Round(time.Millisecond), ttl, time.Since(begin).Round(time.Millisecond))
	select {
	case <-sp.done:
	case <-time.After(10 * time.Second):
		t.Fatal("gdpm-slave still running 10s after SIGTERM")
	}
	if sp.err != nil {
		t.Errorf("gdpm-slave exited with %v after SIGTERM, want status 0\n%s", sp.err, sp.out.String())
	}
}

// TestSlaveCloseEndsWatchdog: a clean Close of an in-process slave stops its
// instances and leaves no watchdog behind, reaped.
func TestSlaveCloseEndsWatchdog(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	data := t.TempDir()
	s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{c.master().TCPAddr()}, DataDir: data, LogAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	wd := findWatchdog(os.Getpid(), data)
	if wd.pid == 0 {
		t.Fatal("no watchdog process for the slave")
	}
	svc := c.create(gdpm.ProgramForTests()+" fork 2", 2)
	var procs []procID
	for _, pid := range c.waitRunning(svc, 2) {
		procs = append(procs, waitGroup(t, pid, 2)...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", wd.pid)); wd.alive() || (err == nil && procIDOf(wd.pid) == wd) {
		t.Errorf("watchdog %d still there after Close (%s)", wd.pid, procState(wd.pid))
	}
	for _, p := range procs {
		if p.alive() {
			t.Errorf("process %d alive after Close", p.pid)
		}
	}
}

// slaveProc is a running gdpm-slave binary.
type slaveProc struct {
	*binProc
	t    *testing.T
	data string
}

func startSlaveBinary(t *testing.T, bin, master, data string) *slaveProc {
	t.Helper()
	// If the test binary dies, so does the slave (and its watchdog then
	// kills its instances).
	return &slaveProc{binProc: startBinProc(t, bin, "-master", master, "-data", data, "-logs-addr", "127.0.0.1:0", "-log-level", "debug"), t: t, data: data}
}

// waitRegistered waits for the slave's registration and returns its node id.
func (sp *slaveProc) waitRegistered() string {
	sp.t.Helper()
	waitFor(sp.t, 20*time.Second, "gdpm-slave to register", func() (bool, string) {
		select {
		case <-sp.done:
			sp.t.Fatalf("gdpm-slave exited: %v\n%s", sp.err, sp.out.String())
		default:
		}
		return strings.Contains(sp.out.String(), "msg=registered"), ""
	})
	b, err := os.ReadFile(filepath.Join(sp.data, "node-id"))
	if err != nil {
		sp.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// watchdog finds the slave's watchdog process.
func (sp *slaveProc) watchdog() procID {
	sp.t.Helper()
	wd := findWatchdog(sp.pid(), sp.data)
	if wd.pid == 0 {
		sp.t.Fatalf("no watchdog under gdpm-slave %d", sp.pid())
	}
	return wd
}

// procID names a process by pid and start time, so that a reused pid is
// not mistaken for it.
type procID struct {
	pid   int
	start string // field 22 of /proc/pid/stat
}

func (p procID) String() string { return strconv.Itoa(p.pid) }

// procStat returns the fields of /proc/pid/stat from field 3 (state) on.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func procIDOf(pid int) procID {
	st := procStat(pid)
	if len(st) < 20 {
		return procID{}
	}
	return procID{pid: pid, start: st[19]}
}

func procState(pid int) string {
	if st := procStat(pid); len(st) > 0 {
		return st[0]
	}
	return "gone"
}

// alive reports whether the process is still running (not a zombie).
func (p procID) alive() bool {
	return p.pid > 0 && alive(p.pid) && procIDOf(p.pid) == p
}

// groupOf lists the live members of process group pgid.
func groupOf(pgid int) []procID {
	ents, _ := os.ReadDir("/proc")
	var ps []procID
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st := procStat(pid)
		if len(st) < 20 || st[0] == "Z" || st[2] != strconv.Itoa(pgid) {
			continue
		}
		ps = append(ps, procID{pid: pid, start: st[19]})
	}
	return ps
}

// waitGroup waits until group pgid holds its leader and at least n more
// test programs, and returns its members.
func waitGroup(t *testing.T, pgid, n int) []procID {
	t.Helper()
	var ps []procID
	waitFor(t, 10*time.Second, fmt.Sprintf("group %d to hold %d forked test programs", pgid, n), func() (bool, string) {
		ps = groupOf(pgid)
		progs := 0
		for _, p := range ps {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid)); p.pid != pgid && exe == gdpm.ProgramForTests() {
				progs++
			}
		}
		return progs >= n, fmt.Sprint(ps)
	})
	return ps
}

// waitGone waits until none of ps runs.
func waitGone(t *testing.T, d time.Duration, ps []procID) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("processes %v to die", ps), func() (bool, string) {
		var live []procID
		for _, p := range ps {
			if p.alive() {
				live = append(live, p)
			}
		}
		return len(live) == 0, fmt.Sprint("alive: ", live)
	})
}

// findWatchdog finds the watchdog that parent started for data dir data.
func findWatchdog(parent int, data string) procID {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st := procStat(pid)
		if len(st) < 20 || st[0] == "Z" || st[1] != strconv.Itoa(parent) {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(args) > 1 && args[0] == "gdpm-watchdog" && args[len(args)-1] == data {
			return procID{pid: pid, start: st[19]}
		}
	}
	return procID{}
}

// waitNodes waits until GET /node/ lists n nodes.
func waitNodes(t *testing.T, c *cluster, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d nodes listed", n), func() (bool, string) {
		nodes, err := c.client.Nodes(ctxT(t))
		return err == nil && len(nodes.Ids) == n, fmt.Sprint(nodes.Ids, err)
	})
}

// instances returns a service's instances.
func (c *cluster) instances(id string) []gdpm.InstanceInfo {
	c.t.Helper()
	d, err := c.client.Service(ctxT(c.t), id)
	if err != nil {
		c.t.Fatal(err)
	}
	return d.Instances
}

// waitOnlyOn waits until exactly n instances of id run, all on node, and
// the service lists exactly n instances.
func (c *cluster) waitOnlyOn(id string, n int, node string) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("%d instances of %s running on %s only", n, id, node), func() (bool, string) {
		pids, perNode, err := c.running(id)
		if err != nil {
			return false, err.Error()
		}
		d, err := c.client.Service(ctxT(c.t), id)
		if err != nil {
			return false, err.Error()
		}
		return len(pids) == n && perNode[node] == n && len(d.Instances) == n, fmt.Sprintf("%v, %d listed", perNode, len(d.Instances))
	})
}

// TestSlaveDataDirInUse: a second slave on a data dir in use fails to start
// (it would kill the first one's instances as leftovers); once the first
// closes, the dir is free.
func TestSlaveDataDirInUse(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	cfg := gdpm.SlaveConfig{Masters: []string{c.master().TCPAddr()}, DataDir: t.TempDir(), LogAddr: "127.0.0.1:0"}
	first, err := gdpm.NewSlave(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	second, err := gdpm.NewSlave(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(context.Background()); !errors.Is(err, gdpm.ErrInvalidConfig) {
		t.Fatalf("second slave on the same data dir: Start = %v, want ErrInvalidConfig", err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := gdpm.NewSlave(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Start(context.Background()); err != nil {
		t.Fatalf("slave on a data dir freed by Close: %v", err)
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
}
