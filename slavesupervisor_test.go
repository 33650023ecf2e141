//go:build linux

package gdpm

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
)

// A sync of many new assignments starts at most maxStarting runners at
// once; the others start as those report their start, until all run.
// Before, every runner started at once: a slave given 3,000 instances had
// 3,000 goroutines racing to fork, and its lease renewal waited behind
// them until the lease was lost.
func TestSupervisorPacesStarts(t *testing.T) {
	const n = 3 * maxStarting
	groups, err := proc.OpenGroups(t.TempDir(), false, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer groups.Close()
	// A writer that is never run: it only keeps the latest statuses.
	sw := newStatusWriter(nil, newKeyspace(""), "node", 0, discardLogger())
	sup := newSupervisor(slaveDeps{groups: groups, ports: newPortPool(), log: discardLogger()}, "node", sw)
	defer sup.stopAll(context.Background(), true)
	desired := map[string]Assignment{}
	for i := range n {
		a := Assignment{Service: "svc", Instance: fmt.Sprintf("i%d", i), Spec: Spec{Command: "sleep 1000"}, resolved: true}
		desired["svc/"+a.Instance] = a
	}
	sup.sync(desired)
	sup.mu.Lock()
	started := len(sup.running)
	sup.mu.Unlock()
	if started == n {
		t.Fatalf("all %d runners started by one sync, want at most %d starting at once", n, maxStarting)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s := sup.fds.starting(); s > maxStarting {
			t.Fatalf("%d instances starting at once, want at most %d", s, maxStarting)
		}
		running := 0
		sw.mu.Lock()
		for _, st := range sw.dirty {
			if st != nil && st.State == StateRunning {
				running++
			}
		}
		sw.mu.Unlock()
		if running == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d running", running, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
