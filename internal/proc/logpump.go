//go:build linux

package proc

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// An instance's stdout and stderr are pipes that the slave drains into
// the Runner's writers (the slave's rotating log files), on the shared
// fdPoller: no goroutine waits per pipe, and a read buffer is borrowed
// from a pool only while there is data, so a thousand idle instances hold
// neither stacks nor buffers.

// pumpBufSize is the read size: a pipe's default capacity, so one read
// usually empties it.
const pumpBufSize = 64 << 10

var pumpBufs = sync.Pool{New: func() any { b := make([]byte, pumpBufSize); return &b }}

// pumpDrainWait bounds how long a stopped instance's pipes are drained
// after its process group is gone. Only a process that left the group
// (setsid) can still hold a pipe open; its output after that is dropped.
const pumpDrainWait = 200 * time.Millisecond

// pumps drain one process's two pipes on the shared fdPoller. It is one
// allocation: a slave holds one per running instance.
type pumps struct {
	pipes  [2]pipePump
	poller *fdPoller
	onErr  func(error)

	mu    sync.Mutex
	open  int         // pipes not closed yet
	then  func()      // finish's callback, until it is called
	timer *time.Timer // finish's drain limit
}

// openPumps makes the two pipes of one start: the write ends (blocking, as
// a child expects) go to the child and the caller closes them once the
// child holds its copies; start then drains the read ends into stdout and
// stderr.
func openPumps(poller *fdPoller, stdout, stderr io.Writer) (p *pumps, outW, errW *os.File, err error) {
	p = &pumps{poller: poller, open: 2}
	var w [2]*os.File
	for i, dst := range []io.Writer{stdout, stderr} {
		var fds [2]int
		if err = syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err == nil {
			err = syscall.SetNonblock(fds[0], true)
			if err != nil {
				syscall.Close(fds[0])
				syscall.Close(fds[1])
			}
		}
		if err != nil {
			for j := range i {
				p.pipes[j].close()
				w[j].Close()
			}
			return nil, nil, nil, fmt.Errorf("log pipe: %w", err)
		}
		p.pipes[i] = pipePump{parent: p, fd: fds[0], dst: dst}
		w[i] = os.NewFile(uintptr(fds[1]), "log pipe")
	}
	return p, w[0], w[1], nil
}

// start drains the pipes; onErr reports a write failure (once per pipe).
func (p *pumps) start(onErr func(error)) {
	p.onErr = onErr
	for i := range p.pipes {
		pp := &p.pipes[i]
		if err := p.poller.add(pp.fd, pp.drain); err != nil {
			onErr(err)
			pp.close()
		}
	}
}

// closeReaders closes the read ends without draining (start failed).
func (p *pumps) closeReaders() {
	for i := range p.pipes {
		p.pipes[i].close()
	}
}

// finish calls then once both pipes have reached end of file, or after
// pumpDrainWait with whatever is still open closed; at once if both are
// closed already. Nothing waits meanwhile: then comes from the poller's
// goroutine or a timer's, and must not block.
func (p *pumps) finish(then func()) {
	p.mu.Lock()
	if p.open > 0 {
		p.then = then
		p.timer = time.AfterFunc(pumpDrainWait, p.closeReaders)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	then()
}

// pipePump is the read end of one pipe and where its bytes go.
type pipePump struct {
	parent   *pumps
	fd       int
	dst      io.Writer
	mu       sync.Mutex // held while fd is read, so that close waits
	closed   bool
	reported bool
}

// drain is the poller's handler: it reads until the pipe is empty.
func (pp *pipePump) drain() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.closed {
		return
	}
	bp := pumpBufs.Get().(*[]byte)
	defer pumpBufs.Put(bp)
	for {
		n, err := syscall.Read(pp.fd, *bp)
		switch {
		case n > 0:
			if _, werr := pp.dst.Write((*bp)[:n]); werr != nil && !pp.reported {
				pp.reported = true
				pp.parent.onErr(werr)
			}
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return
		default: // n == 0: every writer is gone; or a read error
			pp.closeLocked()
			return
		}
	}
}

func (pp *pipePump) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.closeLocked()
}

func (pp *pipePump) closeLocked() {
	if pp.closed {
		return
	}
	pp.closed = true
	pp.parent.poller.remove(pp.fd)
	syscall.Close(pp.fd)
	p := pp.parent
	p.mu.Lock()
	var then func()
	if p.open--; p.open == 0 && p.then != nil {
		then, p.then = p.then, nil
		p.timer.Stop()
	}
	p.mu.Unlock()
	if then != nil {
		then()
	}
}
