package gdpm

import (
	"context"
	"sync"
)

// keyLock serializes writers of one key inside this process. Concurrent
// requests that read-modify-write the same etcd record (50 clients scaling
// one service) would otherwise all read the same revision and all but one
// lose the compare, again every round: O(n²) etcd calls and, on a loaded
// machine, a request timeout. Holding the key's lock first makes them take
// turns; the compare on the revision still guards against other masters.
// The zero value is ready to use.
type keyLock struct {
	mu    sync.Mutex
	slots map[string]*keySlot
}

type keySlot struct {
	ch   chan struct{} // a token: holding it is holding the lock
	refs int           // waiters and holder; the slot goes at zero
}

// lock waits for key's turn or for ctx to end. On success the caller must
// call the returned unlock exactly once.
func (l *keyLock) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.slots == nil {
		l.slots = make(map[string]*keySlot)
	}
	s := l.slots[key]
	if s == nil {
		s = &keySlot{ch: make(chan struct{}, 1)}
		l.slots[key] = s
	}
	s.refs++
	l.mu.Unlock()

	select {
	case s.ch <- struct{}{}:
		return func() {
			<-s.ch
			l.release(key, s)
		}, nil
	case <-ctx.Done():
		l.release(key, s)
		return nil, ctx.Err()
	}
}

func (l *keyLock) release(key string, s *keySlot) {
	l.mu.Lock()
	s.refs--
	if s.refs == 0 {
		delete(l.slots, key)
	}
	l.mu.Unlock()
}
