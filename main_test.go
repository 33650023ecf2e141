package gdpm_test

import (
	"os"
	"testing"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/proc"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// TestMain builds testdata/gdpmtest, the program the tests run as
// instances, and checks that no process or goroutine outlives the tests
// (testkit.Main). With GDPM_TEST_SPAWN_THREAD set, every instance is forked
// from internal/proc's spawning thread (proc.SpawnThreadForTests).
func TestMain(m *testing.M) {
	proc.SpawnThreadForTests()
	os.Exit(testkit.MainWithProgram(m, gdpm.SetProgramForTests))
}
