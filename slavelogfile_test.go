package gdpm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A writer far over the cap keeps every file within it, keeps LogMaxFiles
// files, keeps lines whole, and loses nothing of the newest data.
func TestRotatingFileNeverExceedsCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc", "inst.stdout")
	w := newRotatingFile(path, 1000, 3)
	defer w.Close()
	for i := range 2000 {
		if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
		checkLogFiles(t, path, 1000, 3)
	}
	// One write far larger than a file is cut, never stored whole.
	big := strings.Repeat("x", 2500) + "\n"
	w.Write([]byte(big))
	checkLogFiles(t, path, 1000, 3)

	w.Close()
	var all string
	for i := 2; i >= 0; i-- {
		b, _ := os.ReadFile(rotatedName(path, i))
		all += string(b)
	}
	if !strings.HasSuffix(all, big) {
		t.Errorf("the newest data is not at the end of the files")
	}
	// Lines before the big write stayed whole and in order.
	lines := strings.Split(strings.TrimSuffix(strings.TrimSuffix(all, big), "\n"), "\n")
	for i, l := range lines[1:] {
		var a, b int
		fmt.Sscanf(lines[i], "line %d", &a)
		if _, err := fmt.Sscanf(l, "line %d", &b); err != nil || b != a+1 {
			t.Fatalf("line %q after %q", l, lines[i])
		}
	}
}

func checkLogFiles(t *testing.T, path string, maxSize int64, maxFiles int) {
	t.Helper()
	for i := 0; i < maxFiles+2; i++ {
		fi, err := os.Stat(rotatedName(path, i))
		if err != nil {
			continue
		}
		if i >= maxFiles {
			t.Fatalf("%s exists: more than %d files", rotatedName(path, i), maxFiles)
		}
		if fi.Size() > maxSize {
			t.Fatalf("%s is %d bytes, over the cap %d", rotatedName(path, i), fi.Size(), maxSize)
		}
	}
}

// tail reads across rotated files; a cursor follows across rotations
// without a gap or a repeat, and finishes a partial line once it ends.
func TestLogCursorTailAndFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s", "i.stdout")
	w := newRotatingFile(path, 200, 3)
	defer w.Close()
	for i := range 60 { // "n NN\n": 5 bytes a line, 40 lines to a file
		fmt.Fprintf(w, "n %02d\n", i)
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	var got []string
	emit := func(it logItem) { got = append(got, string(it.line)) }
	fmt.Fprint(w, "partial")
	c, err := openLogCursor(path, 30, emit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(got) != 30 || got[0] != "n 30" || got[29] != "n 59" {
		t.Fatalf("tail 30 = %d lines %q, want n 30...n 59", len(got), got)
	}
	got = nil
	fmt.Fprint(w, " line\n")
	for round := range 30 {
		for j := range 7 {
			fmt.Fprintf(w, "m %02d-%d\n", round, j)
		}
		if err := c.poll(emit); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"partial line"}
	for round := range 30 {
		for j := range 7 {
			want = append(want, fmt.Sprintf("m %02d-%d", round, j))
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("followed lines:\n%q\nwant\n%q", got, want)
	}
}

// A huge tail from a missing log is empty, not an error.
func TestLogCursorMissingFile(t *testing.T) {
	c, err := openLogCursor(filepath.Join(t.TempDir(), "nothing"), 100, func(logItem) { t.Error("emitted a line") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.poll(func(logItem) { t.Error("emitted a line") }); err != nil {
		t.Fatal(err)
	}
}

// The sweep removes the old logs of instances that no longer run here, and
// nothing else.
func TestSweepLogDirRemovesOnlyOldLogsOfGoneInstances(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := now.Add(-48 * time.Hour)
	files := map[string]time.Time{
		"gone/a.stdout":   old, // gone service, old: removed
		"gone/a.stderr.1": old,
		"live/b.stdout":   old, // runs here: kept however old
		"live/b.stderr.2": old,
		"live/c.stdout":   now, // gone but written recently: kept
		"live/notes.txt":  old, // not a log file: kept
	}
	for name, mt := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mt, mt)
	}
	active := func(svc, inst string) bool { return svc == "live" && inst == "b" }
	if n := sweepLogDir(dir, 24*time.Hour, now, active); n != 2 {
		t.Errorf("removed %d files, want 2", n)
	}
	for name := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := strings.HasPrefix(name, "gone/"); gone != os.IsNotExist(err) {
			t.Errorf("%s: stat err %v (should be removed: %v)", name, err, gone)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Errorf("the emptied service dir is still there: %v", err)
	}
}
