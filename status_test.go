package gdpm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// createReq makes a service from a full request and fails the test on
// error.
func (c *cluster) createReq(req gdpm.CreateRequest) string {
	c.t.Helper()
	id, err := c.client.CreateService(ctxT(c.t), req)
	if err != nil {
		c.t.Fatalf("create %q: %v", req.Command, err)
	}
	return id
}

// waitStatus waits until GET /service/:id/ and GET /service/ both say
// status for id, and returns the detail.
func (c *cluster) waitStatus(id string, status gdpm.ServiceStatus) gdpm.ServiceDetail {
	c.t.Helper()
	var d gdpm.ServiceDetail
	waitFor(c.t, 30*time.Second, fmt.Sprintf("service %s %s", id, status), func() (bool, string) {
		var err error
		d, err = c.client.Service(ctxT(c.t), id)
		if err != nil {
			return false, err.Error()
		}
		if d.Status != status {
			return false, fmt.Sprintf("detail says %s (%d running, %d restarts, last error %+v)", d.Status, d.Running, d.Restarts, d.LastError)
		}
		list, err := c.client.Services(ctxT(c.t))
		if err != nil {
			return false, err.Error()
		}
		for _, s := range list {
			if s.ID == id {
				return s.Status == status, "list says " + string(s.Status)
			}
		}
		return false, "not in the list"
	})
	return d
}

func intp(n int) *int { return &n }

// TestServiceStatusWords reaches each status word a service can have and
// checks that the list and the detail say it, with restarts and the last
// error beside it.
func TestServiceStatusWords(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})

	// No node: pending.
	pend := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " sleep", InstanceNum: intp(2)})
	c.waitStatus(pend, gdpm.ServicePending)
	c.addSlave()
	c.waitStatus(pend, gdpm.ServiceRunning)

	// exit 3 forever: crashlooping, with restarts and the exit code.
	crash := c.createReq(gdpm.CreateRequest{Command: "sh -c 'exit 3'"})
	d := c.waitStatus(crash, gdpm.ServiceCrashLooping)
	waitFor(t, 20*time.Second, "restarts and a last error", func() (bool, string) {
		d, _ = c.client.Service(ctxT(t), crash)
		return d.Restarts >= 2 && d.LastError != nil && d.LastError.Message == "exit code 3" && !d.LastError.Since.IsZero(),
			fmt.Sprintf("restarts %d, last error %+v", d.Restarts, d.LastError)
	})
	if in := d.Instances[0]; in.LastError != "exit code 3" || in.Restarts < 2 {
		t.Errorf("instance: %+v", in)
	}

	// A restart limit ends the loop: failed, and it stays down.
	limited := c.createReq(gdpm.CreateRequest{Command: "sh -c 'exit 3'", Supervision: gdpm.Supervision{MaxRestarts: 2, RestartWindow: gdpm.Duration(time.Minute)}})
	d = c.waitStatus(limited, gdpm.ServiceFailed)
	in := d.Instances[0]
	if in.State != gdpm.StateExited || in.Restarts != 2 || in.Error == "" {
		t.Errorf("limited instance: %+v", in)
	}
	t.Logf("failed: %s; instance error %q", d.LastError.Message, in.Error)

	// One of two instances ends cleanly and is not restarted: degraded.
	deg := c.createReq(gdpm.CreateRequest{
		Command:     `sh -c 'if [ "$GDPM_INSTANCE_INDEX" = 0 ]; then exec sleep 100; fi'`,
		InstanceNum: intp(2), Restart: gdpm.RestartOnFailure,
	})
	waitFor(t, 20*time.Second, "degraded with one instance running", func() (bool, string) {
		d = c.waitStatus(deg, gdpm.ServiceDegraded)
		return d.Running == 1, fmt.Sprintf("%d running", d.Running)
	})

	// Stopped on request; and started again it runs.
	if err := c.client.StopService(ctxT(t), pend); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(pend, gdpm.ServiceStopped)
	if err := c.client.StartService(ctxT(t), pend); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(pend, gdpm.ServiceRunning)

	// A restart of the failed service starts its instance afresh.
	if err := c.client.RestartService(ctxT(t), limited); err != nil {
		t.Fatal(err)
	}
	c.waitStatus(limited, gdpm.ServiceCrashLooping)
}
