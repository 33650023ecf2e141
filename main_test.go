package gdpm_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/capy-pl/gdpm"
	"github.com/capy-pl/gdpm/internal/gdpmtest"
)

// TestMain builds testdata/gdpmtest, the program the tests run as
// instances, and checks that no process or goroutine outlives the tests
// (gdpmtest.Main).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gdpm-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := gdpmtest.Main(m, func() error {
		prog := filepath.Join(dir, "gdpmtest")
		build := exec.Command("go", "build", "-o", prog, "./testdata/gdpmtest")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("building test program: %v\n%s", err, out)
		}
		gdpm.SetProgramForTests(prog)
		return nil
	})
	os.RemoveAll(dir)
	os.Exit(code)
}
