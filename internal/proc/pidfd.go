//go:build linux

package proc

import (
	"syscall"
	"unsafe"
)

// Waiting for a process without an OS thread. A wait system call blocks the
// thread that makes it: a slave with a thousand instances, each waited for
// with waitid, held a thousand threads. A pidfd (Linux 5.3) becomes
// readable when its process exits, so the shared fdPoller watches it.

const (
	// sysPidfdOpen is pidfd_open's number, the same on every architecture
	// (the syscalls numbered from 424 on were added to all at once).
	sysPidfdOpen  = 434
	pidfdNonblock = syscall.O_NONBLOCK // PIDFD_NONBLOCK
	pPID          = 1                  // P_PID
	pPIDFD        = 3                  // P_PIDFD
)

// watchExit calls onExit once pid, a child of this process, has exited. It
// does not reap it: the zombie keeps the pid and its process group id from
// being reused until the caller reaps it. pidfd is the process's pidfd
// (from its start, Spawn), which watchExit takes over and closes; with
// pidfd < 0 it opens one. onExit runs on the poller's goroutine and must
// return soon.
func watchExit(poller *fdPoller, pid, pidfd int, onExit func()) {
	if pidfd < 0 {
		fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), pidfdNonblock, 0)
		if errno != 0 {
			// No pidfd (an old kernel): a goroutine, and its thread,
			// blocked in waitid.
			go func() { waitExitedBlocking(pid); onExit() }()
			return
		}
		pidfd = int(fd)
	}
	// Only the poller's goroutine calls the handler, so done needs no
	// lock. The epoll watch is level-triggered: a process that exited
	// before the add is reported at once.
	done := false
	check := func() {
		if done || !pidfdExited(pidfd) {
			return
		}
		done = true
		poller.remove(pidfd)
		syscall.Close(pidfd)
		onExit()
	}
	if err := poller.add(pidfd, check); err != nil {
		syscall.Close(pidfd)
		go func() { waitExitedBlocking(pid); onExit() }()
	}
}

// pidfdExited tells, without waiting or reaping, whether the process of
// pidfd has exited; an error (ECHILD: nothing to wait for) counts as yes.
func pidfdExited(pidfd int) bool {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPIDFD, uintptr(pidfd),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT|syscall.WNOHANG, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case 0:
			// si_pid, at offset 16 on 64-bit Linux, stays zero while the
			// process runs.
			return *(*int32)(unsafe.Pointer(&info[16])) != 0
		default:
			return true
		}
	}
}

// waitExitedBlocking waits for pid to exit without reaping it, blocking
// the calling goroutine's thread.
func waitExitedBlocking(pid int) {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}
