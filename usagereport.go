package gdpm

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"
	"unsafe"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// usageHostEvery is how often the node's record is written again when
// only the host's figures (Load1, MemAvailable) moved: they move with
// every sample, and each write is a revision every event stream receives.
const usageHostEvery = 30 * time.Second

// usageShardInstances is how many instances a usage shard holds at most.
// An entry is about 70 bytes ({"Instance":"<12 hex digits>","PID":…,
// "CPU":…,"RSS":…}, at most about 100 with the largest figures), so a
// full shard is about 4.5 KB and never over 7 KB: a count bound keeps
// every shard far under etcd's request limit (1.5 MiB by default) by
// construction, whatever the number of instances. Small, because one
// changed instance rewrites its whole shard; not smaller, because each
// shard costs a key (about 90 bytes) in every read and an operation in a
// transaction.
const usageShardInstances = 64

// usageShard is one shard of a service's instances on this node:
// usage/<node>/<svc>/<n>. An instance keeps its shard while it is
// sampled, so a shard changes only when its own instances do; a new one
// takes the first shard of its service with room.
type usageShard struct {
	key     string
	svc     string
	n       int    // its number among the service's shards
	members int    // instances placed in it
	sum     uint64 // hash of its figures at this sample
	// sent: a put of it was sent, so etcd may hold it (an emptied shard
	// is deleted then); written: etcd holds the figures whose hash is
	// last.
	sent, written bool
	last          uint64
	pos           int // its write in the interval being written, or -1
}

// usageReport is the state reportUsage keeps between samples, reused so
// that a sample of many instances allocates little: the maps are cleared,
// not made again. The node's record and each shard are compared with what
// was last written by hashes of their fields, so they are encoded only to
// be written, and none is kept: each byte kept lets the heap grow by
// another half byte before a collection (GOGC 50). A collision (one in
// 2^64) only delays a write to the next change.
type usageReport struct {
	sampler *usageSampler
	keys    map[int]string
	pgids   map[int]bool
	usage   NodeUsage
	seed    maphash.Seed
	k       keyspace
	// The node's record last written: whether one was (the last write
	// did not fail), the hashes of its host figures and of the rest, and
	// when.
	written            bool
	lastHost, lastRest uint64
	lastAt             time.Time
	// slot is each sampled instance's shard, by "SERVICE/INSTANCE";
	// shards are by service, by number (nil where there is none).
	slot   map[string]*usageShard
	shards map[string][]*usageShard
	// failing is set while writes fail: the first failure is a warning,
	// the next ones are not.
	failing bool
}

func newUsageReport(k keyspace, node, hostname string) *usageReport {
	return &usageReport{sampler: newUsageSampler(), keys: map[int]string{}, pgids: map[int]bool{}, seed: maphash.MakeSeed(), k: k,
		usage: NodeUsage{Node: node, Hostname: hostname, Instances: map[string]InstanceUsage{}},
		slot:  map[string]*usageShard{}, shards: map[string][]*usageShard{}}
}

// reportUsage samples the session's instances every interval and writes
// what changed of the node's usage on its lease, until ctx ends.
func (sup *supervisor) reportUsage(ctx context.Context, cli *clientv3.Client, k keyspace, lease clientv3.LeaseID, interval, timeout time.Duration) {
	rep := newUsageReport(k, sup.node, sup.deps.hostname)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := time.Now()
		sup.sampleUsageInto(rep, now)
		err := rep.write(ctx, cli, lease, timeout, now)
		switch {
		case err == nil:
			rep.failing = false
		case ctx.Err() != nil:
		case !rep.failing:
			rep.failing = true
			sup.deps.log.Warn("usage report failed; retrying every interval", "err", err)
		default:
			sup.deps.log.Debug("usage report failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// usageWrite is one operation of an interval: the node's record (sh nil),
// a shard's entries, or a shard's deletion (del).
type usageWrite struct {
	sh *usageShard
	// hash is the figures' (a shard's, or the host's of the record);
	// rest the record's other fields'.
	hash, rest uint64
	entries    []usageEntry
	del        bool
}

// write writes what changed since the last interval: the node's record if
// due, the shards whose figures changed, and the deletion of the shards
// that emptied, in transactions bounded by txnBudget. What a failed
// transaction held, and what came after it, is not marked written and
// goes again at the next interval.
func (rep *usageReport) write(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, timeout time.Duration, now time.Time) error {
	writes := rep.plan(now)
	if len(writes) == 0 {
		return nil
	}
	var ops []clientv3.Op
	var budget txnBudget
	from := 0
	commit := func(to int) error {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := cli.Txn(cctx).Then(ops...).Commit()
		cancel()
		rep.done(writes[from:to], now, err)
		ops, budget, from = ops[:0], txnBudget{}, to
		return storeErr("gdpm: write usage", err)
	}
	for i := range writes {
		w := &writes[i]
		key, val := rep.encode(w)
		if !budget.add(len(key) + len(val)) {
			if err := commit(i); err != nil {
				return err
			}
			budget.add(len(key) + len(val))
		}
		if w.del {
			ops = append(ops, clientv3.OpDelete(key))
			continue
		}
		if w.sh != nil {
			w.sh.sent = true
		}
		// The value is not copied into a string: nothing writes val
		// again (gRPC has marshalled the request once Txn returns).
		ops = append(ops, clientv3.OpPut(key, unsafe.String(unsafe.SliceData(val), len(val)), clientv3.WithLease(lease)))
		w.entries = nil
	}
	return commit(len(writes))
}

// encode returns a write's key and value (nil for a deletion).
func (rep *usageReport) encode(w *usageWrite) (key string, val []byte) {
	switch {
	case w.sh == nil:
		rec := rep.usage
		rec.Instances = nil        // in the shards
		val, _ = json.Marshal(rec) // a NodeUsage always encodes
		return rep.k.usage(rep.usage.Node), val
	case w.del:
		return w.sh.key, nil
	}
	slices.SortFunc(w.entries, func(a, b usageEntry) int { return cmp.Compare(a.Instance, b.Instance) })
	val, _ = json.Marshal(w.entries)
	return w.sh.key, val
}

// done records the outcome of a transaction of writes.
func (rep *usageReport) done(writes []usageWrite, now time.Time, err error) {
	for _, w := range writes {
		switch {
		case w.sh == nil && err == nil:
			rep.written, rep.lastHost, rep.lastRest, rep.lastAt = true, w.hash, w.rest, now
		case w.sh == nil:
			rep.written = false
		case w.del && err == nil:
			rep.drop(w.sh)
		case w.del:
		case err == nil:
			w.sh.written, w.sh.last = true, w.hash
		default:
			w.sh.written = false
		}
	}
}

// plan places the sampled instances in their shards and lists the writes
// due: the node's record first (a reader then finds a node's record with
// its first shards), then the shards whose figures changed, then the
// deletions of the shards that emptied.
func (rep *usageReport) plan(now time.Time) []usageWrite {
	rep.place()
	var writes, dels []usageWrite
	if host, rest := rep.hashes(); rep.due(host, rest, now) {
		writes = append(writes, usageWrite{hash: host, rest: rest})
	}
	changed := false
	for _, list := range rep.shards {
		for _, sh := range list {
			if sh == nil {
				continue
			}
			sh.pos = -1
			h := sh.sum + uint64(sh.members)
			switch {
			case sh.members == 0 && sh.sent:
				dels = append(dels, usageWrite{sh: sh, del: true})
			case sh.members == 0:
				rep.drop(sh)
			case !sh.written || h != sh.last:
				sh.pos, changed = len(writes), true
				writes = append(writes, usageWrite{sh: sh, hash: h, entries: make([]usageEntry, 0, sh.members)})
			}
		}
	}
	if changed {
		for key, iu := range rep.usage.Instances {
			if sh := rep.slot[key]; sh.pos >= 0 {
				w := &writes[sh.pos]
				w.entries = append(w.entries, usageEntry{Instance: key[len(sh.svc)+1:], InstanceUsage: iu})
			}
		}
	}
	return append(writes, dels...)
}

// place takes the instances no longer sampled out of their shards, puts
// the new ones in one, and sums each shard's figures into its hash.
func (rep *usageReport) place() {
	for key, sh := range rep.slot {
		if _, ok := rep.usage.Instances[key]; !ok {
			delete(rep.slot, key)
			sh.members--
		}
	}
	for _, list := range rep.shards {
		for _, sh := range list {
			if sh != nil {
				sh.sum = 0
			}
		}
	}
	var h maphash.Hash
	h.SetSeed(rep.seed)
	var b [24]byte
	for key, iu := range rep.usage.Instances {
		sh := rep.slot[key]
		if sh == nil {
			sh = rep.shardFor(key)
			rep.slot[key] = sh
			sh.members++
		}
		// A sum of the instances' hashes: the map's order does not
		// matter.
		h.Reset()
		h.WriteString(key)
		binary.LittleEndian.PutUint64(b[0:], uint64(iu.PID))
		binary.LittleEndian.PutUint64(b[8:], math.Float64bits(iu.CPU))
		binary.LittleEndian.PutUint64(b[16:], uint64(iu.RSS))
		h.Write(b[:])
		sh.sum += h.Sum64()
	}
}

// shardFor returns the first shard of the instance's service with room,
// made if there is none.
func (rep *usageReport) shardFor(key string) *usageShard {
	svc, _, _ := strings.Cut(key, "/")
	list := rep.shards[svc]
	for n, sh := range list {
		if sh == nil {
			list[n] = rep.newShard(svc, n)
			return list[n]
		}
		if sh.members < usageShardInstances {
			return sh
		}
	}
	sh := rep.newShard(svc, len(list))
	rep.shards[svc] = append(list, sh)
	return sh
}

func (rep *usageReport) newShard(svc string, n int) *usageShard {
	return &usageShard{key: rep.k.usageShard(rep.usage.Node, svc, n), svc: svc, n: n, pos: -1}
}

// drop forgets an empty shard that etcd does not hold; its number is free
// for the service's next shard.
func (rep *usageReport) drop(sh *usageShard) {
	list := rep.shards[sh.svc]
	list[sh.n] = nil
	for len(list) > 0 && list[len(list)-1] == nil {
		list = list[:len(list)-1]
	}
	if len(list) == 0 {
		delete(rep.shards, sh.svc)
	} else {
		rep.shards[sh.svc] = list
	}
}

// hashes returns a hash of the node record's host figures, which move
// with every sample, and one of the rest (identity, cores, totals).
func (rep *usageReport) hashes() (host, rest uint64) {
	u := &rep.usage
	var h maphash.Hash
	h.SetSeed(rep.seed)
	var b [32]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(u.MemAvailable))
	binary.LittleEndian.PutUint64(b[8:], math.Float64bits(u.Load1))
	h.Write(b[:16])
	host = h.Sum64()
	h.Reset()
	binary.LittleEndian.PutUint64(b[0:], uint64(u.Cores))
	binary.LittleEndian.PutUint64(b[8:], uint64(u.MemTotal))
	binary.LittleEndian.PutUint64(b[16:], math.Float64bits(u.CPU))
	binary.LittleEndian.PutUint64(b[24:], uint64(u.RSS))
	h.Write(b[:])
	h.WriteString(u.Node)
	h.WriteByte(0)
	h.WriteString(u.Hostname)
	h.WriteByte(0)
	h.WriteString(u.Cgroups)
	return host, h.Sum64()
}

// due says whether the node's record with these hashes is to be written.
// A record like the last one (idle instances, a quiet host) is not
// written again. One whose totals and identity are as before, and only
// the host's figures moved, waits for usageHostEvery.
func (rep *usageReport) due(host, rest uint64, now time.Time) bool {
	switch {
	case !rep.written || rest != rep.lastRest:
		return true
	case host == rep.lastHost:
		return false
	}
	return now.Sub(rep.lastAt) >= usageHostEvery
}
