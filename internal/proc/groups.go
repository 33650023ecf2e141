//go:build linux

package proc

import (
	"log/slog"
	"time"
)

// Supported tells whether this system can supervise processes.
const Supported = true

// Groups keeps the process groups of a slave's live instances so that none
// outlives the slave (see groupTracker).
type Groups struct{ t *groupTracker }

// OpenGroups locks dataDir (ErrDataDirInUse if another slave holds it),
// kills the groups a previous run on it left alive, and starts the
// watchdog; with subreaper it makes this process a child subreaper and
// reaps the instances' orphans until Close.
func OpenGroups(dataDir string, subreaper bool, log *slog.Logger) (*Groups, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := openGroupTracker(dataDir, subreaper, log)
	if err != nil {
		return nil, err
	}
	return &Groups{t: t}, nil
}

// Add records a started instance's group (Config.OnStart).
func (g *Groups) Add(pgid int, startTime uint64) { g.t.add(pgid, startTime) }

// Remove forgets a group that has been killed (Config.OnExit).
func (g *Groups) Remove(pgid int) { g.t.remove(pgid) }

// Arm sets the watchdog's dead man's switch: unless Arm is called again
// with a later deadline before deadline passes, the watchdog kills every
// group, and every group added after that, until a deadline in the future
// comes. A deadline already past kills at once.
func (g *Groups) Arm(deadline time.Time) { g.t.arm(deadline) }

// Disarm lifts the dead man's switch.
func (g *Groups) Disarm() { g.t.disarm() }

// Close ends the watchdog, which kills the groups still recorded (none
// after every instance stopped), and the reaper. It is idempotent.
func (g *Groups) Close() error { return g.t.close() }
