package gdpm

import (
	"log/slog"
	"net"
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

// isLoopback reports whether a listen address binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
