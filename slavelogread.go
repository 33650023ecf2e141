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

// logItem is one line of a stream, or a start or exit marker (slavelogindex.go),
// with its capture time.
type logItem struct {
	t    int64  // Unix nanoseconds; 0: unknown (no index)
	line []byte // without its newline
	mark string // "started" or "exited" for a marker; "" for output
}

// logCursor reads one stream. It is not safe for concurrent use.
type logCursor struct {
	path    string
	f       *os.File // the file being followed; nil until PATH exists
	off     int64    // read up to here in f
	partial []byte   // an unfinished last line
	pStart  int64    // the offset in f where partial starts
	pCont   bool     // partial continues a line already emitted in part
	pTime   int64    // that line's time
	ir      *logIndexReader
	tl      timeline
}

// openLogCursor emits the last n items (lines and markers) of the stream
// (n <= 0: none), oldest first, and returns a cursor at the end of the
// current file, for follow. A last line without its newline yet is not
// emitted: poll does, once it is finished. Missing files are an empty log.
func openLogCursor(path string, n int, emit func(logItem)) (*logCursor, error) {
	c := &logCursor{path: path, ir: &logIndexReader{}}
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
		c.off, c.pStart = end, end
		c.ir = openIndexReader(path, f)
	}
	if n <= 0 {
		if f != nil {
			// Only what comes after end is followed.
			c.tl.add(c.ir.readFrom(end))
			c.tl.at(end, nil)
		}
		return c, nil
	}
	// Newest first: the current file up to end, then PATH.1, PATH.2, ...
	var parts [][]logItem
	need := n
	for i := 0; i < maxLogFiles && need > 0; i++ {
		var items []logItem
		if i == 0 {
			if f == nil {
				continue
			}
			items, err = lastItems(f, c.ir, &c.tl, end, need)
		} else {
			items, err = lastItemsOf(path, rotatedName(path, i), need)
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		parts = append(parts, items)
		need -= len(items)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		for _, it := range parts[i] {
			emit(it)
		}
	}
	return c, nil
}

// lastItems returns the last n items of f[:end], oldest first, with tl
// left at end (holding the records after it, for a follow).
func lastItems(f *os.File, ir *logIndexReader, tl *timeline, end int64, n int) ([]logItem, error) {
	lines, offs, err := lastLines(f, end, n)
	if err != nil {
		return nil, err
	}
	from := end
	if len(offs) > 0 {
		from = offs[0]
	}
	tl.add(ir.readFrom(from))
	var items []logItem
	mark := func(r logRecord) {
		m, text := r.markerText()
		items = append(items, logItem{t: r.t, line: []byte(text), mark: m})
	}
	for i, l := range lines {
		t := tl.at(offs[i], mark)
		emitLine(l, func(b []byte) { items = append(items, logItem{t: t, line: b}) })
	}
	tl.pending(end, mark)
	if len(items) > n {
		items = items[len(items)-n:]
	}
	return items, nil
}

func lastItemsOf(path, name string, n int) ([]logItem, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ir := openIndexReader(path, f)
	defer ir.Close()
	var tl timeline
	return lastItems(f, ir, &tl, fi.Size(), n)
}

// poll emits the items appended since the last call. When PATH has been
// rotated away it finishes the old file (its writer completed it before
// the rename) and goes on with the new one. A rotation more than one file
// deep between two polls skips the files in between.
func (c *logCursor) poll(emit func(logItem)) error {
	if c.f == nil {
		f, err := os.Open(c.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		c.f, c.off, c.pStart = f, 0, 0
		c.ir.Close()
		c.ir, c.tl = openIndexReader(c.path, f), timeline{}
	}
	if c.ir.f == nil {
		// Not written yet when the file was opened; or there is none.
		// Its records of what was already read only set the time.
		if c.ir = openIndexReader(c.path, c.f); c.ir.f != nil && c.pStart > 0 {
			c.tl.add(c.ir.readNew())
			c.tl.at(c.pStart-1, nil)
		}
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
			c.off, c.pStart, c.pCont, c.partial = 0, 0, false, c.partial[:0]
			c.ir.Close()
			c.ir, c.tl = openIndexReader(c.path, c.f), timeline{}
		}
		return nil
	}
	// Rotated: read what was written between our read and the rename.
	if err := c.readNew(emit); err != nil {
		return err
	}
	if len(c.partial) > 0 {
		c.emitPartial(emit)
	}
	c.tl.pending(c.off, c.markTo(emit))
	c.f.Close()
	c.ir.Close()
	c.f, c.off, c.ir, c.tl = nil, 0, &logIndexReader{}, timeline{}
	if cur == nil {
		return nil
	}
	return c.poll(emit)
}

func (c *logCursor) markTo(emit func(logItem)) func(logRecord) {
	return func(r logRecord) {
		m, text := r.markerText()
		emit(logItem{t: r.t, line: []byte(text), mark: m})
	}
}

// lineTime is the time of the line that starts at pStart (or continues).
func (c *logCursor) lineTime(emit func(logItem)) int64 {
	if c.pCont {
		return c.pTime
	}
	return c.tl.at(c.pStart, c.markTo(emit))
}

// emitPartial emits the unfinished line as it is.
func (c *logCursor) emitPartial(emit func(logItem)) {
	t := c.lineTime(emit)
	emitLine(c.partial, func(b []byte) { emit(logItem{t: t, line: b}) })
	c.partial, c.pCont, c.pStart = c.partial[:0], false, c.off
}

// readNew reads f from off to its end, emitting each finished line.
func (c *logCursor) readNew(emit func(logItem)) error {
	buf := make([]byte, logReadChunk)
	for {
		n, err := c.f.ReadAt(buf, c.off)
		// The index after the data: every record of the bytes read is in.
		c.tl.add(c.ir.readNew())
		base := c.off
		c.off += int64(n)
		data := buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				c.partial = append(c.partial, data...)
				break
			}
			t := c.lineTime(emit)
			line := data[:i]
			if len(c.partial) > 0 {
				line = append(c.partial, line...)
			}
			emitLine(line, func(b []byte) { emit(logItem{t: t, line: b}) })
			c.partial, c.pCont = c.partial[:0], false
			data = data[i+1:]
			c.pStart = base + int64(n-len(data))
		}
		// A line that never ends still goes out, in MaxLogLine pieces.
		for len(c.partial) >= MaxLogLine {
			t := c.lineTime(emit)
			emit(logItem{t: t, line: bytes.Clone(c.partial[:MaxLogLine])})
			c.partial = append(c.partial[:0], c.partial[MaxLogLine:]...)
			c.pCont, c.pTime = true, t
		}
		if err == io.EOF || n == 0 {
			if len(c.partial) == 0 {
				c.tl.pending(c.off, c.markTo(emit))
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// finish emits the unfinished last line, for an answer that ends now.
func (c *logCursor) finish(emit func(logItem)) {
	if c.f != nil {
		c.readNew(emit)
	}
	if len(c.partial) > 0 {
		c.emitPartial(emit)
	}
}

// Close releases the file.
func (c *logCursor) Close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
	c.ir.Close()
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

// lastLines returns the last n lines of f[:end], oldest first, and the
// offset where each starts, reading backwards only as far as it needs. A
// final line without a newline counts as a line.
func lastLines(f *os.File, end int64, n int) ([][]byte, []int64, error) {
	if end == 0 || n <= 0 {
		return nil, nil, nil
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
			return nil, nil, err
		}
		newlines += bytes.Count(chunk, []byte{'\n'})
		tail = append(chunk, tail...)
	}
	tail = bytes.TrimSuffix(tail, []byte{'\n'})
	lines := bytes.Split(tail, []byte{'\n'})
	offs := make([]int64, len(lines))
	at := pos
	for i, l := range lines {
		offs[i] = at
		at += int64(len(l)) + 1
	}
	if pos > 0 {
		lines, offs = lines[1:], offs[1:] // cut by the chunk boundary
	}
	if len(lines) > n {
		lines, offs = lines[len(lines)-n:], offs[len(offs)-n:]
	}
	return lines, offs, nil
}
