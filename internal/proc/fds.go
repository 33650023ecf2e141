//go:build linux

package proc

import (
	"math"
	"os"
	"syscall"
)

// OpenFiles returns how many descriptors this process has open and its
// soft RLIMIT_NOFILE, the number no new descriptor may reach. Since Linux
// 6.2 the size of /proc/self/fd is the count, read in one stat whatever
// the count; before, the directory is listed, which costs in proportion
// to the count. A directory that cannot be opened because the table is
// full reads as full.
func OpenFiles() (open, limit int, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	limit = math.MaxInt
	if rl.Cur < math.MaxInt {
		limit = int(rl.Cur)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/fd", &st); err == nil && st.Size > 0 {
		return int(st.Size), limit, nil
	}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		if pe, ok := err.(*os.PathError); ok && (pe.Err == syscall.EMFILE || pe.Err == syscall.ENFILE) {
			return limit, limit, nil
		}
		return 0, limit, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, limit, err
	}
	return len(names) - 1, limit, nil // not counting d itself
}
