package gdpmtest

import (
	"os"
	"testing"
)

// The kit checks itself with its own leak check.
func TestMain(m *testing.M) { os.Exit(Main(m, nil)) }
