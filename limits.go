package gdpm

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Every size limit of gdpm, in one place. The API refuses a service over
// any of them with 413 and a message naming the limit, before anything is
// written. They keep every etcd request gdpm makes (a service record, a
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
