package gdpm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Resource limits (Supervision.MemoryLimit, CPULimit) are enforced with a
// cgroup per instance, written with plain file writes: cgroup v2 where the
// host has a unified hierarchy with the memory and cpu controllers, else
// the v1 memory and cpu controllers. A few files per instance do not
// justify a library: github.com/containerd/cgroups/v3 would add its
// systemd/dbus and protobuf-generated stats to every binary, for the two
// limits and one counter gdpm uses.
//
// Each instance's cgroup is made under the slave's own cgroup (so a slave
// that is itself confined stays confined), named gdpm/SERVICE-INSTANCE-NODE,
// and removed when the runner ends. The process joins it before it runs
// the command: the runner starts a tiny /bin/sh that writes its own pid
// into the cgroups and then execs the command (same pid), so no byte is
// ever allocated outside the limit. Without a writable cgroup, an instance
// with limits does not start (state failed, with the reason): it never
// runs unbounded.

// ErrNoCgroups is why an instance with MemoryLimit or CPULimit cannot
// start on a node without a writable cgroup hierarchy.
var ErrNoCgroups = errors.New("gdpm: no writable cgroup (v2 with memory and cpu controllers, or v1 memory and cpu) on this node to enforce MemoryLimit/CPULimit")

// cgroupHost is what the host offers, found once per process.
type cgroupHost struct {
	version string // "v2", "v1", ""
	v2      string // v2: the directory the instances' cgroups go in
	memory  string // v1: the memory controller's directory for them
	cpu     string // v1: the cpu controller's
	err     error  // why there is none
}

var (
	cgroupOnce sync.Once
	cgroupInfo cgroupHost
)

// cgroups returns the host's cgroup setup, probing it on first use.
func cgroups() cgroupHost {
	cgroupOnce.Do(func() { cgroupInfo = probeCgroups() })
	return cgroupInfo
}

// cgroupVersion says which cgroup version enforces limits on this host:
// "v2", "v1", or "" when none is writable.
func cgroupVersion() string { return cgroups().version }

func probeCgroups() cgroupHost {
	own := ownCgroups()
	mounts := cgroupMounts()
	// v2: a cgroup2 mount whose controllers include memory and cpu.
	if m, ok := mounts["cgroup2"]; ok {
		if b, err := os.ReadFile(filepath.Join(m, "cgroup.controllers")); err == nil &&
			hasWords(string(b), "memory", "cpu") {
			dir := filepath.Join(m, own[""], "gdpm")
			if err := os.MkdirAll(dir, 0o755); err == nil {
				// Controllers must be enabled in the parent and in
				// gdpm/; a parent with processes of its own refuses
				// (v2's no-internal-process rule), then v1 is tried.
				os.WriteFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"), []byte("+memory +cpu"), 0)
				if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +cpu"), 0); err == nil {
					return cgroupHost{version: "v2", v2: dir}
				}
			}
		}
	}
	mem, okm := mounts["memory"]
	cpu, okc := mounts["cpu"]
	if okm && okc {
		h := cgroupHost{version: "v1",
			memory: filepath.Join(mem, own["memory"], "gdpm"),
			cpu:    filepath.Join(cpu, own["cpu"], "gdpm")}
		errm := os.MkdirAll(h.memory, 0o755)
		errc := os.MkdirAll(h.cpu, 0o755)
		if errm == nil && errc == nil {
			return h
		}
		return cgroupHost{err: fmt.Errorf("%w: %v", ErrNoCgroups, errors.Join(errm, errc))}
	}
	return cgroupHost{err: ErrNoCgroups}
}

// ownCgroups reads /proc/self/cgroup: controller -> path ("" for v2).
func ownCgroups() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return out
	}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// cgroupMounts finds the mount points: "cgroup2" for the unified
// hierarchy, and each v1 controller by name.
func cgroupMounts() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint(5th) ... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		switch tail[0] {
		case "cgroup2":
			if _, seen := out["cgroup2"]; !seen {
				out["cgroup2"] = fields[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(tail[2], ",") {
				if opt == "memory" || opt == "cpu" {
					out[opt] = fields[4]
				}
			}
		}
	}
	return out
}

func hasWords(s string, words ...string) bool {
	have := map[string]bool{}
	for _, w := range strings.Fields(s) {
		have[w] = true
	}
	for _, w := range words {
		if !have[w] {
			return false
		}
	}
	return true
}

// instanceCgroup is one instance's cgroup (one directory per v1
// controller, one in v2).
type instanceCgroup struct {
	version string
	dirs    []string // every directory to join and to remove
	events  string   // the file that counts OOM kills
	ooms    int      // OOM kills counted so far
}

// cpuPeriod is the CFS period CPULimit is a quota of: 100 ms, the kernel's
// default.
const cpuPeriod = 100000

// newInstanceCgroup makes the cgroup of an instance and writes its limits;
// nil (and no error) when the spec has none.
func newInstanceCgroup(s Supervision, name string) (*instanceCgroup, error) {
	if !s.limited() {
		return nil, nil
	}
	h := cgroups()
	if h.version == "" {
		return nil, h.err
	}
	cg := &instanceCgroup{version: h.version}
	write := func(dir, file, val string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
			return fmt.Errorf("gdpm: cgroup %s: %w", file, err)
		}
		return nil
	}
	mk := func(parent string) (string, error) {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("gdpm: make cgroup: %w", err)
		}
		cg.dirs = append(cg.dirs, dir)
		return dir, nil
	}
	quota := int64(s.CPULimit * cpuPeriod)
	var err error
	switch h.version {
	case "v2":
		var dir string
		if dir, err = mk(h.v2); err != nil {
			break
		}
		cg.events = filepath.Join(dir, "memory.events")
		if s.MemoryLimit > 0 {
			if err = write(dir, "memory.max", strconv.FormatInt(int64(s.MemoryLimit), 10)); err != nil {
				break
			}
			write(dir, "memory.swap.max", "0") // no swap to hide in; absent without swap accounting
		}
		if s.CPULimit > 0 {
			err = write(dir, "cpu.max", fmt.Sprintf("%d %d", quota, cpuPeriod))
		}
	case "v1":
		var mem, cpu string
		if mem, err = mk(h.memory); err != nil {
			break
		}
		cg.events = filepath.Join(mem, "memory.oom_control")
		if cpu, err = mk(h.cpu); err != nil {
			break
		}
		if s.MemoryLimit > 0 {
			if err = write(mem, "memory.limit_in_bytes", strconv.FormatInt(int64(s.MemoryLimit), 10)); err != nil {
				break
			}
			// Memory plus swap at the same limit, where swap is accounted.
			write(mem, "memory.memsw.limit_in_bytes", strconv.FormatInt(int64(s.MemoryLimit), 10))
		}
		if s.CPULimit > 0 {
			if err = write(cpu, "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)); err == nil {
				err = write(cpu, "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
			}
		}
	}
	if err != nil {
		cg.remove()
		return nil, err
	}
	cg.ooms = cg.oomKills()
	return cg, nil
}

// procsFiles are the files a process writes its pid into to join.
func (cg *instanceCgroup) procsFiles() []string {
	var out []string
	for _, d := range cg.dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

// oomKills reads the cgroup's count of OOM kills (oom_kill in v1's
// memory.oom_control and v2's memory.events).
func (cg *instanceCgroup) oomKills() int {
	b, err := os.ReadFile(cg.events)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == "oom_kill" {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// newOOM reports whether the kernel OOM-killed a process of the cgroup
// since the last call.
func (cg *instanceCgroup) newOOM() bool {
	if cg == nil {
		return false
	}
	n := cg.oomKills()
	killed := n > cg.ooms
	cg.ooms = n
	return killed
}

// remove deletes the cgroup's directories; they are empty once the
// instance's processes are gone.
func (cg *instanceCgroup) remove() {
	if cg == nil {
		return
	}
	for _, d := range cg.dirs {
		os.Remove(d)
	}
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// wrapArgv returns the argv that joins the cgroup and sets the rlimits in
// the child itself and then execs argv (same pid, so the process group and
// the pid the slave watches stay the program's). Setting rlimits with
// prlimit(2) on the child's pid after it started would race with the
// program (it may have opened its files already), and setrlimit in the
// slave before the fork would reach every process the slave starts
// meanwhile; the shell's ulimit applies to this child alone, before the
// exec. ulimit -n sets the soft and the hard limit.
func wrapArgv(argv []string, cg *instanceCgroup, rlimits map[string]uint64) []string {
	if cg == nil && len(rlimits) == 0 {
		return argv
	}
	var script strings.Builder
	if cg != nil {
		for _, f := range cg.procsFiles() {
			fmt.Fprintf(&script, "echo $$ > %s || exit 126; ", shellQuote(f))
		}
	}
	if n, ok := rlimits["NOFILE"]; ok {
		fmt.Fprintf(&script, "ulimit -n %d || exit 126; ", n)
	}
	script.WriteString(`exec "$@"`)
	return append([]string{"/bin/sh", "-c", script.String(), "gdpm-limits"}, argv...)
}

// errOOM is the exit reason of an instance the kernel killed at its
// MemoryLimit.
var errOOM = errors.New("oom")

// shortNode is the first 8 characters of a node id, for cgroup names.
func shortNode(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
