package gdpm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
)

func TestClientWaitRunning(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 1})
	ctx := ctxT(t)
	id := c.create(sleepCmd(), 2)
	d, err := c.client.WaitRunning(ctx, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, in := range d.Instances {
		if in.State == gdpm.StateRunning && alive(in.PID) {
			running++
		}
	}
	if running != 2 {
		t.Fatalf("WaitRunning returned with %d live running instances: %+v", running, d.Instances)
	}

	// A count that never comes: the context ends it, and the error says
	// what was seen last.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.client.WaitRunning(short, id, 3)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 of 3 instances running") {
		t.Fatalf("WaitRunning for 3 of 2: %v; want the deadline and the last count", err)
	}

	if err := c.client.ScaleService(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.WaitRunning(ctx, id, 0); err != nil {
		t.Fatalf("WaitRunning for 0: %v", err)
	}
	if _, err := c.client.WaitRunning(ctx, "no-such-service", 1); !errors.Is(err, gdpm.ErrNotFound) {
		t.Fatalf("WaitRunning of an unknown service: %v, want ErrNotFound", err)
	}
}
