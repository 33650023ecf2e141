//go:build linux

package proc

import (
	"os"
	"testing"
)

// OpenFiles counts this process's descriptors: 100 more after 50 pipes.
func TestOpenFilesCounts(t *testing.T) {
	before, limit, err := OpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	if before < 3 || limit < before {
		t.Fatalf("open %d, limit %d", before, limit)
	}
	for range 50 {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
	}
	after, _, err := OpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	// Other goroutines (the runtime, the test framework) may open or close
	// a descriptor meanwhile; the pipes dominate.
	if d := after - before; d < 95 || d > 105 {
		t.Errorf("open went from %d to %d after 50 pipes, want about 100 more", before, after)
	}
}
