package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/arrowexec"
)

// fileOptions are the options of the file source beyond the common ones.
var fileOptions = []string{"path", "header", "delimiter", "max_record_bytes"}

// NewFile is the factory of the "file" source connector.
//
// Options: path (required; relative to spec.BaseDir), format = json
// (default) | csv | arrow | parquet, batch_size, linger_ms, and for csv
// header (default true) and delimiter (default ','); max_record_bytes
// (default 1 MiB) bounds one line of json or csv.
//
// Bad records of json and csv (invalid syntax, a value of the wrong type or
// out of range, a NOT NULL column missing, a line longer than
// max_record_bytes) are sent to spec.DeadLetter and skipped; without a
// dead-letter sink the first one stops the source with an error naming the
// file, line and field. Arrow and Parquet files are checked against the
// declared schema at Open; compatible types are cast.
func NewFile(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
	o, err := newOpts("file", spec, fileOptions...)
	if err != nil {
		return nil, err
	}
	path := o.str("path", "")
	if path == "" {
		return nil, o.errorf("option path is required")
	}
	batchSize, linger, err := o.batching(spec)
	if err != nil {
		return nil, err
	}
	format := o.str("format", "json")
	base := fileBase{
		spec: spec, o: o, batchSize: batchSize,
		path: resolve(spec.BaseDir, path), source: fmt.Sprintf("%s (%s)", spec.Name, path),
	}
	switch format {
	case "json", "csv":
		maxRec, err := o.int("max_record_bytes", DefaultMaxRecordBytes, 1)
		if err != nil {
			return nil, err
		}
		header, err := o.bool("header", true)
		if err != nil {
			return nil, err
		}
		delim := o.str("delimiter", ",")
		if format == "csv" && (len(delim) != 1 || delim[0] == '"' || delim[0] == '\n' || delim[0] == '\r') {
			return nil, o.errorf("option delimiter must be one byte other than a quote or newline, found %q", delim)
		}
		decl, keepRaw := withoutRaw(spec.Schema)
		cols, err := newColumns(decl)
		if err != nil {
			return nil, o.errorf("%w", err)
		}
		return &textSource{fileBase: base, format: format, linger: linger, maxRecord: int(maxRec),
			header: header, delim: delim[0], cols: cols, decl: decl, keepRaw: keepRaw}, nil
	case "arrow", "parquet":
		if err := checkDeclared(spec.Schema); err != nil {
			return nil, o.errorf("%w", err)
		}
		return &columnarSource{fileBase: base, format: format}, nil
	}
	return nil, o.errorf("format %q not supported (json, csv, arrow, parquet)", format)
}

// fileBase is what the file source formats share.
type fileBase struct {
	spec      arrowexec.SourceSpec
	o         opts
	path      string // resolved
	source    string // "<stream> (<path>)" for dead letters and errors
	batchSize int
}

func (b *fileBase) Schema() *arrow.Schema { return b.spec.Schema }

// textSource reads JSON lines or CSV.
type textSource struct {
	fileBase
	format    string
	linger    time.Duration
	maxRecord int
	header    bool
	delim     byte

	cols     []column
	decl     *arrow.Schema        // the columns decoded: spec.Schema without RawRecordColumn
	keepRaw  bool                 // spec.Schema ends with RawRecordColumn: each record's line goes there
	raw      *array.StringBuilder // the lines of the batch being built (keepRaw)
	rawBytes int                  // the bytes of the last batch's lines
	dec      interface {
		decode(ctx context.Context, line []byte) (*recordError, error)
	}
	in     chunkReader
	lr     *lineReader
	async  bool
	done   bool
	closed bool
	resume *filePosition // Seek: where Open starts
}

// filePosition is a file source's checkpoint position: the byte offset and
// line number after the last record returned (JSON and CSV), or the rows
// returned (Arrow and Parquet).
type filePosition struct {
	Offset int64 `json:"offset,omitempty"`
	Line   int   `json:"line,omitempty"`
	Rows   int64 `json:"rows,omitempty"`
}

// Position implements arrowexec.Checkpointable. Only regular files have
// positions: a pipe cannot be read again.
func (s *textSource) Position() ([]byte, error) {
	if s.async {
		return nil, s.o.errorf("%s is not a regular file: its position cannot be saved", s.path)
	}
	if s.lr == nil {
		if s.resume != nil {
			return json.Marshal(s.resume)
		}
		return json.Marshal(filePosition{})
	}
	return json.Marshal(filePosition{Offset: s.lr.offset(), Line: s.lr.line})
}

// Seek implements arrowexec.Checkpointable: Open starts reading at pos.
func (s *textSource) Seek(pos []byte) error {
	var p filePosition
	if err := json.Unmarshal(pos, &p); err != nil {
		return s.o.errorf("bad checkpoint position: %w", err)
	}
	s.resume = &p
	return nil
}

var _ arrowexec.Operator = (*textSource)(nil)

func (s *textSource) Open(ctx context.Context) error {
	f, err := os.Open(s.path)
	if err != nil {
		return s.o.errorf("%w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return s.o.errorf("%w", err)
	}
	if st.Mode().IsRegular() {
		s.in = fileReader{f}
	} else {
		s.in, s.async = newAsyncReader(f), true
	}
	s.lr = newLineReader(s.in, s.maxRecord)
	if s.format == "csv" {
		d := &csvDecoder{cols: s.cols, delim: s.delim, lr: s.lr, max: s.maxRecord}
		if err := d.init(ctx, s.header); err != nil {
			return s.o.errorf("%s: %w", s.path, err)
		}
		s.dec = d
	} else {
		s.dec = &jsonDecoder{cols: s.cols}
	}
	if p := s.resume; p != nil && p.Offset > 0 { // after the CSV header, read above
		if s.async {
			return s.o.errorf("%s is not a regular file: cannot resume at offset %d", s.path, p.Offset)
		}
		if _, err := f.Seek(p.Offset, io.SeekStart); err != nil {
			return s.o.errorf("%s: resuming: %w", s.path, err)
		}
		s.lr.reset(p.Offset, p.Line)
	}
	initBuilders(s.cols, s.decl, s.spec.Alloc)
	if s.keepRaw {
		s.raw = array.NewStringBuilder(s.spec.Alloc)
	}
	return nil
}

// Next decodes up to batch_size records. For a pipe or terminal a partial
// batch is returned once linger_ms passed since its first row without the
// batch filling up; for a regular file only end of input ends a batch
// early. After the last batch it returns io.EOF.
func (s *textSource) Next(ctx context.Context) (arrowexec.Message, error) {
	if err := ctx.Err(); err != nil {
		return arrowexec.Message{}, err
	}
	if s.lr == nil {
		return arrowexec.Message{}, s.o.errorf("Next called before Open")
	}
	if s.done {
		return arrowexec.Message{}, io.EOF
	}
	for i := range s.cols {
		s.cols[i].builder.Reserve(min(s.batchSize, 1<<14))
	}
	if s.raw != nil {
		s.raw.Reserve(min(s.batchSize, 1<<14))
		s.raw.ReserveData(s.rawBytes) // as much as the last batch held
	}
	rows := 0
	var deadline time.Time
	for rows < s.batchSize {
		if rows&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return arrowexec.Message{}, err
			}
		}
		line, tooLong, err := s.lr.next(ctx, deadline)
		if err != nil {
			if err == errStall {
				break
			}
			if err == io.EOF {
				s.done = true
				break
			}
			if ctx.Err() != nil {
				return arrowexec.Message{}, err
			}
			return arrowexec.Message{}, s.o.errorf("%s: %w", s.path, err)
		}
		lineNo := s.lr.line
		if tooLong {
			rerr := &recordError{reason: fmt.Sprintf("record longer than max_record_bytes (%d)", s.maxRecord)}
			if err := s.bad(ctx, lineNo, rerr, line); err != nil {
				return arrowexec.Message{}, err
			}
			continue
		}
		if blank(line) {
			continue
		}
		rerr, err := s.dec.decode(ctx, line)
		if err != nil {
			return arrowexec.Message{}, s.o.errorf("%s: %w", s.path, err)
		}
		if rerr != nil {
			raw := line
			if d, ok := s.dec.(*csvDecoder); ok && d.joined {
				raw = d.rec
			}
			if err := s.bad(ctx, lineNo, rerr, raw); err != nil {
				return arrowexec.Message{}, err
			}
			continue
		}
		if s.raw != nil {
			if d, ok := s.dec.(*csvDecoder); ok && d.joined {
				line = d.rec
			}
			s.raw.BinaryBuilder.Append(line)
		}
		rows++
		if rows == 1 && s.async {
			deadline = time.Now().Add(s.linger)
		}
	}
	if rows == 0 {
		return arrowexec.Message{}, io.EOF
	}
	batch := buildBatch(s.cols, s.decl, rows)
	if s.raw != nil {
		s.rawBytes = s.raw.DataLen()
		batch = appendColumn(batch, s.spec.Schema, s.raw)
	}
	return arrowexec.Message{Batch: batch, Watermark: arrowexec.NoWatermark}, nil
}

// withoutRaw returns schema without a trailing arrowexec.RawRecordColumn,
// and whether it had one.
func withoutRaw(schema *arrow.Schema) (*arrow.Schema, bool) {
	n := schema.NumFields()
	if n == 0 || schema.Field(n-1).Name != arrowexec.RawRecordColumn {
		return schema, false
	}
	return arrow.NewSchema(schema.Fields()[:n-1], nil), true
}

// appendColumn returns batch (released) with the array of b appended, as
// schema.
func appendColumn(batch arrow.RecordBatch, schema *arrow.Schema, b array.Builder) arrow.RecordBatch {
	col := b.NewArray()
	defer col.Release()
	defer batch.Release()
	return array.NewRecordBatch(schema, append(batch.Columns()[:len(batch.Columns()):len(batch.Columns())], col), batch.NumRows())
}

// bad hands a bad record to the dead-letter sink, or turns it into the
// error that stops the source when there is none.
func (s *textSource) bad(ctx context.Context, line int, rerr *recordError, raw []byte) error {
	if s.spec.DeadLetter == nil {
		if rerr.field != "" {
			return s.o.errorf("%s line %d: field %s: %s", s.path, line, rerr.field, rerr.reason)
		}
		return s.o.errorf("%s line %d: %s", s.path, line, rerr.reason)
	}
	err := s.spec.DeadLetter.DeadLetter(ctx, arrowexec.DeadLetterRecord{
		Source: s.source, Position: fmt.Sprintf("line %d", line), Field: rerr.field,
		Reason: rerr.reason, Raw: string(raw), Time: time.Now().UTC(),
	})
	if errors.Is(err, arrowexec.ErrData) { // failure_strategy fail: the message says it all
		return s.o.errorf("%w", err)
	}
	if err != nil {
		return s.o.errorf("dead letter: %w", err)
	}
	return nil
}

func (s *textSource) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	releaseBuilders(s.cols)
	if s.raw != nil {
		s.raw.Release()
	}
	if s.in != nil {
		if err := s.in.close(); err != nil && !errors.Is(err, os.ErrClosed) {
			return s.o.errorf("%w", err)
		}
	}
	return nil
}
