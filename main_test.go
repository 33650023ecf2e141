package gdpm_test

import (
	"os"
	"testing"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/testkit"
)

// TestMain builds testdata/gdpmtest, the program the tests run as
// instances, and checks that no process or goroutine outlives the tests
// (testkit.Main).
func TestMain(m *testing.M) {
	os.Exit(testkit.MainWithProgram(m, gdpm.SetProgramForTests))
}
