package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// TestCLIShowsServiceStatuses: get services shows each status word a
// service reaches on a real cluster (pending before any node, then
// crashlooping, failed at a restart limit, degraded, stopped, running),
// with the restarts, and get nodes the host name.
func TestCLIShowsServiceStatuses(t *testing.T) {
	ctx := context.Background()
	etcd, err := gdpm.StartEmbeddedEtcd(ctx, gdpm.EmbeddedEtcdConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	m, err := gdpm.NewMaster(gdpm.MasterConfig{Endpoints: etcd.Endpoints(), HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr := "http://" + m.HTTPAddr()
	client, err := gdpm.NewClient(gdpm.ClientConfig{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) string { return map[string]string{"GDPM_ADDR": addr}[k] }
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, &out, &errb, env); code != 0 {
			t.Fatalf("gdpm-client %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	create := func(req gdpm.CreateRequest) {
		t.Helper()
		if _, err := client.CreateService(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	// waitLine waits until get services has the named service's line with
	// every word of want.
	waitLine := func(name string, want ...string) string {
		t.Helper()
		var line string
		deadline := time.Now().Add(30 * time.Second)
		for {
			line = ""
			for _, l := range strings.Split(cli("get", "services"), "\n") {
				if strings.HasPrefix(l, name+" ") {
					line = l
				}
			}
			ok := line != ""
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				return line
			}
			if time.Now().After(deadline) {
				t.Fatalf("get services: no line for %s with %q; last: %q", name, want, line)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	n := func(i int) *int { return &i }

	create(gdpm.CreateRequest{Name: "waiting", Command: "sleep 1000", InstanceNum: n(2)})
	waitLine("waiting", " pending ", " 0/2 ")

	s, err := gdpm.NewSlave(gdpm.SlaveConfig{Masters: []string{m.TCPAddr()}, DataDir: t.TempDir(), Hostname: "cli-host"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitLine("waiting", " running ", " 2/2 ")

	create(gdpm.CreateRequest{Name: "looping", Command: "sh -c 'exit 3'"})
	create(gdpm.CreateRequest{Name: "limited", Command: "sh -c 'exit 3'", Supervision: gdpm.Supervision{MaxRestarts: 2}})
	create(gdpm.CreateRequest{Name: "half", Command: `sh -c 'if [ "$GDPM_INSTANCE_INDEX" = 0 ]; then exec sleep 1000; fi'`,
		InstanceNum: n(2), Restart: gdpm.RestartOnFailure})
	create(gdpm.CreateRequest{Name: "parked", Command: "sleep 1000"})
	waitLine("looping", " crashlooping ")
	line := waitLine("limited", " failed ", " 0/1 ")
	if f := strings.Fields(line); len(f) < 5 || f[4] != "2" {
		t.Errorf("limited: restarts column of %q, want 2", line)
	}
	waitLine("half", " degraded ", " 1/2 ")
	waitLine("parked", " running ")
	cli("stop", "parked")
	waitLine("parked", " stopped ")

	detail := cli("get", "service", "limited")
	for _, want := range []string{"Status:", "failed", "Last error:", "exit code 3", "restart limit reached"} {
		if !strings.Contains(detail, want) {
			t.Errorf("get service limited: no %q in\n%s", want, detail)
		}
	}
	nodes := cli("get", "nodes")
	if !strings.Contains(nodes, "cli-host") || !strings.Contains(nodes, "cores") {
		t.Errorf("get nodes:\n%s", nodes)
	}
	fmt.Fprint(testWriter{t}, cli("get", "services"))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log("\n" + string(b)); return len(b), nil }
