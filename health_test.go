package gdpm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// An exec check that tests for a file: healthy while the file exists;
// removing it makes the instance unhealthy, and the slave replaces it
// (restart count +1), after which it starts, fails again... The events
// say healthy and unhealthy.
func TestExecHealthCheckReplacesUnhealthyInstance(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	flag := filepath.Join(t.TempDir(), "ok")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a missing event fails, not hangs
	defer cancel()
	events, err := c.client.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	id := c.createReq(gdpm.CreateRequest{
		Command: gdpm.ProgramForTests() + " sleep",
		Env:     map[string]string{"FLAG": flag},
		Supervision: gdpm.Supervision{Check: &gdpm.HealthCheck{
			Exec: "test -e $FLAG", Interval: gdpm.Duration(100 * time.Millisecond),
			Failures: 2, Grace: gdpm.Duration(time.Millisecond),
		}},
	})
	var d gdpm.ServiceDetail
	waitFor(t, 20*time.Second, "healthy", func() (bool, string) {
		d, _ = c.client.Service(ctxT(t), id)
		return len(d.Instances) == 1 && d.Instances[0].Health == gdpm.HealthHealthy && d.Status == gdpm.ServiceRunning,
			fmt.Sprintf("%s %+v", d.Status, d.Instances)
	})
	first := d.Instances[0]
	if first.Restarts != 0 {
		t.Fatalf("restarts before the check failed: %+v", first)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the unhealthy instance replaced", func() (bool, string) {
		d, _ = c.client.Service(ctxT(t), id)
		in := d.Instances[0]
		return in.Restarts >= 1 && in.PID != first.PID && strings.HasPrefix(in.LastError, "unhealthy"),
			fmt.Sprintf("%+v", in)
	})
	waitDead(t, []int{first.PID})
	if d.LastError == nil || !strings.HasPrefix(d.LastError.Message, "unhealthy") {
		t.Errorf("service last error: %+v", d.LastError)
	}
	// The events said healthy, then unhealthy, then the restart.
	want := []gdpm.EventType{gdpm.EventInstanceHealthy, gdpm.EventInstanceUnhealthy, gdpm.EventInstanceRestarted}
	for len(want) > 0 {
		ev, err := events.Next()
		if err != nil {
			t.Fatalf("events: %v (still waiting for %v)", err, want)
		}
		if ev.Service == id && ev.Type == want[0] {
			if ev.Type == gdpm.EventInstanceUnhealthy && !strings.Contains(ev.Message, "test -e") {
				t.Errorf("unhealthy event without the failing check: %+v", ev)
			}
			want = want[1:]
		}
	}
	// The file back: healthy again, and it stays.
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "healthy again", func() (bool, string) {
		d, _ = c.client.Service(ctxT(t), id)
		return d.Instances[0].Health == gdpm.HealthHealthy, fmt.Sprintf("%+v", d.Instances[0])
	})
}

// An http check on a tiny server at its named port (GDPM_PORT_HTTP,
// expanded from the instance's environment): healthy. A check of a path
// it does not serve, with OnUnhealthy none: unhealthy and reported, not
// replaced, and the service is degraded.
func TestHTTPHealthCheckOnNamedPort(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	check := func(path, on string) *gdpm.HealthCheck {
		return &gdpm.HealthCheck{HTTP: "http://127.0.0.1:${GDPM_PORT_HTTP}" + path, Interval: gdpm.Duration(100 * time.Millisecond),
			Timeout: gdpm.Duration(time.Second), Failures: 2, Grace: gdpm.Duration(200 * time.Millisecond), OnUnhealthy: on}
	}
	good := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " http GDPM_PORT_HTTP", Ports: []string{"http"},
		Supervision: gdpm.Supervision{Check: check("/healthz", "")}})
	bad := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " http GDPM_PORT_HTTP", Ports: []string{"http"},
		Supervision: gdpm.Supervision{Check: check("/missing", gdpm.OnUnhealthyNone)}})
	d := c.waitStatus(good, gdpm.ServiceRunning)
	waitFor(t, 20*time.Second, "healthy", func() (bool, string) {
		d, _ = c.client.Service(ctxT(t), good)
		return d.Instances[0].Health == gdpm.HealthHealthy, fmt.Sprintf("%+v", d.Instances[0])
	})
	d = c.waitStatus(bad, gdpm.ServiceDegraded)
	in := d.Instances[0]
	if in.Health != gdpm.HealthUnhealthy || in.State != gdpm.StateRunning || in.Restarts != 0 || !strings.Contains(in.HealthError, "404") {
		t.Errorf("OnUnhealthy none: %+v", in)
	}
	// A tcp check on the same port: healthy while it listens.
	tcp := c.createReq(gdpm.CreateRequest{Command: gdpm.ProgramForTests() + " listen GDPM_PORT_TCP", Ports: []string{"tcp"},
		Supervision: gdpm.Supervision{Check: &gdpm.HealthCheck{TCP: "127.0.0.1:$GDPM_PORT_TCP", Interval: gdpm.Duration(100 * time.Millisecond)}}})
	waitFor(t, 20*time.Second, "the tcp check healthy", func() (bool, string) {
		d, _ = c.client.Service(ctxT(t), tcp)
		return len(d.Instances) == 1 && d.Instances[0].Health == gdpm.HealthHealthy, fmt.Sprintf("%+v", d.Instances)
	})
}
