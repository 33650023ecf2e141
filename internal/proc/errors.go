package proc

import "errors"

var (
	// ErrUnsupported is returned on systems without the Linux machinery
	// a slave needs.
	ErrUnsupported = errors.New("process supervision needs Linux")
	// ErrDataDirInUse means another slave holds the data dir's lock.
	ErrDataDirInUse = errors.New("data dir is in use by another slave")
)
