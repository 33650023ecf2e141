package gdpm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testProgram is the path of testdata/gdpmtest, built once for the run.
var testProgram string

// testRunMark is set in the environment of this process, so every process a
// test starts inherits it and a leak check can find strays through /proc.
const testRunMarkVar = "GDPM_TEST_RUN"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gdpm-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testProgram = filepath.Join(dir, "gdpmtest")
	build := exec.Command("go", "build", "-o", testProgram, "./testdata/gdpmtest")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building test program: %v\n%s", err, out)
		return 1
	}
	mark := strconv.Itoa(os.Getpid())
	os.Setenv(testRunMarkVar, mark)

	code := m.Run()
	if strays := waitNoStrays(mark, 5*time.Second); len(strays) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left behind by the tests: %v\n", strays)
		for _, pid := range strays {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(leakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: goroutines left behind by the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

// leakOptions ignores the goroutines that libraries start once per process
// and never stop.
func leakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/logutil.(*MergeLogger).outputLoop"),
	}
}

// strays lists the pids of live processes (other than this one) whose
// environment carries the test run's mark.
func strays(mark string) []int {
	want := []byte(testRunMarkVar + "=" + mark + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if isZombie(pid) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z'
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
