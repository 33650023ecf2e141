package gdpm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Every default and every limit of gdpm, in one place (as nats-server's
// const.go): the defaults of the config fields, then the size limits.

// Defaults for MasterConfig.
const (
	DefaultHTTPAddr       = "127.0.0.1:8989"
	DefaultTCPAddr        = "127.0.0.1:8888"
	DefaultLeaseTTL       = 5 * time.Second
	DefaultElectionTTL    = 5 * time.Second
	DefaultRequestTimeout = 3 * time.Second
	DefaultResync         = 30 * time.Second
)

// Defaults for ClientConfig.
const (
	DefaultClientAddr    = "http://127.0.0.1:8989"
	DefaultClientTimeout = 30 * time.Second
	// MaxResponseBytes caps a response body the client reads, so a broken
	// or hostile server cannot make it allocate without bound.
	MaxResponseBytes = 32 << 20
	// DefaultClientRetries is ClientConfig.Retries' default.
	DefaultClientRetries = 4
)

// DefaultStopTimeout is the grace period between SIGTERM and SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// DefaultPrefix is the etcd key prefix used when none is configured.
const DefaultPrefix = "/gdpm/"

// DefaultEventHeartbeat is how often an idle GET /events stream sends an
// empty line.
const DefaultEventHeartbeat = 15 * time.Second

// DefaultLogTail is how many of the last lines (across every instance and
// stream, by time) GET /service/:id/logs sends when tail is not given.
const DefaultLogTail = 100

// MaxLogLine is the longest LogLine.Line; longer lines come in pieces.
const MaxLogLine = 64 << 10

// Log rotation defaults: each stream of each instance keeps at most
// DefaultLogMaxFiles files of DefaultLogMaxSize bytes, so a chatty instance
// costs at most 30 MiB per stream on the slave's disk.
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 3
)

// DefaultLogRetention is how long a slave keeps the logs of an instance
// that no longer runs on it.
const DefaultLogRetention = 24 * time.Hour

// Defaults for ServerLimits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 20 * time.Second
	DefaultIdleTimeout       = 20 * time.Second
	DefaultMaxConns          = 1024
)

// IdempotencyKeyTTL is how long the master remembers an Idempotency-Key at
// least; it forgets it within an hour after that.
const IdempotencyKeyTTL = 24 * time.Hour

// MaxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
const MaxIdempotencyKey = 255

// DefaultUsageInterval is how often a slave samples its instances' CPU and
// memory and reports them (SlaveConfig.UsageInterval).
const DefaultUsageInterval = 5 * time.Second

// Supervision defaults and bounds.
const (
	DefaultRestartWindow = time.Minute
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckFailures = 3
	// DefaultCheckGrace is how long after a start a failing check does
	// not count: a program needs a moment to listen.
	DefaultCheckGrace = 5 * time.Second
	// MinCPULimit is the smallest CPULimit: below a hundredth of a core
	// the kernel's quota periods make little sense.
	MinCPULimit = 0.01
	// MinMemoryLimit is the smallest MemoryLimit: below it not even a
	// shell starts.
	MinMemoryLimit = 1 << 20
)

// MaxNameLen is the longest service name.
const MaxNameLen = 63

// MaxPorts caps Spec.Ports.
const MaxPorts = 16

// Rollout defaults.
const (
	DefaultMaxUnavailable = 1
	DefaultMinReady       = 2 * time.Second
	DefaultReadyTimeout   = time.Minute
)

// The size limits. The API refuses a service over any of them with 413
// and a message naming the limit, before anything is written. They keep every etcd request gdpm makes (a service record, a
// scale of it, a scheduler transaction) well under etcd's default
// --max-request-bytes of 1.5 MiB, so no service the API accepts can stall
// the scheduler.
const (
	// MaxCommandBytes caps Spec.Command.
	MaxCommandBytes = 64 << 10
	// MaxEnvNameBytes caps the name of one Spec.Env variable.
	MaxEnvNameBytes = 256
	// MaxEnvValueBytes caps the value of one Spec.Env variable.
	MaxEnvValueBytes = 32 << 10
	// MaxEnvBytes caps the whole of Spec.Env, counted as the process
	// sees it: NAME=VALUE plus a NUL for every variable.
	MaxEnvBytes = 64 << 10
	// MaxDirBytes caps Spec.Dir (Linux's PATH_MAX).
	MaxDirBytes = 4096
	// MaxSpecBytes caps a whole Spec as stored in etcd (its JSON form,
	// escapes included).
	MaxSpecBytes = 128 << 10

	// DefaultMaxInstances is MasterConfig.MaxInstances' default: the
	// largest InstanceNum of one service.
	DefaultMaxInstances = 10000
	// DefaultMaxBodyBytes is MasterConfig.MaxBodyBytes' default: the
	// largest request body.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultTxnOps is MasterConfig.TxnOps' default: the most operations
	// in one scheduler transaction (etcd's --max-txn-ops default is 128).
	DefaultTxnOps = 128
	// DefaultTxnBytes is MasterConfig.TxnBytes' default: the most bytes
	// (keys, values, compares) in one scheduler transaction, a sixth of
	// etcd's default --max-request-bytes (1.5 MiB).
	DefaultTxnBytes = 256 << 10
	// MinTxnBytes is the smallest MasterConfig.TxnBytes accepted: a few
	// placements' worth.
	MinTxnBytes = 1 << 10
)

// limitError builds the error for a value over a limit: 413, naming the
// limit and its value.
func limitError(what string, size int, name string, limit int) error {
	return fmt.Errorf("%s is %d bytes, over the limit of %d bytes (%s): %w", what, size, limit, name, ErrTooLarge)
}

// checkSpecSize enforces the size limits on a spec. It is the one place
// the API checks them (validateCreate calls it), so every way a spec comes
// in is held to the same limits.
func checkSpecSize(s Spec) error {
	if n := len(s.Command); n > MaxCommandBytes {
		return limitError("Command", n, "MaxCommandBytes", MaxCommandBytes)
	}
	if n := len(s.Dir); n > MaxDirBytes {
		return limitError("Dir", n, "MaxDirBytes", MaxDirBytes)
	}
	total := 0
	for k, v := range s.Env {
		if n := len(k); n > MaxEnvNameBytes {
			return limitError("the name of Env variable "+strconv.Quote(truncate(k, 64)), n, "MaxEnvNameBytes", MaxEnvNameBytes)
		}
		if n := len(v); n > MaxEnvValueBytes {
			return limitError("Env variable "+strconv.Quote(k), n, "MaxEnvValueBytes", MaxEnvValueBytes)
		}
		total += len(k) + len(v) + 2
	}
	if total > MaxEnvBytes {
		return limitError("Env (NAME=VALUE\\0 of every variable)", total, "MaxEnvBytes", MaxEnvBytes)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("spec cannot be encoded: %v: %w", err, ErrBadRequest)
	}
	if n := len(b); n > MaxSpecBytes {
		return limitError("the spec (as JSON)", n, "MaxSpecBytes", MaxSpecBytes)
	}
	return nil
}

// maxLogValue is the longest string value truncate keeps for a log line.
const maxLogValue = 256

// truncate shortens s to at most n bytes (on a rune boundary) and says how
// long it was, so that a log line never carries a whole 64 KiB command or a
// megabyte key.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut-- // do not split a UTF-8 sequence
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// logValue is truncate with the length used for log lines.
func logValue(s string) string { return truncate(s, maxLogValue) }
