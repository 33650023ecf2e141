//go:build unix

package gdpm

import (
	"errors"
	"os"
	"syscall"
)

// fileIno is the inode of an open file: a log index names the data file
// it belongs to by inode, so that a rotation never pairs them wrongly.
func fileIno(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no inode")
	}
	return int64(st.Ino), nil
}
