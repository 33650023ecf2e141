package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// runMarkVar is set in this process's environment, so the browser, the
// slaves' instances and everything they start inherit it, and a leak check
// finds strays through /proc.
const runMarkVar = "GDPM_E2E_RUN"

func TestMain(m *testing.M) {
	mark := strconv.Itoa(os.Getpid())
	os.Setenv(runMarkVar, mark)
	code := m.Run()
	if strays := waitNoStrays(mark, 5*time.Second); len(strays) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left behind by the tests: %v\n", strays)
		for _, pid := range strays {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	if code == 0 {
		err := goleak.Find(
			// etcd's logger starts this once per process and never stops it.
			goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/logutil.(*MergeLogger).outputLoop"),
		)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines left behind by the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitNoStrays waits up to d for every live process but this one that
// carries the mark to exit, and returns those still alive.
func waitNoStrays(mark string, d time.Duration) []int {
	want := []byte(runMarkVar + "=" + mark + "\x00")
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() || !alive(pid) {
				continue
			}
			if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && bytes.Contains(env, want) {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
	}
}

// alive reports whether process pid exists. A zombie counts until it is
// reaped, which its parent (a slave, the browser, chromedp) does at once.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
