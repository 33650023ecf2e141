package testkit

import (
	"slices"
	"sync"
	"time"
)

// Log records what a callback reports (a runner's statuses, say), with the
// time each arrived; safe for concurrent use. Key picks what Keys lists
// and Count counts (a status's state).
type Log[T any, K comparable] struct {
	key  func(T) K
	mu   sync.Mutex
	list []T
	at   []time.Time
}

// NewLog returns an empty Log keyed by key.
func NewLog[T any, K comparable](key func(T) K) *Log[T, K] { return &Log[T, K]{key: key} }

// Add records v, now.
func (l *Log[T, K]) Add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, v)
	l.at = append(l.at, time.Now())
}

// All returns what was recorded and when, in order.
func (l *Log[T, K]) All() ([]T, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.list), slices.Clone(l.at)
}

// Keys returns the key of each record, in order.
func (l *Log[T, K]) Keys() []K {
	all, _ := l.All()
	keys := make([]K, 0, len(all))
	for _, v := range all {
		keys = append(keys, l.key(v))
	}
	return keys
}

// Count is how many records have key k.
func (l *Log[T, K]) Count(k K) int {
	n := 0
	for _, got := range l.Keys() {
		if got == k {
			n++
		}
	}
	return n
}
