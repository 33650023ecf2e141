//go:build linux

package proc

import (
	"log/slog"
	"os"
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
