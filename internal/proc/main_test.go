//go:build linux

package proc

import (
	"log/slog"
	"os"
	"syscall"
	"testing"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// testProgram is the path of the module's testdata/gdpmtest, built once.
var testProgram string

func TestMain(m *testing.M) {
	os.Exit(testkit.MainWithProgram(m, func(path string) { testProgram = path }))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// procAlive reports whether pid is a live process, zombies counting as dead.
func procAlive(pid int) bool { return Alive(pid) }

// testPoller acquires the shared poller for the test, released after it.
func testPoller(t testing.TB) *Poller {
	t.Helper()
	p, err := AcquirePoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ReleasePoller)
	return p
}

// nullFiles is /dev/null as a child's descriptors 0, 1 and 2, closed
// after the test.
func nullFiles(t testing.TB) [3]uintptr {
	t.Helper()
	null, err := syscall.Open(os.DevNull, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(null) })
	return [3]uintptr{uintptr(null), uintptr(null), uintptr(null)}
}
