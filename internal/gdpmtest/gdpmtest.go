// Package gdpmtest is the one test kit of gdpm's tests: the root
// package's, the CLI's (examples/gdpm-client) and the browser tests' (e2e,
// a module of its own whose import path is under this module's, so the
// internal rule lets it in):
//
//   - Start runs a whole cluster inside the test process (an embedded etcd,
//     a master, slaves; TLS everywhere on request), on loopback ports the
//     kernel picks, closed when the test ends;
//   - WaitFor polls with a deadline and reports the last state it saw;
//   - Alive tells a live process from a dead one or a zombie.
//
// It builds on internal/testkit (the leak-checking TestMain, the test
// program, Poll), which the packages below gdpm use too.
//
// It is internal: nothing outside gdpm's own tests should depend on it.
package gdpmtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// WaitFor polls cond every 20 ms until it returns true, failing t once
// timeout has passed; the failure names what was awaited and the last
// state cond reported.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Alive reports whether pid is a live process; a zombie counts as dead.
func Alive(pid int) bool { return testkit.Alive(pid) }

// WaitDead waits until none of pids is alive.
func WaitDead(t testing.TB, timeout time.Duration, pids []int) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("processes %v to exit", pids), func() (bool, string) {
		var live []int
		for _, p := range pids {
			if Alive(p) {
				live = append(live, p)
			}
		}
		return len(live) == 0, fmt.Sprintf("alive: %v", live)
	})
}
