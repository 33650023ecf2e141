//go:build linux

package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/proc"
	"go.uber.org/goleak"
)

// testProgram is the path of the module's testdata/gdpmtest, built once.
var testProgram string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gdpm-runner-test-")
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

// procAlive reports whether pid is a live process, zombies counting as dead.
func procAlive(pid int) bool { return proc.Alive(pid) }

// waitFor polls cond until it holds, failing the test after timeout. The
// parts of what, concatenated, say what was awaited; a func() string part is
// called at failure time, to show the last state seen.
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
			if msg.Len() == 0 {
				msg.WriteString("condition")
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, msg.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fileOutput is an Output into two files, out.stdout and out.stderr, in
// a test's temp dir; it records the markers.
type fileOutput struct {
	dir      string
	out, err *os.File

	mu     sync.Mutex
	marks  []string // "start PID", "exit CODE"
	closed bool
}

func newFileOutput(t testing.TB) *fileOutput {
	t.Helper()
	o := &fileOutput{dir: t.TempDir()}
	var err error
	if o.out, err = os.Create(filepath.Join(o.dir, "out.stdout")); err != nil {
		t.Fatal(err)
	}
	if o.err, err = os.Create(filepath.Join(o.dir, "out.stderr")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.out.Close(); o.err.Close() })
	return o
}

func (o *fileOutput) Stdout() io.Writer { return o.out }
func (o *fileOutput) Stderr() io.Writer { return o.err }

func (o *fileOutput) mark(s string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("marker after Close")
	}
	o.marks = append(o.marks, s)
	return nil
}

func (o *fileOutput) MarkStart(pid int) error { return o.mark(fmt.Sprint("start ", pid)) }
func (o *fileOutput) MarkExit(code int) error { return o.mark(fmt.Sprint("exit ", code)) }

func (o *fileOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return nil
}

func (o *fileOutput) markers() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.marks...)
}
