package gdpm_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// needCgroups skips when this host has no writable cgroup hierarchy,
// except under CI, whose machines have one.
func needCgroups(t *testing.T) {
	t.Helper()
	if gdpm.CgroupVersionForTests() == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no writable cgroup hierarchy under CI")
		}
		t.Skip("no writable cgroup hierarchy")
	}
}

// A 64 MiB memory limit: a program that allocates 300 MB is killed by the
// kernel, and the instance says oom, in its last error and in the events.
func TestMemoryLimitKillsAndReportsOOM(t *testing.T) {
	needCgroups(t)
	c := newCluster(t, clusterOpts{slaves: 1})
	var limit gdpm.ByteSize
	if err := limit.UnmarshalJSON([]byte(`"64MiB"`)); err != nil || limit != 64<<20 {
		t.Fatalf("64MiB: %d %v", limit, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := c.client.Events(ctx, 0) // from now
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	id := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " alloc 300", Restart: gdpm.RestartNever,
		Supervision: gdpm.Supervision{MemoryLimit: limit}})
	d := c.waitStatus(id, gdpm.ServiceFailed)
	in := d.Instances[0]
	if in.LastError != "oom" || in.Error != "oom" || d.LastError == nil || d.LastError.Message != "oom" {
		t.Errorf("want oom: instance %+v, service %+v", in, d.LastError)
	}
	t.Logf("instance: state %s, exit %v, error %q", in.State, *in.ExitCode, in.Error)
	for {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("no exit event with oom: %v", err)
		}
		if ev.Service == id && ev.Type == gdpm.EventInstanceExited {
			if !strings.Contains(ev.Message, "oom") {
				t.Errorf("exit event: %+v", ev)
			}
			return
		}
	}
}

// CPULimit 0.2 holds a busy loop near a fifth of a core.
func TestCPULimitThrottles(t *testing.T) {
	needCgroups(t)
	c := newCluster(t, clusterOpts{slaves: 1, slave: func(cfg *gdpm.SlaveConfig) { cfg.UsageInterval = 500 * time.Millisecond }})
	id := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " spin", Supervision: gdpm.Supervision{CPULimit: 0.2}})
	c.waitRunning(id, 1)
	// One reading per usage interval once the loop shows up. The slave
	// rewrites the usage record only when a figure changes, and a loop held
	// at its quota reads 20.0 again and again: readings repeat, so they are
	// taken by time, not by change.
	var seen []float64
	var last time.Time
	waitFor(t, 20*time.Second, "five readings of the throttled loop", func() (bool, string) {
		if time.Since(last) < 500*time.Millisecond {
			return false, fmt.Sprint(seen)
		}
		d, _ := c.client.Service(ctxT(t), id)
		if len(d.Instances) == 1 && d.Instances[0].CPU > 0 {
			seen = append(seen, d.Instances[0].CPU)
			last = time.Now()
		}
		return len(seen) >= 5, fmt.Sprint(seen)
	})
	for _, cpu := range seen[1:] { // the first may straddle the start
		if cpu > 30 {
			t.Errorf("CPULimit 0.2: samples %v, want about 20%%", seen)
			break
		}
	}
	t.Logf("CPULimit 0.2: samples %v", seen)
}

// Rlimits NOFILE is set in the child before it runs the command: its
// /proc/PID/limits says so, soft and hard.
func TestRlimitNofileSeenByTheChild(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	id := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " limits",
		Supervision: gdpm.Supervision{Rlimits: map[string]uint64{"NOFILE": 1024}}})
	pid := c.waitRunning(id, 1)[0]
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "Max open files") {
			if f := strings.Fields(line); len(f) < 5 || f[3] != "1024" || f[4] != "1024" {
				t.Errorf("limits: %q", line)
			}
			return
		}
	}
	t.Fatalf("no open files line in\n%s", b)
}

// Bad limits are refused with 400 naming the field, and nothing is made.
func TestSupervisionFieldsValidated(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	for _, body := range []string{
		`{"Command":"sleep 1","Check":{}}`,
		`{"Command":"sleep 1","Check":{"Exec":"true","HTTP":"http://x"}}`,
		`{"Command":"sleep 1","Check":{"Http":"http://x"}}`,
		`{"Command":"sleep 1","Check":{"TCP":"127.0.0.1:1","OnUnhealthy":"explode"}}`,
		`{"Command":"sleep 1","MemoryLimit":"lots"}`,
		`{"Command":"sleep 1","MemoryLimit":100}`,
		`{"Command":"sleep 1","CPULimit":-1}`,
		`{"Command":"sleep 1","Rlimits":{"NOPE":1}}`,
		`{"Command":"sleep 1","MaxRestarts":-2}`,
	} {
		code, _, out := c.do("POST", "/service/", "application/json", body)
		if code != 400 || !strings.Contains(out, "error") {
			t.Errorf("%s: %d %s", body, code, out)
		}
	}
	code, _, out := c.do("POST", "/service/", "application/x-www-form-urlencoded", "Command=sleep+1&MaxRestarts=3")
	if code != 400 || !strings.Contains(out, "MaxRestarts cannot be given as a form field") {
		t.Errorf("form MaxRestarts: %d %s", code, out)
	}
	list, err := c.client.Services(ctxT(t))
	if err != nil || len(list) != 0 {
		t.Errorf("services after refusals: %v %v", list, err)
	}
	code, _, out = c.do("POST", "/service/", "application/json", `{"Command":"sleep 1","MemoryLimit":"64MiB","CPULimit":0.5,"Rlimits":{"NOFILE":1024},"MaxRestarts":3,"RestartWindow":"30s","Check":{"TCP":"127.0.0.1:${GDPM_PORT_X}","Interval":"2s"}}`)
	if code != 200 {
		t.Fatalf("good spec: %d %s", code, out)
	}
	d, err := c.client.Service(ctxT(t), out)
	if err != nil || d.MemoryLimit != 64<<20 || d.CPULimit != 0.5 || d.Check == nil || d.Check.TCP == "" || d.Rlimits["NOFILE"] != 1024 {
		t.Errorf("stored: %+v %v", d.Supervision, err)
	}
}

// Where the nodes cannot enforce limits, a service with limits is refused
// (400, saying why) rather than run unbounded; one without limits is not.
func TestLimitsRefusedWithoutCgroups(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	cli := etcdClient(t, c.eps, nil)
	// A node's usage record that reports no writable cgroup, as a slave
	// in an unprivileged container would.
	if _, err := cli.Put(ctxT(t), gdpm.DefaultPrefix+"usage/n1", `{"Node":"n1","Hostname":"box","Cgroups":""}`); err != nil {
		t.Fatal(err)
	}
	code, _, out := c.do("POST", "/service/", "application/json", `{"Command":"sleep 1","MemoryLimit":"64MiB"}`)
	if code != 400 || !strings.Contains(out, "cgroup") {
		t.Errorf("MemoryLimit without cgroups: %d %s", code, out)
	}
	code, _, out = c.do("PUT", "/service/capped/", "application/json", `{"Command":"sleep 1","CPULimit":0.5}`)
	if code != 400 || !strings.Contains(out, "cgroup") {
		t.Errorf("apply CPULimit without cgroups: %d %s", code, out)
	}
	if code, _, out := c.do("POST", "/service/", "application/json", `{"Command":"sleep 1","Rlimits":{"NOFILE":64}}`); code != 200 {
		t.Errorf("Rlimits need no cgroup: %d %s", code, out)
	}
}
