//go:build linux

package proc

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// A fork copies the parent's whole descriptor table into the child, and
// the exec then closes every close-on-exec descriptor of the copy one by
// one; the parent waits for both (vfork). A slave holds about three
// descriptors per instance, so each start cost time in proportion to the
// instances already running, and a launch of n instances n^2: 0.3 µs per
// descriptor, 6 ms a start with 18,000 open, serialized by the fork lock.
//
// So instances are forked from one OS thread with a descriptor table of
// its own (unshare(CLONE_FILES) on a locked thread), which holds only
// what a start needs: the files the child gets as 0, 1 and 2 arrive over
// a socket pair (SCM_RIGHTS). The copy a fork makes is then a few descriptors, whatever the
// slave holds; and a descriptor the embedding program forgot to mark
// close-on-exec does not leak into instances. The hand-off to the thread
// and back costs about what copying 3,000 descriptors does, so a process
// holding fewer forks directly (Spawn). BenchmarkSpawnHolding measures
// both.
//
// The thread lives as long as the shared poller (AcquirePoller), which
// every runner holds while it may start anything: Pdeathsig is tied to
// the thread that forked, and the thread ends when the last runner is
// done. Where unshare is refused (a seccomp profile, say), Spawn forks
// from whatever thread runs it, as before.
type spawner struct {
	mu   sync.Mutex // keeps the socket's messages and reqs in one order
	sock int        // this side of the socket pair, in the shared table
	reqs chan spawnReq
	done chan struct{} // closed when the thread's goroutine has returned
}

// spawnQueue is how many starts may wait for the thread; it is as many as
// the socket pair's buffer holds messages of three descriptors with room.
const spawnQueue = 64

type spawnReq struct {
	path      string
	argv, env []string
	dir       string
	res       chan spawnRes
	withPidfd bool
}

type spawnRes struct {
	pid int
	err error
}

// startSpawner starts the spawning thread; nil when it cannot.
func startSpawner() *spawner {
	// The runtime's own descriptors (its epoll, its eventfd) must exist
	// before the table is copied: the runtime may use them from any
	// thread. A pollable file makes it create them.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	s := &spawner{sock: pair[0], reqs: make(chan spawnReq, spawnQueue), done: make(chan struct{})}
	ready := make(chan error, 1)
	go s.loop(pair, ready)
	if err := <-ready; err != nil {
		<-s.done
		syscall.Close(pair[0])
		syscall.Close(pair[1])
		return nil
	}
	syscall.Close(pair[1]) // the thread has its own copy
	return s
}

// stop ends the thread; its children have all been reaped by then.
func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
	syscall.Close(s.sock)
}

// loop is the spawning thread. It never unlocks the thread: a goroutine
// that returns while locked takes its thread with it, which is what must
// happen to a thread whose descriptor table is not the process's.
//
// Not the main thread, though: /proc/self is the main thread's view, and
// /proc/self/fd would list the spawning thread's few descriptors instead
// of the process's (OpenFiles, and whatever reopens /proc/self/fd/N). On
// the main thread, loop holds it while another goroutine locks a thread
// of its own, which then cannot be this one.
func (s *spawner) loop(pair [2]int, ready chan<- error) {
	runtime.LockOSThread()
	if syscall.Gettid() == syscall.Getpid() {
		locked := make(chan struct{})
		go s.run(pair, ready, locked)
		<-locked
		runtime.UnlockOSThread()
		return
	}
	s.run(pair, ready, nil)
}

func (s *spawner) run(pair [2]int, ready chan<- error, locked chan<- struct{}) {
	defer close(s.done)
	runtime.LockOSThread() // nests with loop's when on the same thread
	if locked != nil {
		close(locked)
	}
	if err := syscall.Unshare(syscall.CLONE_FILES); err != nil {
		ready <- err
		return
	}
	sock := pair[1]
	if err := closeAllBut(sock); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for req := range s.reqs {
		req.res <- s.spawn(sock, req)
	}
	syscall.Close(sock)
}

// spawn receives the child's three files and starts it; on this thread.
func (s *spawner) spawn(sock int, req spawnReq) spawnRes {
	files, err := recvFDs(sock, 3)
	if err != nil {
		return spawnRes{err: err}
	}
	defer func() {
		for _, fd := range files {
			syscall.Close(fd)
		}
	}()
	attr := &syscall.ProcAttr{
		Dir:   req.dir,
		Env:   req.env,
		Files: []uintptr{uintptr(files[0]), uintptr(files[1]), uintptr(files[2])},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	pid, err := syscall.ForkExec(req.path, req.argv, attr)
	return spawnRes{pid: pid, err: err}
}

// start is Spawn through the thread: the files go over the socket and the
// request over the channel, in the same order, so that starts queue up
// and the thread forks one after the other without waiting for each
// caller. The pidfd is not carried back (WatchExit opens one: the child
// stays a zombie until its runner reaps it, so the pid is still its).
func (s *spawner) start(path string, argv, env []string, dir string, files [3]uintptr) (pid int, err error) {
	res := make(chan spawnRes, 1)
	s.mu.Lock()
	rights := syscall.UnixRights(int(files[0]), int(files[1]), int(files[2]))
	if err := syscall.Sendmsg(s.sock, []byte{0}, rights, nil, 0); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	s.reqs <- spawnReq{path: path, argv: argv, env: env, dir: dir, res: res}
	s.mu.Unlock()
	r := <-res
	return r.pid, r.err
}

// recvFDs receives one message carrying n descriptors, close-on-exec.
func recvFDs(sock, n int) ([]int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, syscall.CmsgSpace(4*n))
	_, oobn, _, _, err := syscall.Recvmsg(sock, buf, oob, syscall.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, got...)
	}
	if len(fds) != n {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		return nil, errors.New("gdpm: spawner: descriptors lost in transit")
	}
	return fds, nil
}

// closeAllBut closes, in this thread's own table, every descriptor the
// copy brought along but keep, 0, 1 and 2 and the runtime's epoll and
// eventfd: a copy of a socket or a pipe's write end would keep it open
// after the process closes it (a listener still bound, a pipe that never
// reaches end of file).
func closeAllBut(keep int) error {
	ents, err := os.ReadDir("/proc/thread-self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || fd == keep {
			continue
		}
		target, err := os.Readlink("/proc/thread-self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "anon_inode:[eventpoll]") || strings.HasPrefix(target, "anon_inode:[eventfd]") {
			continue
		}
		syscall.Close(fd)
	}
	return nil
}
