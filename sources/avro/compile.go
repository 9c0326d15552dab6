package avro

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/sources"
	hamba "github.com/hamba/avro/v2"
)

// opcode is one step of a compiled writer schema.
type opcode uint8

const (
	opNull       opcode = iota // column := NULL (reads nothing)
	opBool                     // boolean → BOOLEAN
	opInt                      // int → INT, date → DATE
	opLong                     // int|long → BIGINT, timestamp-millis → TIMESTAMP
	opMicros                   // timestamp-micros → TIMESTAMP (milliseconds, floored)
	opLongDouble               // int|long → DOUBLE
	opFloat                    // float → DOUBLE
	opDouble                   // double → DOUBLE
	opString                   // string|bytes → VARCHAR (UTF-8 checked)
	opEnum                     // enum → VARCHAR (the symbol)
	opDecBytes                 // decimal on bytes → DECIMAL
	opDecFixed                 // decimal on fixed(n) → DECIMAL
	opSkipVarint               // int, long, enum without a column
	opSkipBytes                // string, bytes without a column
	opSkipFixed                // fixed(n) (also float: 4, double: 8, boolean: 1)
	opSkipBlocks               // array or map: sub skips each item (a map's key included)
	opUnion                    // a branch index, then that branch
)

type op struct {
	code     opcode
	col      int32 // the column written, -1 for none
	n        int32 // fixed size
	n2       int32 // decimal: digits the scale grows by (writer → column)
	symbols  [][]byte
	sub      []op
	branches []branch
}

// branch is one member of a union: the columns it sets NULL, then its ops.
type branch struct {
	nulls []int32
	ops   []op
}

// program is a writer schema compiled against the declared columns; err
// (with errField) is set when the writer's records cannot be read into
// them, and every record of that writer is then bad.
type program struct {
	id       int
	ops      []op
	checks   []int32 // NOT NULL columns a union may leave NULL
	err      string
	errField string
}

// maxDepth bounds the nesting of a writer schema (and so recursive ones).
const maxDepth = 32

// compiler resolves a writer schema against the columns.
type compiler struct {
	cols    []slot
	written []bool // columns some step writes
	nullish []bool // columns some step may leave NULL
}

// incompatible says why a writer field cannot be read into its column.
type incompatible struct{ field, reason string }

func (e *incompatible) Error() string { return "field " + e.field + ": " + e.reason }

// compile parses a writer schema and resolves it against cols: every
// column is read from the writer field of the same name, NULL when the
// writer has none (an error for a NOT NULL column), and fields without a
// column are skipped.
func compile(text string, cols []slot) *program {
	p := &program{}
	s, err := hamba.ParseWithCache(text, "", &hamba.SchemaCache{})
	if err != nil {
		p.err = fmt.Sprintf("writer schema does not parse: %v", err)
		return p
	}
	rec, ok := deref(s).(*hamba.RecordSchema)
	if !ok {
		p.err = fmt.Sprintf("writer schema is a %s, not a record", s.Type())
		return p
	}
	c := &compiler{cols: cols, written: make([]bool, len(cols)), nullish: make([]bool, len(cols))}
	ops, err := c.record(rec, "", 0)
	if err != nil {
		if ie, ok := err.(*incompatible); ok {
			p.errField, p.err = ie.field, fmt.Sprintf("writer schema %s: %s", rec.FullName(), ie.reason)
		} else {
			p.err = fmt.Sprintf("writer schema %s: %v", rec.FullName(), err)
		}
		return p
	}
	for i := range cols {
		switch {
		case !c.written[i] && !cols[i].nullable:
			p.errField = cols[i].name
			p.err = fmt.Sprintf("writer schema %s has no field %s for NOT NULL column %s", rec.FullName(), cols[i].name, cols[i].name)
			return p
		case !c.written[i]:
			ops = append(ops, op{code: opNull, col: int32(i)})
		case c.nullish[i] && !cols[i].nullable:
			p.checks = append(p.checks, int32(i))
		}
	}
	p.ops = ops
	return p
}

func deref(s hamba.Schema) hamba.Schema {
	if r, ok := s.(*hamba.RefSchema); ok {
		return r.Schema()
	}
	return s
}

// column finds the column of a (dotted) field name: exactly, then ASCII
// case-insensitively; -1 if none.
func (c *compiler) column(name string) int {
	for i := range c.cols {
		if c.cols[i].name == name {
			return i
		}
	}
	for i := range c.cols {
		if strings.EqualFold(c.cols[i].name, name) {
			return i
		}
	}
	return -1
}

func (c *compiler) record(r *hamba.RecordSchema, prefix string, depth int) ([]op, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels (a recursive record?)", maxDepth)
	}
	var ops []op
	for _, f := range r.Fields() {
		fo, err := c.field(prefix+f.Name(), f.Type(), depth+1)
		if err != nil {
			return nil, err
		}
		ops = append(ops, fo...)
	}
	return ops, nil
}

// field compiles the value of the field called name, of type t.
func (c *compiler) field(name string, t hamba.Schema, depth int) ([]op, error) {
	t = deref(t)
	switch tt := t.(type) {
	case *hamba.RecordSchema:
		return c.record(tt, name+".", depth)
	case *hamba.UnionSchema:
		return c.union(name, tt, depth)
	}
	col := c.column(name)
	if col < 0 {
		return skip(t, depth)
	}
	if c.written[col] {
		return nil, &incompatible{name, "two writer fields match column " + c.cols[col].name}
	}
	c.written[col] = true
	if t.Type() == hamba.Null {
		c.nullish[col] = true
		return []op{{code: opNull, col: int32(col)}}, nil
	}
	o, err := c.convert(col, t)
	if err != nil {
		return nil, &incompatible{name, err.Error()}
	}
	return []op{o}, nil
}

// union compiles a union: each branch is compiled as if it were the
// field's type; the columns any branch writes and a branch does not are
// set NULL by that branch (so ["null", T] reads as a nullable T, and a
// nullable nested record as NULL in each of its columns).
func (c *compiler) union(name string, u *hamba.UnionSchema, depth int) ([]op, error) {
	before := append([]bool(nil), c.written...)
	after := append([]bool(nil), c.written...)
	brs := make([]branch, len(u.Types()))
	wrote := make([][]bool, len(brs))
	for i, bt := range u.Types() {
		copy(c.written, before)
		ops, err := c.field(name, bt, depth+1)
		if err != nil {
			return nil, err
		}
		brs[i].ops = ops
		wrote[i] = append([]bool(nil), c.written...)
		for k, w := range c.written {
			after[k] = after[k] || w
		}
	}
	copy(c.written, after)
	for i := range brs {
		for k := range after {
			if after[k] && !before[k] && !wrote[i][k] {
				brs[i].nulls = append(brs[i].nulls, int32(k))
				c.nullish[k] = true
			}
		}
	}
	return []op{{code: opUnion, col: -1, branches: brs}}, nil
}

// convert compiles reading a value of writer type t into column col.
func (c *compiler) convert(col int, t hamba.Schema) (op, error) {
	s := &c.cols[col]
	o := op{col: int32(col)}
	var logical hamba.LogicalSchema
	if ls, ok := t.(hamba.LogicalTypeSchema); ok {
		logical = ls.Logical()
	}
	lt := hamba.LogicalType("")
	if logical != nil {
		lt = logical.Type()
	}
	switch t.Type() {
	case hamba.Boolean:
		if s.kind == sources.KindBool {
			o.code = opBool
			return o, nil
		}
	case hamba.Int:
		switch {
		case s.kind == sources.KindInt32 && lt != hamba.Date, s.kind == sources.KindDate && lt == hamba.Date:
			o.code = opInt
			return o, nil
		case s.kind == sources.KindInt64 && lt != hamba.Date:
			o.code = opLong
			return o, nil
		case s.kind == sources.KindFloat64 && lt == "":
			o.code = opLongDouble
			return o, nil
		}
	case hamba.Long:
		millis := lt == hamba.TimestampMillis || lt == hamba.LocalTimestampMillis
		micros := lt == hamba.TimestampMicros || lt == hamba.LocalTimestampMicros
		switch {
		case s.kind == sources.KindInt64, s.kind == sources.KindTimestamp && millis:
			o.code = opLong
			return o, nil
		case s.kind == sources.KindTimestamp && micros:
			o.code = opMicros
			return o, nil
		case s.kind == sources.KindFloat64 && lt == "":
			o.code = opLongDouble
			return o, nil
		}
	case hamba.Float:
		if s.kind == sources.KindFloat64 {
			o.code = opFloat
			return o, nil
		}
	case hamba.Double:
		if s.kind == sources.KindFloat64 {
			o.code = opDouble
			return o, nil
		}
	case hamba.String:
		if s.kind == sources.KindString {
			o.code = opString
			return o, nil
		}
	case hamba.Enum:
		if s.kind == sources.KindString {
			o.code = opEnum
			for _, sym := range t.(*hamba.EnumSchema).Symbols() {
				o.symbols = append(o.symbols, []byte(sym))
			}
			return o, nil
		}
	case hamba.Bytes, hamba.Fixed:
		if dec, ok := logical.(*hamba.DecimalLogicalSchema); ok {
			if s.kind != sources.KindDecimal {
				break
			}
			if int32(dec.Scale()) > s.scale {
				return o, fmt.Errorf("decimal with scale %d would lose digits in %s", dec.Scale(), s.sqlName)
			}
			o.code, o.n2 = opDecBytes, s.scale-int32(dec.Scale())
			if f, ok := t.(*hamba.FixedSchema); ok {
				o.code, o.n = opDecFixed, int32(f.Size())
			}
			return o, nil
		}
		if s.kind == sources.KindString && t.Type() == hamba.Bytes {
			o.code = opString
			return o, nil
		}
	}
	//lint:ignore ST1005 Avro is a proper name
	return o, fmt.Errorf("Avro %s cannot be read as %s", describeType(t), s.sqlName)
}

// describeType names a writer type with its logical type, e.g.
// "long (timestamp-micros)".
func describeType(t hamba.Schema) string {
	if ls, ok := t.(hamba.LogicalTypeSchema); ok && ls.Logical() != nil {
		return fmt.Sprintf("%s (%s)", t.Type(), ls.Logical().Type())
	}
	return string(t.Type())
}

// skip compiles skipping a value of type t.
func skip(t hamba.Schema, depth int) ([]op, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels (a recursive record?)", maxDepth)
	}
	t = deref(t)
	switch tt := t.(type) {
	case *hamba.RecordSchema:
		var ops []op
		for _, f := range tt.Fields() {
			fo, err := skip(f.Type(), depth+1)
			if err != nil {
				return nil, err
			}
			ops = append(ops, fo...)
		}
		return ops, nil
	case *hamba.UnionSchema:
		o := op{code: opUnion, col: -1}
		for _, bt := range tt.Types() {
			bo, err := skip(bt, depth+1)
			if err != nil {
				return nil, err
			}
			o.branches = append(o.branches, branch{ops: bo})
		}
		return []op{o}, nil
	case *hamba.ArraySchema:
		sub, err := skip(tt.Items(), depth+1)
		return []op{{code: opSkipBlocks, col: -1, sub: sub}}, err
	case *hamba.MapSchema:
		sub, err := skip(tt.Values(), depth+1)
		return []op{{code: opSkipBlocks, col: -1, sub: append([]op{{code: opSkipBytes, col: -1}}, sub...)}}, err
	case *hamba.FixedSchema:
		return []op{{code: opSkipFixed, col: -1, n: int32(tt.Size())}}, nil
	}
	switch t.Type() {
	case hamba.Null:
		return nil, nil
	case hamba.Boolean:
		return []op{{code: opSkipFixed, col: -1, n: 1}}, nil
	case hamba.Int, hamba.Long, hamba.Enum:
		return []op{{code: opSkipVarint, col: -1}}, nil
	case hamba.Float:
		return []op{{code: opSkipFixed, col: -1, n: 4}}, nil
	case hamba.Double:
		return []op{{code: opSkipFixed, col: -1, n: 8}}, nil
	case hamba.String, hamba.Bytes:
		return []op{{code: opSkipBytes, col: -1}}, nil
	}
	return nil, fmt.Errorf("unsupported Avro type %s", t.Type())
}

// Columns maps a writer schema to the columns a stream declaring none
// gets: boolean → BOOLEAN, int → INT, long → BIGINT, float and double →
// DOUBLE, string, bytes, enum and uuid → VARCHAR, decimal → DECIMAL(p,s),
// timestamp-millis/micros → TIMESTAMP, date → DATE; a union with null is
// nullable (other fields are NOT NULL); nested records are flattened into
// dotted names. Fields of other types (arrays, maps, other unions, fixed
// without decimal) get no column.
func Columns(text string) ([]arrow.Field, error) {
	s, err := hamba.ParseWithCache(text, "", &hamba.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("writer schema does not parse: %w", err)
	}
	rec, ok := deref(s).(*hamba.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("writer schema is a %s, not a record", s.Type())
	}
	var out []arrow.Field
	var walk func(r *hamba.RecordSchema, prefix string, nullable bool, depth int) error
	walk = func(r *hamba.RecordSchema, prefix string, nullable bool, depth int) error {
		if depth > maxDepth {
			return fmt.Errorf("nested deeper than %d levels (a recursive record?)", maxDepth)
		}
		for _, f := range r.Fields() {
			t, null := deref(f.Type()), nullable
			if u, ok := t.(*hamba.UnionSchema); ok {
				if !u.Nullable() || len(u.Types()) != 2 {
					continue
				}
				_, k := u.Indices()
				t, null = deref(u.Types()[k]), true
			}
			if sub, ok := t.(*hamba.RecordSchema); ok {
				if err := walk(sub, prefix+f.Name()+".", null, depth+1); err != nil {
					return err
				}
				continue
			}
			if dt := arrowType(t); dt != nil {
				out = append(out, arrow.Field{Name: prefix + f.Name(), Type: dt, Nullable: null})
			}
		}
		return nil
	}
	if err := walk(rec, "", false, 0); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("writer schema %s has no field of a supported type", rec.FullName())
	}
	return out, nil
}

// arrowType is the column type of writer type t, nil if none.
func arrowType(t hamba.Schema) arrow.DataType {
	var lt hamba.LogicalType
	var logical hamba.LogicalSchema
	if ls, ok := t.(hamba.LogicalTypeSchema); ok && ls.Logical() != nil {
		logical = ls.Logical()
		lt = logical.Type()
	}
	if dec, ok := logical.(*hamba.DecimalLogicalSchema); ok {
		if dec.Precision() > decimal128.MaxPrecision {
			return nil
		}
		return sqltypes.Decimal(int32(dec.Precision()), int32(dec.Scale()))
	}
	switch t.Type() {
	case hamba.Boolean:
		return sqltypes.Boolean
	case hamba.Int:
		if lt == hamba.Date {
			return sqltypes.Date
		}
		return sqltypes.Int
	case hamba.Long:
		switch lt {
		case hamba.TimestampMillis, hamba.TimestampMicros, hamba.LocalTimestampMillis, hamba.LocalTimestampMicros:
			return sqltypes.Timestamp
		}
		return arrow.PrimitiveTypes.Int64
	case hamba.Float, hamba.Double:
		return sqltypes.Double
	case hamba.String, hamba.Bytes, hamba.Enum:
		return sqltypes.Varchar
	}
	return nil
}
