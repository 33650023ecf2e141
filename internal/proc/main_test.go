//go:build linux

package proc

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testProgram is the path of the module's testdata/gdpmtest, built once.
var testProgram string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gdpm-proc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testProgram = filepath.Join(dir, "gdpmtest")
	build := exec.Command("go", "build", "-o", testProgram, "../../testdata/gdpmtest")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building test program: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines left behind by the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// procAlive reports whether pid is a live process, zombies counting as dead.
func procAlive(pid int) bool { return Alive(pid) }

// waitFor polls cond until it holds, failing the test after timeout with
// what, and the last state if what is a func() string.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, what ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			var msg strings.Builder
			for _, w := range what {
				if f, ok := w.(func() string); ok {
					msg.WriteString(f())
				} else {
					fmt.Fprint(&msg, w)
				}
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, msg.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
