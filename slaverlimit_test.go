package gdpm_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// TestSlaveFileLimit: gdpm-slave raises its hard RLIMIT_NOFILE when it may
// (-max-open-files), and the instances keep the soft limit the slave was
// started with, whatever the slave's own limit. Without the privilege to
// raise it (CAP_SYS_RESOURCE), the slave says so and runs on.
func TestSlaveFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gdpm-slave binary")
	}
	bin := buildBinary(t, "gdpm-slave")
	c := newCluster(t, clusterOpts{})
	// May this process raise a hard limit? A shell that lowers its own and
	// raises it again tells.
	mayRaise := exec.Command("/bin/sh", "-c", "ulimit -n 300 && ulimit -Hn 301").Run() == nil

	run := func(t *testing.T, ulimit string, flag string) (*slaveProc, [2]string, [2]string) {
		t.Helper()
		data := t.TempDir()
		sp := &slaveProc{binProc: startBinProc(t, "/bin/sh", "-c", ulimit+` && exec "$@"`, "sh", bin,
			"-master", c.master().TCPAddr(), "-data", data, "-logs-addr", "127.0.0.1:0", "-log-level", "info", "-max-open-files", flag), t: t, data: data}
		node := sp.waitRegistered()
		svc := c.create("sleep 1000", 1)
		t.Cleanup(func() { c.client.DeleteService(ctxT(t), svc) })
		var pid int
		waitFor(t, 20*time.Second, "the instance to run on the binary slave", func() (bool, string) {
			for _, in := range c.instances(svc) {
				if in.State == gdpm.StateRunning && in.Node == node {
					pid = in.PID
					return true, ""
				}
			}
			return false, fmt.Sprint(c.instances(svc))
		})
		return sp, fileLimits(t, sp.pid()), fileLimits(t, pid)
	}

	t.Run("InstancesKeepTheSoftLimit", func(t *testing.T) {
		// The soft limit below the hard one: Go raises the slave's own,
		// and every instance gets the one the slave started with.
		_, slave, inst := run(t, "ulimit -Sn 300", "-1")
		if slave[0] == "300" {
			t.Errorf("the slave's own soft limit is still 300")
		}
		if inst[0] != "300" || inst[1] != slave[1] {
			t.Errorf("instance limits %v, want soft 300 and the slave's hard %s", inst, slave[1])
		}
	})
	t.Run("Raise", func(t *testing.T) {
		sp, slave, inst := run(t, "ulimit -n 300", "4096")
		if !mayRaise {
			if !strings.Contains(sp.out.String(), "cannot raise the descriptor limit") {
				t.Errorf("no warning that the limit could not be raised:\n%s", sp.out.String())
			}
			if slave != [2]string{"300", "300"} || inst != [2]string{"300", "300"} {
				t.Errorf("slave limits %v, instance limits %v; want 300 and 300 for both", slave, inst)
			}
			t.Skip("raising a hard limit needs CAP_SYS_RESOURCE: checked the warning only")
		}
		if slave[1] != "4096" || slave[0] == "300" {
			t.Errorf("slave limits %v, want the hard limit raised to 4096 and the soft one with it", slave)
		}
		if inst != [2]string{"300", "4096"} {
			t.Errorf("instance limits %v, want soft 300 (what the slave started with) under the hard 4096", inst)
		}
	})
}

// fileLimits reads pid's soft and hard RLIMIT_NOFILE from /proc/pid/limits.
func fileLimits(t *testing.T, pid int) [2]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return [2]string{f[0], f[1]}
			}
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits", pid)
	return [2]string{}
}
