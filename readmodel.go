package gdpm

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The master's read model: the API's views of etcd (nodes, services, their
// instances and placements), each read at one revision, which the
// handlers, the event stream and the metrics share.

// readNodes returns the registered nodes by registration time, and the
// revision read.
func (m *Master) readNodes(ctx context.Context) ([]Node, int64, error) {
	resp, err := m.cli.Get(ctx, m.k.nodes(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, storeErr("gdpm: read nodes", err)
	}
	nodes := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n Node
		if json.Unmarshal(kv.Value, &n) == nil {
			nodes = append(nodes, n)
		}
	}
	sort.Slice(nodes, func(i, j int) bool {
		if !nodes[i].RegisteredAt.Equal(nodes[j].RegisteredAt) {
			return nodes[i].RegisteredAt.Before(nodes[j].RegisteredAt)
		}
		return nodes[i].ID < nodes[j].ID
	})
	return nodes, resp.Header.Revision, nil
}

// scanKeys calls fn for every key under prefix at rev, in pages, so a large
// cluster is never read in one response.
func (m *Master) scanKeys(ctx context.Context, prefix string, rev int64, fn func(key string)) error {
	return m.scan(ctx, prefix, rev, true, func(key string, _ []byte) { fn(key) })
}

// scanKVs is scanKeys with the values.
func (m *Master) scanKVs(ctx context.Context, prefix string, rev int64, fn func(key string, val []byte)) error {
	return m.scan(ctx, prefix, rev, false, fn)
}

func (m *Master) scan(ctx context.Context, prefix string, rev int64, keysOnly bool, fn func(key string, val []byte)) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithRev(rev),
			clientv3.WithLimit(10000), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		resp, err := m.cli.Get(ctx, from, opts...)
		if err != nil {
			return storeErr("gdpm: read "+strings.TrimPrefix(prefix, m.k.p), err)
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (m *Master) readServices(ctx context.Context, rev int64) (map[string]Service, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := m.cli.Get(ctx, m.k.services(), opts...)
	if err != nil {
		return nil, storeErr("gdpm: read services", err)
	}
	out := make(map[string]Service, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var s Service
		if json.Unmarshal(kv.Value, &s) == nil {
			out[s.ID] = s
		}
	}
	return out, nil
}

// instanceTable is where every instance of some services is, at one
// revision: inst -> node ("" for pending), and the slaves' statuses.
type instanceTable struct {
	where  map[string]map[string]string // svc -> inst -> node
	status map[string]InstanceStatus    // svc/inst -> status
	placed map[string]placement         // svc/inst -> what its assignment says
	usage  map[string]InstanceUsage     // svc/inst -> its slave's last sample
}

// readInstances reads placements and statuses; svc "" means all services.
func (m *Master) readInstances(ctx context.Context, rev int64, svc string) (instanceTable, error) {
	t := instanceTable{where: map[string]map[string]string{}, status: map[string]InstanceStatus{}, placed: map[string]placement{}}
	put := func(s, inst, node string, val []byte) {
		if t.where[s] == nil {
			t.where[s] = map[string]string{}
		}
		t.where[s][inst] = node
		t.placed[s+"/"+inst] = placementOf(node, val)
	}
	err := m.scanKVs(ctx, m.k.assignAll(), rev, func(key string, val []byte) {
		if node, s, inst, ok := m.k.splitAssign(key); ok && (svc == "" || s == svc) {
			put(s, inst, node, val)
		}
	})
	if err != nil {
		return t, err
	}
	pendingPrefix, statusPrefix := m.k.pendingAll(), m.k.statusAll()
	if svc != "" {
		pendingPrefix, statusPrefix = m.k.pending(svc, ""), m.k.statuses(svc)
	}
	err = m.scanKVs(ctx, pendingPrefix, rev, func(key string, val []byte) {
		if s, inst, ok := splitPair(key, m.k.pendingAll()); ok {
			put(s, inst, "", val)
		}
	})
	if err != nil {
		return t, err
	}
	resp, err := m.cli.Get(ctx, statusPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return t, storeErr("gdpm: read status", err)
	}
	leases, err := readNodeLeases(ctx, m.cli, m.k, rev)
	if err != nil {
		return t, err
	}
	usage, err := readUsage(ctx, m.cli, m.k, rev, svc)
	if err != nil {
		return t, err
	}
	// An instance's sample counts from the node it is placed on only: a
	// node that ran it before (a sample not yet rewritten) or any other
	// slave (each writes its own usage keys, of whatever instances it
	// names) does not speak for it.
	t.usage = map[string]InstanceUsage{}
	for node, u := range usage {
		for key, iu := range u.Instances {
			if s, inst, ok := strings.Cut(key, "/"); ok && (svc == "" || s == svc) && t.where[s][inst] == node {
				t.usage[key] = iu
			}
		}
	}
	// A status counts only on its node's lease (statustrust.go).
	for _, kv := range resp.Kvs {
		if st, ok := m.k.trustedStatus(kv, leases); ok {
			t.status[st.Service+"/"+st.Instance] = st
		}
	}
	return t, nil
}

// readSchedFailures reads why the scheduler cannot place services (svc ""
// means all), by service id. The scheduler removes a record once it
// places the service.
func (m *Master) readSchedFailures(ctx context.Context, rev int64, svc string) (map[string]string, error) {
	key, opts := m.k.failed(svc), []clientv3.OpOption{clientv3.WithRev(rev)}
	if svc == "" {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := m.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, storeErr("gdpm: read scheduling failures", err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		var f schedFailure
		if json.Unmarshal(kv.Value, &f) == nil {
			out[strings.TrimPrefix(string(kv.Key), m.k.failedAll())] = f.Error
		}
	}
	return out, nil
}

// info describes one instance: its placement joined with the status its
// node reported (a status from another node is stale and ignored).
func (t instanceTable) info(svc, inst string) InstanceInfo {
	node := t.where[svc][inst]
	p := t.placed[svc+"/"+inst]
	in := InstanceInfo{ID: inst, Node: node, State: StatePending, Index: p.index, Version: p.version}
	if node == "" {
		return in
	}
	in.State = StateAssigned
	if st, ok := t.status[svc+"/"+inst]; ok && st.Node == node {
		in.State, in.PID, in.ExitCode, in.Restarts, in.StartedAt, in.Error, in.Ports =
			st.State, st.PID, st.ExitCode, st.Restarts, st.StartedAt, st.Error, st.Ports
		in.Health, in.HealthError, in.LastError, in.LastErrorAt = st.Health, st.HealthError, st.LastError, st.LastErrorAt
		if u, ok := t.usage[svc+"/"+inst]; ok && u.PID == st.PID {
			in.CPU, in.RSS = u.CPU, u.RSS
		}
	}
	return in
}

// counts returns how many instances of svc run and how many wait.
func (t instanceTable) counts(svc string) (running, pending int) {
	for inst, node := range t.where[svc] {
		switch {
		case node == "":
			pending++
		case t.info(svc, inst).State == StateRunning:
			running++
		}
	}
	return running, pending
}

func (m *Master) currentRev(ctx context.Context) (int64, error) {
	resp, err := m.cli.Get(ctx, m.k.cursor(), clientv3.WithCountOnly())
	if err != nil {
		return 0, storeErr("gdpm: read", err)
	}
	return resp.Header.Revision, nil
}

// getService reads one service; ErrNotFound when it does not exist.
func (m *Master) getService(ctx context.Context, id string) (Service, int64, int64, error) {
	resp, err := m.cli.Get(ctx, m.k.service(id))
	if err != nil {
		return Service{}, 0, 0, storeErr("gdpm: read service", err)
	}
	if len(resp.Kvs) == 0 {
		return Service{}, 0, 0, fmt.Errorf("service %q: %w", id, ErrNotFound)
	}
	var s Service
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return Service{}, 0, 0, fmt.Errorf("gdpm: service %q is corrupt: %v", id, err)
	}
	return s, resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}
