//go:build linux

package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// healthChecker runs one process's health check beside it: every Interval
// it runs the check with Timeout and tells the runner when its verdict
// changes. Failures within Grace of the start do not count; a pass makes
// the process healthy at once. Failures in a row make it unhealthy. One
// goroutine per checked process (and only while it runs); stop waits for
// it.
type healthChecker struct {
	check   Check
	target  string   // Exec, HTTP or TCP with the process's variables expanded
	env     []string // the process's environment, for an Exec check
	dir     string
	started time.Time

	report func(healthVerdict) // to the runner: changes only; must not block
	done   chan struct{}
	wg     sync.WaitGroup
	http   *http.Client
}

// healthVerdict is a change of a process's health.
type healthVerdict struct {
	health Health
	reason string // why the last check failed
}

// startHealth starts checking a process started at started with env,
// telling report every change of its health.
func startHealth(c *Check, env []string, dir string, started time.Time, report func(healthVerdict)) *healthChecker {
	h := &healthChecker{check: *c, dir: dir, started: started, report: report, done: make(chan struct{})}
	expand := func(s string) string { return os.Expand(s, envLookup(env)) }
	switch {
	case c.Exec != "":
		h.target = expand(c.Exec)
		h.env = env
	case c.HTTP != "":
		h.target = expand(c.HTTP)
		// No keep-alive: a check is one request every few seconds, and
		// an idle connection would outlive the checker.
		h.http = &http.Client{
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	default:
		h.target = expand(c.TCP)
	}
	h.wg.Add(1)
	go h.loop()
	return h
}

// stop ends the checks (a running one is cancelled) and waits; nothing is
// reported after it returns. A nil checker is stopped.
func (h *healthChecker) stop() {
	if h == nil {
		return
	}
	close(h.done)
	h.wg.Wait()
}

func (h *healthChecker) loop() {
	defer h.wg.Done()
	t := time.NewTicker(h.check.Interval)
	defer t.Stop()
	health, fails := HealthStarting, 0
	for {
		err := h.run()
		select {
		case <-h.done:
			return // a check cut short says nothing
		default:
		}
		next := health
		switch {
		case err == nil:
			fails, next = 0, HealthHealthy
		case time.Since(h.started) < h.check.Grace:
			// Still starting: a failure does not count yet.
		default:
			fails++
			if fails >= max(h.check.Failures, 1) {
				next = HealthUnhealthy
			}
		}
		if next != health {
			v := healthVerdict{health: next}
			if err != nil {
				v.reason = err.Error()
			}
			h.report(v)
			health = next
		}
		select {
		case <-t.C:
		case <-h.done:
			return
		}
	}
}

// run performs one check: nil when healthy.
func (h *healthChecker) run() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.check.Timeout)
	defer cancel()
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	switch {
	case h.check.Exec != "":
		return h.runExec(ctx)
	case h.check.HTTP != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.target, nil)
		if err != nil {
			return err
		}
		resp, err := h.http.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", h.target, resp.Status)
		}
		return nil
	default:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", h.target)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// runExec runs the Exec command in the process's environment, in a
// process group of its own that a timeout kills whole.
func (h *healthChecker) runExec(ctx context.Context) error {
	argv := CommandArgv(h.target)
	if len(argv) == 0 {
		return errors.New("empty check command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = h.env, h.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("check %q timed out after %s", h.target, h.check.Timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			return fmt.Errorf("check %q: %v: %s", h.target, err, msg)
		}
		return fmt.Errorf("check %q: %v", h.target, err)
	}
	return nil
}
