package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/gdpmtest"
)

// startCluster runs embedded etcd, a master with token and one slave, and
// returns the master's API URL.
func startCluster(t *testing.T, token string) string {
	t.Helper()
	addr, _ := startClusterEtcd(t, token)
	return addr
}

// startClusterEtcd is startCluster that also returns etcd's endpoints.
func startClusterEtcd(t *testing.T, token string) (string, []string) {
	t.Helper()
	c := gdpmtest.Start(t, gdpmtest.Options{Token: token, Slaves: 1})
	return c.APIURL(c.Masters[0]), c.Endpoints()
}

// testCLI runs gdpm-client's run in process with a fixed environment, as a
// user's shell would.
type testCLI struct {
	t    *testing.T
	vars map[string]string
}

func newTestCLI(t *testing.T, vars map[string]string) *testCLI { return &testCLI{t: t, vars: vars} }

// getenv is the environment run reads.
func (c *testCLI) getenv(k string) string { return c.vars[k] }

// run runs one command line: its exit status, stdout and stderr.
func (c *testCLI) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, c.getenv)
	return code, out.String(), errb.String()
}

// must runs one command line and fails the test unless it exits 0.
func (c *testCLI) must(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("gdpm-client %v: exit %d\n%s%s", args, code, out, errs)
	}
	return out
}

// TestCLIAgainstARealCluster drives the verbs end to end as a user would.
func TestCLIAgainstARealCluster(t *testing.T) {
	addr := startCluster(t, "tok")
	c := newTestCLI(t, map[string]string{"GDPM_ADDR": addr, "GDPM_TOKEN": "tok"})
	env, cli, must := c.getenv, c.run, c.must

	if out := must("get", "nodes"); !strings.Contains(out, "online") {
		t.Fatalf("get nodes:\n%s", out)
	}
	id := strings.TrimSpace(must("create", "-r", "3", "-e", "GREETING=hi", "--", "sh", "-c", "echo $GREETING; exec sleep 100"))
	var d gdpm.ServiceDetail
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := json.Unmarshal([]byte(must("-o", "json", "get", "service", id)), &d); err != nil {
			t.Fatal(err)
		}
		if d.Running == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.Running != 3 || d.Env["GREETING"] != "hi" {
		t.Fatalf("after create -r 3 -e GREETING=hi: %+v", d)
	}
	// Each instance said hi once; the slaves write it to the log a moment
	// after the process starts.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := must("logs", id)
		if n := strings.Count(out, " | hi\n"); n == 3 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("logs: want 3 instances' hi:\n%s", out)
		}
	}
	// -t: each line's capture time, in UTC with milliseconds, in order;
	// each instance's start marker before its hi.
	out := must("logs", "-t", id)
	stamped := regexp.MustCompile(`(?m)^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) ([|*]) (.*)$`)
	ms := stamped.FindAllStringSubmatch(out, -1)
	if len(ms) != 6 || strings.Count(out, "\n") != 6 {
		t.Fatalf("logs -t: want 3 starts and 3 hi, each with its time:\n%s", out)
	}
	started := map[string]bool{}
	for i, m := range ms {
		if at, err := time.Parse(time.RFC3339, m[1]); err != nil || time.Since(at) > time.Hour || time.Until(at) > time.Minute {
			t.Fatalf("logs -t: line %q: time %s is not now (%v)", m[0], m[1], err)
		}
		if i > 0 && m[1] < ms[i-1][1] {
			t.Fatalf("logs -t: out of time order:\n%s", out)
		}
		switch {
		case m[3] == "*" && strings.HasPrefix(m[4], "started (pid "):
			started[m[2]] = true
		case m[3] == "|" && m[4] == "hi" && started[m[2]]:
		default:
			t.Fatalf("logs -t: line %q", m[0])
		}
	}
	// Following ends when the user interrupts it, and that is success.
	fctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := &cancelOnWrite{match: " | hi\n", cancel: cancel}
	var ferr bytes.Buffer
	if code := run(fctx, []string{"logs", "-f", "-n", "6", id}, follow, &ferr, env); code != exitOK || ferr.Len() > 0 {
		t.Fatalf("logs -f, interrupted: exit %d, stderr %q", code, ferr.String())
	}
	if out := must("get", "services"); !strings.Contains(out, id) {
		t.Fatalf("get services does not list %s:\n%s", id, out)
	}
	// The flag after the id counts (the original scaled to 1 here).
	must("update", id, "-r", "1")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		json.Unmarshal([]byte(must("-o", "json", "get", "service", id)), &d)
		if (d.Running == 1 && len(d.Instances) == 1) || time.Now().After(deadline) {
			break
		}
	}
	if d.InstanceNum != 1 || d.Running != 1 {
		t.Fatalf("update ID -r 1: %+v", d)
	}
	pid := d.Instances[0].PID
	must("delete", id)
	for deadline := time.Now().Add(20 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after delete", pid)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"delete", id}, 1, "not found"},
		{[]string{"get", "service", "nope"}, 1, "not found"},
		{[]string{"-token", "wrong", "get", "nodes"}, 1, "401"},
		{[]string{"create", "-r", "-1", "sleep", "1"}, 2, "-r"},
		{[]string{"get", "node"}, 2, "ID"},
	} {
		code, out, errs := cli(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("gdpm-client %v: exit %d, stderr %q, stdout %q; want exit %d and %q", tc.args, code, errs, out, tc.code, tc.msg)
		}
	}
}
