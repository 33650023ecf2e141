//go:build unix

package gdpm

import "syscall"

// defaultMaxConns is DefaultMaxConns or a quarter of RLIMIT_NOFILE.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur/4 < DefaultMaxConns {
		return max(int(rl.Cur/4), 8)
	}
	return DefaultMaxConns
}
