package e2e

import (
	"os"
	"testing"

	"github.com/capy-pl/gdpm/internal/gdpmtest"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// TestMain checks that no process (the browser, the slaves' instances and
// everything they start inherit the kit's mark) and no goroutine outlives
// the tests.
func TestMain(m *testing.M) {
	os.Exit(testkit.Main(m, nil))
}

// alive reports whether process pid is live; a zombie counts as dead.
func alive(pid int) bool { return gdpmtest.Alive(pid) }
