package gdpm

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeUsage is what a slave reports about its host and its instances'
// resource use, every UsageInterval, in one record: usage/<node>, bound to
// its lease. One record per node (not a field of each instance status)
// keeps the sampling out of the status keys, whose changes are events and
// wake the scheduler: 1,000 instances cost one write per interval. A
// record equal to the last one is not written again, and one whose
// instances did not change is written for the host's figures (MemAvailable,
// Load1) at most every 30 s: they move with every sample, and the record is
// about 230 bytes an instance.
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
	// Instances are by "SERVICE/INSTANCE".
	Instances map[string]InstanceUsage `json:"Instances"`
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

// readUsage reads every node's usage record at rev, by node id.
func (m *Master) readUsage(ctx context.Context, rev int64) (map[string]NodeUsage, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := m.cli.Get(ctx, m.k.usageAll(), opts...)
	if err != nil {
		return nil, storeErr("gdpm: read usage", err)
	}
	out := map[string]NodeUsage{}
	for _, kv := range resp.Kvs {
		var u NodeUsage
		if json.Unmarshal(kv.Value, &u) == nil {
			out[u.Node] = u
		}
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
