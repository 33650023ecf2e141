package gdpm

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeUsage is what a slave reports about its host and its instances'
// resource use, every UsageInterval, bound to its lease. It is not a field
// of each instance status: the sampling stays out of the status keys,
// whose changes are events and wake the scheduler.
//
// In etcd it is split (usagereport.go): usage/<node> holds the host's
// figures and the totals, without Instances, and the instances are in
// shards of at most usageShardInstances of one service each,
// usage/<node>/<svc>/<n>, so that no record nears etcd's request limit
// (one record of every instance, about 110 bytes each, was refused past
// about 14,000) and a changed instance rewrites its shard, not every
// instance's figures. readUsage merges the shards back into Instances,
// and still reads the single record of a slave from before (Instances
// in usage/<node>) during a rolling upgrade.
type NodeUsage struct {
	Node     string `json:"Node"`
	Hostname string `json:"Hostname"`
	// Cores is the number of CPUs the host has; MemTotal its memory in
	// bytes, MemAvailable what /proc/meminfo says is available.
	Cores        int   `json:"Cores"`
	MemTotal     int64 `json:"MemTotal"`
	MemAvailable int64 `json:"MemAvailable"`
	// Load1 is the host's one-minute load average.
	Load1 float64 `json:"Load1"`
	// CPU and RSS sum the instances' (percent of one core, bytes).
	CPU float64 `json:"CPU"`
	RSS int64   `json:"RSS"`
	// Instances are by "SERVICE/INSTANCE". Empty in usage/<node> (the
	// shards hold them) except from a slave from before the shards.
	Instances map[string]InstanceUsage `json:"Instances,omitempty"`
	// Cgroups says which cgroup version enforces limits on the node:
	// "v2", "v1", or "" when none is writable.
	Cgroups string `json:"Cgroups,omitempty"`
}

// InstanceUsage is one instance's sample: the whole process group's CPU
// (percent of one core over the last interval) and resident memory.
type InstanceUsage struct {
	PID int     `json:"PID"` // the group leader the sample is of
	CPU float64 `json:"CPU"`
	RSS int64   `json:"RSS"`
}

// usageEntry is one instance's figures in a usage shard, whose value is a
// JSON array of them (an array, not an object: a master from before the
// shards decodes every usage/ value as a NodeUsage, and skips an array
// instead of taking it for a node without an id).
type usageEntry struct {
	Instance string `json:"Instance"`
	InstanceUsage
}

// readUsage reads every node's usage at rev (0: the latest), by node id.
func (m *Master) readUsage(ctx context.Context, rev int64) (map[string]NodeUsage, error) {
	return readUsage(ctx, m.cli, m.k, rev, "")
}

// readUsage reads every node's usage at rev (0: the latest), by node id:
// its record, with its shards merged into Instances. With svc set, only
// that service's shards are decoded (another's are skipped by their key),
// so Instances holds svc's instances and, from a slave from before the
// shards, every instance.
func readUsage(ctx context.Context, cli *clientv3.Client, k keyspace, rev int64, svc string) (map[string]NodeUsage, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := cli.Get(ctx, k.usageAll(), opts...)
	if err != nil {
		return nil, storeErr("gdpm: read usage", err)
	}
	out := map[string]NodeUsage{}
	for _, kv := range resp.Kvs {
		node, shardSvc, isShard, ok := k.splitUsage(string(kv.Key))
		if !ok || (isShard && svc != "" && shardSvc != svc) {
			continue
		}
		u := out[node]
		if !isShard {
			var rec NodeUsage
			if json.Unmarshal(kv.Value, &rec) != nil {
				continue
			}
			for key, iu := range u.Instances { // shards read first
				if rec.Instances == nil {
					rec.Instances = map[string]InstanceUsage{}
				}
				rec.Instances[key] = iu
			}
			rec.Node, out[node] = node, rec
			continue
		}
		var entries []usageEntry
		if json.Unmarshal(kv.Value, &entries) != nil {
			continue
		}
		if u.Instances == nil {
			u.Instances = make(map[string]InstanceUsage, len(entries))
		}
		for _, e := range entries {
			u.Instances[shardSvc+"/"+e.Instance] = e.InstanceUsage
		}
		u.Node, out[node] = node, u
	}
	return out, nil
}

// checkEnforceable refuses a spec with MemoryLimit or CPULimit when nodes
// have reported and none of them can enforce limits (no writable cgroup):
// such a service would never run, and it must not run unbounded. With no
// report yet (no node, or nodes just started) the service is accepted;
// a slave that cannot enforce the limits then refuses to start its
// instances (state failed, ErrNoCgroups).
func (m *Master) checkEnforceable(ctx context.Context, s Spec) error {
	if !s.limited() {
		return nil
	}
	usage, err := m.readUsage(ctx, 0)
	if err != nil {
		return err
	}
	if len(usage) == 0 {
		return nil
	}
	for _, u := range usage {
		if u.Cgroups != "" {
			return nil
		}
	}
	return fmt.Errorf("MemoryLimit and CPULimit need cgroups, and no node has a writable cgroup hierarchy to enforce them (the service would run unbounded): %w", ErrBadRequest)
}
