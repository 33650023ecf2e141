package gdpm

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
)

// Reading one stream's log files (PATH, PATH.1, ... as rotatingFile writes
// them): the last lines, then what is appended, across rotations.

// logReadChunk is the unit of reading, forwards and backwards.
const logReadChunk = 64 << 10

// maxLogFiles bounds how many rotated files a tail looks through.
const maxLogFiles = 100

// logCursor reads one stream. It is not safe for concurrent use.
type logCursor struct {
	path    string
	f       *os.File // the file being followed; nil until PATH exists
	off     int64    // read up to here in f
	partial []byte   // an unfinished last line
}

// openLogCursor emits the last n lines of the stream (n <= 0: none), oldest
// first, and returns a cursor at the end of the current file, for follow.
// A last line without its newline yet is not emitted: poll does, once it
// is finished. Missing files are an empty log.
func openLogCursor(path string, n int, emit func([]byte)) (*logCursor, error) {
	c := &logCursor{path: path}
	f, err := os.Open(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var end int64
	if f != nil {
		c.f = f
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		// Up to the last newline: the rest is the partial line.
		end, err = lastNewlineEnd(f, fi.Size())
		if err != nil {
			f.Close()
			return nil, err
		}
		c.off = end
	}
	if n <= 0 {
		return c, nil
	}
	// Newest first: the current file up to end, then PATH.1, PATH.2, ...
	var parts [][][]byte
	need := n
	for i := 0; i < maxLogFiles && need > 0; i++ {
		var lines [][]byte
		if i == 0 {
			if f == nil {
				continue
			}
			lines, err = lastLines(f, end, need)
		} else {
			lines, err = lastLinesOf(rotatedName(path, i), need)
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		parts = append(parts, lines)
		need -= len(lines)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		for _, l := range parts[i] {
			emitLine(l, emit)
		}
	}
	return c, nil
}

// poll emits the lines appended since the last call. When PATH has been
// rotated away it finishes the old file (its writer completed it before
// the rename) and goes on with the new one. A rotation more than one file
// deep between two polls skips the files in between.
func (c *logCursor) poll(emit func([]byte)) error {
	if c.f == nil {
		f, err := os.Open(c.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		c.f, c.off = f, 0
	}
	if err := c.readNew(emit); err != nil {
		return err
	}
	cur, err := os.Stat(c.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	held, err := c.f.Stat()
	if err != nil {
		return err
	}
	if cur != nil && os.SameFile(cur, held) {
		if held.Size() < c.off { // truncated in place (LogMaxFiles 1)
			c.off, c.partial = 0, c.partial[:0]
		}
		return nil
	}
	// Rotated: read what was written between our read and the rename.
	if err := c.readNew(emit); err != nil {
		return err
	}
	if len(c.partial) > 0 {
		emitLine(c.partial, emit)
		c.partial = c.partial[:0]
	}
	c.f.Close()
	c.f, c.off = nil, 0
	if cur == nil {
		return nil
	}
	return c.poll(emit)
}

// readNew reads f from off to its end, emitting each finished line.
func (c *logCursor) readNew(emit func([]byte)) error {
	buf := make([]byte, logReadChunk)
	for {
		n, err := c.f.ReadAt(buf, c.off)
		c.off += int64(n)
		data := buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				c.partial = append(c.partial, data...)
				break
			}
			if len(c.partial) > 0 {
				emitLine(append(c.partial, data[:i]...), emit)
				c.partial = c.partial[:0]
			} else {
				emitLine(data[:i], emit)
			}
			data = data[i+1:]
		}
		// A line that never ends still goes out, in MaxLogLine pieces.
		for len(c.partial) >= MaxLogLine {
			emit(c.partial[:MaxLogLine])
			c.partial = append(c.partial[:0], c.partial[MaxLogLine:]...)
		}
		if err == io.EOF || n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Close releases the file.
func (c *logCursor) Close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// emitLine emits l, in MaxLogLine pieces when it is longer.
func emitLine(l []byte, emit func([]byte)) {
	for len(l) > MaxLogLine {
		emit(l[:MaxLogLine])
		l = l[MaxLogLine:]
	}
	emit(l)
}

// lastNewlineEnd returns the offset just past the last newline before
// size, or 0.
func lastNewlineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, logReadChunk)
	for pos := size; pos > 0; {
		k := min(int64(len(buf)), pos)
		pos -= k
		if _, err := f.ReadAt(buf[:k], pos); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:k], '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
	}
	return 0, nil
}

func lastLinesOf(path string, n int) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return lastLines(f, fi.Size(), n)
}

// lastLines returns the last n lines of f[:end], oldest first, reading
// backwards only as far as it needs. A final line without a newline
// counts as a line.
func lastLines(f *os.File, end int64, n int) ([][]byte, error) {
	if end == 0 || n <= 0 {
		return nil, nil
	}
	var tail []byte
	pos := end
	// n+1 newlines (or the start of the file) make the first of n lines
	// whole; the final newline counts too.
	newlines := 0
	for pos > 0 && newlines <= n {
		k := min(int64(logReadChunk), pos)
		pos -= k
		chunk := make([]byte, k, int(k)+len(tail))
		if _, err := f.ReadAt(chunk, pos); err != nil && err != io.EOF {
			return nil, err
		}
		newlines += bytes.Count(chunk, []byte{'\n'})
		tail = append(chunk, tail...)
	}
	tail = bytes.TrimSuffix(tail, []byte{'\n'})
	lines := bytes.Split(tail, []byte{'\n'})
	if pos > 0 {
		lines = lines[1:] // cut by the chunk boundary
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}
