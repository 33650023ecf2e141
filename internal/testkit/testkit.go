// Package testkit is the bottom of gdpm's one test kit: what every test
// package shares without importing package gdpm, so that the tests of
// internal/proc and internal/runner, and the root's white-box tests, can
// use it (internal/gdpmtest, which starts whole clusters, imports gdpm and
// builds on this):
//
//   - Main wraps a TestMain with the leak check: no process started by the
//     tests, and no goroutine, may outlive them;
//   - BuildTestProgram builds testdata/gdpmtest, the program tests run as
//     instances;
//   - Poll waits for a condition with a deadline, saying what it waited
//     for and the last state seen.
//
// It is internal: nothing outside gdpm's own tests should depend on it.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildTestProgram builds testdata/gdpmtest into a new temporary dir and
// returns its path and the dir, which the caller removes when the tests
// are done.
func BuildTestProgram() (path, dir string, err error) {
	dir, err = os.MkdirTemp("", "gdpm-test-bin-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "gdpmtest")
	build := exec.Command("go", "build", "-o", path, "github.com/capy-pl/gdpm/testdata/gdpmtest")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("building test program: %v\n%s", err, out)
	}
	return path, dir, nil
}

// MainWithProgram is Main for tests that run testdata/gdpmtest: it builds
// the program first and hands its path to use, and removes it after.
func MainWithProgram(m *testing.M, use func(path string)) int {
	var dir string
	code := Main(m, func() error {
		path, d, err := BuildTestProgram()
		if err != nil {
			return err
		}
		dir = d
		use(path)
		return nil
	})
	if dir != "" {
		os.RemoveAll(dir)
	}
	return code
}

// Fatal runs f with a testing.TB whose Fatalf, as testing.T's, ends f's
// goroutine, and returns the message of that Fatalf ("" if f returned):
// how a helper's own failure is tested.
func Fatal(t testing.TB, f func(testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msg
}

type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// Poll polls cond every 5 ms until it holds, failing t once timeout has
// passed. The parts of what, concatenated, say what was awaited; a part
// that is a func() string is called at failure time, to show the last
// state seen.
func Poll(t testing.TB, timeout time.Duration, cond func() bool, what ...any) {
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
			if msg.Len() == 0 {
				msg.WriteString("condition")
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, msg.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Alive reports whether pid is a live process; a zombie counts as dead,
// so a test that waits for a process to die need not wait for its reap.
// (internal/proc has the production check; this package cannot import it,
// since internal/proc's own tests use this one.)
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command's closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}
