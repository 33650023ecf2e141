package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// waitOutput polls out until cond holds, failing after 20 s.
func waitOutput(t *testing.T, what string, out *testkit.SyncBuffer, cond func(string) bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(out.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; output:\n%s", what, out.String())
		}
	}
}

// TestWatchRedrawsOnScale runs "get service ID -w" against a real cluster,
// scales the service and sees a frame with the new count; an interrupt
// ends the watch with exit 0.
func TestWatchRedrawsOnScale(t *testing.T) {
	addr := startCluster(t, "tok")
	env := func(k string) string {
		return map[string]string{"GDPM_ADDR": addr, "GDPM_TOKEN": "tok"}[k]
	}
	c, err := gdpm.NewClient(gdpm.ClientConfig{Addr: addr, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	one := 1
	id, err := c.CreateService(context.Background(), gdpm.CreateRequest{Command: "sleep 1000", InstanceNum: &one})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testkit.SyncBuffer
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"get", "service", id, "-w"}, &out, &errb, env) }()

	running := func(n int) *regexp.Regexp {
		return regexp.MustCompile(fmt.Sprintf(`Instances:\s+%d desired, %d running`, n, n))
	}
	waitOutput(t, "a frame with 1 instance running", &out, func(s string) bool { return running(1).MatchString(s) })
	frames := strings.Count(out.String(), "Every event: gdpm-client get service "+id)
	if err := c.ScaleService(context.Background(), id, 2); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, "a later frame with 2 instances running", &out, func(s string) bool {
		return strings.Count(s, "Every event: ") > frames && running(2).MatchString(s)
	})
	cancel()
	select {
	case code := <-done:
		if code != exitOK || errb.Len() > 0 {
			t.Errorf("interrupted watch: exit %d, stderr %q; want 0 and nothing", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end after the interrupt")
	}
	// Only a terminal has its screen cleared between frames.
	if s := out.String(); strings.Contains(s, clearScreen) {
		t.Errorf("frames written to a buffer clear the screen:\n%q", s)
	}
}

// TestWatchResumesTheStream: when the master ends the event stream, the
// watch opens it again after the last revision it read, redraws, and goes
// on until interrupted; no event, no redraw.
func TestWatchResumesTheStream(t *testing.T) {
	var mu sync.Mutex
	var sinces []string
	lists := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/service/":
			mu.Lock()
			lists++
			mu.Unlock()
			writeJSON(w, gdpm.ServiceList{Services: fixServices})
		case "/events/":
			mu.Lock()
			sinces = append(sinces, r.URL.Query().Get("since"))
			n := len(sinces)
			mu.Unlock()
			w.Header().Set(gdpm.RevisionHeader, "2")
			if n == 1 {
				serveNDJSON(w, fixEvents[:2], -1) // then the master ends the stream
				return
			}
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			http.Error(w, "unexpected request "+r.URL.Path, http.StatusBadRequest)
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testkit.SyncBuffer
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runWith(ctx, []string{"get", "services", "-w"}, &out, &errb, env("GDPM_ADDR", srv.URL), realAPI)
	}()
	resumed := fmt.Sprintf("(revision %d,", fixEvents[1].Revision)
	waitOutput(t, "a frame after the stream was resumed", &out, func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sinces) == 2 && strings.Count(s, resumed) > 0 && strings.Count(s, "Every event:") == lists
	})
	mu.Lock()
	if want := strconv.FormatInt(fixEvents[1].Revision, 10); sinces[1] != want {
		t.Errorf("resumed with since=%q, want %s (the last revision read)", sinces[1], want)
	}
	mu.Unlock()
	cancel()
	if code := <-done; code != exitOK || errb.Len() > 0 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), fixServices[0].ID) {
		t.Errorf("the frames do not list the services:\n%s", out.String())
	}
}
