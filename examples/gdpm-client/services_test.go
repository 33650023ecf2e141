package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/capy-pl/gdpm"
)

const appsFile = `# two services
- Name: web
  Command: sleep 1000
  InstanceNum: 2
  Env:
    GREETING: hello
- Name: worker
  Command: sleep 1001
`

// TestCLINamesSpecFilesAndPrefixes: apply, diff, get -o yaml, the
// lifecycle verbs, names and id prefixes, as a user types them.
func TestCLINamesSpecFilesAndPrefixes(t *testing.T) {
	addr, eps := startClusterEtcd(t, "tok")
	c := newTestCLI(t, map[string]string{"GDPM_ADDR": addr, "GDPM_TOKEN": "tok"})
	cli, must := c.run, c.must
	detail := func(ref string) gdpm.ServiceDetail {
		t.Helper()
		var d gdpm.ServiceDetail
		if err := json.Unmarshal([]byte(must("-o", "json", "get", "service", ref)), &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	waitRunning := func(ref string, n int) gdpm.ServiceDetail {
		t.Helper()
		var d gdpm.ServiceDetail
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			d = detail(ref)
			if d.Running == n && len(d.Instances) == n {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %d running: %+v", ref, n, d)
			}
		}
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "apps.yaml")
	os.WriteFile(file, []byte(appsFile), 0o644)
	if out := must("apply", "-f", file); out != "service web created\nservice worker created\n" {
		t.Errorf("apply:\n%s", out)
	}
	web := waitRunning("web", 2)
	waitRunning("worker", 1)
	if out := must("apply", "-f", file); out != "service web unchanged\nservice worker unchanged\n" {
		t.Errorf("apply again:\n%s", out)
	}
	if out := must("diff", "-f", file); out != "no changes\n" {
		t.Errorf("diff of an applied file:\n%s", out)
	}
	os.WriteFile(file, []byte(strings.Replace(appsFile, "hello", "bonjour", 1)), 0o644)
	if code, out, errs := cli("diff", "-f", file); code != exitDiffers || errs != "" || !strings.Contains(out, "~ service web") || !strings.Contains(out, "-     GREETING: hello\n+     GREETING: bonjour\n") || strings.Contains(out, "worker") {
		t.Errorf("diff of a changed env: exit %d, stderr %q, want %d and:\n%s", code, errs, exitDiffers, out)
	}
	// Trouble is 2, not the 1 of "changes": a wrong token, a missing file.
	badToken := newTestCLI(t, map[string]string{"GDPM_ADDR": addr, "GDPM_TOKEN": "wrong"})
	if code, _, errs := badToken.run("diff", "-f", file); code != exitDiffTrouble || !strings.Contains(errs, "token") {
		t.Errorf("diff with a wrong token: exit %d, stderr %q; want %d naming the token", code, errs, exitDiffTrouble)
	}
	if code, _, errs := cli("diff", "-f", file+".missing"); code != exitDiffTrouble || errs == "" {
		t.Errorf("diff of a missing file: exit %d, stderr %q; want %d", code, errs, exitDiffTrouble)
	}
	// get -o yaml prints a spec that applies as unchanged, from stdin.
	spec := must("get", "service", "web", "-o", "yaml")
	if !strings.Contains(spec, "Name: web") {
		t.Errorf("get -o yaml:\n%s", spec)
	}
	stdin = strings.NewReader(spec)
	t.Cleanup(func() { stdin = os.Stdin })
	if out := must("apply", "-f", "-"); out != "service web unchanged\n" {
		t.Errorf("apply of get -o yaml:\n%s", out)
	}
	// Lists show names first.
	if out := must("get", "services"); !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "\nweb ") {
		t.Errorf("get services:\n%s", out)
	}
	// The original CLI's -replicas; a name on create.
	must("create", "-replicas", "2", "-name", "third", "--", "sleep", "1002")
	waitRunning("third", 2)
	must("scale", "third", "1")
	waitRunning("third", 1)
	// get services -o yaml is one spec file of every named service.
	all, err := gdpm.ParseSpecFile([]byte(must("get", "services", "-o", "yaml")))
	if err != nil || len(all) != 3 || all[0].Name != "web" || all[2].Name != "third" || *all[2].InstanceNum != 1 {
		t.Errorf("get services -o yaml: %+v %v", all, err)
	}

	// An id prefix of 4+ characters works; an ambiguous one is an error
	// that says so, with exit 1. Two records with one prefix are written
	// straight into etcd, as no API would pick such ids.
	must("get", "service", web.ID[:6])
	cli3, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli3.Close()
	for _, id := range []string{"abcd0000-0000-4000-8000-000000000001", "abcd0000-0000-4000-8000-000000000002"} {
		v, _ := json.Marshal(gdpm.Service{ID: id, Spec: gdpm.Spec{Command: "sleep 1003"}, InstanceNum: 0, CreatedAt: time.Now()})
		if _, err := cli3.Put(context.Background(), gdpm.DefaultPrefix+"services/"+id, string(v)); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs := cli("stop", "abcd")
	if code != exitFailed || !strings.Contains(errs, `"abcd" is ambiguous`) || !strings.Contains(errs, "abcd0000-0000-4000-8000-000000000002") {
		t.Errorf("ambiguous prefix: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := cli("stop", "abc"); code != exitFailed || !strings.Contains(errs, "4 characters") {
		t.Errorf("short prefix: exit %d, stderr %q", code, errs)
	}
	must("delete", "abcd0000-0000-4000-8000-000000000001", "abcd0000-0000-4000-8000-000000000002")

	// stop, start, restart by name and by prefix.
	if out := must("stop", "web"); out != "service web stopped\n" {
		t.Errorf("stop: %q", out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		d := detail("web")
		if d.Status == gdpm.ServiceStopped && len(d.Instances) == 0 && d.InstanceNum == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stop web: %+v", d)
		}
	}
	must("start", web.ID[:8])
	waitRunning("web", 2)
	must("restart", "web")
	must("delete", "web", "worker", "third")
	if out := must("get", "services"); strings.Contains(out, "web") {
		t.Errorf("after delete:\n%s", out)
	}
}
