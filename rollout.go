package gdpm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RolloutPolicy shapes how a changed spec replaces a service's instances.
// Zero fields take the defaults noted.
type RolloutPolicy struct {
	// MaxUnavailable is how many instances may be short of InstanceNum
	// during a rollout, and so how many indices are replaced at once.
	// Default 1.
	MaxUnavailable int `json:"MaxUnavailable,omitempty"`
	// MinReady is how long a new instance must run, without a restart,
	// before the old instance of its index is stopped. Default 2s.
	MinReady Duration `json:"MinReady,omitempty"`
	// ReadyTimeout is how long a new instance has, from its placement,
	// to be running for MinReady; past it the rollout halts. Default 1m.
	ReadyTimeout Duration `json:"ReadyTimeout,omitempty"`
}

func (p RolloutPolicy) maxUnavailable() int {
	return orDefault(p.MaxUnavailable, DefaultMaxUnavailable)
}
func (p RolloutPolicy) minReady() time.Duration {
	return orDefault(time.Duration(p.MinReady), DefaultMinReady)
}
func (p RolloutPolicy) readyTimeout() time.Duration {
	return orDefault(time.Duration(p.ReadyTimeout), DefaultReadyTimeout)
}

func (p RolloutPolicy) check() error {
	switch {
	case p.MaxUnavailable < 0:
		return fmt.Errorf("Rollout.MaxUnavailable must not be negative: %w", ErrBadRequest)
	case p.MinReady < 0 || time.Duration(p.MinReady) > time.Hour:
		return fmt.Errorf("Rollout.MinReady must be between 0 and 1h: %w", ErrBadRequest)
	case p.ReadyTimeout < 0 || time.Duration(p.ReadyTimeout) > 24*time.Hour:
		return fmt.Errorf("Rollout.ReadyTimeout must be between 0 and 24h: %w", ErrBadRequest)
	}
	return nil
}

// version names what a service's instances run: a hash of its Spec and
// its restart count. Scaling, stopping and the rollout policy leave it
// alone; any change of the spec, or a restart, makes a new one, and the
// scheduler rolls the instances of other versions over to it. Because it
// hashes the content, applying a previous spec again brings back the
// previous version: the instances that still run it are current again.
func (s Service) version() string {
	// Defaults are spelt out, so that a spec that states one and a spec
	// that leaves it out are the same version.
	sp := s.Spec
	sp.Restart, sp.StopTimeout = sp.restartPolicy(), Duration(sp.stopTimeout())
	b, _ := json.Marshal(sp)
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(s.Restarted)))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// rolloutHalt is the value of rollout/SERVICE: the rollout to Version
// stopped because a new instance failed; the old instances are left as
// they are until the spec changes again.
type rolloutHalt struct {
	Version  string    `json:"Version"`
	Instance string    `json:"Instance"`
	Index    int       `json:"Index"`
	Error    string    `json:"Error"`
	Time     time.Time `json:"Time"`
}

// rolloutTick is how often the scheduler looks at the services with a
// rollout in flight: how soon a new instance that has run for MinReady
// replaces its old one.
const rolloutTick = 200 * time.Millisecond

// readRolloutStatuses reads the instance statuses of the services about to
// be planned that have a rollout in flight or instances of another
// version: the plan judges the new instances by them. The scheduler's
// watch leaves the busy status keys out, so they are read here, one
// range per rolling service and pass, all at the revision of the first,
// at which the node leases that judge them are read once.
func (s *scheduler) readRolloutStatuses(ctx context.Context, ids []string) error {
	var rev int64
	var leases map[string]int64
	for _, id := range ids {
		entry, ok := s.view.services[id]
		if !ok {
			continue
		}
		need := s.rolling[id]
		for _, p := range s.view.instances[id] {
			need = need || p.version != entry.version
		}
		if !need {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(cctx, s.k.statuses(id), opts...)
		if err != nil {
			cancel()
			return storeErr("gdpm: scheduler read statuses", err)
		}
		if leases == nil {
			rev = resp.Header.Revision
			leases, err = readNodeLeases(cctx, s.cli, s.k, rev)
		}
		cancel()
		if err != nil {
			return err
		}
		// Only statuses on their node's lease (statustrust.go): a
		// forged "running" must not let a rollout stop old instances.
		m := map[string]InstanceStatus{}
		for _, kv := range resp.Kvs {
			if st, ok := s.k.trustedStatus(kv, leases); ok {
				m[st.Instance] = st
			}
		}
		s.statuses[id] = m
	}
	return nil
}

// readiness judges a new instance in its rollout turn: ready once this
// term has seen it running, without a restart, for MinReady; failed (why
// is set) when it exited, could not start, restarted, or was not ready
// within ReadyTimeout of its placement. The time is the scheduler's own,
// so the slaves' clocks do not matter; a new leader waits MinReady again.
func (s *scheduler) readiness(svc, inst string, p placement, pol RolloutPolicy, now time.Time) (ready bool, why string) {
	st, ok := s.statuses[svc][inst]
	if ok && st.Node == p.node {
		switch st.State {
		case StateRunning:
			if st.Restarts > 0 {
				return false, fmt.Sprintf("new instance %s (index %d) exited and was restarted %d times", inst, p.index, st.Restarts)
			}
			if st.Health == HealthStarting || st.Health == HealthUnhealthy {
				break // with a check, ready means healthy
			}
			since := s.runningSince[svc][inst]
			if since.IsZero() {
				if s.runningSince[svc] == nil {
					s.runningSince[svc] = map[string]time.Time{}
				}
				since = now
				s.runningSince[svc][inst] = now
			}
			if now.Sub(since) >= pol.minReady() {
				return true, ""
			}
		case StateBackoff, StateExited:
			msg := fmt.Sprintf("new instance %s (index %d) exited", inst, p.index)
			if st.ExitCode != nil {
				msg += fmt.Sprintf(" with code %d", *st.ExitCode)
			}
			return false, msg
		case StateFailed:
			return false, fmt.Sprintf("new instance %s (index %d) could not start: %s", inst, p.index, st.Error)
		}
	}
	if !p.placedAt.IsZero() && now.Sub(p.placedAt) > pol.readyTimeout() {
		return false, fmt.Sprintf("new instance %s (index %d) did not run for %s within %s (ReadyTimeout)", inst, p.index, pol.minReady(), pol.readyTimeout())
	}
	return false, ""
}

// down reports whether an instance's node says it is not running: it
// exited (and waits to restart, or will not), or could not start.
func (s *scheduler) down(svc, inst string, p placement) bool {
	st, ok := s.statuses[svc][inst]
	if !ok || st.Node != p.node {
		return false
	}
	switch st.State {
	case StateBackoff, StateExited, StateFailed:
		return true
	}
	return false
}

// haltRollout appends the record that stops the rollout of svc to version.
func (s *scheduler) haltRollout(svc, inst string, index int, version, why string, now time.Time, units []unit) []unit {
	s.log.Warn("rollout halted", "service", svc, "version", version, "reason", why)
	val, _ := json.Marshal(rolloutHalt{Version: version, Instance: inst, Index: index, Error: truncate(why, 1024), Time: now})
	return append(units, unit{service: svc, put: s.k.halt(svc), val: string(val)})
}

// forgetRollout drops what the scheduler keeps about a finished rollout.
func (s *scheduler) forgetRollout(svc string) {
	delete(s.rolling, svc)
	delete(s.statuses, svc)
	delete(s.runningSince, svc)
}

// readHalts reads the rollout halt records (svc "" means all), by service.
func (m *Master) readHalts(ctx context.Context, rev int64, svc string) (map[string]rolloutHalt, error) {
	key, opts := m.k.halt(svc), []clientv3.OpOption{clientv3.WithRev(rev)}
	if svc == "" {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := m.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, storeErr("gdpm: read rollout records", err)
	}
	out := map[string]rolloutHalt{}
	for _, kv := range resp.Kvs {
		var h rolloutHalt
		if json.Unmarshal(kv.Value, &h) == nil {
			out[strings.TrimPrefix(string(kv.Key), m.k.haltAll())] = h
		}
	}
	return out, nil
}

// rolloutState says where svc is: stopped, halted, rolling or running.
func (t instanceTable) rolloutState(s Service, halt rolloutHalt) RolloutState {
	ver := s.version()
	st := RolloutState{Status: ServiceRunning, Version: ver}
	old := 0
	for inst := range t.where[s.ID] {
		if t.placed[s.ID+"/"+inst].version == ver {
			st.Updated++
		} else {
			old++
		}
	}
	switch {
	case s.Stopped:
		st.Status = ServiceStopped
	case halt.Version == ver:
		st.Status, st.RolloutError = ServiceHalted, halt.Error
	case old > 0:
		st.Status = ServiceUpdating
	}
	return st
}
