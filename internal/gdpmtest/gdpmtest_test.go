package gdpmtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/testkit"
)

func TestWaitForReturnsWhenTrue(t *testing.T) {
	calls := 0
	WaitFor(t, 10*time.Second, "the third call", func() (bool, string) {
		calls++
		return calls == 3, fmt.Sprint(calls)
	})
	if calls != 3 {
		t.Fatalf("WaitFor returned after %d calls, want 3", calls)
	}
}

func TestWaitForFailureNamesWhatAndLastState(t *testing.T) {
	calls := 0
	msg := testkit.Fatal(t, func(t testing.TB) {
		WaitFor(t, 100*time.Millisecond, "the moon", func() (bool, string) {
			calls++
			return false, fmt.Sprintf("state %d", calls)
		})
	})
	want := fmt.Sprintf("waiting for the moon; last seen: state %d", calls)
	if calls < 2 || !strings.Contains(msg, want) {
		t.Fatalf("after %d polls the failure was %q, want it to contain %q", calls, msg, want)
	}
}

// Start brings up a whole cluster whose slaves run real processes, and
// Cluster.WaitRunning sees them through the OS.
func TestStartRunsAClusterThatRunsProcesses(t *testing.T) {
	c := Start(t, Options{Slaves: 2})
	nodes, err := c.Client.Nodes(context.Background())
	if err != nil || len(nodes.Ids) != 2 {
		t.Fatalf("nodes %v, %v; want 2", nodes, err)
	}
	id, err := c.Client.CreateService(context.Background(), gdpm.CreateRequest{Command: "sleep 60", InstanceNum: new(3)})
	if err != nil {
		t.Fatal(err)
	}
	pids := c.WaitRunning(id, 3)
	for _, p := range pids {
		if !Alive(p) {
			t.Errorf("pid %d reported running is not alive", p)
		}
	}
}
