package gdpm

import (
	"context"
	"encoding/json"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Which instance statuses to believe. A status key is by service and
// instance, not by node, so etcd's auth lets every slave write every
// status (etcdauth.go), and a status names its node in its value. What a
// slave cannot do is put a key on another node's lease: etcd refuses a Put
// with a lease unless the user may write every key already on it
// (checkLeasePuts in etcd's server/etcdserver/apply/auth.go), and each
// node's lease carries its node record, which only that node may write.
// Each slave writes its statuses on the lease of its node record
// (slavestatus.go), so a status counts only when it rides the lease of the
// node record it names, read at the same revision: one another slave
// forged does not, nor one a previous session of the node left behind.
// Without auth the check is the same and still drops such stale statuses.

// readNodeLeases reads the lease of every node record at rev, by node id.
// Not WithKeysOnly: etcd answers a keys-only range from its index, which
// leaves the lease out.
func readNodeLeases(ctx context.Context, cli *clientv3.Client, k keyspace, rev int64) (map[string]int64, error) {
	resp, err := cli.Get(ctx, k.nodes(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, storeErr("gdpm: read nodes", err)
	}
	leases := make(map[string]int64, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		leases[string(kv.Key[len(k.nodes()):])] = kv.Lease
	}
	return leases, nil
}

// trustedStatus decodes a status key and says whether it counts: it is
// stored under the instance it names, and on the lease of the record of
// the node it names (leases: node id -> lease, at the status's revision).
func (k keyspace) trustedStatus(kv *mvccpb.KeyValue, leases map[string]int64) (InstanceStatus, bool) {
	var st InstanceStatus
	if kv == nil || len(kv.Value) == 0 || json.Unmarshal(kv.Value, &st) != nil {
		return st, false
	}
	lease, ok := leases[st.Node]
	return st, ok && lease != 0 && kv.Lease == lease && string(kv.Key) == k.status(st.Service, st.Instance)
}
