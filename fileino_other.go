//go:build !unix

package gdpm

import (
	"errors"
	"os"
)

// fileIno has no inode to give outside Unix; log capture runs on Linux
// slaves only, and this keeps the package building for the client.
func fileIno(*os.File) (int64, error) {
	return 0, errors.New("gdpm: no file inodes on this OS")
}
