package gdpmtest

import (
	"os"
	"testing"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// The kit checks itself with the leak check it builds on.
func TestMain(m *testing.M) { os.Exit(testkit.Main(m, nil)) }
