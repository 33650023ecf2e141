package gdpm_test

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

// alternateCmd writes "TAG out I" to stdout and "TAG err I" to stderr, n
// times, sleep apart, then sleeps. TAG is the instance's own pid, so the
// two instances' lines differ.
func alternateCmd(n int, sleep string) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "$$ out $i"; echo "$$ err $i" >&2; sleep %s; i=$((i+1)); done; exec sleep 1000`, n, sleep)
}

// checkTimeOrder fails unless every line has a time and no line's time is
// before the line before it.
func checkTimeOrder(t *testing.T, lines []gdpm.LogLine) {
	t.Helper()
	for i, l := range lines {
		if l.Time.IsZero() {
			t.Fatalf("line %d %+v has no time", i, l)
		}
		if i > 0 && l.Time.Before(lines[i-1].Time) {
			t.Fatalf("line %d %+v is before the line before it (%s)", i, l, lines[i-1].Time.Format(time.RFC3339Nano))
		}
	}
}

// Two instances on two nodes, each writing alternately to stdout and
// stderr: the service-wide tail comes back in time order across
// instances, streams and nodes, each line's time increasing within its
// stream; tail N is the last N of them all.
func TestLogsServiceTailInTimeOrder(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 2})
	const n = 8
	id := c.create(alternateCmd(n, "0.2"), 2)
	c.waitRunning(id, 2)
	var all []gdpm.LogLine
	waitFor(t, 20*time.Second, "every line of both instances", func() (bool, string) {
		all = readLogs(t, c.client, id, gdpm.LogsOptions{Tail: 1000})
		k := 0
		for _, l := range all {
			if l.Mark == "" {
				k++
			}
		}
		return k == 4*n, fmt.Sprintf("%d of %d lines", k, 4*n)
	})
	checkTimeOrder(t, all)

	// Per stream: times never go back, the lines come in the order
	// written; a line written 0.2 s after another (the next round of the
	// same instance) comes after it in the merged answer.
	pos := map[string]int{} // "PID out I" -> index in all
	nodes := map[string]bool{}
	instances := map[string]string{} // pid tag -> instance
	for i, l := range all {
		if l.Mark != "" {
			if l.Stream != "" || l.Mark != "started" || !strings.HasPrefix(l.Line, "started (pid ") {
				t.Fatalf("marker %+v", l)
			}
			continue
		}
		var pid, k int
		var stream string
		if _, err := fmt.Sscanf(l.Line, "%d %s %d", &pid, &stream, &k); err != nil || stream != map[gdpm.LogStreamName]string{gdpm.Stdout: "out", gdpm.Stderr: "err"}[l.Stream] {
			t.Fatalf("line %+v", l)
		}
		tag := fmt.Sprint(pid)
		if inst, ok := instances[tag]; ok && inst != l.Instance {
			t.Fatalf("pid %s in two instances", tag)
		}
		instances[tag] = l.Instance
		nodes[l.Node] = true
		pos[l.Line] = i
	}
	if len(instances) != 2 || len(nodes) != 2 {
		t.Fatalf("lines of %d instances on %d nodes, want 2 on 2", len(instances), len(nodes))
	}
	for tag := range instances {
		for k := 1; k < n; k++ {
			for _, prev := range []string{"out", "err"} {
				for _, next := range []string{"out", "err"} {
					a, b := fmt.Sprintf("%s %s %d", tag, prev, k-1), fmt.Sprintf("%s %s %d", tag, next, k)
					if pos[a] >= pos[b] {
						t.Errorf("%q (at %d) comes after %q (at %d)", a, pos[a], b, pos[b])
					}
				}
			}
		}
	}
	// Interleaved: neither instance's lines come as one block.
	var first []string
	for _, l := range all {
		if l.Mark == "" && (len(first) == 0 || first[len(first)-1] != l.Instance) {
			first = append(first, l.Instance)
		}
	}
	if len(first) < 4 {
		t.Errorf("the instances' lines come in %d runs, not interleaved", len(first))
	}

	// tail=10: the 10 newest of all, in the same order.
	last := readLogs(t, c.client, id, gdpm.LogsOptions{Tail: 10})
	if len(last) != 10 {
		t.Fatalf("tail 10: %d lines", len(last))
	}
	checkTimeOrder(t, last)
	newest := all[len(all)-10:]
	for i := range last {
		if !last[i].Time.Equal(newest[i].Time) {
			t.Fatalf("tail 10 line %d = %+v, want the full tail's %+v", i, last[i], newest[i])
		}
	}
}

// An instance killed and restarted shows as markers in its log: started,
// exited (128+9), started again with the new pid, each where it happened
// among the lines.
func TestLogsRestartMarkers(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	id := c.create(`echo "hello $$"; exec sleep 1000`, 1)
	pids := c.waitRunning(id, 1)
	hello := func(pid int) string { return fmt.Sprintf("hello %d", pid) }
	waitFor(t, 10*time.Second, "the first line", func() (bool, string) {
		ls := readLogs(t, c.client, id, gdpm.LogsOptions{})
		return slices.ContainsFunc(ls, func(l gdpm.LogLine) bool { return l.Line == hello(pids[0]) }), fmt.Sprint(ls)
	})
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second int
	waitFor(t, 20*time.Second, "a restart", func() (bool, string) {
		ps, _, err := c.running(id)
		if err != nil || len(ps) != 1 || ps[0] == pids[0] {
			return false, fmt.Sprint(ps, err)
		}
		second = ps[0]
		return true, ""
	})
	var got []string
	waitFor(t, 10*time.Second, "the markers and lines of both runs", func() (bool, string) {
		ls := readLogs(t, c.client, id, gdpm.LogsOptions{})
		checkTimeOrder(t, ls)
		got = got[:0]
		for _, l := range ls {
			got = append(got, l.Mark+": "+l.Line)
		}
		want := []string{
			fmt.Sprintf("started: started (pid %d)", pids[0]),
			": " + hello(pids[0]),
			fmt.Sprintf("exited: exited (code %d)", 128+int(syscall.SIGKILL)),
			fmt.Sprintf("started: started (pid %d)", second),
			": " + hello(second),
		}
		return slices.Equal(got, want), fmt.Sprintf("got %q, want %q", got, want)
	})
}
