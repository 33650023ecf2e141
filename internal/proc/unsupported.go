//go:build !linux

package proc

import (
	"log/slog"
	"time"
)

// Supported tells whether this system can supervise processes.
const Supported = false

// Groups is never opened on this system.
type Groups struct{}

// OpenGroups fails with ErrUnsupported.
func OpenGroups(dataDir string, subreaper bool, log *slog.Logger) (*Groups, error) {
	return nil, ErrUnsupported
}

func (g *Groups) Add(pgid int, startTime uint64) {}
func (g *Groups) Remove(pgid int)                {}
func (g *Groups) Arm(deadline time.Time)         {}
func (g *Groups) Disarm()                        {}
func (g *Groups) Close() error                   { return nil }

// StartTime is 0: unknown.
func StartTime(pid int) uint64 { return 0 }

// Alive is false: unknown.
func Alive(pid int) bool { return false }

// GroupMembers is empty: unknown.
func GroupMembers(groups ...int) []int { return nil }

// OpenFiles fails with ErrUnsupported.
func OpenFiles() (open, limit int, err error) { return 0, 0, ErrUnsupported }

// SpawnThreadForTests does nothing: there is no spawning thread here.
func SpawnThreadForTests() {}
