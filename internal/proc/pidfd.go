//go:build linux

package proc

import (
	"sync"
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

// watchExit returns a channel that is closed once pid, a child of this
// process, has exited. It does not reap it: the zombie keeps the pid and
// its process group id from being reused until the caller reaps it.
func watchExit(poller *fdPoller, pid int) <-chan struct{} {
	ch := make(chan struct{})
	// Without a pidfd (an old kernel): a goroutine, and its thread,
	// blocked in waitid.
	blocking := func() <-chan struct{} {
		go func() { waitExitedBlocking(pid); close(ch) }()
		return ch
	}
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), pidfdNonblock, 0)
	if errno != 0 {
		return blocking()
	}
	var mu sync.Mutex
	done := false
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		if done || !pidfdExited(int(fd)) {
			return
		}
		done = true
		poller.remove(int(fd))
		syscall.Close(int(fd))
		close(ch)
	}
	if err := poller.add(int(fd), check); err != nil {
		syscall.Close(int(fd))
		return blocking()
	}
	check() // it may have exited before add
	return ch
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
