//go:build linux

package proc

import (
	"io"
	"os"
	"syscall"
	"time"
)

// What gdpm's instance runner (internal/runner) builds on: the
// shared poller, exits without a thread, output pumps, group signals and
// the one kill-until-gone loop.

// Poller is the process-wide epoll loop (fdpoller.go).
type Poller = fdPoller

// AcquirePoller returns the shared poller, starting it if needed; every
// AcquirePoller is paired with a ReleasePoller.
func AcquirePoller() (*Poller, error) { return acquirePoller() }

// ReleasePoller gives back an AcquirePoller; the last one stops the loop.
func ReleasePoller() { releasePoller() }

// WatchExit calls onExit once pid, a child of this process, has exited,
// without reaping it (pidfd.go). It takes over pidfd, the process's pidfd
// from Spawn, or opens one when pidfd < 0. onExit runs on the poller's
// goroutine and must return soon.
func WatchExit(p *Poller, pid, pidfd int, onExit func()) { watchExit(p, pid, pidfd, onExit) }

// Pumps drain one process's stdout and stderr pipes on the poller
// (logpump.go).
type Pumps = pumps

// OpenPumps makes the two pipes of one start: the caller gives the write
// ends to the child and closes them once it has started, then calls
// Start; the read ends are drained into stdout and stderr.
func OpenPumps(p *Poller, stdout, stderr io.Writer) (pp *Pumps, outW, errW *os.File, err error) {
	return openPumps(p, stdout, stderr)
}

// Start drains the pipes; onErr reports a write failure, once per pipe.
func (p *pumps) Start(onErr func(error)) { p.start(onErr) }

// CloseReaders closes the read ends without draining (the start failed).
func (p *pumps) CloseReaders() { p.closeReaders() }

// Finish calls then once both pipes have reached end of file, or after a
// moment with them closed, without waiting; then must not block.
func (p *pumps) Finish(then func()) { p.finish(then) }

// SignalGroup sends sig to process group pgid (nothing for pgid <= 0).
func SignalGroup(pgid int, sig syscall.Signal) { signalGroup(pgid, sig) }

// KillGroupsUntilGone SIGKILLs the groups until none has a live member,
// for at most d.
func KillGroupsUntilGone(groups []int, d time.Duration) { killGroupsUntilGone(groups, d) }

func signalGroup(pgid int, sig syscall.Signal) {
	if pgid > 0 {
		syscall.Kill(-pgid, sig)
	}
}
