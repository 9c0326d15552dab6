package sources

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// RecordDecoder decodes self-contained records straight into Arrow column
// builders, for connectors whose input arrives one record at a time (a
// Kafka message value) rather than as a file. It shares the parsers of the
// file source, so values are read by exactly the same rules:
//
//   - "json": one JSON object per record; keys are matched to columns as in
//     JSON lines (exactly, then ASCII case-insensitively), unknown keys are
//     ignored, a missing key is NULL.
//   - "csv": one RFC 4180 record per record, its fields in the order of the
//     schema's columns (there is no header); quoted fields may contain the
//     delimiter, doubled quotes and line breaks.
//
// One trailing line break ("\n" or "\r\n") is ignored. A record is appended
// to every column or to none: a bad record leaves the builders as they were.
// Builders are allocated from the allocator given to NewRecordDecoder.
// A RecordDecoder is not safe for concurrent use.
type RecordDecoder struct {
	schema *arrow.Schema
	cols   []column
	json   *jsonDecoder
	csv    *csvDecoder
	rows   int
	raw    *array.StringBuilder // the records themselves, when the schema ends with arrowexec.RawRecordColumn
}

// RecordError says why a record could not be decoded: the column (empty
// when the record as a whole is bad) and the reason, e.g. Field "price",
// Reason `expected DECIMAL(18,4), found "abc"`.
type RecordError struct {
	Field  string
	Reason string
}

func (e *RecordError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return "field " + e.Field + ": " + e.Reason
}

// NewRecordDecoder returns a decoder of records in format ("json" or
// "csv") into columns of schema. delim is the CSV field delimiter (ignored
// for json). Every column type of the SQL dialect is supported; anything
// else is an error naming the column. The caller must Release the decoder.
//
// A schema ending with arrowexec.RawRecordColumn gets each record, as it
// was given, in that column.
func NewRecordDecoder(schema *arrow.Schema, format string, delim byte, alloc memory.Allocator) (*RecordDecoder, error) {
	schema, keepRaw := withoutRaw(schema)
	cols, err := newColumns(schema)
	if err != nil {
		return nil, err
	}
	d := &RecordDecoder{schema: schema, cols: cols}
	switch format {
	case "json":
		d.json = &jsonDecoder{cols: cols}
	case "csv":
		if delim == '"' || delim == '\n' || delim == '\r' {
			return nil, fmt.Errorf("csv delimiter must be one byte other than a quote or newline, found %q", delim)
		}
		fieldCol := make([]int, len(cols))
		for i := range fieldCol {
			fieldCol[i] = i
		}
		// A record is complete: an unterminated quote finds no
		// continuation line (the reader is at its end at once).
		d.csv = &csvDecoder{cols: cols, delim: delim, lr: newLineReader(eofReader{}, 0), max: DefaultMaxRecordBytes, fieldCol: fieldCol}
	default:
		return nil, fmt.Errorf("record format %q not supported (json, csv)", format)
	}
	initBuilders(cols, schema, alloc)
	if keepRaw {
		d.raw = array.NewStringBuilder(alloc)
	}
	return d, nil
}

// Append decodes rec and appends it as one row, or returns why it could
// not (and appends nothing). rec is not retained.
func (d *RecordDecoder) Append(rec []byte) *RecordError {
	value := rec
	if n := len(rec); n > 0 && rec[n-1] == '\n' {
		rec = rec[:n-1]
		if n > 1 && rec[n-2] == '\r' {
			rec = rec[:n-2]
		}
	}
	var rerr *recordError
	if d.json != nil {
		rerr = d.json.decodeLine(rec)
	} else {
		// The reader never blocks nor fails: the error is always nil.
		rerr, _ = d.csv.decode(context.Background(), rec)
	}
	if rerr != nil {
		return &RecordError{Field: rerr.field, Reason: rerr.reason}
	}
	d.rows++
	if d.raw != nil {
		d.raw.BinaryBuilder.Append(value)
	}
	return nil
}

// Rows is the number of rows appended since the last NewArrays.
func (d *RecordDecoder) Rows() int { return d.rows }

// Reserve makes room for n more rows in every builder.
func (d *RecordDecoder) Reserve(n int) {
	for i := range d.cols {
		d.cols[i].builder.Reserve(n)
	}
	if d.raw != nil {
		d.raw.Reserve(n)
	}
}

// NewArrays returns the rows appended so far as one array per column of the
// schema, in order, and starts over with empty builders. The arrays belong
// to the caller, who must Release them.
func (d *RecordDecoder) NewArrays() []arrow.Array {
	arrs := make([]arrow.Array, len(d.cols), len(d.cols)+1)
	for i := range d.cols {
		arrs[i] = d.cols[i].builder.NewArray()
	}
	if d.raw != nil {
		arrs = append(arrs, d.raw.NewArray())
	}
	d.rows = 0
	return arrs
}

// Release frees the builders; the decoder must not be used afterwards. It
// is idempotent.
func (d *RecordDecoder) Release() {
	releaseBuilders(d.cols)
	if d.raw != nil {
		d.raw.Release()
		d.raw = nil
	}
}

// eofReader is an input that is always at its end.
type eofReader struct{}

func (eofReader) read(context.Context, []byte, time.Time) (int, error) { return 0, io.EOF }
func (eofReader) close() error                                         { return nil }
