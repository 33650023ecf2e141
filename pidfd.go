package gdpm

import (
	"os"
	"syscall"
	"unsafe"
)

// Waiting for a process without an OS thread. A wait system call blocks the
// thread that makes it, and the Go runtime gives every blocked thread's
// goroutines a new one: a slave with a thousand instances, each waited for
// with waitid, held a thousand threads and tens of MB of stacks. A pidfd
// (Linux 5.3) becomes readable when its process exits, so the runtime's
// poller watches it like a socket and no thread blocks.

const (
	// sysPidfdOpen is pidfd_open's number, the same on every architecture
	// (the syscalls numbered from 424 on were added to all at once).
	sysPidfdOpen  = 434
	pidfdNonblock = syscall.O_NONBLOCK // PIDFD_NONBLOCK
	pPID          = 1                  // P_PID
	pPIDFD        = 3                  // P_PIDFD
)

// waitExited returns once pid, a child of this process, has exited,
// without reaping it: the zombie keeps the pid and its process group id
// from being reused until the caller reaps it.
func waitExited(pid int) {
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), pidfdNonblock, 0)
	if errno != 0 {
		waitExitedBlocking(pid) // an old kernel
		return
	}
	f := os.NewFile(fd, "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		waitExitedBlocking(pid)
		return
	}
	var info [128]byte // siginfo_t
	rc.Read(func(fd uintptr) bool {
		for {
			clear(info[:])
			_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPIDFD, fd,
				uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT|syscall.WNOHANG, 0, 0)
			switch errno {
			case syscall.EINTR:
				continue
			case 0:
				// si_pid, at offset 16 on 64-bit Linux, is left zero when
				// the process has not exited yet.
				return *(*int32)(unsafe.Pointer(&info[16])) != 0
			default:
				return true // ECHILD: nothing left to wait for
			}
		}
	})
}

// waitExitedBlocking is waitExited for kernels without pidfd: it blocks
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
