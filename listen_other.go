//go:build !unix

package gdpm

// defaultMaxConns is DefaultMaxConns: there is no RLIMIT_NOFILE here.
func defaultMaxConns() int { return DefaultMaxConns }
