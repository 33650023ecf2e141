package testkit

import (
	"os"
	"strconv"
	"testing"
)

// FootprintInstances is how many instances a footprint benchmark runs:
// GDPM_FOOTPRINT_INSTANCES when set to a positive count, else def, or
// short in -short mode (CI runs every benchmark once that way).
func FootprintInstances(def, short int) int {
	if v, err := strconv.Atoi(os.Getenv("GDPM_FOOTPRINT_INSTANCES")); err == nil && v > 0 {
		return v
	}
	if testing.Short() {
		return short
	}
	return def
}
