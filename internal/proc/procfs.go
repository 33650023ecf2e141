//go:build linux

package proc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The one place that reads /proc, and the one loop that kills process
// groups until they are gone: the runner after each exit, and the group
// tracker for what a previous run left behind, use both.

// groupKillWait bounds how long the groups a previous run left are
// awaited after SIGKILL. Only a process stuck in uninterruptible sleep
// survives that long, and waiting for it forever would wedge a start.
const groupKillWait = 2 * time.Second

// procInfo is what /proc/PID/stat says about one process.
type procInfo struct {
	pid, ppid, pgrp int
	zombie          bool
	start           uint64 // clock ticks since boot
}

// readProcStat returns the fields of /proc/pid/stat after the command name,
// so that index 0 is field 3 (state).
func readProcStat(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name may hold spaces and parentheses; it ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(string(b[i+1:])), true
}

// StartTime returns field 22 of /proc/pid/stat (start time in clock ticks
// since boot), which tells a reused pid apart, or 0 if unreadable.
func StartTime(pid int) uint64 {
	st, ok := readProcStat(pid)
	if !ok || len(st) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(st[19], 10, 64)
	return v
}

// Alive reports whether pid is a live process; a zombie counts as dead.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	st, ok := readProcStat(pid)
	return ok && len(st) > 0 && st[0] != "Z" && st[0] != "X"
}

// procScans counts scanProcs calls, for the tests: a full scan costs in
// proportion to every process on the host.
var procScans atomic.Int64

// scanProcs lists every process.
func scanProcs() ([]procInfo, error) {
	procScans.Add(1)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make([]procInfo, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readProcStat(pid)
		if !ok || len(st) < 20 {
			continue // exited meanwhile
		}
		p := procInfo{pid: pid, zombie: st[0] == "Z" || st[0] == "X"}
		p.ppid, _ = strconv.Atoi(st[1])
		p.pgrp, _ = strconv.Atoi(st[2])
		p.start, _ = strconv.ParseUint(st[19], 10, 64)
		procs = append(procs, p)
	}
	return procs, nil
}

// liveGroupMembers lists the processes of the groups that are not zombies.
// kill(-pgid, 0) alone is not enough: orphaned zombies count as members,
// and an init that does not reap (common in containers) keeps them
// forever. But when it says no group has a member at all, the common case
// after an exit, /proc is not read.
func liveGroupMembers(groups ...int) []int {
	some := false
	for _, pg := range groups {
		if syscall.Kill(-pg, 0) != syscall.ESRCH {
			some = true
			break
		}
	}
	if !some {
		return nil
	}
	procs, err := scanProcs()
	if err != nil {
		return groups // cannot tell; assume the worst
	}
	in := make(map[int]bool, len(groups))
	for _, pg := range groups {
		in[pg] = true
	}
	var pids []int
	for _, p := range procs {
		if !p.zombie && in[p.pgrp] {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// killGroupsUntilGone SIGKILLs the groups until none has a live member,
// for at most d. Repeating the signal catches a member that was forking
// when the previous one was sent.
func killGroupsUntilGone(groups []int, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(liveGroupMembers(groups...)) > 0 {
		for _, pg := range groups {
			signalGroup(pg, syscall.SIGKILL)
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		}
	}
}

var (
	bootIDOnce sync.Once
	bootIDVal  string
)

// bootID identifies the current boot of the machine ("-" if unknown).
func bootID() string {
	bootIDOnce.Do(func() {
		bootIDVal = "-"
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" && !strings.ContainsAny(s, " \n") {
				bootIDVal = s
			}
		}
	})
	return bootIDVal
}

// GroupMembers lists the live (not zombie) processes of the groups.
func GroupMembers(groups ...int) []int { return liveGroupMembers(groups...) }
