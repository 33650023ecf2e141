package gdpm

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// clusterView is the scheduler's copy of the placement state: built from one
// read of the prefix and kept current by the watch that follows it. Only the
// scheduler's goroutine touches it.
type clusterView struct {
	k   keyspace
	rev int64 // the etcd revision the view reflects

	nodes    map[string]Node
	nodeIDs  []string // sorted ids of nodes that take work
	services map[string]serviceEntry
	// instances holds every assigned or pending instance, by service.
	instances map[string]map[string]placement
	cursor    string
	// failed holds the services whose placement etcd refused, with the
	// mod revision of the record that failed: the scheduler does not try
	// that revision again; a change of the service (a scale) tries again.
	failed map[string]int64
	// halts holds the services whose rollout stopped on a failing new
	// instance (rollout/SERVICE).
	halts map[string]rolloutHalt
}

type serviceEntry struct {
	Service
	modRev  int64
	version string // Service.version(), computed once
}

// placement is where an instance is (on a node, or pending when node is
// ""), with what its assignment says: its index and version.
type placement struct {
	node     string
	index    int
	version  string
	placedAt time.Time
}

func newClusterView(k keyspace) *clusterView {
	return &clusterView{
		k:         k,
		nodes:     map[string]Node{},
		services:  map[string]serviceEntry{},
		instances: map[string]map[string]placement{},
		failed:    map[string]int64{},
		halts:     map[string]rolloutHalt{},
	}
}

// change says what an applied event touched, so the scheduler knows what to
// look at again.
type change struct {
	service   string // a service's spec changed or it was deleted
	nodes     bool   // the set of nodes changed
	placement string // an instance of this service was placed or removed
}

// apply folds one key-value event into the view.
func (v *clusterView) apply(kv *mvccpb.KeyValue, deleted bool) change {
	key := string(kv.Key)
	switch {
	case strings.HasPrefix(key, v.k.nodes()):
		id := strings.TrimPrefix(key, v.k.nodes())
		var n Node
		if deleted || json.Unmarshal(kv.Value, &n) != nil {
			delete(v.nodes, id)
		} else {
			v.nodes[id] = n
		}
		v.sortNodes()
		return change{nodes: true}
	case strings.HasPrefix(key, v.k.services()):
		id := strings.TrimPrefix(key, v.k.services())
		var s Service
		if deleted || json.Unmarshal(kv.Value, &s) != nil {
			delete(v.services, id)
		} else {
			v.services[id] = serviceEntry{Service: s, modRev: kv.ModRevision, version: s.version()}
		}
		return change{service: id}
	case strings.HasPrefix(key, v.k.assignAll()):
		node, svc, inst, ok := v.k.splitAssign(key)
		if ok {
			v.setInstance(svc, inst, placementOf(node, kv.Value), deleted)
			return change{placement: svc}
		}
	case strings.HasPrefix(key, v.k.pendingAll()):
		if svc, inst, ok := splitPair(key, v.k.pendingAll()); ok {
			v.setInstance(svc, inst, placementOf("", kv.Value), deleted)
			return change{placement: svc}
		}
	case strings.HasPrefix(key, v.k.haltAll()):
		id := strings.TrimPrefix(key, v.k.haltAll())
		var h rolloutHalt
		if deleted || json.Unmarshal(kv.Value, &h) != nil {
			delete(v.halts, id)
		} else {
			v.halts[id] = h
		}
		return change{placement: id}
	case strings.HasPrefix(key, v.k.failedAll()):
		id := strings.TrimPrefix(key, v.k.failedAll())
		var f schedFailure
		if deleted || json.Unmarshal(kv.Value, &f) != nil {
			delete(v.failed, id)
		} else {
			v.failed[id] = f.SpecRev
		}
		return change{placement: id}
	case key == v.k.cursor():
		v.cursor = string(kv.Value)
	}
	return change{}
}

// placementOf reads an assignment's value. One that cannot be read is
// index -1, which no plan keeps.
func placementOf(node string, val []byte) placement {
	var a Assignment
	if len(val) > 0 && json.Unmarshal(val, &a) != nil {
		a.Index = -1
	}
	return placement{node: node, index: a.Index, version: a.Version, placedAt: a.PlacedAt}
}

func (v *clusterView) setInstance(svc, inst string, p placement, deleted bool) {
	m := v.instances[svc]
	node := p.node
	if deleted {
		// A move deletes the old key and puts the new one in one
		// transaction; ignore a delete of a place the instance has left.
		if p, ok := m[inst]; ok && p.node == node {
			delete(m, inst)
			if len(m) == 0 {
				delete(v.instances, svc)
			}
		}
		return
	}
	if m == nil {
		m = map[string]placement{}
		v.instances[svc] = m
	}
	m[inst] = p
}

// sortNodes rebuilds the rotation: every online node, by id.
func (v *clusterView) sortNodes() {
	v.nodeIDs = v.nodeIDs[:0]
	for id, n := range v.nodes {
		if n.Status == NodeOnline {
			v.nodeIDs = append(v.nodeIDs, id)
		}
	}
	sort.Strings(v.nodeIDs)
}

// live reports whether node exists and is online.
func (v *clusterView) live(node string) bool {
	n, ok := v.nodes[node]
	return ok && n.Status == NodeOnline
}

// nextNode returns the node after the cursor in the rotation and advances
// the cursor. It returns "" when there is no node.
func (v *clusterView) nextNode() string {
	if len(v.nodeIDs) == 0 {
		return ""
	}
	i := sort.SearchStrings(v.nodeIDs, v.cursor)
	if i < len(v.nodeIDs) && v.nodeIDs[i] == v.cursor {
		i++
	}
	if i >= len(v.nodeIDs) {
		i = 0
	}
	v.cursor = v.nodeIDs[i]
	return v.cursor
}
