package gdpm

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/capy-pl/gdpm/internal/proc"
)

// A slave's descriptors are one table for its instances and for itself, and
// RLIMIT_NOFILE bounds it. Each instance holds a few for its whole life
// (its output pipes, its pidfd, its log files), so enough instances fill
// the table; what the slave itself must open then fails too: a new
// connection to etcd after a broken one (and so the lease), a
// registration, a log request. fdBudget keeps a reserve for those: a new
// instance starts only while the descriptors open, plus what the instances
// admitted but not yet started will take, plus its own, leave the reserve
// free. One that does not fit is reported failed with the reason, and is
// tried again while it stays assigned here (the supervisor's retry).
//
// Only new instances are counted: a restart reuses the descriptors its
// previous process released.
type fdBudget struct {
	reserve     int // descriptors kept for the slave itself
	perInstance int // what one instance is counted for while it starts
	count       func() (open, limit int, err error)

	mu      sync.Mutex
	pending map[string]bool // svc/inst admitted, no start reported yet
}

// Defaults of the budget: a reserve that covers the etcd connections, a
// registration, the watchdog and a few dozen log requests (a connection and
// a file each); an instance counted, while it starts, for what a start
// holds at its peak (internal/proc.Spawn, no os/exec): its two output
// pipes (both ends until the child has them), its stdin (/dev/null), its
// pidfd, the pipe syscall.ForkExec reports the exec's outcome on and a log
// file for the start marker. Once started it holds three (its pidfd and
// the read ends of its two pipes), plus a log file per stream once it has
// printed, and is counted as it is (OpenFiles). An instance whose output
// is discarded (SlaveConfig.DiscardOutput) has no pipes and no log file:
// its start holds /dev/null, its pidfd and the exec's pipe, and it keeps
// its pidfd alone.
const (
	fdReserve            = 128
	fdPerInstance        = 10
	fdPerDiscardInstance = 4
)

// newFDBudget returns a budget for instances whose output is captured, or
// discarded with discard.
func newFDBudget(discard bool) *fdBudget {
	per := fdPerInstance
	if discard {
		per = fdPerDiscardInstance
	}
	return &fdBudget{reserve: fdReserve, perInstance: per, count: proc.OpenFiles, pending: map[string]bool{}}
}

// errStartsUnderWay says an instance does not fit beside the starts under
// way but would fit alone: it waits for them (each is counted for its peak,
// and most hold less once started) rather than be failed.
var errStartsUnderWay = errors.New("descriptors: wait for the starts under way")

// admit counts key in, or says why it does not fit: errStartsUnderWay
// while starts are under way, or the limit when even alone it does not.
func (b *fdBudget) admit(key string) error {
	open, limit, err := b.count()
	if err != nil {
		return nil // cannot tell: let the start itself find out
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if open+(len(b.pending)+1)*b.perInstance+b.reserve > limit {
		if len(b.pending) > 0 && open+b.perInstance+b.reserve <= limit {
			return errStartsUnderWay
		}
		return fmt.Errorf("not started: %d of this slave's %d descriptors (RLIMIT_NOFILE) are open, "+
			"an instance takes about %d and %d are kept for etcd, registration and the log server; "+
			"raise the limit (gdpm-slave -max-open-files, systemd LimitNOFILE=) or run fewer instances here",
			open, limit, b.perInstance, b.reserve)
	}
	b.pending[key] = true
	return nil
}

// started ends key's start, if it was under way (and says so): its
// descriptors are open now, and counted.
func (b *fdBudget) started(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.pending[key] {
		return false
	}
	delete(b.pending, key)
	return true
}

// starting is how many admitted instances have not reported a start yet.
func (b *fdBudget) starting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// explain adds the limit to an error of a start that failed because the
// table was full, which alone ("too many open files") does not say whose
// limit it is nor what to do.
func (b *fdBudget) explain(msg string) string {
	if !strings.Contains(msg, "too many open files") {
		return msg
	}
	_, limit, err := b.count()
	if err != nil {
		return msg
	}
	return fmt.Sprintf("%s (this slave's RLIMIT_NOFILE of %d is reached: raise it, or run fewer instances here)", msg, limit)
}
