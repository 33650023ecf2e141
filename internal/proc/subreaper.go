//go:build linux

package proc

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// With SlaveConfig.Subreaper the slave's process is a child subreaper
// (prctl PR_SET_CHILD_SUBREAPER): a process an instance forked whose parent
// exits is adopted by the slave rather than by init, so it stays in the
// slave's process tree where an operator looks for it, and it cannot end up
// a zombie forever under an init that does not reap (common in containers).
// It changes the whole embedding process, which is why it is off by
// default; gdpm-slave turns it on.
//
// Adopted children have to be reaped by someone, and that someone must not
// steal the exit status of a child that another part of the process waits
// for: the runners' instance leaders, the watchdog, or whatever the
// embedding program runs with os/exec. A wait for "any child" would do
// exactly that, so the reaper waits for specific pids only: zombies whose
// parent is this process, whose group is (or was, until it was killed) an
// instance group or the watchdog's, and which are not the group's leader.
// The leaders are the only direct children in those groups; everything
// else in them was adopted. Orphans that left their group (setsid) are not the slave's to
// reap and stay zombies until the slave exits (gdpm does not kill them
// either: they escaped the group on purpose).
//
// Instance groups stay killable without any of this: the runners, the
// watchdog and the record kill by group, wherever the members' parent is.

const (
	prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER
	prGetChildSubreaper = 37 // PR_GET_CHILD_SUBREAPER
)

// subreaper counts the slaves in this process that want the flag; the
// last one out clears it, unless it was set before the first came.
var subreaper struct {
	sync.Mutex
	refs    int
	setByUs bool // set by gdpm, so cleared by it
}

func acquireSubreaper() error {
	subreaper.Lock()
	defer subreaper.Unlock()
	if subreaper.refs == 0 {
		var cur int32
		if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prGetChildSubreaper, uintptr(unsafe.Pointer(&cur)), 0); e != 0 {
			return fmt.Errorf("gdpm: prctl(PR_GET_CHILD_SUBREAPER): %w", e)
		}
		if cur == 0 {
			if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
				return fmt.Errorf("gdpm: prctl(PR_SET_CHILD_SUBREAPER): %w", e)
			}
			subreaper.setByUs = true
		}
	}
	subreaper.refs++
	return nil
}

func releaseSubreaper() {
	subreaper.Lock()
	defer subreaper.Unlock()
	subreaper.refs--
	if subreaper.refs == 0 && subreaper.setByUs {
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 0, 0)
		subreaper.setByUs = false
	}
}

// reapInterval is how often the reaper looks even without a SIGCHLD, which
// the runtime may coalesce.
const reapInterval = 10 * time.Second

// runReaper reaps adopted zombies of the instance groups on every SIGCHLD,
// at most every 50 ms.
func (t *groupTracker) runReaper() {
	defer t.wg.Done()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(reapInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-sig:
		case <-tick.C:
		}
		t.reapOrphans()
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reapOrphans reaps the zombie children of this process that were adopted
// from an instance group, and forgets the killed groups that have no
// process left.
func (t *groupTracker) reapOrphans() {
	t.mu.Lock()
	ours := make(map[int]bool, len(t.live)+len(t.gone)+1)
	gone := make([]int, 0, len(t.gone))
	for pg := range t.live {
		ours[pg] = true
	}
	if t.wd != nil {
		// The watchdog's group is ours too: every renewal ends its
		// timer's subshell, whose sleep is then adopted here.
		ours[t.wd.cmd.Process.Pid] = true
	}
	for pg := range t.gone {
		ours[pg] = true
		gone = append(gone, pg)
	}
	t.mu.Unlock()
	if len(ours) == 0 {
		return
	}
	// Only this process's children can be its zombies: list them, which
	// costs little whatever else runs on the host, instead of reading
	// every process's stat (a slave with 3,000 instances spent two thirds
	// of its idle CPU on that, every 10 s). The instance leaders are
	// children too, and the runners reap those: skipped without a read.
	seen := map[int]bool{}
	kids, err := childPids()
	if err != nil {
		seen = t.reapScanning(ours)
	} else {
		for _, pid := range kids {
			if ours[pid] {
				continue // a leader: pid = pgid
			}
			st, ok := readProcStat(pid)
			if !ok || len(st) < 3 {
				continue
			}
			pgrp, _ := strconv.Atoi(st[2])
			if !ours[pgrp] {
				continue // the embedding program's own
			}
			if st[0] == "Z" || st[0] == "X" {
				var ws syscall.WaitStatus
				if got, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid {
					continue
				}
			}
			seen[pgrp] = true
		}
		// Members that are not this process's children (adopted by
		// another reaper, or grandchildren) keep a group too.
		for _, pg := range gone {
			if !seen[pg] && syscall.Kill(-pg, 0) != syscall.ESRCH {
				seen[pg] = true
			}
		}
	}
	// A killed group cannot gain members, so one with none seen is over.
	// Only groups already gone when the snapshot was taken are pruned.
	t.mu.Lock()
	for _, pg := range gone {
		if !seen[pg] {
			delete(t.gone, pg)
		}
	}
	t.mu.Unlock()
}

// reapScanning is reapOrphans's way without childPids: every process's
// stat is read. It returns the groups of ours that have a process left.
func (t *groupTracker) reapScanning(ours map[int]bool) map[int]bool {
	seen := map[int]bool{}
	procs, err := scanProcs()
	if err != nil {
		// Nothing known: keep every group.
		for pg := range ours {
			seen[pg] = true
		}
		return seen
	}
	self := os.Getpid()
	for _, p := range procs {
		if !ours[p.pgrp] {
			continue
		}
		if p.zombie && p.ppid == self && p.pid != p.pgrp {
			// A zombie stays until its parent waits for it, and only this
			// reaper waits for adopted pids, so the pid is still this one.
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil); pid == p.pid {
				continue
			}
		}
		seen[p.pgrp] = true
	}
	return seen
}

// childPids lists this process's children: /proc/self/task/TID/children
// of every thread (a child belongs to the thread that forked it, an
// adopted orphan to the thread the kernel picked). It fails on a kernel
// without CONFIG_PROC_CHILDREN.
func childPids() ([]int, error) {
	if _, err := os.Stat("/proc/thread-self/children"); err != nil {
		return nil, err // not built in
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err != nil {
			continue // the thread exited meanwhile
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}
