package gdpm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// An instance's stdout and stderr are pipes that the slave drains into
// rotatingFiles. Each pipe has a goroutine that waits in the runtime's
// poller, which costs no thread, and borrows a read buffer from a pool
// only while there is data, so a thousand idle instances hold no buffers.

// pumpBufSize is the read size: a pipe's default capacity, so one read
// usually empties it.
const pumpBufSize = 64 << 10

var pumpBufs = sync.Pool{New: func() any { b := make([]byte, pumpBufSize); return &b }}

// pumpDrainWait bounds how long a stopped instance's pipes are drained
// after its process group is gone. Only a process that left the group
// (setsid) can still hold a pipe open; its output after that is dropped.
const pumpDrainWait = 200 * time.Millisecond

// instanceLogs are the two log files of one instance, kept across its
// restarts.
type instanceLogs struct {
	out, err *rotatingFile
}

// logFilePath is DIR/SERVICE/INSTANCE.STREAM; ids that could leave DIR are
// refused.
func logFilePath(dir, svc, inst string, stream LogStreamName) (string, error) {
	for _, id := range []string{svc, inst} {
		if id == "" || id == "." || id == ".." || strings.ContainsRune(id, os.PathSeparator) {
			return "", fmt.Errorf("log files: bad id %q", id)
		}
	}
	return filepath.Join(dir, svc, inst+"."+string(stream)), nil
}

func newInstanceLogs(dir, svc, inst string, maxSize int64, maxFiles int) (*instanceLogs, error) {
	out, err := logFilePath(dir, svc, inst, Stdout)
	if err != nil {
		return nil, err
	}
	errPath, _ := logFilePath(dir, svc, inst, Stderr)
	return &instanceLogs{out: newRotatingFile(out, maxSize, maxFiles), err: newRotatingFile(errPath, maxSize, maxFiles)}, nil
}

func (l *instanceLogs) Close() {
	if l != nil {
		l.out.Close()
		l.err.Close()
	}
}

// pumps are the draining goroutines of one process's two pipes.
type pumps struct {
	readers []*os.File
	wg      sync.WaitGroup
}

// pipes makes the two pipes of one start: the write ends go to the child
// and the caller closes them once the child holds its copies; the pumps'
// start then begins draining the read ends.
func (l *instanceLogs) pipes() (p *pumps, stdout, stderr *os.File, err error) {
	or, ow, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("log pipe: %w", err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		or.Close()
		ow.Close()
		return nil, nil, nil, fmt.Errorf("log pipe: %w", err)
	}
	return &pumps{readers: []*os.File{or, er}}, ow, ew, nil
}

// start drains the pipes into l's files; onErr reports a write failure
// (once per pump).
func (p *pumps) start(l *instanceLogs, onErr func(error)) {
	for i, dst := range []*rotatingFile{l.out, l.err} {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			pump(p.readers[i], dst, onErr)
		}()
	}
}

// closeReaders closes the read ends without draining (start failed).
func (p *pumps) closeReaders() {
	for _, r := range p.readers {
		r.Close()
	}
}

// finish waits up to pumpDrainWait for both pipes to reach end of file,
// then closes them, which ends the pumps.
func (p *pumps) finish() {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	t := time.NewTimer(pumpDrainWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	p.closeReaders()
	<-done
}

// pump copies r to dst until end of file or until r is closed.
func pump(r *os.File, dst io.Writer, onErr func(error)) {
	rc, err := r.SyscallConn()
	if err != nil {
		onErr(err)
		return
	}
	reported := false
	eof := false
	for !eof {
		err := rc.Read(func(fd uintptr) bool {
			bp := pumpBufs.Get().(*[]byte)
			defer pumpBufs.Put(bp)
			for {
				n, err := syscall.Read(int(fd), *bp)
				switch {
				case n > 0:
					if _, werr := dst.Write((*bp)[:n]); werr != nil && !reported {
						reported = true
						onErr(werr)
					}
				case err == syscall.EINTR:
				case err == syscall.EAGAIN:
					return false // wait in the poller
				default:
					eof = true // n == 0: every writer is gone; or a read error
					return true
				}
			}
		})
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				onErr(err)
			}
			return
		}
	}
}
