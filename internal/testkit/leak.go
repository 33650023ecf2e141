package testkit

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

// MarkVar is set in the test process's environment by Main, so that every
// process a test starts (instances, watchdogs, a browser) inherits it and
// the leak check finds strays through /proc.
const MarkVar = "GDPM_TEST_RUN"

// LeakOptions ignores the goroutines that libraries start once per process
// and never stop.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/logutil.(*MergeLogger).outputLoop"),
	}
}

// Main runs m, then fails the run if a process the tests started is still
// alive 5 s later (and kills it), or if a goroutine is left. before, if
// set, runs first and may fail the run with an error (building a helper
// program, say). Use it as os.Exit(testkit.Main(m, nil)).
func Main(m *testing.M, before func() error) int {
	mark := strconv.Itoa(os.Getpid())
	os.Setenv(MarkVar, mark)
	if before != nil {
		if err := before(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	code := m.Run()
	if strays := waitNoStrays(mark, 5*time.Second); len(strays) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left behind by the tests: %v\n", strays)
		for _, pid := range strays {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines left behind by the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

// strays lists the live processes (other than this one) whose environment
// carries the mark.
func strays(mark string) []int {
	want := []byte(MarkVar + "=" + mark + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !Alive(pid) {
			continue
		}
		if env, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil && bytes.Contains(env, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitNoStrays(mark string, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		s := strays(mark)
		if len(s) == 0 || time.Now().After(deadline) {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}
