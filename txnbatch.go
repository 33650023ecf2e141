package gdpm

// The bounds of one transaction a slave writes (a batch of statuses, of
// usage shards). etcd refuses a transaction of more than --max-txn-ops
// operations (default 128) or a request of more than --max-request-bytes
// (default 1.5 MiB; the client sends at most 2 MiB): a batch over either
// would fail on every retry, and what it holds would never arrive. A
// status alone can be over 128 KiB (an error that quotes a 64 KiB command,
// twice), so bytes are counted, not guessed.
const (
	txnMaxOps   = 128
	txnMaxBytes = 512 << 10
	// txnOpOverhead approximates what an operation costs in a request
	// beyond its key and value (a compared key, the lease, framing).
	txnOpOverhead = 256
)

// txnBudget counts the operations and bytes of a transaction being filled.
type txnBudget struct{ ops, bytes int }

// add counts an operation whose key and value are n bytes if it fits, and
// says whether it did. The first operation always fits: one larger than
// txnMaxBytes has to go alone.
func (b *txnBudget) add(n int) bool {
	n += txnOpOverhead
	if b.full() || (b.ops > 0 && b.bytes+n > txnMaxBytes) {
		return false
	}
	b.ops++
	b.bytes += n
	return true
}

// full says whether no operation fits any more.
func (b *txnBudget) full() bool { return b.ops >= txnMaxOps }
