package gdpm

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"
)

// Capture times live in an index beside each log file, not in the file:
// the log files stay exactly what the instance wrote, so `tail -f` and
// grep on the slave see plain output, and the rotation caps (LogMaxSize)
// count only output. PATH.idx indexes PATH, PATH.N.idx indexes PATH.N; it
// rotates with its file.
//
// An index is a sequence of fixed-size records (logRecSize bytes, little
// endian): offset in the data file, Unix time in nanoseconds, kind and an
// argument. The first record is a header naming the data file's inode, so
// a reader never pairs a file with another file's index across a rotation.
// Every read of a pipe that lands in a file adds one data record (the
// offset where its bytes start, and when they were read): a line's time is
// the time of the last data record at or before its first byte, which is
// when its first byte was captured. A chatty instance whose pipe fills a
// 64 KiB read costs one record per read, not per line. Start and exit
// markers are records too (in the stdout index), at the offset where the
// output stood when the process started or ended; readers show them as
// marker lines in the log.

const logRecSize = 24

// Record kinds.
const (
	logRecHeader  uint32 = 1 // off: the data file's inode
	logRecData    uint32 = 2 // bytes from off on were captured at t
	logRecStarted uint32 = 3 // arg: the pid
	logRecExited  uint32 = 4 // arg: the exit code (128+signal when killed)
)

// logRecord is one index record.
type logRecord struct {
	off  int64
	t    int64 // Unix nanoseconds
	kind uint32
	arg  int32
}

func (r logRecord) encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], uint64(r.off))
	binary.LittleEndian.PutUint64(b[8:], uint64(r.t))
	binary.LittleEndian.PutUint32(b[16:], r.kind)
	binary.LittleEndian.PutUint32(b[20:], uint32(r.arg))
}

func decodeLogRecord(b []byte) logRecord {
	return logRecord{
		off:  int64(binary.LittleEndian.Uint64(b[0:])),
		t:    int64(binary.LittleEndian.Uint64(b[8:])),
		kind: binary.LittleEndian.Uint32(b[16:]),
		arg:  int32(binary.LittleEndian.Uint32(b[20:])),
	}
}

// markerText is what a marker record says as a log line.
func (r logRecord) markerText() (mark, text string) {
	switch r.kind {
	case logRecStarted:
		return "started", "started (pid " + strconv.Itoa(int(r.arg)) + ")"
	case logRecExited:
		return "exited", "exited (code " + strconv.Itoa(int(r.arg)) + ")"
	}
	return "", ""
}

func indexPath(path string) string { return path + ".idx" }

// openIndexFor opens (or starts afresh) the index of the open data file
// at path for appending. An index whose header names another file (a
// leftover) is truncated.
func openIndexFor(path string, data *os.File) (*os.File, error) {
	ino, err := fileIno(data)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(indexPath(path), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	var b [logRecSize]byte
	if _, err := f.ReadAt(b[:], 0); err == nil {
		if h := decodeLogRecord(b[:]); h.kind == logRecHeader && h.off == ino {
			return f, nil
		}
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	logRecord{off: ino, t: time.Now().UnixNano(), kind: logRecHeader}.encode(b[:])
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// logIndexReader reads the index of one open data file.
type logIndexReader struct {
	f    *os.File // nil: no index (times unknown)
	next int64    // the offset in f of the next record to read forwards
}

// openIndexReader finds the index of data, which was opened as path (it
// may have been rotated to path.N since).
func openIndexReader(path string, data *os.File) *logIndexReader {
	ir := &logIndexReader{next: logRecSize}
	ino, err := fileIno(data)
	if err != nil {
		return ir
	}
	for i := 0; i < maxLogFiles; i++ {
		f, err := os.Open(indexPath(rotatedName(path, i)))
		if errors.Is(err, fs.ErrNotExist) {
			if i > 0 {
				break
			}
			continue
		}
		if err != nil {
			continue
		}
		var b [logRecSize]byte
		if _, err := f.ReadAt(b[:], 0); err == nil {
			if h := decodeLogRecord(b[:]); h.kind == logRecHeader && h.off == ino {
				ir.f = f
				return ir
			}
		}
		f.Close()
	}
	return ir
}

func (ir *logIndexReader) Close() {
	if ir != nil && ir.f != nil {
		ir.f.Close()
		ir.f = nil
	}
}

// readFrom returns the records that index bytes from off on, plus the
// last data record before off (whose time the first line may carry), and
// positions the forward reader after them. It reads backwards from the
// end only as far as it needs.
func (ir *logIndexReader) readFrom(off int64) []logRecord {
	if ir.f == nil {
		return nil
	}
	fi, err := ir.f.Stat()
	if err != nil {
		return nil
	}
	end := fi.Size() / logRecSize * logRecSize
	ir.next = end
	const chunk = 4096 * logRecSize
	var recs []logRecord
	for pos := end; pos > logRecSize; {
		k := min(int64(chunk), pos-logRecSize)
		pos -= k
		buf := make([]byte, k)
		if _, err := ir.f.ReadAt(buf, pos); err != nil && err != io.EOF {
			return recs
		}
		var part []logRecord
		for i := int64(0); i+logRecSize <= k; i += logRecSize {
			part = append(part, decodeLogRecord(buf[i:]))
		}
		recs = append(part, recs...)
		// Done once a data record before off is in: every record after
		// it is too, the markers at off among them.
		if slices.ContainsFunc(part, func(r logRecord) bool { return r.kind == logRecData && r.off < off }) {
			break
		}
	}
	// From the last data record at or before off (whose time the first
	// line takes), or the markers at off just before it.
	start := 0
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].kind == logRecData && recs[i].off <= off {
			start = i
			break
		}
	}
	for start > 0 && recs[start-1].kind != logRecData && recs[start-1].off == off {
		start--
	}
	return recs[start:]
}

// readNew returns the records appended since the last read.
func (ir *logIndexReader) readNew() []logRecord {
	if ir.f == nil {
		return nil
	}
	var out []logRecord
	buf := make([]byte, 256*logRecSize)
	for {
		n, err := ir.f.ReadAt(buf, ir.next)
		n = n / logRecSize * logRecSize
		for i := 0; i < n; i += logRecSize {
			out = append(out, decodeLogRecord(buf[i:]))
		}
		ir.next += int64(n)
		if err != nil || n == 0 {
			return out
		}
	}
}

// timeline assigns times to lines by their offset, and emits the markers
// at their place among them. Records come in offset order.
type timeline struct {
	recs []logRecord
	last int64 // the time of the latest data record passed
}

func (tl *timeline) add(recs []logRecord) { tl.recs = append(tl.recs, recs...) }

// at returns the time of the line starting at off, after emitting (and
// dropping) every marker before or at off; data records before off are
// dropped once passed.
func (tl *timeline) at(off int64, mark func(logRecord)) int64 {
	i := 0
	for ; i < len(tl.recs) && tl.recs[i].off <= off; i++ {
		switch r := tl.recs[i]; r.kind {
		case logRecData:
			tl.last = max(tl.last, r.t)
		case logRecStarted, logRecExited:
			if mark != nil {
				mark(r)
			}
		}
	}
	tl.recs = tl.recs[i:]
	return tl.last
}

// pending emits the markers up to off (inclusive) without a line: the
// markers after the last line written.
func (tl *timeline) pending(off int64, mark func(logRecord)) { tl.at(off, mark) }
