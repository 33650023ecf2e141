package gdpm_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// TestSlaveKeepsDescriptorsForItself runs the gdpm-slave binary with a
// small RLIMIT_NOFILE (256) and gives it more instances than its descriptor
// table holds. The instances that fit run; the others are failed with the
// reason (the limit), and not started: the slave keeps descriptors free for
// itself, so it keeps its lease, its statuses arrive and its log server
// answers. Before, every instance was started and restarted until the
// table was full, and whatever the slave then had to open failed.
func TestSlaveKeepsDescriptorsForItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gdpm-slave binary")
	}
	const limit, n = 256, 60
	bin := buildBinary(t, "gdpm-slave")
	c := newCluster(t, clusterOpts{master: func(cfg *gdpm.MasterConfig) { cfg.LeaseTTL = 2 * time.Second }})
	data := t.TempDir()
	// ulimit -n lowers the soft and the hard limit, which needs no
	// privilege.
	sp := &slaveProc{binProc: startBinProc(t, "/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, limit), "sh", bin,
		"-master", c.master().TCPAddr(), "-data", data, "-logs-addr", "127.0.0.1:0", "-log-level", "info",
		"-max-open-files", "-1"), t: t, data: data} // keep the small limit, even where it could be raised
	node := sp.waitRegistered()
	svc := c.create("sh -c 'echo hello; exec sleep 1000'", n)

	var running, refused int
	waitFor(t, 30*time.Second, "every instance running or refused for its descriptors", func() (bool, string) {
		running, refused = 0, 0
		other := map[string]int{}
		for _, in := range c.instances(svc) {
			switch {
			case in.State == gdpm.StateRunning:
				running++
			case in.State == gdpm.StateFailed && strings.Contains(in.Error, "descriptors (RLIMIT_NOFILE)"):
				refused++
			default:
				other[string(in.State)+": "+in.Error]++
			}
		}
		return running+refused == n, fmt.Sprintf("%d running, %d refused, others %v", running, refused, other)
	})
	if running == 0 || refused == 0 {
		t.Fatalf("%d running and %d refused of %d: the limit should let some but not all run", running, refused, n)
	}
	t.Logf("RLIMIT_NOFILE %d: %d instances run, %d refused", limit, running, refused)

	// For three lease TTLs: the table keeps room, the node stays, the
	// failed instances do not creep into the reserve.
	end := time.Now().Add(6 * time.Second)
	for time.Now().Before(end) {
		if open := procFDs(t, sp.pid()); limit-open < 64 {
			t.Fatalf("the slave has %d of %d descriptors open: its reserve is gone", open, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Retries may have started a few more since.
	running = 0
	for _, in := range c.instances(svc) {
		if in.State == gdpm.StateRunning {
			running++
		}
	}
	nodes, err := c.client.Nodes(ctxT(t))
	if err != nil || len(nodes.Ids) != 1 || nodes.Ids[0] != node {
		t.Fatalf("nodes %v (%v): the slave lost its registration", nodes, err)
	}
	if out := sp.out.String(); strings.Contains(out, "lease") {
		t.Errorf("the slave had lease trouble:\n%s", out)
	}
	// The log server still opens a connection and a log file.
	hellos := 0
	for _, l := range readLogs(t, c.client, svc, gdpm.LogsOptions{}) {
		if l.Line == "hello" {
			hellos++
		}
	}
	if hellos < running {
		t.Errorf("%d hello lines in the logs, want one per running instance (%d)", hellos, running)
	}

	// Scaled down well within what fits, every instance left runs: one
	// that was failed for its descriptors (whichever they were: retries
	// take them in no order) starts in the room the stopped ones left.
	keep := running / 2
	if err := c.client.ScaleService(ctxT(t), svc, keep); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every instance left running", func() (bool, string) {
		ins := c.instances(svc)
		states := map[string]int{}
		for _, in := range ins {
			states[string(in.State)+" "+in.Error]++
		}
		return len(ins) == keep && states[string(gdpm.StateRunning)+" "] == keep, fmt.Sprint(len(ins), " instances: ", states)
	})
}

// procFDs counts the descriptors pid has open.
func procFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestSlaveFillsItsDescriptorsWithoutFailing runs the gdpm-slave binary with
// -discard-output (one descriptor per running instance) at RLIMIT_NOFILE
// 256 and gives it as many instances as fit beside its reserve. Every one
// runs and none is ever failed for its descriptors: an instance that does
// not fit beside the starts under way waits for them instead. Before, a
// start was counted for a captured instance's ten descriptors, and the
// instances beyond the first few were failed and left to the retry timer.
func TestSlaveFillsItsDescriptorsWithoutFailing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gdpm-slave binary")
	}
	const limit, n = 256, 64
	bin := buildBinary(t, "gdpm-slave")
	c := newCluster(t, clusterOpts{})
	data := t.TempDir()
	sp := &slaveProc{binProc: startBinProc(t, "/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, limit), "sh", bin,
		"-master", c.master().TCPAddr(), "-data", data, "-logs-addr", "127.0.0.1:0", "-log-level", "info",
		"-discard-output", "-max-open-files", "-1"), t: t, data: data}
	sp.waitRegistered()
	svc := c.create("sleep 1000", n)
	c.waitRunning(svc, n)
	if out := sp.out.String(); strings.Contains(out, "descriptors") {
		t.Errorf("instances were refused for descriptors:\n%s", out)
	}
	t.Logf("RLIMIT_NOFILE %d: %d instances running, %d descriptors open", limit, n, procFDs(t, sp.pid()))
}
