//go:build linux

package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/capy-pl/gdpm/internal/proc"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// testProgram is the path of the module's testdata/gdpmtest, built once.
var testProgram string

func TestMain(m *testing.M) {
	proc.SpawnThreadForTests()
	os.Exit(testkit.MainWithProgram(m, func(path string) { testProgram = path }))
}

// procAlive reports whether pid is a live process, zombies counting as dead.
func procAlive(pid int) bool { return proc.Alive(pid) }

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
