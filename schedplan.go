package gdpm

import (
	"encoding/json"
	"time"
)

// plan appends the units that bring one service to its desired state:
// one instance of the service's current Version at each index
// 0..InstanceNum-1 (none while it is stopped).
//
// Per index, an instance of the current version is kept (moved when its
// node is gone); an index with none gets a new one, unless an instance of
// an older version still runs there: that index waits for its turn in the
// rollout. A turn places the new instance beside the old one, with the
// same index; once the new one has run for MinReady the old one is
// removed, and the next waiting index gets its turn. At most
// MaxUnavailable indices are in turn at once. A new instance that exits or
// is not running within ReadyTimeout halts the rollout (rollout.go): it is
// removed, a record says why, and the old instances are left alone until
// the spec changes again. Indices at or above InstanceNum are removed, so
// a scale-down removes the highest.
func (s *scheduler) plan(id string, now time.Time, units []unit) []unit {
	v := s.view
	entry, exists := v.services[id]
	insts := v.instances[id]
	delete(s.rolling, id)

	keyOf := func(inst string) string {
		if n := insts[inst].node; n != "" {
			return s.k.assign(n, id, inst)
		}
		return s.k.pending(id, inst)
	}
	remove := func(inst string) {
		units = append(units, unit{service: id, del: keyOf(inst)})
	}
	if failedRev, failed := v.failed[id]; failed {
		if exists && failedRev == entry.modRev {
			return units // refused as it stands; a change tries again
		}
		// Changed or gone since it failed: the record goes with
		// this plan's first transaction for the service.
		units = append(units, unit{service: id, del: s.k.failed(id), meta: true})
	}
	if !exists {
		for _, inst := range sortedKeys(insts) {
			remove(inst)
		}
		s.forgetRollout(id)
		return units
	}

	want := entry.InstanceNum
	if entry.Stopped {
		want = 0
	}
	ver := entry.version
	halt, halted := v.halts[id]
	if halted && halt.Version != ver {
		units = append(units, unit{service: id, del: s.k.halt(id)})
		halted = false
	}

	byIndex := map[int][]string{}
	for _, inst := range sortedKeys(insts) {
		p := insts[inst]
		if p.index < 0 || p.index >= want {
			remove(inst)
			continue
		}
		byIndex[p.index] = append(byIndex[p.index], inst)
	}

	place := func(inst, oldKey string, index int) {
		node := v.nextNode()
		u := unit{service: id, del: oldKey}
		if node == "" {
			if oldKey == s.k.pending(id, inst) {
				return // stays in the queue
			}
			u.put = s.k.pending(id, inst)
		} else {
			u.put = s.k.assign(node, id, inst)
			u.placed, u.cursor = true, node
		}
		val, _ := json.Marshal(Assignment{SpecRev: entry.modRev, PlacedAt: now, Index: index, Version: ver})
		u.val = string(val)
		units = append(units, u)
	}
	fresh := map[string]bool{}
	placeNew := func(index int) {
		inst := newInstanceID(func(id string) bool { _, used := insts[id]; return used || fresh[id] })
		fresh[inst] = true
		place(inst, "", index)
	}
	live := func(inst string) bool {
		n := insts[inst].node
		return n != "" && v.live(n)
	}

	inflight := 0
	var waiting []int // indices whose old instance waits for its turn
	for i := range want {
		keeper := ""
		var old []string
		for _, inst := range byIndex[i] {
			switch {
			case insts[inst].version != ver && live(inst) && !s.down(id, inst, insts[inst]):
				old = append(old, inst)
			case insts[inst].version != ver:
				// An old instance that runs nowhere, or that
				// exited and waits to restart: it serves
				// nothing, so there is nothing to wait for.
				remove(inst)
			case keeper == "":
				keeper = inst
			case live(inst) && !live(keeper):
				remove(keeper)
				keeper = inst
			default:
				remove(inst) // a second current instance of the index
			}
		}
		switch {
		case keeper == "" && len(old) == 0:
			placeNew(i)
		case keeper == "":
			waiting = append(waiting, i)
		case !live(keeper):
			// Its node went away, or it waits for one: it moves,
			// keeping its index.
			place(keeper, keyOf(keeper), i)
			if len(old) > 0 {
				inflight++
			}
		case len(old) > 0:
			ready, why := s.readiness(id, keeper, insts[keeper], entry.Rollout, now)
			switch {
			case ready:
				for _, inst := range old {
					remove(inst)
				}
			case why != "":
				units = s.haltRollout(id, keeper, i, ver, why, now, units)
				remove(keeper)
				halted = true
			default:
				inflight++
			}
		}
	}
	for _, i := range waiting {
		if halted || inflight >= entry.Rollout.maxUnavailable() {
			break
		}
		placeNew(i)
		inflight++
	}
	if inflight > 0 || (len(waiting) > 0 && !halted) {
		s.rolling[id] = true
	} else {
		s.forgetRollout(id)
	}
	return units
}
