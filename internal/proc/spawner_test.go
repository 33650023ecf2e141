//go:build linux

package proc

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capy-pl/gdpm/internal/testkit"
)

// A child starts with its three files and nothing else, even when the
// process holds descriptors that are not close-on-exec (the embedding
// program's, opened after the poller): it is forked from the spawning
// thread, whose table holds only what the child gets. Before, the fork
// copied the whole table, at a cost in proportion to its size, and such
// descriptors leaked into every instance.
func TestSpawnedChildGetsOnlyItsFiles(t *testing.T) {
	defer func(v int) { spawnThreadAbove = v }(spawnThreadAbove)
	spawnThreadAbove = 0 // through the thread whatever the table holds
	testPoller(t)
	var leak [2]int
	if err := syscall.Pipe(leak[:]); err != nil { // not close-on-exec
		t.Fatal(err)
	}
	defer syscall.Close(leak[0])
	defer syscall.Close(leak[1])
	files := nullFiles(t)
	pid, pidfd, err := Spawn("/bin/sleep", []string{"sleep", "100"}, nil, "", files)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(pid, syscall.SIGKILL)
		Reap(pid)
		if pidfd >= 0 {
			syscall.Close(pidfd)
		}
	}()
	leaked, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", leak[0]))
	if err != nil {
		t.Fatal(err)
	}
	// Once sleep sleeps (its loader's files closed again), what it holds
	// beyond 0, 1 and 2 came from its parent.
	var fds []string
	testkit.Poll(t, 5*time.Second, func() bool {
		st, ok := readProcStat(pid)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if !ok || st[0] != "S" || strings.TrimSpace(string(comm)) != "sleep" {
			return false
		}
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return false
		}
		fds = fds[:0]
		for _, e := range ents {
			target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
			fds = append(fds, e.Name()+"="+target)
		}
		sort.Strings(fds)
		return true
	}, "the child to sleep")
	for _, fd := range fds {
		if strings.HasSuffix(fd, "="+leaked) {
			t.Errorf("the child holds the parent's pipe %s: %v", leaked, fds)
		}
	}
	if len(fds) != 3 {
		t.Logf("the child's descriptors: %v", fds)
	}
}

// Starts from many goroutines at once each get their own child and pidfd.
func TestSpawnConcurrently(t *testing.T) {
	defer func(v int) { spawnThreadAbove = v }(spawnThreadAbove)
	spawnThreadAbove = 0
	p := testPoller(t)
	files := nullFiles(t)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			pid, pidfd, err := Spawn("/bin/sh", []string{"sh", "-c", fmt.Sprintf("exit %d", i%7)}, nil, "", files)
			if err != nil {
				t.Error(err)
				return
			}
			exited := make(chan struct{})
			WatchExit(p, pid, pidfd, func() { close(exited) })
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				t.Errorf("exit of %d not seen", pid)
				return
			}
			if code, err := Reap(pid); err != nil || code != i%7 {
				t.Errorf("child %d: code %d (%v), want %d", i, code, err, i%7)
			}
		})
	}
	wg.Wait()
}

// BenchmarkSpawnHolding starts /bin/true while the process holds many
// descriptors, forking directly and through the spawning thread: a direct
// start costs more with every descriptor held, one through the thread
// does not.
func BenchmarkSpawnHolding(b *testing.B) {
	for _, tc := range []struct {
		held   int
		thread bool
	}{{0, false}, {0, true}, {18000, false}, {18000, true}} {
		held := tc.held
		b.Run(fmt.Sprintf("fds=%d/thread=%v", held, tc.thread), func(b *testing.B) {
			defer func(v int) { spawnThreadAbove = v }(spawnThreadAbove)
			spawnThreadAbove = 0
			if !tc.thread {
				spawnThreadAbove = 1 << 30
			}
			testPoller(b)
			for i := 0; i < held; i += 2 {
				var p [2]int
				if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
					b.Fatal(err)
				}
				defer syscall.Close(p[0])
				defer syscall.Close(p[1])
			}
			files := nullFiles(b)
			b.ResetTimer()
			// As the supervisor does: several starts under way at once.
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					pid, pidfd, err := Spawn("/bin/true", []string{"true"}, nil, "", files)
					if err != nil {
						b.Error(err)
						return
					}
					Reap(pid)
					if pidfd >= 0 {
						syscall.Close(pidfd)
					}
				}
			})
		})
	}
}
