package gdpm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each line carries the time of the write it started in, markers come
// where they were recorded, the tail and a follow agree, across rotations
// (the index rotates with its file) and a clock that goes back.
func TestLogIndexTimesAndMarkersAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s", "i.stdout")
	w := newRotatingFile(path, 100, 3)
	defer w.Close()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var want []string // "TIME-OFFSET-MS line"
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	item := func(it logItem) string {
		return fmt.Sprintf("%d %s%s", (it.t-t0.UnixNano())/1e6, it.mark, it.line)
	}
	w.mark(logRecStarted, 42, at(0))
	want = append(want, "0 startedstarted (pid 42)")
	ms := 0
	write := func(lines ...string) {
		ms++
		w.writeAt([]byte(strings.Join(lines, "\n")+"\n"), at(ms))
		for _, l := range lines {
			want = append(want, fmt.Sprintf("%d %s", ms, l))
		}
	}
	for i := range 30 { // two lines a write, 10 bytes: a file holds 10 writes
		write(fmt.Sprintf("a %02d", i), fmt.Sprintf("b %02d", i))
	}
	// The wall clock goes back: times stay where they were.
	w.writeAt([]byte("late\n"), at(-5))
	want = append(want, fmt.Sprintf("%d late", ms))
	w.mark(logRecExited, 137, at(ms+1))
	want = append(want, fmt.Sprintf("%d exitedexited (code 137)", ms+1))
	if _, err := os.Stat(indexPath(path + ".2")); err != nil {
		t.Fatalf("the index did not rotate with its file: %v", err)
	}

	var got []string
	c, err := openLogCursor(path, 20, func(it logItem) { got = append(got, item(it)) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tail := want[len(want)-20:]; strings.Join(got, "|") != strings.Join(tail, "|") {
		t.Fatalf("tail 20:\n%q\nwant\n%q", got, tail)
	}

	// Follow: a restart and more lines, across two more rotations.
	got = nil
	from := len(want)
	ms += 2
	w.mark(logRecStarted, 43, at(ms))
	want = append(want, fmt.Sprintf("%d startedstarted (pid 43)", ms))
	for i := range 20 {
		write(fmt.Sprintf("c %02d", i), fmt.Sprintf("d %02d", i))
		if i%3 == 0 {
			if err := c.poll(func(it logItem) { got = append(got, item(it)) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.poll(func(it logItem) { got = append(got, item(it)) }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != strings.Join(want[from:], "|") {
		t.Fatalf("followed:\n%q\nwant\n%q", got, want[from:])
	}
}

// A log without an index (written before times were kept) still reads,
// with unknown times.
func TestLogCursorWithoutIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "i.stderr")
	os.WriteFile(path, []byte("one\ntwo\n"), 0o644)
	var got []string
	c, err := openLogCursor(path, 5, func(it logItem) { got = append(got, fmt.Sprintf("%d %s", it.t, it.line)) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if strings.Join(got, "|") != "0 one|0 two" {
		t.Fatalf("got %q", got)
	}
}
