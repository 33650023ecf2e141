package gdpm_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestAcceptSurvivesFDExhaustion: with every descriptor of the process
// taken, the registration port's accept fails with EMFILE; once they are
// free again, a new slave registers through the same port (issue 10, 1:
// the accept loop used to return on the first error, for good).
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	c := newCluster(t, clusterOpts{slaves: 0, master: func(c *gdpm.MasterConfig) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}})

	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	}
	t.Cleanup(restore)
	before := openFDs(t)
	low := saved
	low.Cur = uint64(before + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var hold []*os.File
	release := func() {
		for _, f := range hold {
			f.Close()
		}
		hold = nil
	}
	t.Cleanup(release)
	fill := func() {
		for {
			f, err := os.Open("/dev/null")
			if err != nil {
				if !errors.Is(err, syscall.EMFILE) {
					t.Fatalf("filling the descriptor table: %v", err)
				}
				return
			}
			hold = append(hold, f)
		}
	}
	fill()
	// Free one descriptor for our end of a connection; the master's end
	// then finds none, so its accept fails with EMFILE while the
	// connection waits in the backlog.
	var pending net.Conn
	waitFor(t, 10*time.Second, "a connection to the registration port with the table full", func() (bool, string) {
		if len(hold) == 0 {
			t.Fatal("no descriptor held")
		}
		hold[len(hold)-1].Close()
		hold = hold[:len(hold)-1]
		conn, err := net.Dial("tcp", c.master().TCPAddr())
		if err != nil {
			return false, err.Error()
		}
		pending = conn
		fill()
		return true, ""
	})
	waitFor(t, 10*time.Second, "the master to log an accept failure", func() (bool, string) {
		return strings.Contains(logs.String(), "too many open files"), logs.String()
	})
	held := len(hold)
	release()
	restore()
	pending.Close()
	t.Logf("descriptors: %d open before, limit lowered to %d, %d /dev/null held to fill the table, %d open after release", before, low.Cur, held, openFDs(t))

	s := c.addSlave() // registers through the same port, or fails the test
	if s.NodeID() == "" {
		t.Fatal("slave registered without a node id")
	}
	waitNodes(t, c, 1)
	if code, _, _ := c.do(http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("GET /healthz after the exhaustion: %d", code)
	}
}

// waitClosed waits until the peer closes conn, reading and discarding what
// it sends; it fails the test if conn is still open after d.
func waitClosed(t *testing.T, conn net.Conn, d time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open after %v", what, d)
	}
	return time.Since(start)
}

// stillOpen fails the test if the peer closes conn within d, reading what
// it sends meanwhile.
func stillOpen(t *testing.T, r *bufio.Reader, conn net.Conn, d time.Duration, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: connection closed within %v: %v", what, d, err)
	}
	conn.SetReadDeadline(time.Time{})
}

// TestServerTimeoutsAndCaps: the API and a slave's log server close a
// trickling request, a slow header and an idle kept-alive connection
// within their configured timeouts, keep streams open beyond them, and
// refuse connections beyond their cap with a 503 (issue 10, 2).
func TestServerTimeoutsAndCaps(t *testing.T) {
	limits := gdpm.ServerLimits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, IdleTimeout: time.Second, MaxConns: 16}
	const slack = 5 * time.Second
	c := newCluster(t, clusterOpts{slaves: 1,
		master: func(c *gdpm.MasterConfig) { c.Limits = limits; c.EventHeartbeat = 300 * time.Millisecond },
		slave:  func(c *gdpm.SlaveConfig) { c.LogLimits = limits },
	})
	servers := map[string]string{"api": c.master().HTTPAddr(), "logs": c.slaves[0].LogAddr()}
	dial := func(addr string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	for name, addr := range servers {
		t.Run(name+"/SlowHeader", func(t *testing.T) {
			conn := dial(addr)
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
			d := waitClosed(t, conn, limits.ReadHeaderTimeout+slack, "unfinished header")
			t.Logf("unfinished header closed after %v (ReadHeaderTimeout %v)", d.Round(time.Millisecond), limits.ReadHeaderTimeout)
		})
		t.Run(name+"/NothingSent", func(t *testing.T) {
			d := waitClosed(t, dial(addr), limits.ReadHeaderTimeout+slack, "silent connection")
			t.Logf("silent connection closed after %v", d.Round(time.Millisecond))
		})
		t.Run(name+"/IdleKeepAlive", func(t *testing.T) {
			conn := dial(addr)
			// A 401 (logs, no token... the cluster has none: 404) or 200
			// (api): either way a complete exchange, then silence.
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			d := waitClosed(t, conn, limits.IdleTimeout+slack, "idle kept-alive connection")
			t.Logf("idle kept-alive connection (after a %d) closed after %v (IdleTimeout %v)", resp.StatusCode, d.Round(time.Millisecond), limits.IdleTimeout)
		})
		t.Run(name+"/Cap", func(t *testing.T) {
			var conns []net.Conn
			for i := 0; i < limits.MaxConns+1; i++ {
				conns = append(conns, dial(addr))
			}
			// The accepted ones say nothing and are closed after
			// ReadHeaderTimeout; the refused ones get a 503 at once.
			refused := 0
			for _, conn := range conns {
				conn.SetReadDeadline(time.Now().Add(limits.ReadHeaderTimeout + slack))
				b, _ := io.ReadAll(conn)
				if len(b) == 0 {
					continue
				}
				if !strings.Contains(string(b), "503 Service Unavailable") || !strings.Contains(string(b), "too many connections") {
					t.Fatalf("refusal: %q", b)
				}
				refused++
			}
			if refused == 0 {
				t.Fatalf("%d connections open, none refused", len(conns))
			}
			t.Logf("%d connections with a cap of %d: %d refused with a 503", len(conns), limits.MaxConns, refused)
			for _, conn := range conns {
				conn.Close()
			}
			// The slots come back.
			waitFor(t, 10*time.Second, "a request to pass again", func() (bool, string) {
				resp, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					return false, err.Error()
				}
				resp.Body.Close()
				return resp.StatusCode != http.StatusServiceUnavailable, resp.Status
			})
		})
	}

	t.Run("api/TricklingBody", func(t *testing.T) {
		conn := dial(servers["api"])
		fmt.Fprintf(conn, "POST /service/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Second / 4)
			defer tick.Stop()
			for range tick.C {
				if _, err := conn.Write([]byte(" ")); err != nil || time.Since(start) > limits.ReadTimeout+slack {
					return
				}
			}
		}()
		d := waitClosed(t, conn, limits.ReadTimeout+slack, "trickling body")
		conn.Close()
		<-done
		t.Logf("body trickling at 4 bytes/s closed after %v (ReadTimeout %v)", d.Round(time.Millisecond), limits.ReadTimeout)
	})
	t.Run("api/EventStreamOutlivesReadTimeout", func(t *testing.T) {
		conn := dial(servers["api"])
		fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /events: %v %v", resp, err)
		}
		// Heartbeats keep coming after ReadTimeout.
		deadline := time.Now().Add(2 * limits.ReadTimeout)
		lines := 0
		for time.Now().Before(deadline) {
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := resp.Body.Read(make([]byte, 64)); err != nil {
				t.Fatalf("event stream ended after %d reads: %v", lines, err)
			}
			lines++
		}
	})
	t.Run("logs/FollowOutlivesReadTimeout", func(t *testing.T) {
		conn := dial(servers["logs"])
		fmt.Fprintf(conn, "GET /logs/svc?follow=1 HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /logs follow: %v %v", resp, err)
		}
		stillOpen(t, r, conn, 2*limits.ReadTimeout, "log follow")
	})
}

// TestRegistrationDeadline: a connection to the registration port that
// says nothing is closed after the registration timeout (5 s).
func TestRegistrationDeadline(t *testing.T) {
	c := newCluster(t, clusterOpts{slaves: 0})
	conn, err := net.Dial("tcp", c.master().TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := waitClosed(t, conn, 15*time.Second, "silent registration connection")
	t.Logf("silent registration connection closed after %v", d.Round(time.Millisecond))
}
