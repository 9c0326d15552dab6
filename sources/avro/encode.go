package avro

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// WriterSchema returns the Avro schema of rows of schema, a record named
// name: BOOLEAN → boolean, INT → int, BIGINT → long, DOUBLE → double,
// DECIMAL(p,s) → bytes with logical type decimal(p,s), VARCHAR → string,
// TIMESTAMP → long timestamp-millis, DATE → int date, INTERVAL → long
// (milliseconds); a nullable column is the union ["null", T] with default
// null. Dotted column names become nested records ("ship.city" is field
// city of record field ship), so it is the inverse of Columns. Other
// characters that are not allowed in Avro names are replaced by '_'.
// order lists the columns in the order the schema writes them, for
// NewEncoder.
func WriterSchema(name string, schema *arrow.Schema) (text string, order []int, err error) {
	root := &node{}
	for i, f := range schema.Fields() {
		t, err := avroType(f)
		if err != nil {
			return "", nil, err
		}
		n := root
		parts := strings.Split(f.Name, ".")
		for _, p := range parts[:len(parts)-1] {
			n = n.child(avroName(p))
			if n.leaf != nil {
				return "", nil, fmt.Errorf("column %q: %s is also a column", f.Name, p)
			}
		}
		leaf := n.child(avroName(parts[len(parts)-1]))
		if leaf.leaf != nil || len(leaf.kids) > 0 {
			return "", nil, fmt.Errorf("column %q: two columns have the Avro name %s", f.Name, leaf.name)
		}
		leaf.leaf, leaf.col = t, i
	}
	b, err := json.Marshal(root.record(avroName(name), &order))
	return string(b), order, err
}

// node is a field of the writer schema being built: a column (leaf) or a
// nested record of columns sharing a dotted prefix (kids, in order).
type node struct {
	name string
	leaf any // the Avro type of a column
	col  int // its index
	kids []*node
}

func (n *node) child(name string) *node {
	for _, k := range n.kids {
		if k.name == name {
			return k
		}
	}
	k := &node{name: name}
	n.kids = append(n.kids, k)
	return k
}

// record renders n as an Avro record and appends its columns to order.
func (n *node) record(name string, order *[]int) map[string]any {
	type field struct {
		Name    string `json:"name"`
		Type    any    `json:"type"`
		Default any    `json:"default,omitempty"`
	}
	fields := make([]field, 0, len(n.kids))
	for _, k := range n.kids {
		f := field{Name: k.name, Type: k.leaf}
		if k.leaf == nil {
			f.Type = k.record(name+"_"+k.name, order) // record names are unique within a schema
		} else {
			*order = append(*order, k.col)
			if u, ok := k.leaf.([]any); ok && u[0] == "null" {
				f.Default = json.RawMessage("null")
			}
		}
		fields = append(fields, f)
	}
	return map[string]any{"type": "record", "name": name, "fields": fields}
}

// avroType is the Avro type of column f.
func avroType(f arrow.Field) (any, error) {
	var t any
	switch dt := f.Type.(type) {
	case *arrow.BooleanType:
		t = "boolean"
	case *arrow.Int32Type:
		t = "int"
	case *arrow.Int64Type, *arrow.DurationType:
		t = "long"
	case *arrow.Float64Type:
		t = "double"
	case *arrow.Decimal128Type:
		t = map[string]any{"type": "bytes", "logicalType": "decimal", "precision": dt.Precision, "scale": dt.Scale}
	case *arrow.StringType:
		t = "string"
	case *arrow.TimestampType:
		t = map[string]any{"type": "long", "logicalType": "timestamp-millis"}
	case *arrow.Date32Type:
		t = map[string]any{"type": "int", "logicalType": "date"}
	default:
		return nil, fmt.Errorf("column %q: type %s has no Avro type", f.Name, sqltypes.Name(f.Type))
	}
	if f.Nullable {
		return []any{"null", t}, nil
	}
	return t, nil
}

// avroName makes s an Avro name.
func avroName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// Encoder renders rows as Avro records of WriterSchema in the Confluent
// wire format. It is safe for concurrent use (it holds no state).
type Encoder struct {
	id    int
	order []int
}

// NewEncoder returns an encoder framing records with writer schema id,
// writing columns in order (as WriterSchema returned it).
func NewEncoder(id int, order []int) *Encoder { return &Encoder{id: id, order: order} }

// AppendRow appends row i of b, whose schema WriterSchema was made from,
// as one framed record.
func (e *Encoder) AppendRow(dst []byte, b arrow.RecordBatch, i int) []byte {
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.id))
	for _, c := range e.order {
		col := b.Column(c)
		if b.Schema().Field(c).Nullable {
			if col.IsNull(i) {
				dst = append(dst, 0) // branch 0: null
				continue
			}
			dst = append(dst, 2) // branch 1, zig-zag
		}
		switch a := col.(type) {
		case *array.Boolean:
			v := byte(0)
			if a.Value(i) {
				v = 1
			}
			dst = append(dst, v)
		case *array.Int32:
			dst = binary.AppendVarint(dst, int64(a.Value(i)))
		case *array.Int64:
			dst = binary.AppendVarint(dst, a.Value(i))
		case *array.Duration:
			dst = binary.AppendVarint(dst, int64(a.Value(i)))
		case *array.Float64:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.Value(i)))
		case *array.Decimal128:
			dst = appendDecimal(dst, a.Value(i).HighBits(), a.Value(i).LowBits())
		case *array.String:
			v := a.Value(i)
			dst = binary.AppendVarint(dst, int64(len(v)))
			dst = append(dst, v...)
		case *array.Timestamp:
			dst = binary.AppendVarint(dst, int64(a.Value(i)))
		case *array.Date32:
			dst = binary.AppendVarint(dst, int64(a.Value(i)))
		default:
			panic(fmt.Sprintf("avro: column %d has array %T", c, a))
		}
	}
	return dst
}

// appendDecimal appends a 128-bit integer as Avro bytes: big-endian two's
// complement in the fewest bytes that keep its sign.
func appendDecimal(dst []byte, hi int64, lo uint64) []byte {
	var be [16]byte
	binary.BigEndian.PutUint64(be[:8], uint64(hi))
	binary.BigEndian.PutUint64(be[8:], lo)
	k := 0
	for k < 15 && (be[k] == 0 && be[k+1]&0x80 == 0 || be[k] == 0xff && be[k+1]&0x80 != 0) {
		k++
	}
	dst = binary.AppendVarint(dst, int64(16-k))
	return append(dst, be[k:]...)
}
