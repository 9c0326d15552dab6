package sources

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// errStall is returned by a reader when no input arrived before the
// deadline it was given; the caller may flush a partial batch.
var errStall = errors.New("input stalled")

// chunkReader reads from the input. deadline is zero to wait indefinitely;
// otherwise a reader that can observe stalls returns errStall once it
// passes. Readers of regular files ignore deadline: they never stall.
type chunkReader interface {
	read(ctx context.Context, p []byte, deadline time.Time) (int, error)
	close() error
}

// fileReader reads a regular file; reads never block for long.
type fileReader struct{ f *os.File }

func (r fileReader) read(_ context.Context, p []byte, _ time.Time) (int, error) { return r.f.Read(p) }
func (r fileReader) close() error                                               { return r.f.Close() }

// asyncReader reads a pipe, FIFO or terminal in a goroutine so that the
// consumer can wait with a deadline and honour ctx. Two buffers alternate
// between the goroutine and the consumer.
type asyncReader struct {
	f     *os.File
	full  chan chunk
	free  chan []byte
	done  chan struct{}
	cur   chunk
	off   int
	timer *time.Timer
}

type chunk struct {
	buf []byte
	err error
}

func newAsyncReader(f *os.File) *asyncReader {
	r := &asyncReader{f: f, full: make(chan chunk, 1), free: make(chan []byte, 2), done: make(chan struct{})}
	r.free <- make([]byte, 64<<10)
	r.free <- make([]byte, 64<<10)
	go r.loop()
	return r
}

func (r *asyncReader) loop() {
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.done:
			return
		}
		n, err := r.f.Read(buf[:cap(buf)])
		select {
		case r.full <- chunk{buf[:n], err}:
		case <-r.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *asyncReader) read(ctx context.Context, p []byte, deadline time.Time) (int, error) {
	for r.off == len(r.cur.buf) {
		if r.cur.err != nil {
			return 0, r.cur.err
		}
		if r.cur.buf != nil {
			r.free <- r.cur.buf[:0]
			r.cur.buf, r.off = nil, 0
		}
		var stall <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				select {
				case r.cur = <-r.full:
					r.off = 0
					continue
				default:
					return 0, errStall
				}
			}
			if r.timer == nil {
				r.timer = time.NewTimer(d)
			} else {
				r.timer.Reset(d)
			}
			stall = r.timer.C
		}
		select {
		case r.cur = <-r.full:
			r.off = 0
		case <-stall:
			return 0, errStall
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	n := copy(p, r.cur.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *asyncReader) close() error {
	close(r.done)
	if r.timer != nil {
		r.timer.Stop()
	}
	return r.f.Close()
}

// lineReader splits input into lines without copying them. The slice a
// call returns is valid until the next call. A line longer than max bytes
// is reported (tooLong, with only its first bytes) and skipped instead of
// being buffered whole.
type lineReader struct {
	r          chunkReader
	buf        []byte
	start, end int
	scanned    int // buf[start:scanned] holds no newline
	max        int
	eof        bool
	skipping   bool   // discarding the rest of an over-long line
	longPrefix []byte // first bytes of the over-long line
	line       int    // number of the line last returned (1-based)
	total      int64  // bytes read from the input
}

// offset is the input offset just after the last line returned.
func (lr *lineReader) offset() int64 { return lr.total - int64(lr.end-lr.start) }

// reset makes the reader continue from input offset off, whose line number
// is line, after the caller moved the input there.
func (lr *lineReader) reset(off int64, line int) {
	lr.start, lr.end, lr.scanned = 0, 0, 0
	lr.eof, lr.skipping = false, false
	lr.total, lr.line = off, line
}

const longPrefixBytes = 256

func newLineReader(r chunkReader, max int) *lineReader {
	size := 256 << 10
	if max+1 < size {
		size = max + 1
	}
	return &lineReader{r: r, buf: make([]byte, size), max: max}
}

// next returns the next line without its terminator ("\n" or "\r\n").
// tooLong reports an over-long line, of which line holds a prefix. At the
// end it returns io.EOF; errStall and ctx errors leave the reader intact
// for another call.
func (lr *lineReader) next(ctx context.Context, deadline time.Time) (line []byte, tooLong bool, err error) {
	for {
		if j := bytes.IndexByte(lr.buf[lr.scanned:lr.end], '\n'); j >= 0 {
			j += lr.scanned
			line = lr.buf[lr.start:j]
			lr.start, lr.scanned = j+1, j+1
			lr.line++
			if lr.skipping {
				lr.skipping = false
				return lr.longPrefix, true, nil
			}
			return lr.trim(line)
		}
		lr.scanned = lr.end
		if lr.eof {
			if lr.skipping {
				lr.skipping = false
				lr.line++
				return lr.longPrefix, true, nil
			}
			if lr.start < lr.end {
				line = lr.buf[lr.start:lr.end]
				lr.start = lr.end
				lr.line++
				return lr.trim(line)
			}
			return nil, false, io.EOF
		}
		if !lr.skipping && lr.end-lr.start > lr.max {
			lr.skipping = true
			lr.longPrefix = append(lr.longPrefix[:0], lr.buf[lr.start:lr.start+longPrefixBytes]...)
		}
		if lr.skipping {
			lr.start, lr.end, lr.scanned = 0, 0, 0
		}
		if err := lr.fill(ctx, deadline); err != nil {
			return nil, false, err
		}
	}
}

// trim drops a trailing '\r' and, on line 1, a UTF-8 byte order mark, and
// reports an over-long line.
func (lr *lineReader) trim(line []byte) ([]byte, bool, error) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if lr.line == 1 && bytes.HasPrefix(line, utf8BOM) {
		line = line[len(utf8BOM):]
	}
	if len(line) > lr.max {
		return line[:min(len(line), longPrefixBytes)], true, nil
	}
	return line, false, nil
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// fill reads more input, compacting or growing the buffer first.
func (lr *lineReader) fill(ctx context.Context, deadline time.Time) error {
	if lr.start > 0 && lr.end == len(lr.buf) || lr.start == lr.end {
		n := copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.scanned -= lr.start
		lr.start, lr.end = 0, n
	}
	if lr.end == len(lr.buf) {
		nb := make([]byte, min(2*len(lr.buf), lr.max+1+4096))
		copy(nb, lr.buf[lr.start:lr.end])
		lr.scanned -= lr.start
		lr.end -= lr.start
		lr.start = 0
		lr.buf = nb
	}
	n, err := lr.r.read(ctx, lr.buf[lr.end:], deadline)
	lr.end += n
	lr.total += int64(n)
	if err == io.EOF {
		lr.eof = true
		return nil
	}
	if err != nil && n > 0 && err != errStall {
		return err
	}
	if err == errStall && n > 0 {
		return nil
	}
	return err
}
