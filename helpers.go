package gdpm

import (
	"log/slog"
	"os"
)

// Small helpers that the master, the slave and the API share. They live
// here, not in master.go, so that no lower-level file reaches up into the
// Master's file for them.

// orDefault is v, or def when v is the zero value: how every config field
// takes its documented default.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// discardLogger is the default of every Logger field: gdpm is silent
// unless given one.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// hostname is os.Hostname with a fallback, for slaves that do not set one.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
