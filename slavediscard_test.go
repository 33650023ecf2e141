package gdpm_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/capy-pl/gdpm"
)

// TestSlaveDiscardOutput: a slave with DiscardOutput gives its instances
// /dev/null for stdout and stderr, holds no pipe of theirs and writes no
// log file; the logs API answers with no lines, not an error.
func TestSlaveDiscardOutput(t *testing.T) {
	var data string
	c := newCluster(t, clusterOpts{slaves: 1, slave: func(cfg *gdpm.SlaveConfig) {
		cfg.DiscardOutput = true
		data = cfg.DataDir
	}})
	id := c.create("sh -c 'echo to stdout; echo to stderr >&2; exec sleep 1000'", 2)
	for _, pid := range c.waitRunning(id, 2) {
		for _, fd := range []string{"1", "2"} {
			target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd))
			if err != nil || target != os.DevNull {
				t.Errorf("instance %d: fd %s is %q (%v), want %s", pid, fd, target, err, os.DevNull)
			}
		}
	}
	if ents, err := os.ReadDir(filepath.Join(data, "logs", id)); err == nil && len(ents) > 0 {
		t.Errorf("log files written for a slave that discards output: %v", ents)
	}
	for _, l := range readLogs(t, c.client, id, gdpm.LogsOptions{}) {
		if l.Stream != "" {
			t.Errorf("a captured line from a slave that discards output: %+v", l)
		}
	}
}
