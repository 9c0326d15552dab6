// Package avro reads and writes Avro records in the Confluent wire format
// (a zero magic byte, the writer schema's registry id as 4 bytes
// big-endian, then the Avro binary body), straight from and to Arrow
// columns.
//
// Reading: each writer schema is fetched once from the schema registry,
// by id, and compiled against the declared columns into a small program
// of type-specialised steps (compile.go); a record is then read by running
// its writer's program over the bytes, with no intermediate values.
// Writer fields are matched to columns by name (exactly, then ASCII
// case-insensitively); fields of nested records are named with dots
// ("ship.city"); fields without a column are skipped (arrays and maps
// included); a column the writer lacks is NULL, or makes every record of
// that writer bad if it is NOT NULL. A writer type reads into:
//
//	boolean                      BOOLEAN
//	int                          INT, BIGINT, DOUBLE
//	long                         BIGINT, DOUBLE
//	float, double                DOUBLE
//	string, uuid, enum, bytes    VARCHAR (bytes must be UTF-8)
//	decimal (bytes, fixed)       DECIMAL whose scale is at least the writer's
//	timestamp-millis, -micros    TIMESTAMP (micros floored to milliseconds), BIGINT
//	date                         DATE
//	["null", T]                  a nullable T (NULL for a NOT NULL column: a bad record)
//
// Columns gives the columns of a writer schema for streams that declare
// none; WriterSchema and Encoder write rows (encode.go).
package avro

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/sources"
)

// ErrSchemaNotFound is returned (wrapped) by a Registry that has no schema
// with the id asked for; records naming it are bad records, not a failure
// of the source.
var ErrSchemaNotFound = errors.New("schema not found")

// Registry gives the text of the writer schema with a registry id.
// Implementations are safe for concurrent use.
type Registry interface {
	Schema(ctx context.Context, id int) (string, error)
}

// slot is one declared column: its builder and the value staged for the
// record being decoded. Staging lets a bad record be dropped whole.
type slot struct {
	name     string
	sqlName  string
	nullable bool
	kind     sources.ColumnKind
	prec     int32
	scale    int32
	b        array.Builder

	null bool
	i64  int64
	f64  float64
	dec  decimal128.Num
	str  []byte // aliases the record
	bl   bool
}

// Decoder decodes Confluent-framed Avro records into the columns of a
// schema. A record is appended to every column or to none. Builders are
// allocated from the allocator given to NewDecoder. A Decoder is not safe
// for concurrent use.
type Decoder struct {
	reg   Registry
	cols  []slot
	progs map[int]*program // by writer schema id; failed compilations too
	last  *program         // the program of the last record (ids repeat)
	rows  int
}

// NewDecoder returns a decoder into the columns of schema whose writer
// schemas come from reg. Column types are those of the SQL dialect except
// INTERVAL; anything else is an error naming the column. The caller must
// Release the decoder.
func NewDecoder(schema *arrow.Schema, reg Registry, alloc memory.Allocator) (*Decoder, error) {
	cols := make([]slot, schema.NumFields())
	for i, f := range schema.Fields() {
		c := &cols[i]
		c.name, c.nullable, c.sqlName = f.Name, f.Nullable, sqltypes.Name(f.Type)
		var err error
		if c.kind, err = sources.KindOf(f); err != nil {
			return nil, err
		}
		switch t := f.Type.(type) {
		case *arrow.Decimal128Type:
			c.prec, c.scale = t.Precision, t.Scale
		case *arrow.DurationType:
			return nil, fmt.Errorf("column %q: type %s not supported by format avro", f.Name, c.sqlName)
		}
	}
	for i := range cols {
		cols[i].b = array.NewBuilder(alloc, schema.Field(i).Type)
	}
	return &Decoder{reg: reg, cols: cols, progs: map[int]*program{}}, nil
}

// SchemaID returns the writer schema id of a Confluent-framed value, or
// false when value is not framed so.
func SchemaID(value []byte) (int, bool) {
	if len(value) < 5 || value[0] != 0 {
		return 0, false
	}
	return int(binary.BigEndian.Uint32(value[1:5])), true
}

// Resolve fetches and compiles the writer schema value names, unless it
// was already; Append of a value needs its schema resolved first. An error
// is a failure to reach the registry; a schema that is missing or cannot
// be read into the columns is remembered, and its records are bad.
func (d *Decoder) Resolve(ctx context.Context, value []byte) error {
	id, ok := SchemaID(value)
	if !ok {
		return nil
	}
	if _, ok := d.progs[id]; ok {
		return nil
	}
	text, err := d.reg.Schema(ctx, id)
	if errors.Is(err, ErrSchemaNotFound) {
		d.progs[id] = &program{id: id, err: fmt.Sprintf("writer schema id %d is not in the schema registry", id)}
		return nil
	}
	if err != nil {
		return fmt.Errorf("schema registry: writer schema id %d: %w", id, err)
	}
	p := compile(text, d.cols)
	p.id = id
	d.progs[id] = p
	return nil
}

// Append decodes value as one row, or returns why it could not (and
// appends nothing). value is not retained.
func (d *Decoder) Append(value []byte) *sources.RecordError {
	id, ok := SchemaID(value)
	if !ok {
		return &sources.RecordError{Reason: "not in the Confluent Avro wire format (magic byte 0 and a 4-byte schema id)"}
	}
	p := d.last
	if p == nil || p.id != id {
		if p = d.progs[id]; p == nil {
			return &sources.RecordError{Reason: fmt.Sprintf("writer schema id %d was not resolved", id)}
		}
		d.last = p
	}
	if p.err != "" {
		return &sources.RecordError{Field: p.errField, Reason: p.err}
	}
	pos, f := d.run(p.ops, value, 5)
	if f.code == failNone && pos != len(value) {
		f = fail{code: failTrailing, col: -1}
	}
	if f.code == failNone {
		for _, c := range p.checks {
			if d.cols[c].null {
				f = fail{code: failNull, col: c}
				break
			}
		}
	}
	if f.code != failNone {
		return d.describe(p, f, len(value)-pos)
	}
	for i := range d.cols {
		d.cols[i].commit()
	}
	d.rows++
	return nil
}

// Rows is the number of rows appended since the last NewArrays.
func (d *Decoder) Rows() int { return d.rows }

// Reserve makes room for n more rows in every builder.
func (d *Decoder) Reserve(n int) {
	for i := range d.cols {
		d.cols[i].b.Reserve(n)
	}
}

// NewArrays returns the rows appended so far as one array per column, in
// order, and starts over with empty builders. The arrays belong to the
// caller, who must Release them.
func (d *Decoder) NewArrays() []arrow.Array {
	arrs := make([]arrow.Array, len(d.cols))
	for i := range d.cols {
		arrs[i] = d.cols[i].b.NewArray()
	}
	d.rows = 0
	return arrs
}

// Release frees the builders; the decoder must not be used afterwards. It
// is idempotent.
func (d *Decoder) Release() {
	for i := range d.cols {
		if d.cols[i].b != nil {
			d.cols[i].b.Release()
			d.cols[i].b = nil
		}
	}
}

// commit appends the staged value (or NULL).
func (c *slot) commit() {
	if c.null {
		c.b.AppendNull()
		return
	}
	switch c.kind {
	case sources.KindString:
		c.b.(*array.StringBuilder).BinaryBuilder.Append(c.str)
	case sources.KindInt64:
		c.b.(*array.Int64Builder).Append(c.i64)
	case sources.KindInt32:
		c.b.(*array.Int32Builder).Append(int32(c.i64))
	case sources.KindFloat64:
		c.b.(*array.Float64Builder).Append(c.f64)
	case sources.KindDecimal:
		c.b.(*array.Decimal128Builder).Append(c.dec)
	case sources.KindTimestamp:
		c.b.(*array.TimestampBuilder).Append(arrow.Timestamp(c.i64))
	case sources.KindDate:
		c.b.(*array.Date32Builder).Append(arrow.Date32(c.i64))
	case sources.KindBool:
		c.b.(*array.BooleanBuilder).Append(c.bl)
	}
}

// failCode says why running a program stopped; the message is built only
// for bad records (describe).
type failCode uint8

const (
	failNone      failCode = iota
	failShort              // the record ends inside a value
	failVarint             // a malformed variable-length integer
	failLength             // a negative length or count
	failUnion              // a union branch index out of range
	failUTF8               // a string that is not UTF-8
	failRange              // a value outside the column type's range
	failPrecision          // a decimal that does not fit the column
	failNull               // NULL for a NOT NULL column
	failTrailing           // bytes left after the record
)

type fail struct {
	code failCode
	col  int32 // the column being read, -1 if none
}

func (d *Decoder) describe(p *program, f fail, left int) *sources.RecordError {
	e := &sources.RecordError{}
	if f.col >= 0 {
		c := &d.cols[f.col]
		e.Field = c.name
		switch f.code {
		case failUTF8:
			e.Reason = "invalid UTF-8 in string"
			return e
		case failRange:
			e.Reason = "value out of range for " + c.sqlName
			return e
		case failPrecision:
			e.Reason = "value does not fit " + c.sqlName
			return e
		case failNull:
			e.Reason = "missing value for NOT NULL column " + c.name
			return e
		}
	}
	var what string
	switch f.code {
	case failShort:
		what = "the record ends inside a value"
	case failVarint:
		what = "malformed variable-length integer"
	case failLength:
		what = "negative length"
	case failUnion:
		what = "union branch index out of range"
	case failTrailing:
		what = fmt.Sprintf("%d bytes after the end of the record", left)
	}
	e.Reason = fmt.Sprintf("invalid Avro for writer schema id %d: %s", p.id, what)
	return e
}

// readLong reads a zig-zag variable-length integer (Avro int and long).
func readLong(b []byte, pos int) (int64, int, failCode) {
	if pos < len(b) && b[pos] < 0x80 {
		u := uint64(b[pos])
		return int64(u>>1) ^ -int64(u&1), pos + 1, failNone
	}
	var u uint64
	for s := uint(0); s < 70; s += 7 {
		if pos >= len(b) {
			return 0, pos, failShort
		}
		c := b[pos]
		pos++
		u |= uint64(c&0x7f) << s
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), pos, failNone
		}
	}
	return 0, pos, failVarint
}

// readBytes reads a length-prefixed byte string (Avro bytes and string).
func readBytes(b []byte, pos int) ([]byte, int, failCode) {
	n, pos, fc := readLong(b, pos)
	switch {
	case fc != failNone:
		return nil, pos, fc
	case n < 0:
		return nil, pos, failLength
	case n > int64(len(b)-pos):
		return nil, pos, failShort
	}
	end := pos + int(n)
	return b[pos:end], end, failNone
}

// run executes ops over b from pos and returns the position after them.
func (d *Decoder) run(ops []op, b []byte, pos int) (int, fail) {
	var fc failCode
	for i := range ops {
		o := &ops[i]
		var c *slot
		if o.col >= 0 {
			c = &d.cols[o.col]
		}
		switch o.code {
		case opNull:
			c.null = true
		case opBool:
			if pos >= len(b) {
				return pos, fail{failShort, o.col}
			}
			c.bl, c.null = b[pos] != 0, false
			pos++
		case opLong:
			c.i64, pos, fc = readLong(b, pos)
			c.null = false
		case opInt:
			c.i64, pos, fc = readLong(b, pos)
			if fc == failNone && (c.i64 < math.MinInt32 || c.i64 > math.MaxInt32) {
				fc = failRange
			}
			c.null = false
		case opMicros:
			var v int64
			v, pos, fc = readLong(b, pos)
			c.i64, c.null = floorDiv(v, 1000), false
		case opLongDouble:
			var v int64
			v, pos, fc = readLong(b, pos)
			c.f64, c.null = float64(v), false
		case opFloat:
			if len(b)-pos < 4 {
				return pos, fail{failShort, o.col}
			}
			c.f64, c.null = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[pos:]))), false
			pos += 4
		case opDouble:
			if len(b)-pos < 8 {
				return pos, fail{failShort, o.col}
			}
			c.f64, c.null = math.Float64frombits(binary.LittleEndian.Uint64(b[pos:])), false
			pos += 8
		case opString:
			c.str, pos, fc = readBytes(b, pos)
			if fc == failNone && !utf8.Valid(c.str) {
				fc = failUTF8
			}
			c.null = false
		case opEnum:
			var v int64
			v, pos, fc = readLong(b, pos)
			if fc == failNone && (v < 0 || v >= int64(len(o.symbols))) {
				fc = failUnion
			}
			if fc == failNone {
				c.str = o.symbols[v]
			}
			c.null = false
		case opDecBytes, opDecFixed:
			var raw []byte
			if o.code == opDecFixed {
				if len(b)-pos < int(o.n) {
					return pos, fail{failShort, o.col}
				}
				raw, pos = b[pos:pos+int(o.n)], pos+int(o.n)
			} else {
				raw, pos, fc = readBytes(b, pos)
			}
			if fc == failNone {
				fc = c.setDecimal(raw, o.n2)
			}
			c.null = false
		case opSkipVarint:
			_, pos, fc = readLong(b, pos)
		case opSkipBytes:
			_, pos, fc = readBytes(b, pos)
		case opSkipFixed:
			if len(b)-pos < int(o.n) {
				return pos, fail{failShort, -1}
			}
			pos += int(o.n)
		case opSkipBlocks:
			var f fail
			if pos, f = d.skipBlocks(o, b, pos); f.code != failNone {
				return pos, f
			}
		case opUnion:
			var v int64
			v, pos, fc = readLong(b, pos)
			if fc != failNone {
				break
			}
			if v < 0 || v >= int64(len(o.branches)) {
				return pos, fail{failUnion, o.col}
			}
			br := &o.branches[v]
			for _, k := range br.nulls {
				d.cols[k].null = true
			}
			var f fail
			if pos, f = d.run(br.ops, b, pos); f.code != failNone {
				return pos, f
			}
		}
		if fc != failNone {
			return pos, fail{fc, o.col}
		}
	}
	return pos, fail{}
}

// skipBlocks skips an array or map: blocks of items, each block a count
// (negative: followed by its size in bytes) and ended by a zero count.
func (d *Decoder) skipBlocks(o *op, b []byte, pos int) (int, fail) {
	for {
		n, p, fc := readLong(b, pos)
		pos = p
		if fc != failNone {
			return pos, fail{fc, -1}
		}
		if n == 0 {
			return pos, fail{}
		}
		if n < 0 {
			size, p, fc := readLong(b, pos)
			pos = p
			if fc == failNone && (size < 0 || size > int64(len(b)-pos)) {
				fc = failShort
			}
			if fc != failNone {
				return pos, fail{fc, -1}
			}
			pos += int(size)
			continue
		}
		for ; n > 0; n-- {
			before := pos
			var f fail
			if pos, f = d.run(o.sub, b, pos); f.code != failNone {
				return pos, f
			}
			if pos == before { // items of zero bytes: the rest are too
				break
			}
		}
	}
}

// setDecimal stages a decimal given as big-endian two's complement bytes
// at the writer's scale, multiplied by 10^up to the column's scale.
func (c *slot) setDecimal(raw []byte, up int32) failCode {
	n, ok := decimalFromBytes(raw)
	if !ok || !n.FitsInPrecision(c.prec-up) {
		return failPrecision
	}
	if up > 0 {
		n = n.IncreaseScaleBy(up)
	}
	c.dec = n
	return failNone
}

// decimalFromBytes reads a big-endian two's complement integer of up to
// 128 bits (longer inputs only if the extra bytes are sign extension).
func decimalFromBytes(b []byte) (decimal128.Num, bool) {
	if len(b) == 0 {
		return decimal128.Num{}, true
	}
	neg := b[0]&0x80 != 0
	var hi int64
	var lo uint64
	if neg {
		hi, lo = -1, math.MaxUint64
	}
	if len(b) > 16 {
		ext := byte(0)
		if neg {
			ext = 0xff
		}
		for _, c := range b[:len(b)-16] {
			if c != ext {
				return decimal128.Num{}, false
			}
		}
		b = b[len(b)-16:]
		if (b[0]&0x80 != 0) != neg {
			return decimal128.Num{}, false
		}
	}
	for _, c := range b {
		hi = hi<<8 | int64(lo>>56)
		lo = lo<<8 | uint64(c)
	}
	return decimal128.New(hi, lo), true
}

// floorDiv divides rounding towards negative infinity, so microseconds
// before the epoch land in the millisecond that contains them.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}
