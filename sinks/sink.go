// Package sinks holds the FerrisStreams sink connectors: files (JSON lines,
// CSV, Arrow IPC, Parquet), stdout, an in-memory sink for tests, and the
// dead-letter file. The JSON and CSV encoders are exported so that other
// packages (HTTP API, tests) render rows exactly as the sinks do.
package sinks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/ferrisstreams/ferris/arrowexec"
)

// Register adds the "file" and "stdout" sink connectors to c.
func Register(c *arrowexec.Connectors) {
	c.RegisterSink("file", NewFile)
	c.RegisterSink("stdout", NewStdout)
}

var fileOptions = []string{"path", "header", "delimiter"}

type opts struct {
	what string
	o    arrowexec.Options
}

func newOpts(connector string, spec arrowexec.SinkSpec, own ...string) (opts, error) {
	o := opts{what: fmt.Sprintf("%s sink %q", connector, spec.Name), o: spec.Options}
	known := append(append([]string(nil), arrowexec.CommonSinkOptions...), own...)
	if err := spec.Options.CheckKnown(connector, known...); err != nil {
		return o, fmt.Errorf("%s: %w", o.what, err)
	}
	return o, nil
}

func (o opts) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{o.what}, args...)...)
}

func (o opts) str(name, def string) string {
	if v, ok := o.o.Get(name); ok && v != "" {
		return v
	}
	return def
}

// csvOptions reads header (default true) and delimiter (default ',').
func (o opts) csvOptions() (header bool, delim byte, err error) {
	header = true
	switch h := o.str("header", "true"); h {
	case "true", "TRUE", "True", "1":
	case "false", "FALSE", "False", "0":
		header = false
	default:
		return false, 0, o.errorf("option header: expected true or false, found %q", h)
	}
	d := o.str("delimiter", ",")
	if len(d) != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r' {
		return false, 0, o.errorf("option delimiter must be one byte other than a quote or newline, found %q", d)
	}
	return header, d[0], nil
}

// NewFile is the factory of the "file" sink connector.
//
// Options: path (required; relative to spec.BaseDir; parent folders are
// created; an existing file is replaced), format = json (default) | csv |
// arrow | parquet, and for csv header (default true) and delimiter (default
// ','). JSON lines and CSV become visible on Flush; Arrow IPC files and
// Parquet files are complete only after Close, which writes their footer.
func NewFile(spec arrowexec.SinkSpec) (arrowexec.Sink, error) {
	o, err := newOpts("file", spec, fileOptions...)
	if err != nil {
		return nil, err
	}
	path := o.str("path", "")
	if path == "" {
		return nil, o.errorf("option path is required")
	}
	if !filepath.IsAbs(path) && spec.BaseDir != "" {
		path = filepath.Join(spec.BaseDir, path)
	}
	s := &fileSink{spec: spec, o: o, path: path, format: o.str("format", "json"), resume: -1}
	switch s.format {
	case "json", "arrow", "parquet":
	case "csv":
		if s.header, s.delim, err = o.csvOptions(); err != nil {
			return nil, err
		}
	default:
		return nil, o.errorf("format %q not supported (json, csv, arrow, parquet)", s.format)
	}
	return s, nil
}

// NewStdout is the factory of the "stdout" sink connector: JSON lines
// (format = json, the default) or CSV (format = csv, with header and
// delimiter) on standard output. Close flushes but leaves stdout open.
func NewStdout(spec arrowexec.SinkSpec) (arrowexec.Sink, error) {
	o, err := newOpts("stdout", spec, "header", "delimiter")
	if err != nil {
		return nil, err
	}
	return newWriterSink(o, spec.Schema, os.Stdout)
}

// NewWriter returns a sink writing JSON lines (format "json") or CSV
// (format "csv", with a header row) to w. Close flushes but does not close
// w. It is what the stdout connector uses, with os.Stdout.
func NewWriter(w io.Writer, schema *arrow.Schema, format string) (arrowexec.Sink, error) {
	o := opts{what: "writer sink", o: arrowexec.Options{"format": format}}
	return newWriterSink(o, schema, w)
}

func newWriterSink(o opts, schema *arrow.Schema, w io.Writer) (arrowexec.Sink, error) {
	format := o.str("format", "json")
	s := &fileSink{o: o, spec: arrowexec.SinkSpec{Schema: schema}, format: format, w: w, resume: -1}
	switch format {
	case "json":
	case "csv":
		var err error
		if s.header, s.delim, err = o.csvOptions(); err != nil {
			return nil, err
		}
	default:
		return nil, o.errorf("format %q not supported (json, csv)", format)
	}
	return s, nil
}

// fileSink writes a file (path set) or an io.Writer it does not own (w set).
type fileSink struct {
	spec   arrowexec.SinkSpec
	o      opts
	path   string
	format string
	header bool
	delim  byte

	w      io.Writer // borrowed writer (stdout); nil for files
	f      *os.File
	bw     *bufio.Writer
	buf    []byte
	json   *JSONEncoder
	ipc    *ipc.FileWriter
	pq     *pqarrow.FileWriter
	opened bool
	closed bool
	resume int64 // ResumeAt: keep this many bytes of the file (-1: replace it)
}

var _ arrowexec.ResumableSink = (*fileSink)(nil)

// Committed implements arrowexec.ResumableSink: the length of the file as
// written so far (the engine has just flushed and synced it; bytes still
// buffered would not count). Arrow and Parquet files, complete only at
// Close, have no committed length: -1.
func (s *fileSink) Committed() (int64, error) {
	if s.f == nil || s.ipc != nil || s.pq != nil {
		return -1, nil
	}
	n, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, s.o.errorf("%w", err)
	}
	return n, nil
}

// ResumeAt implements arrowexec.ResumableSink: Open keeps the first pos
// bytes of the file (JSON lines or CSV, header included) and appends.
func (s *fileSink) ResumeAt(pos int64) error {
	s.resume = pos
	return nil
}

// CheckpointBlocker reports why checkpoints would lose this sink's output:
// an Arrow or Parquet file is rewritten from scratch when a run resumes.
func (s *fileSink) CheckpointBlocker() error {
	if s.path != "" && (s.format == "arrow" || s.format == "parquet") {
		return fmt.Errorf("file sink %s: a %s file cannot be resumed after a restart; use format json or csv", s.path, s.format)
	}
	return nil
}

func (s *fileSink) Open(context.Context) error {
	if s.opened {
		return s.o.errorf("opened twice")
	}
	s.opened = true
	w := s.w
	if w == nil {
		if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
			return s.o.errorf("%w", err)
		}
		f, err := s.openFile()
		if err != nil {
			return s.o.errorf("%w", err)
		}
		s.f, w = f, f
	}
	resumed := s.f != nil && s.resume > 0
	s.bw = bufio.NewWriterSize(w, 256<<10)
	alloc := s.spec.Alloc
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	switch s.format {
	case "json":
		s.json = NewJSONEncoder(s.spec.Schema)
	case "csv":
		if s.header && !resumed {
			s.buf = CSVEncoder{Delim: s.delim}.AppendHeader(s.buf[:0], s.spec.Schema)
			if _, err := s.bw.Write(s.buf); err != nil {
				return s.o.errorf("%w", err)
			}
		}
	case "arrow":
		fw, err := ipc.NewFileWriter(s.bw, ipc.WithSchema(s.spec.Schema), ipc.WithAllocator(alloc))
		if err != nil {
			return s.o.errorf("%w", err)
		}
		s.ipc = fw
	case "parquet":
		props := parquet.NewWriterProperties(parquet.WithAllocator(alloc), parquet.WithCompression(compress.Codecs.Snappy))
		fw, err := pqarrow.NewFileWriter(parquetSchema(s.spec.Schema), s.bw, props,
			pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(alloc)))
		if err != nil {
			return s.o.errorf("%w", err)
		}
		s.pq = fw
	}
	return nil
}

// openFile creates the file, or, resuming at a checkpoint, opens it and
// cuts it back to the committed length.
func (s *fileSink) openFile() (*os.File, error) {
	if s.resume < 0 {
		return os.Create(s.path)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() < s.resume {
		err = fmt.Errorf("%s holds %d bytes, fewer than the %d committed at the checkpoint: it was changed since", s.path, st.Size(), s.resume)
	}
	if err == nil {
		err = f.Truncate(s.resume)
	}
	if err == nil {
		_, err = f.Seek(s.resume, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Write encodes the batch of msg (a watermark-only message writes nothing).
// It does not retain the batch.
func (s *fileSink) Write(_ context.Context, msg arrowexec.Message) error {
	if s.bw == nil || s.closed {
		return s.o.errorf("write on a sink that is not open")
	}
	b := msg.Batch
	if b == nil || b.NumRows() == 0 {
		return nil
	}
	var err error
	switch s.format {
	case "json":
		s.buf = s.json.AppendBatch(s.buf[:0], b)
		_, err = s.bw.Write(s.buf)
	case "csv":
		s.buf = CSVEncoder{Delim: s.delim}.AppendBatch(s.buf[:0], b)
		_, err = s.bw.Write(s.buf)
	case "arrow":
		b = withSchema(b, s.spec.Schema)
		err = s.ipc.Write(b)
		b.Release()
	case "parquet":
		b = durationsAsInt64(withSchema(b, s.spec.Schema))
		err = s.pq.WriteBuffered(b)
		b.Release()
	}
	if cap(s.buf) > 4<<20 {
		s.buf = nil // do not keep a huge buffer after one huge batch
	}
	if err != nil {
		return s.o.errorf("%w", err)
	}
	return nil
}

// Flush writes buffered bytes to the file (and syncs it) or to the
// writer. For arrow and parquet the file stays incomplete until Close.
func (s *fileSink) Flush(context.Context) error {
	if s.bw == nil || s.closed {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return s.o.errorf("%w", err)
	}
	if s.f != nil {
		if err := s.f.Sync(); err != nil {
			return s.o.errorf("%w", err)
		}
	}
	return nil
}

// Close finishes the file (footers for arrow and parquet), flushes and
// closes it; a borrowed writer is flushed only. It is idempotent.
func (s *fileSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.ipc != nil {
		errs = append(errs, s.ipc.Close())
	}
	if s.pq != nil {
		errs = append(errs, s.pq.Close())
	}
	if s.bw != nil {
		errs = append(errs, s.bw.Flush())
	}
	if s.f != nil {
		errs = append(errs, s.f.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return s.o.errorf("%w", err)
	}
	return nil
}

// Parquet has no duration type: INTERVAL columns are written as int64
// milliseconds (the file source reads them back as INTERVAL).

func parquetSchema(sc *arrow.Schema) *arrow.Schema {
	fields := sc.Fields()
	for i, f := range fields {
		if f.Type.ID() == arrow.DURATION {
			fields[i].Type = arrow.PrimitiveTypes.Int64
		}
	}
	md := sc.Metadata()
	return arrow.NewSchema(fields, &md)
}

// withSchema returns b (retained) labelled with the sink's schema, which
// the Arrow and Parquet writers require exactly; the columns are shared.
func withSchema(b arrow.RecordBatch, sc *arrow.Schema) arrow.RecordBatch {
	if b.Schema().Equal(sc) {
		b.Retain()
		return b
	}
	return array.NewRecordBatch(sc, b.Columns(), b.NumRows())
}

// durationsAsInt64 takes ownership of b and returns it with duration
// columns reinterpreted as int64 (zero-copy). The caller releases the
// result.
func durationsAsInt64(b arrow.RecordBatch) arrow.RecordBatch {
	cols := make([]arrow.Array, b.NumCols())
	for i, c := range b.Columns() {
		if c.DataType().ID() != arrow.DURATION {
			c.Retain()
			cols[i] = c
			continue
		}
		d := c.Data()
		nd := array.NewData(arrow.PrimitiveTypes.Int64, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
		cols[i] = array.MakeFromData(nd)
		nd.Release()
	}
	out := array.NewRecordBatch(parquetSchema(b.Schema()), cols, b.NumRows())
	for _, c := range cols {
		c.Release()
	}
	b.Release()
	return out
}
