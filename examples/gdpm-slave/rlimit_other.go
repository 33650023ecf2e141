//go:build !linux

package main

import "log/slog"

// raiseFileLimit does nothing: a slave runs on Linux only.
func raiseFileLimit(want int64, log *slog.Logger) {}

const fileLimitUsage = "raise the hard RLIMIT_NOFILE to `N` descriptors (Linux only)"
