//go:build linux

package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/capy-pl/gdpm/internal/backoff"
)

// groupTracker keeps the process groups of a slave's live instances (each
// instance's pid is its group id) and makes sure none outlives the slave:
//
//   - the watchdog (watchdog.go) holds the set in a separate process and
//     kills it when the slave dies;
//   - the record file DATA/pgroups holds it on disk with each leader's start
//     time, so that a slave started again on the same data dir kills what a
//     previous run left when its watchdog died too (a SIGKILL of the whole
//     process tree, say) before it registers and is given work again;
//   - with SlaveConfig.Subreaper, it tells the reaper (subreaper.go) which
//     adopted zombies are the instances' and may be reaped.
//
// A group is added when its instance starts and removed once the group has
// been SIGKILLed but before its leader is reaped (runnerConfig.OnExit), so
// neither the watchdog nor the record ever holds a group id that could have
// been reused by someone else.
type groupTracker struct {
	dataDir string
	path    string
	log     *slog.Logger
	lock    *os.File        // DataDir/lock, flock'ed while the slave runs
	ctx     context.Context // ends at close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	live    map[int]uint64   // pgid -> its leader's start time
	gone    map[int]struct{} // removed groups that may still have zombies to reap (Subreaper only)
	reaps   bool             // the reaper runs
	file    *os.File         // the record, opened for appending; nil after a write error
	records int              // lines in the record after its header
	wd      *watchdog        // nil while a dead watchdog is being replaced
	armed   time.Time        // the dead man's switch's deadline; zero: disarmed
	closed  bool
}

// pgroupsFile is the record's name in the data dir.
const pgroupsFile = "pgroups"

// pgroupsMagic starts the record's header line; the boot id follows,
// because start times count from boot and mean nothing after a reboot.
const pgroupsMagic = "gdpm-pgroups 1"

// openGroupTracker locks dataDir, kills the groups a previous run on it
// left alive, starts an empty record and the watchdog and, if subreaper is
// set, makes this process a child subreaper and starts reaping.
func openGroupTracker(dataDir string, subreaper bool, log *slog.Logger) (*groupTracker, error) {
	t := &groupTracker{
		dataDir: dataDir,
		path:    filepath.Join(dataDir, pgroupsFile),
		log:     log,
		live:    map[int]uint64{},
		gone:    map[int]struct{}{},
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*groupTracker, error) {
		if t.file != nil {
			t.file.Close()
		}
		lock.Close()
		return nil, err
	}
	t.lock = lock
	t.killStale()
	if err := t.compact(); err != nil {
		return fail(err)
	}
	if subreaper {
		if err := acquireSubreaper(); err != nil {
			return fail(err)
		}
		t.reaps = true
	}
	wd, err := startWatchdog(dataDir)
	if err != nil {
		if t.reaps {
			releaseSubreaper()
		}
		return fail(err)
	}
	t.wd = wd
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.superviseWatchdog(wd)
	if t.reaps {
		t.wg.Add(1)
		go t.runReaper()
	}
	return t, nil
}

// add records a started instance's group.
func (t *groupTracker) add(pgid int, startTime uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.live[pgid] = startTime
	t.record(fmt.Sprintf("+ %d %d\n", pgid, startTime))
	t.tell(fmt.Sprintf("+ %d\n", pgid))
}

// remove forgets a group that has been killed.
func (t *groupTracker) remove(pgid int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	delete(t.live, pgid)
	if t.reaps {
		t.gone[pgid] = struct{}{}
	}
	t.record(fmt.Sprintf("- %d\n", pgid))
	t.tell(fmt.Sprintf("- %d\n", pgid))
}

// arm sets the watchdog's dead man's switch: unless arm is called again
// with a later deadline before deadline passes, the watchdog kills every
// group, and every group added after that, until a deadline in the future
// comes. A deadline already past kills at once.
func (t *groupTracker) arm(deadline time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.armed = deadline
	t.tellDeadline()
}

// disarm lifts the dead man's switch.
func (t *groupTracker) disarm() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.armed.IsZero() {
		return
	}
	t.armed = time.Time{}
	t.tell("d\n")
}

// tellDeadline sends the deadline on the boot clock, which the watchdog
// reads too. The boot clock is read before the time that converts the
// deadline, so that a stall in between moves the deadline earlier, never
// later. Called with t.mu held.
func (t *groupTracker) tellDeadline() {
	up, err := bootClock()
	if err != nil {
		t.log.Warn("cannot read the boot clock; the watchdog is not armed", "err", err)
		return
	}
	left := time.Until(t.armed)
	t.tell(fmt.Sprintf("h %d\n", max(0, (up+left)/(10*time.Millisecond))))
}

// bootClock is the time since boot, as /proc/uptime says it.
func bootClock() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("gdpm: /proc/uptime: %q", b)
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("gdpm: /proc/uptime: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// close ends the watchdog (which kills the groups still recorded: none
// after a clean stop) and the reaper, and leaves the record compacted. The
// caller has stopped every instance. It is idempotent.
func (t *groupTracker) close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	if t.wd != nil {
		errs = append(errs, t.wd.close())
		t.wd = nil
	}
	if len(t.live) > 0 {
		t.log.Warn("instance groups still live at close; the watchdog killed them", "groups", len(t.live))
		clear(t.live)
	}
	errs = append(errs, t.compact())
	if t.file != nil {
		errs = append(errs, t.file.Close())
		t.file = nil
	}
	if t.reaps {
		releaseSubreaper()
	}
	errs = append(errs, t.lock.Close())
	return errors.Join(errs...)
}

// lockDataDir takes an exclusive flock on dataDir/lock. The record would
// make a second slave on the same dir kill the first one's instances; the
// kernel drops the lock when its holder dies, however it dies, which is
// exactly when the record's groups become leftovers.
func lockDataDir(dataDir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dataDir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gdpm: slave data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dataDir)
		}
		return nil, fmt.Errorf("gdpm: slave data dir lock: %w", err)
	}
	return f, nil
}

// tell sends a line to the watchdog. One that does not take it is killed
// (without it killing anything) and replaced by superviseWatchdog, which
// hands the new one the whole set. Called with t.mu held.
func (t *groupTracker) tell(line string) {
	if t.wd == nil {
		return
	}
	if err := t.wd.send(time.Now().Add(watchdogWriteTimeout), line); err != nil {
		t.log.Warn("watchdog is not reading; replacing it", "pid", t.wd.cmd.Process.Pid, "err", err)
		t.wd.kill()
		t.wd = nil
	}
}

// superviseWatchdog replaces the watchdog whenever it exits before close,
// so that a watchdog killed by mistake leaves the instances unguarded only
// for a moment.
func (t *groupTracker) superviseWatchdog(wd *watchdog) {
	defer t.wg.Done()
	retry := backoff.NewDelay(100*time.Millisecond, 10*time.Second)
	for {
		started := time.Now()
		select {
		case <-t.ctx.Done():
			return
		case <-wd.exited:
		}
		t.mu.Lock()
		if t.wd == wd {
			t.wd = nil
		}
		if t.reaps {
			// Its orphans are reaped like a killed instance group's.
			t.gone[wd.cmd.Process.Pid] = struct{}{}
		}
		t.mu.Unlock()
		wd.w.Close()
		t.log.Warn("watchdog exited; starting another", "pid", wd.cmd.Process.Pid, "state", wd.cmd.ProcessState.String())
		if time.Since(started) > time.Minute {
			retry.Reset()
		}
		for {
			if !retry.Wait(t.ctx) {
				return
			}
			var err error
			if wd, err = t.replaceWatchdog(); err == nil {
				t.log.Info("new watchdog holds the instance groups", "pid", wd.cmd.Process.Pid)
				break
			}
			t.log.Warn("cannot start a watchdog", "err", err)
		}
	}
}

// replaceWatchdog starts a watchdog and gives it every live group.
func (t *groupTracker) replaceWatchdog() (*watchdog, error) {
	wd, err := startWatchdog(t.dataDir)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := make([]string, 0, len(t.live))
	for pg := range t.live {
		lines = append(lines, fmt.Sprintf("+ %d\n", pg))
	}
	// The set can be large; the deadline is per line on average.
	deadline := time.Now().Add(watchdogWriteTimeout + time.Duration(len(lines))*time.Millisecond)
	if err := wd.send(deadline, lines...); err != nil {
		wd.kill()
		return nil, fmt.Errorf("gdpm: hand the groups to a new watchdog: %w", err)
	}
	t.wd = wd
	if !t.armed.IsZero() {
		t.tellDeadline()
	}
	return wd, nil
}

// record appends a line to the record, and compacts the record once it is
// mostly removals. Called with t.mu held.
func (t *groupTracker) record(line string) {
	if t.file == nil {
		// A previous write failed: try to start over with the whole set.
		if err := t.compact(); err != nil {
			return
		}
	}
	if _, err := t.file.WriteString(line); err != nil {
		t.log.Warn("cannot write the process group record", "path", t.path, "err", err)
		t.file.Close()
		t.file = nil
		return
	}
	t.records++
	if t.records > 1024 && t.records > 4*len(t.live) {
		if err := t.compact(); err != nil {
			t.log.Warn("cannot compact the process group record", "path", t.path, "err", err)
		}
	}
}

// compact replaces the record with one that holds just the live groups,
// atomically, and reopens it for appending. Durability against a power
// loss is not needed: the processes would be gone too.
func (t *groupTracker) compact() error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", pgroupsMagic, bootID())
	for pg, st := range t.live {
		fmt.Fprintf(&b, "+ %d %d\n", pg, st)
	}
	tmp := t.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("gdpm: process group record: %w", err)
	}
	if err := os.Rename(tmp, t.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("gdpm: process group record: %w", err)
	}
	if t.closed {
		return nil
	}
	f, err := os.OpenFile(t.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("gdpm: process group record: %w", err)
	}
	if t.file != nil {
		t.file.Close()
	}
	t.file, t.records = f, len(t.live)
	return nil
}

// killStale kills the groups the record names that are still alive and
// provably the same groups, and waits (at most groupKillWait) for them to
// die, so that they are gone before this slave registers.
func (t *groupTracker) killStale() {
	recs, err := readGroupRecord(t.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			t.log.Warn("cannot read the process group record; not cleaning up after a previous run", "path", t.path, "err", err)
		}
		return
	}
	if len(recs) == 0 {
		return
	}
	procs, err := scanProcs()
	if err != nil {
		t.log.Warn("cannot list processes; not cleaning up after a previous run", "err", err)
		return
	}
	stale := staleGroups(recs, procs)
	if len(stale) == 0 {
		return
	}
	t.log.Warn("killing process groups left by a previous run", "groups", stale)
	killGroupsUntilGone(stale, groupKillWait)
}

// readGroupRecord returns the groups a record holds: pgid -> the leader's
// start time. A record from another boot holds nothing.
func readGroupRecord(path string) (map[int]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() || sc.Text() != pgroupsMagic+" "+bootID() {
		return nil, sc.Err()
	}
	recs := map[int]uint64{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		pg, err := strconv.Atoi(f[1])
		if err != nil || pg <= 1 {
			continue
		}
		switch {
		case f[0] == "+" && len(f) == 3:
			if st, err := strconv.ParseUint(f[2], 10, 64); err == nil {
				recs[pg] = st
			}
		case f[0] == "-":
			delete(recs, pg)
		}
	}
	return recs, sc.Err()
}

// staleGroups picks the recorded groups to kill. The kernel does not give a
// number that names a live process group to a new process, so:
//
//   - if the leader is still there (alive, or a zombie nobody reaped) its
//     start time tells whether it is ours or a new process with a reused pid;
//   - if the leader is gone (Pdeathsig killed it when the slave died, and
//     init reaped it), live members of the group started after the leader
//     are ours: the id stayed taken since. The one case this gets wrong
//     needs the pid to wrap around, a new process to get that very id, make
//     its own group, fork and exit, all before the slave comes back.
//
// A group recorded without a start time is left alone.
func staleGroups(recs map[int]uint64, procs []procInfo) []int {
	byPID := make(map[int]procInfo, len(procs))
	members := map[int][]procInfo{} // live members by group
	for _, p := range procs {
		byPID[p.pid] = p
		if !p.zombie {
			members[p.pgrp] = append(members[p.pgrp], p)
		}
	}
	var stale []int
	for pg, start := range recs {
		if start == 0 || len(members[pg]) == 0 {
			continue
		}
		if leader, ok := byPID[pg]; ok {
			if leader.start == start {
				stale = append(stale, pg)
			}
			continue
		}
		for _, m := range members[pg] {
			if m.start >= start {
				stale = append(stale, pg)
				break
			}
		}
	}
	return stale
}
