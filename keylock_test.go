package gdpm

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestKeyLockSerializesOneKeyAndFreesItsSlot(t *testing.T) {
	var l keyLock
	var mu sync.Mutex
	inside, most := 0, 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := l.lock(context.Background(), "svc")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders at once, want 1", most)
	}
	if len(l.slots) != 0 {
		t.Errorf("%d slots left after every unlock", len(l.slots))
	}

	// Another key is not blocked by a held one, and a waiter gives up
	// with its context.
	unlock, _ := l.lock(context.Background(), "a")
	if u, err := l.lock(context.Background(), "b"); err != nil {
		t.Fatal(err)
	} else {
		u()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, "a"); err == nil {
		t.Fatal("a second holder of a held key got the lock")
	}
	unlock()
	if len(l.slots) != 0 {
		t.Errorf("%d slots left", len(l.slots))
	}
}
