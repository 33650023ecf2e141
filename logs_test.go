package gdpm_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

func linesCmd(n int, interval string) string {
	return fmt.Sprintf("%s lines %d %s", gdpm.ProgramForTests(), n, interval)
}

// readLogs reads a finished (not followed) logs answer.
func readLogs(t *testing.T, cl *gdpm.Client, svc string, opts gdpm.LogsOptions) []gdpm.LogLine {
	t.Helper()
	ls, err := cl.Logs(ctxT(t), svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	var out []gdpm.LogLine
	for {
		l, err := ls.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
}

// A chatty instance's log files stay within LogMaxSize each and
// LogMaxFiles in number while it writes flat out.
func TestLogRotationCapsAChattyInstance(t *testing.T) {
	const maxSize = 64 << 10
	data := t.TempDir()
	c := newCluster(t, clusterOpts{slaves: 1, slave: func(s *gdpm.SlaveConfig) {
		s.LogMaxSize, s.LogMaxFiles, s.DataDir = maxSize, 3, data
	}})
	id := c.create(gdpm.ProgramForTests()+" print 0s", 1)
	c.waitRunning(id, 1)
	d, err := c.client.Service(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(data, "logs", id, d.Instances[0].ID+".stdout")
	samples := 0
	waitFor(t, 30*time.Second, "stdout rotated twice", func() (bool, string) {
		samples++
		for i := range 5 {
			name := base
			if i > 0 {
				name = fmt.Sprintf("%s.%d", base, i)
			}
			fi, err := os.Stat(name)
			if err != nil {
				continue
			}
			if i >= 3 {
				t.Fatalf("%s exists: more than 3 files", name)
			}
			if fi.Size() > maxSize {
				t.Fatalf("%s is %d bytes, over the %d cap", name, fi.Size(), maxSize)
			}
		}
		_, err := os.Stat(base + ".2")
		return err == nil, "no .2 yet"
	})
	// And it goes on within the cap after that.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		samples++
		for _, name := range []string{base, base + ".1", base + ".2"} {
			if fi, err := os.Stat(name); err == nil && fi.Size() > maxSize {
				t.Fatalf("%s is %d bytes, over the %d cap", name, fi.Size(), maxSize)
			}
		}
		if _, err := os.Stat(base + ".3"); err == nil {
			t.Fatal("a fourth file")
		}
	}
	t.Logf("%d samples within the cap", samples)
}

// Logs of instances on two slaves come through one master, each line
// marked with its instance, node and stream; tail reaches into rotated
// files; ?instance picks one instance.
func TestLogsThroughTheMasterFromEverySlave(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2, token: "tok", slave: func(s *gdpm.SlaveConfig) {
		s.LogMaxSize, s.LogMaxFiles = 2048, 3
	}})
	id := c.create(linesCmd(500, "0s"), 2)
	c.waitRunning(id, 2)
	d, _ := c.client.Service(ctxT(t), id)
	nodes := map[string]string{} // instance -> node
	for _, in := range d.Instances {
		nodes[in.ID] = in.Node
	}
	if nodes[d.Instances[0].ID] == nodes[d.Instances[1].ID] {
		t.Fatalf("both instances on one node: %+v", d.Instances)
	}
	// All 500 lines are written (the last is out 499) before we look.
	// tail counts across an instance's streams (and its markers), by
	// time: out 499 is among the last 60 of its instance (the stderr
	// pipe may well be read after the stdout pipe, all 50 lines at once).
	waitFor(t, 10*time.Second, "every instance's last line", func() (bool, string) {
		n := 0
		for inst := range nodes {
			for _, l := range readLogs(t, c.client, id, gdpm.LogsOptions{Instance: inst, Tail: 60}) {
				if l.Line == "out 499" {
					n++
				}
			}
		}
		return n == 2, fmt.Sprintf("%d of 2", n)
	})

	// tail=350 of one instance: "out NNN\n" is 8 bytes, so 2048-byte files
	// hold 256 lines, and the at least 300 stdout lines among the last 350
	// (stderr has 50) reach into the rotated file.
	for inst := range nodes {
		got := readLogs(t, c.client, id, gdpm.LogsOptions{Instance: inst, Tail: 350})
		if len(got) != 350 {
			t.Fatalf("instance %s: %d lines, want 350", inst, len(got))
		}
		per := map[gdpm.LogStreamName][]string{}
		for i, l := range got {
			if l.Service != id || l.Instance != inst || l.Node != nodes[l.Instance] {
				t.Fatalf("line %+v: wrong service, instance or node (want node %s)", l, nodes[l.Instance])
			}
			if l.Time.IsZero() || i > 0 && l.Time.Before(got[i-1].Time) {
				t.Fatalf("line %d %+v: no time, or before the line before it (%s)", i, l, got[i-1].Time)
			}
			if l.Mark == "" {
				per[l.Stream] = append(per[l.Stream], l.Line)
			}
		}
		out, errs := per[gdpm.Stdout], per[gdpm.Stderr]
		if len(out) < 300 {
			t.Fatalf("instance %s: %d stdout lines, want at least 300", inst, len(out))
		}
		for i, l := range out {
			if want := fmt.Sprintf("out %d", 500-len(out)+i); l != want {
				t.Fatalf("instance %s stdout line %d = %q, want %q", inst, i, l, want)
			}
		}
		// Whether the last 350 hold stderr lines depends on which pipe the
		// poller read first (the program writes all 500 lines at once, and
		// either pipe may be drained first): the whole log has them all.
		errs = errs[:0]
		for _, l := range readLogs(t, c.client, id, gdpm.LogsOptions{Instance: inst, Tail: 1000}) {
			if l.Mark == "" && l.Stream == gdpm.Stderr {
				errs = append(errs, l.Line)
			}
		}
		if len(errs) != 50 || errs[len(errs)-1] != "err 490" {
			t.Fatalf("instance %s stderr: %d lines %q...", inst, len(errs), errs)
		}
	}

	one := d.Instances[1].ID
	for _, l := range readLogs(t, c.client, id, gdpm.LogsOptions{Instance: one, Tail: 5}) {
		if l.Instance != one {
			t.Fatalf("asked for %s, got a line of %s", one, l.Instance)
		}
	}
	if n := len(readLogs(t, c.client, id, gdpm.LogsOptions{Instance: one, Tail: -1})); n != 0 {
		t.Errorf("tail -1 sent %d lines, want none", n)
	}
}

// A follow sees every line, in order, across several rotations.
func TestLogsFollowAcrossRotation(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1, slave: func(s *gdpm.SlaveConfig) {
		s.LogMaxSize, s.LogMaxFiles = 1024, 2
	}})
	const n = 1000
	id := c.create(linesCmd(n, "3ms"), 1)
	c.waitRunning(id, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ls, err := c.client.Logs(ctx, id, gdpm.LogsOptions{Follow: true, Tail: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	firstLine, next := -1, -1
	for next < n {
		l, err := ls.Next()
		if err != nil {
			t.Fatalf("after out %d: %v", next-1, err)
		}
		if l.Stream != gdpm.Stdout {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(l.Line, "out %d", &i); err != nil {
			t.Fatalf("line %q", l.Line)
		}
		if firstLine < 0 {
			firstLine, next = i, i
		}
		if i != next {
			t.Fatalf("got out %d, want out %d: a line lost or repeated", i, next)
		}
		if next++; next == n {
			break
		}
	}
	// 128 lines fill a 1024-byte file: at least three rotations were
	// followed unless the stream started late.
	if rotations := (n - firstLine) / 128; rotations < 3 {
		t.Logf("the follow started at out %d: only %d rotations crossed", firstLine, rotations)
	}
	t.Logf("followed out %d..%d", firstLine, n-1)
}

// Bad log requests are answered with a status and a JSON error; the
// slave's log server wants the token.
func TestLogsBadInput(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1, token: "tok"})
	id := c.create(linesCmd(3, "0s"), 1)
	c.waitRunning(id, 1)
	for _, tt := range []struct {
		path string
		code int
		msg  string
	}{
		{"/service/" + id + "/logs?tail=x", 400, "tail must be"},
		{"/service/" + id + "/logs?tail=-2", 400, "tail must be"},
		{"/service/" + id + "/logs/?follow=yes", 400, "follow must be"},
		{"/service/" + id + "/logs?instance=a&instance=b", 400, "one instance"},
		{"/service/" + id + "/logs?instance=..", 400, "not an instance id"},
		{"/service/" + id + "/logs?instance=nope", 404, "no instance"},
		{"/service/nope/logs", 404, "nope"},
	} {
		code, _, body := c.do(http.MethodGet, tt.path, "", "")
		if code != tt.code || !strings.Contains(body, tt.msg) || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("GET %s = %d %s, want %d with %q", tt.path, code, body, tt.code, tt.msg)
		}
	}
	if code, _, _ := c.do(http.MethodGet, "/service/"+id+"/logs", "", "", "Authorization", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	resp, err := http.Get("http://" + c.slaves[0].LogAddr() + "/logs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("slave log server without the token: %d, want 401", resp.StatusCode)
	}
	// A service whose instances are all pending has no logs: an empty answer.
	c.slaves[0].Close()
	c.slaves = nil
	waitFor(t, 10*time.Second, "instance pending", func() (bool, string) {
		d, err := c.client.Service(ctxT(t), id)
		return err == nil && d.Pending == 1, fmt.Sprint(err)
	})
	if got := readLogs(t, c.client, id, gdpm.LogsOptions{}); len(got) != 0 {
		t.Errorf("pending instance has %d log lines", len(got))
	}
}

// A follow goes on where the service goes: when its slave leaves, the
// instance's lines come from the node it moved to, in the same stream.
func TestLogsFollowMovesWithTheInstance(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	id := c.create(linesCmd(1_000_000, "20ms"), 1)
	c.waitRunning(id, 1)
	first := c.slaves[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ls, err := c.client.Logs(ctx, id, gdpm.LogsOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	next := func() gdpm.LogLine {
		t.Helper()
		l, err := ls.Next()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := next(); l.Node != first.NodeID() {
		t.Fatalf("first line from node %s, want %s", l.Node, first.NodeID())
	}
	second := c.addSlave()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	c.slaves = c.slaves[1:]
	for {
		if l := next(); l.Node == second.NodeID() {
			t.Logf("after the move: %q from %s", l.Line, l.Node)
			return
		}
	}
}
