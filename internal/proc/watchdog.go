//go:build linux

package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// The watchdog is what kills a slave's instances when the slave dies
// without a chance to stop them (kill -9, OOM killer, a crash). Pdeathsig
// reaches only the slave's direct children, the instance leaders; what they
// forked (the command under /bin/sh -c, a server's workers) would keep
// running next to the copies the scheduler starts elsewhere.
//
// It is one /bin/sh per slave, started without Pdeathsig in a process group
// of its own, so that neither the slave's death nor a signal to the slave's
// group takes it along. Its stdin is a pipe whose only write end the slave
// holds (close-on-exec, so no instance inherits it). The slave writes
// "+ PGID" when an instance starts and "- PGID" once that group has been
// killed; the shell keeps the set in its variables. The kernel closes the write
// end whatever way the slave ends, so end of file is the one signal that
// matters: the watchdog SIGKILLs every group still in its set and exits. A
// clean Close first stops every instance, so the set is empty and the
// watchdog just exits.
//
// A shell rather than a re-exec of the slave binary, because gdpm is a
// library: the embedding program's binary cannot be asked to act as a
// watchdog. A shell needs no fork per line either: read, case, eval,
// unset, arithmetic expansion and kill are builtins in every POSIX sh.
//
// Each line reaches the shell in one write of less than PIPE_BUF bytes, so
// it arrives whole; a line cut short by the slave's death has no newline and
// read drops it.

// The watchdog is also the slave's dead man's switch. A slave that is
// stopped (SIGSTOP), frozen or starved of CPU cannot renew its lease nor
// fence itself; its lease expires, the scheduler places its instances
// elsewhere, and its own copies would run on. So, while the slave holds a
// lease, it arms the watchdog with "h DEADLINE": the moment, on the boot
// clock of /proc/uptime in hundredths of a second, after which it cannot
// prove its lease is alive (the send time of its last renewal plus the TTL,
// less the fencing margin). Each renewal moves the deadline on. If the
// deadline passes without a new one, the watchdog kills every group in its
// set, as on end of file, and stays fenced: it kills every group added
// after that at once, until a deadline in the future comes (a new lease,
// or a renewal of the old one that proves it alive). "d" disarms it (a
// slave that stops its instances gracefully, or has none left).
//
// The deadline is absolute, so a line that was delayed (the slave stopped
// between computing and writing it) cannot give more time than the lease
// has. The timer is a background subshell running sleep, which sends
// SIGUSR1 to the watchdog; the trap kills. A shell has no other timeout for
// read (dash has no read -t); dash's read returns on a trapped signal,
// bash's goes on, and the loop handles both. The subshell checks that its
// parent is still the watchdog before it signals, so an orphaned timer
// (the watchdog SIGKILLed) cannot signal a process that took the pid.

// watchdogName is the watchdog's argv[0] and $0, which is how ps shows it.
const watchdogName = "gdpm-watchdog"

// watchdogScript is the watchdog. $1 is the slave's data dir, unused but
// shown by ps so that an operator can tell whose watchdog it is. SIGHUP and
// SIGINT are ignored: a closing terminal or a Ctrl-C reaches the slave,
// which stops its instances itself and then closes the pipe.
//
// The set is one variable per live group (g<PGID>), so that adding and
// removing are O(1), and a list of the groups ever added, compacted to the
// live ones when it has grown to twice their number. A set kept in one
// string and cut with ${pgs#* $pg } costs O(n^2) per removal in dash: a
// slave removing 1000 groups kept its watchdog busy for 6-18 s, and its
// Close gave up on it. Lines that are not "+|- NUMBER", "h NUMBER" or "d"
// are ignored, which also keeps eval to digits.
const watchdogScript = `trap '' HUP INT
pgs=' ' n=0 live=0 fenced=0 tp= woke=0
killall() {
	for p in $pgs; do
		eval "[ -n \"\${g$p-}\" ]" && kill -s KILL -- "-$p" 2>/dev/null
	done
}
fire() { tp= fenced=1 woke=1; killall; }
disarm() { [ -z "$tp" ] || kill "$tp" 2>/dev/null; tp=; }
arm() {
	disarm
	(
		trap 'kill "$s" 2>/dev/null; exit 0' TERM
		sleep "$1" & s=$!
		wait "$s"
		read -r _ _ _ pp _ </proc/self/stat
		[ "$pp" = "$$" ] && kill -s USR1 "$$"
	) &
	tp=$!
}
trap fire USR1
while :; do
	if ! read -r op pg; then
		# dash: a trapped signal cuts read short; only end of file ends.
		[ $woke = 1 ] && { woke=0; continue; }
		break
	fi
	case $op in d) disarm; continue ;; esac
	case $pg in ''|*[!0-9]*) continue ;; esac
	case $op in
	+) eval "[ -z \"\${g$pg-}\" ]" && { eval "g$pg=1"; pgs="$pgs$pg "; n=$((n+1)); live=$((live+1)); }
	   [ $fenced = 1 ] && kill -s KILL -- "-$pg" 2>/dev/null ;;
	-) eval "[ -n \"\${g$pg-}\" ]" && { unset "g$pg"; live=$((live-1)); } ;;
	h) read -r up _ </proc/uptime
	   left=$((pg - ${up%.*}${up#*.}))
	   if [ $left -gt 0 ]; then fenced=0; arm "$((left/100)).$((left%100/10))$((left%10))"; else disarm; fire; fi ;;
	esac
	if [ $n -gt 64 ] && [ $n -gt $((2*live)) ]; then
		keep=' ' n=0
		for p in $pgs; do
			eval "[ -n \"\${g$p-}\" ] && [ -z \"\${k$p-}\" ]" && { eval "k$p=1"; keep="$keep$p "; n=$((n+1)); }
		done
		for p in $keep; do unset "k$p"; done
		pgs=$keep
	fi
done
disarm
killall
exit 0`

// watchdogWriteTimeout bounds a write to the watchdog's pipe. The shell
// reads as fast as it is written to; one that does not for this long is
// stopped or broken, and is replaced.
const watchdogWriteTimeout = 2 * time.Second

// watchdogExitWait bounds how long closing waits for the watchdog to exit
// after end of file before it is killed.
const watchdogExitWait = 5 * time.Second

// watchdog is one running watchdog process.
type watchdog struct {
	cmd    *exec.Cmd
	w      *os.File      // the write end of its stdin
	exited chan struct{} // closed once the process has been reaped
}

// startWatchdog starts a watchdog; tag is shown as its $1.
func startWatchdog(tag string) (*watchdog, error) {
	r, w, err := os.Pipe() // both ends close-on-exec
	if err != nil {
		return nil, fmt.Errorf("gdpm: watchdog pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:  "/bin/sh",
		Args:  []string{watchdogName, "-c", watchdogScript, watchdogName, tag},
		Stdin: r, // dup'ed onto fd 0 of the child, without close-on-exec
		// Not the slave's dir: the watchdog should not keep it busy.
		Dir: "/",
		// Its own group; no Pdeathsig, which would defeat the purpose.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("gdpm: start watchdog: %w", err)
	}
	r.Close()
	wd := &watchdog{cmd: cmd, w: w, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(wd.exited)
	}()
	return wd, nil
}

// send writes lines to the watchdog, one write per line, all before
// deadline.
func (wd *watchdog) send(deadline time.Time, lines ...string) error {
	if err := wd.w.SetWriteDeadline(deadline); err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := wd.w.WriteString(l); err != nil {
			return err
		}
	}
	return nil
}

// kill ends the watchdog without it killing anything: SIGKILL gives the
// shell no chance to run its end-of-file code. It returns once the process
// has been reaped.
func (wd *watchdog) kill() {
	wd.killGroup()
	wd.w.Close()
	<-wd.exited
}

// close closes the pipe, so that the watchdog kills the groups it still
// holds and exits, and waits for it, killing it after watchdogExitWait.
func (wd *watchdog) close() error {
	err := wd.w.Close()
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	t := time.NewTimer(watchdogExitWait)
	defer t.Stop()
	select {
	case <-wd.exited:
	case <-t.C:
		wd.killGroup()
		<-wd.exited
		err = errors.Join(err, errors.New("gdpm: watchdog did not exit on end of file; killed"))
	}
	return err
}

// killGroup SIGKILLs the watchdog's process group: the shell and its timer
// (subshell and sleep), which would otherwise outlive it. Called only
// before the watchdog has been reaped, so its group id cannot have been
// reused.
func (wd *watchdog) killGroup() {
	select {
	case <-wd.exited:
		return
	default:
	}
	syscall.Kill(-wd.cmd.Process.Pid, syscall.SIGKILL)
}
