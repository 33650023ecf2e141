//go:build linux

package proc

import (
	"fmt"
	"sync"
	"syscall"
)

// fdPoller is one epoll loop that watches the descriptors of every
// instance: the pidfd that turns readable when the process exits and the
// two pipes of its output. One goroutine (and one thread, blocked in
// epoll_wait) serves them all. With a goroutine parked per descriptor
// instead, a slave running a thousand instances kept three thousand
// goroutine stacks, most of its memory.
//
// Handlers run on the poller's goroutine and must return soon. They must
// tolerate a spurious call: an event read just before its descriptor was
// removed can reach the handler of a new descriptor that reused the
// number, so a handler tries non-blocking and treats "not ready" as
// nothing.
type fdPoller struct {
	epfd int
	wake [2]int // a pipe: a byte on it ends the loop

	mu       sync.Mutex
	handlers map[int32]func()
	done     chan struct{}
}

// The process-wide poller, started by the first runner that needs it and
// stopped when the last one is done, so that nothing runs while nothing is
// supervised.
var sharedPoller struct {
	sync.Mutex
	p       *fdPoller
	refs    int
	spawner *spawner // lives with p; nil where it cannot run (spawner.go)
}

// currentSpawner is the spawning thread, nil without an acquired poller.
func currentSpawner() *spawner {
	sharedPoller.Lock()
	defer sharedPoller.Unlock()
	return sharedPoller.spawner
}

// acquirePoller returns the shared poller, starting it if needed; every
// acquirePoller is paired with a releasePoller.
func acquirePoller() (*fdPoller, error) {
	sharedPoller.Lock()
	defer sharedPoller.Unlock()
	if sharedPoller.p == nil {
		p, err := startPoller()
		if err != nil {
			return nil, err
		}
		sharedPoller.p = p
		sharedPoller.spawner = startSpawner()
	}
	sharedPoller.refs++
	return sharedPoller.p, nil
}

func releasePoller() {
	sharedPoller.Lock()
	defer sharedPoller.Unlock()
	if sharedPoller.refs--; sharedPoller.refs == 0 {
		sharedPoller.p.stop()
		sharedPoller.p = nil
		if sharedPoller.spawner != nil {
			sharedPoller.spawner.stop()
			sharedPoller.spawner = nil
		}
	}
}

func startPoller() (*fdPoller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gdpm: epoll: %w", err)
	}
	p := &fdPoller{epfd: epfd, handlers: map[int32]func(){}, done: make(chan struct{})}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("gdpm: epoll wake pipe: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("gdpm: epoll: %w", err)
	}
	go p.loop()
	return p, nil
}

// add calls h whenever fd is readable (or has hung up), until remove.
// It is level-triggered: h must consume what is ready, or remove fd.
func (p *fdPoller) add(fd int, h func()) error {
	p.mu.Lock()
	p.handlers[int32(fd)] = h
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.handlers, int32(fd))
		p.mu.Unlock()
		return fmt.Errorf("gdpm: epoll add: %w", err)
	}
	return nil
}

// remove stops watching fd; the caller closes it afterwards.
func (p *fdPoller) remove(fd int) {
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	p.mu.Lock()
	delete(p.handlers, int32(fd))
	p.mu.Unlock()
}

func (p *fdPoller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			panic(fmt.Sprintf("gdpm: epoll_wait: %v", err)) // EBADF/EINVAL: a bug
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.wake[0]) {
				return
			}
			p.mu.Lock()
			h := p.handlers[ev.Fd]
			p.mu.Unlock()
			if h != nil {
				h()
			}
		}
	}
}

func (p *fdPoller) stop() {
	syscall.Write(p.wake[1], []byte{0})
	<-p.done
	p.closeFDs()
}

func (p *fdPoller) closeFDs() {
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
	syscall.Close(p.epfd)
}
