package gdpm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// instanceLogs are the two log files of one instance, kept across its
// restarts: one allocation, the two paths sharing one string, since a
// slave holds thousands.
type instanceLogs struct {
	out, err rotatingFile
}

// pathSafeID reports whether id can be one element of a path: not empty,
// "." or "..", and without a slash or NUL, so it cannot leave its dir.
func pathSafeID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00")
}

// logFilePath is DIR/SERVICE/INSTANCE.STREAM; ids that could leave DIR are
// refused.
func logFilePath(dir, svc, inst string, stream LogStreamName) (string, error) {
	for _, id := range []string{svc, inst} {
		if !pathSafeID(id) {
			return "", fmt.Errorf("log files: bad id %q", id)
		}
	}
	return filepath.Join(dir, svc, inst+"."+string(stream)), nil
}

func newInstanceLogs(dir, svc, inst string, maxSize int64, maxFiles int) (*instanceLogs, error) {
	out, err := logFilePath(dir, svc, inst, Stdout)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(out, "."+string(Stdout)) // DIR/SERVICE/INSTANCE
	l := &instanceLogs{}
	l.out.init(base, "."+string(Stdout), maxSize, maxFiles)
	l.err.init(base, "."+string(Stderr), maxSize, maxFiles)
	return l, nil
}

// instanceLogs is the runner's Output (internal/runner).

func (l *instanceLogs) Stdout() io.Writer { return &l.out }
func (l *instanceLogs) Stderr() io.Writer { return &l.err }

// MarkStart and MarkExit record a process start (its pid) and exit (its
// code) in the stdout index (slavelogindex.go), where the output stands.
func (l *instanceLogs) MarkStart(pid int) error {
	return l.out.mark(logRecStarted, int32(pid), time.Now())
}

func (l *instanceLogs) MarkExit(code int) error {
	return l.out.mark(logRecExited, int32(code), time.Now())
}

func (l *instanceLogs) Close() error {
	return errors.Join(l.out.Close(), l.err.Close())
}

// rotatingFile is one instance stream's log: PATH is the current file,
// PATH.1 the one before it, up to PATH.<maxFiles-1>. No file is ever longer
// than maxSize: a write that would cross the limit is split, after its last
// newline that fits when it has one, and the rest goes to a fresh file.
// The file is opened at the first write, so an instance that prints
// nothing costs no file and no descriptor.
type rotatingFile struct {
	base, ext string // PATH is base+ext (ext a constant: no string per file)
	maxSize   int64
	maxFiles  int

	mu    sync.Mutex
	f     *os.File
	size  int64
	idx   *os.File // PATH.idx (slavelogindex.go); nil: times are not kept
	lastT int64    // the latest time recorded, so times never go back
}

func newRotatingFile(path string, maxSize int64, maxFiles int) *rotatingFile {
	w := &rotatingFile{}
	w.init(path, "", maxSize, maxFiles)
	return w
}

func (w *rotatingFile) init(base, ext string, maxSize int64, maxFiles int) {
	w.base, w.ext, w.maxSize, w.maxFiles = base, ext, max(maxSize, 1), max(maxFiles, 1)
}

// path is PATH, built when a file is opened, rotated or named in an error.
func (w *rotatingFile) path() string { return w.base + w.ext }

// Write appends p, captured now: the pumps (internal/proc) write each read
// of a pipe at once, so now is when it was read.
func (w *rotatingFile) Write(p []byte) (int, error) { return w.writeAt(p, time.Now()) }

// writeAt appends p, captured at t, rotating as needed. It always consumes
// all of p: a write error drops the data (the instance must not block on
// a full disk) and is returned so the caller can log it.
func (w *rotatingFile) writeAt(p []byte, t time.Time) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if w.f == nil {
			if err := w.open(); err != nil {
				return n, err
			}
		}
		room := w.maxSize - w.size
		if room <= 0 {
			if err := w.rotate(); err != nil {
				return n, err
			}
			continue
		}
		chunk := p
		if int64(len(chunk)) > room {
			chunk = p[:room]
			// Keep lines whole when the file already holds something to
			// rotate away; a line longer than a whole file is cut.
			if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
				chunk = chunk[:i+1]
			} else if w.size > 0 {
				chunk = nil
			}
		}
		if len(chunk) > 0 {
			w.record(logRecData, 0, t)
			m, err := w.f.Write(chunk)
			w.size += int64(m)
			if err != nil {
				return n, fmt.Errorf("gdpm: log %s: %w", w.path(), err)
			}
		}
		p = p[len(chunk):]
		if len(p) > 0 {
			if err := w.rotate(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *rotatingFile) open() error {
	path := w.path()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("gdpm: log dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("gdpm: log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("gdpm: log: %w", err)
	}
	w.f, w.size = f, fi.Size()
	// Without its index the log still works, only without times.
	w.idx, _ = openIndexFor(path, f)
	return nil
}

// record appends an index record at the current end of the file. Times
// never go back within a stream, even when the wall clock does.
func (w *rotatingFile) record(kind uint32, arg int32, t time.Time) {
	if w.idx == nil {
		return
	}
	w.lastT = max(w.lastT, t.UnixNano())
	var b [logRecSize]byte
	logRecord{off: w.size, t: w.lastT, kind: kind, arg: arg}.encode(b[:])
	w.idx.Write(b[:])
}

// mark records a start or exit marker (slavelogindex.go) at the current end of
// the output. A file opened for the marker alone is closed again: an
// instance that prints nothing (most of a thousand sleeping ones) holds no
// descriptor for its logs; the first output opens them for good.
func (w *rotatingFile) mark(kind uint32, arg int32, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
		defer w.closeFiles()
	}
	w.record(kind, arg, t)
	return nil
}

func (w *rotatingFile) closeFiles() error {
	if w.idx != nil {
		w.idx.Close()
		w.idx = nil
	}
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f, w.size = nil, 0
	return err
}

// rotate closes the current file and shifts PATH.i to PATH.i+1, dropping
// the oldest. The current file is complete before it is renamed, which is
// what lets a reader that follows PATH finish the old file first.
func (w *rotatingFile) rotate() error {
	path := w.path()
	w.closeFiles()
	if w.maxFiles == 1 {
		// The index starts afresh with the file (its header would still
		// match the truncated file's inode).
		os.Remove(indexPath(path))
		if err := os.Truncate(path, 0); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("gdpm: log rotate: %w", err)
		}
		return nil
	}
	for i := w.maxFiles - 1; i >= 1; i-- {
		err := os.Rename(rotatedName(path, i-1), rotatedName(path, i))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("gdpm: log rotate: %w", err)
		}
		// The index follows its file; its header names the file, so a
		// reader between the two renames still finds the right one.
		err = os.Rename(indexPath(rotatedName(path, i-1)), indexPath(rotatedName(path, i)))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("gdpm: log rotate: %w", err)
		}
	}
	return nil
}

// Close closes the current file; a later Write opens it again.
func (w *rotatingFile) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closeFiles()
}

// rotatedName is PATH for i = 0 and PATH.i for older files.
func rotatedName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}
