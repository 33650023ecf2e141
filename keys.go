package gdpm

import (
	"strconv"
	"strings"
)

// keyspace builds every etcd key gdpm uses. The layout:
//
//	<p>nodes/<node>                  Node, bound to the slave's lease
//	<p>services/<svc>                Service (desired state)
//	<p>assign/<node>/<svc>/<inst>    Assignment placed on node
//	<p>pending/<svc>/<inst>          Assignment waiting for a node
//	<p>status/<svc>/<inst>           InstanceStatus, bound to the slave's lease
//	                                 (believed only on its node record's lease)
//	<p>sched/cursor                  id of the node that got the last placement
//	<p>sched/failed/<svc>            schedFailure: why svc cannot be placed
//	<p>names/<name>                  the id of the service called name
//	<p>rollout/<svc>                 rolloutHalt: why svc's rollout stopped
//	<p>usage/<node>                  NodeUsage: host figures and totals, bound to the slave's lease
//	<p>usage/<node>/<svc>/<n>        []usageEntry: shard n of the node's instances of svc, on the lease
//	<p>election/                     leader election of the masters
//	<p>idempotency/<sha256 of key>   idemRecord of a create, on a 24h+ lease
//
// Assignment keys carry the node id first so that a slave reads and watches
// a single prefix, and so that etcd's auth can confine a slave to its own
// (etcdauth.go grants every key a slave touches; a new one needs a grant).
type keyspace struct{ p string }

func newKeyspace(prefix string) keyspace {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return keyspace{p: prefix}
}

func (k keyspace) nodes() string              { return k.p + "nodes/" }
func (k keyspace) node(id string) string      { return k.p + "nodes/" + id }
func (k keyspace) services() string           { return k.p + "services/" }
func (k keyspace) service(id string) string   { return k.p + "services/" + id }
func (k keyspace) assignAll() string          { return k.p + "assign/" }
func (k keyspace) assigns(node string) string { return k.p + "assign/" + node + "/" }
func (k keyspace) assign(node, svc, inst string) string {
	return k.p + "assign/" + node + "/" + svc + "/" + inst
}
func (k keyspace) pendingAll() string              { return k.p + "pending/" }
func (k keyspace) pending(svc, inst string) string { return k.p + "pending/" + svc + "/" + inst }
func (k keyspace) statusAll() string               { return k.p + "status/" }
func (k keyspace) statuses(svc string) string      { return k.p + "status/" + svc + "/" }
func (k keyspace) status(svc, inst string) string  { return k.p + "status/" + svc + "/" + inst }
func (k keyspace) cursor() string                  { return k.p + "sched/cursor" }
func (k keyspace) failedAll() string               { return k.p + "sched/failed/" }
func (k keyspace) failed(svc string) string        { return k.p + "sched/failed/" + svc }
func (k keyspace) usageAll() string                { return k.p + "usage/" }
func (k keyspace) usage(node string) string        { return k.p + "usage/" + node }
func (k keyspace) election() string                { return k.p + "election/" }
func (k keyspace) names() string                   { return k.p + "names/" }
func (k keyspace) name(name string) string         { return k.p + "names/" + name }
func (k keyspace) haltAll() string                 { return k.p + "rollout/" }
func (k keyspace) halt(svc string) string          { return k.p + "rollout/" + svc }
func (k keyspace) usageShard(node, svc string, n int) string {
	return k.p + "usage/" + node + "/" + svc + "/" + strconv.Itoa(n)
}

// splitAssign parses an assignment key into node, service and instance ids.
func (k keyspace) splitAssign(key string) (node, svc, inst string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(key, k.assignAll()), "/")
	if len(parts) != 3 || !strings.HasPrefix(key, k.assignAll()) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// splitPair parses "<prefix><a>/<b>" into a and b.
func splitPair(key, prefix string) (a, b string, ok bool) {
	if !strings.HasPrefix(key, prefix) {
		return "", "", false
	}
	a, b, ok = strings.Cut(key[len(prefix):], "/")
	return a, b, ok && a != "" && b != "" && !strings.Contains(b, "/")
}

// splitUsage parses a usage key: a node's record (usage/<node>) or one of
// its shards (usage/<node>/<svc>/<n>, shard true).
func (k keyspace) splitUsage(key string) (node, svc string, shard, ok bool) {
	rest, found := strings.CutPrefix(key, k.usageAll())
	if !found {
		return "", "", false, false
	}
	node, tail, shard := strings.Cut(rest, "/")
	if !shard {
		return node, "", false, node != ""
	}
	svc, n, _ := strings.Cut(tail, "/")
	return node, svc, true, node != "" && svc != "" && n != ""
}
