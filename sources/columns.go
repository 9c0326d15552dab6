package sources

import (
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// ColumnKind is how record decoders stage a declared column's values: one
// kind per column type of the SQL dialect.
type ColumnKind uint8

const (
	KindBool ColumnKind = iota
	KindInt32
	KindInt64
	KindFloat64
	KindDecimal
	KindString
	KindTimestamp
	KindDate
	KindInterval
)

// column is one declared column of a text source: the value staged for the
// record being decoded and the builder the record is committed to. Staging
// lets a bad record be dropped without leaving a partial row behind.
type column struct {
	name     string
	nameB    []byte // name, for case-insensitive key matching
	kind     ColumnKind
	sqlName  string
	nullable bool
	prec     int32
	scale    int32
	builder  array.Builder

	// staged value of the current record
	set     bool // a non-null value is staged
	i64     int64
	f64     float64
	dec     decimal128.Num
	b       bool
	str     []byte // aliases the input line or scratch
	scratch []byte // unescape buffer, reused
}

// newColumns builds the columns of schema. Every type the SQL dialect
// declares is supported; anything else is an error naming the column.
func newColumns(schema *arrow.Schema) ([]column, error) {
	cols := make([]column, schema.NumFields())
	for i, f := range schema.Fields() {
		c := &cols[i]
		c.name, c.nameB, c.nullable, c.sqlName = f.Name, []byte(f.Name), f.Nullable, sqltypes.Name(f.Type)
		var err error
		if c.kind, err = KindOf(f); err != nil {
			return nil, err
		}
		if t, ok := f.Type.(*arrow.Decimal128Type); ok {
			c.prec, c.scale = t.Precision, t.Scale
		}
	}
	return cols, nil
}

// KindOf classifies the type of a declared column. Every type the SQL
// dialect declares has a kind; anything else is an error naming the
// column.
func KindOf(f arrow.Field) (ColumnKind, error) {
	switch t := f.Type.(type) {
	case *arrow.BooleanType:
		return KindBool, nil
	case *arrow.Int32Type:
		return KindInt32, nil
	case *arrow.Int64Type:
		return KindInt64, nil
	case *arrow.Float64Type:
		return KindFloat64, nil
	case *arrow.Decimal128Type:
		return KindDecimal, nil
	case *arrow.StringType:
		return KindString, nil
	case *arrow.TimestampType:
		if t.Unit != arrow.Millisecond {
			return 0, fmt.Errorf("column %q: timestamp unit %s not supported (milliseconds expected)", f.Name, t.Unit)
		}
		return KindTimestamp, nil
	case *arrow.Date32Type:
		return KindDate, nil
	case *arrow.DurationType:
		if t.Unit != arrow.Millisecond {
			return 0, fmt.Errorf("column %q: duration unit %s not supported (milliseconds expected)", f.Name, t.Unit)
		}
		return KindInterval, nil
	}
	return 0, fmt.Errorf("column %q: type %s not supported", f.Name, f.Type)
}

// initBuilders creates one builder per column from alloc.
func initBuilders(cols []column, schema *arrow.Schema, alloc memory.Allocator) {
	for i := range cols {
		cols[i].builder = array.NewBuilder(alloc, schema.Field(i).Type)
	}
}

func releaseBuilders(cols []column) {
	for i := range cols {
		if cols[i].builder != nil {
			cols[i].builder.Release()
			cols[i].builder = nil
		}
	}
}

// setText stages the textual value v (JSON string content, JSON number or
// literal, or CSV field) for c. v may alias the input; it is consumed before
// the input advances.
func (c *column) setText(v []byte) parseErr {
	var pe parseErr
	switch c.kind {
	case KindString:
		if !utf8.Valid(v) {
			return errUTF8
		}
		c.str = v
	case KindInt64:
		c.i64, pe = parseInt(v, math.MinInt64, math.MaxInt64)
	case KindInt32:
		c.i64, pe = parseInt(v, math.MinInt32, math.MaxInt32)
	case KindFloat64:
		c.f64, pe = parseFloat(v)
	case KindDecimal:
		c.dec, pe = parseDecimal(v, c.prec, c.scale)
	case KindTimestamp:
		c.i64, pe = parseTimestamp(v)
	case KindDate:
		var d int32
		d, pe = parseDate(v)
		c.i64 = int64(d)
	case KindInterval:
		c.i64, pe = parseInt(v, math.MinInt64, math.MaxInt64)
	case KindBool:
		c.b, pe = parseBool(v)
	}
	c.set = pe == errNone
	return pe
}

// commit appends the staged value (or NULL) to the builder and clears it.
func (c *column) commit() {
	if !c.set {
		c.builder.AppendNull()
		return
	}
	c.set = false
	switch c.kind {
	case KindString:
		c.builder.(*array.StringBuilder).BinaryBuilder.Append(c.str)
	case KindInt64:
		c.builder.(*array.Int64Builder).Append(c.i64)
	case KindInt32:
		c.builder.(*array.Int32Builder).Append(int32(c.i64))
	case KindFloat64:
		c.builder.(*array.Float64Builder).Append(c.f64)
	case KindDecimal:
		c.builder.(*array.Decimal128Builder).Append(c.dec)
	case KindTimestamp:
		c.builder.(*array.TimestampBuilder).Append(arrow.Timestamp(c.i64))
	case KindDate:
		c.builder.(*array.Date32Builder).Append(arrow.Date32(c.i64))
	case KindInterval:
		c.builder.(*array.DurationBuilder).Append(arrow.Duration(c.i64))
	case KindBool:
		c.builder.(*array.BooleanBuilder).Append(c.b)
	}
}

// describe renders a parse failure of token for c, e.g.
// `expected BIGINT, found "abc"`.
func (c *column) describe(pe parseErr, token []byte) string {
	tok := truncate(token, 80)
	switch pe {
	case errRange:
		return fmt.Sprintf("value %s out of range for %s", tok, c.sqlName)
	case errPrecision:
		return fmt.Sprintf("value %s does not fit %s", tok, c.sqlName)
	case errUTF8:
		return "invalid UTF-8 in string"
	}
	return fmt.Sprintf("expected %s, found %s", c.sqlName, tok)
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// buildBatch turns the committed rows into a record batch allocated from the
// builders' allocator; ownership passes to the caller. The builders are
// reset and reserved for the next batch.
func buildBatch(cols []column, schema *arrow.Schema, rows int) arrow.RecordBatch {
	arrs := make([]arrow.Array, len(cols))
	for i := range cols {
		arrs[i] = cols[i].builder.NewArray()
	}
	rec := array.NewRecordBatch(schema, arrs, int64(rows))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}
