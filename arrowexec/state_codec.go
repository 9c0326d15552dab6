package arrowexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Operators keep much of their state in plain Go values: per-partition
// counters and sums, rings of recent values, slabs of small structs. The
// state codec writes such values to bytes and reads them back, so that an
// operator lists which of its fields are state instead of writing an
// encoder per type.
//
// encodeState handles booleans, integers, floats, strings, arrays, slices
// (nil and empty kept apart), structs (every field, unexported ones too)
// and pointers (nil or the value pointed at; sharing is not preserved).
// Functions, interfaces, maps and channels are errors: they are
// configuration or caches, not state, and must not be listed. The format
// is private to one build: a checkpoint is read by the same binary that
// wrote it.

// encodeState appends the values ptrs point at to b.
func encodeState(b []byte, ptrs ...any) ([]byte, error) {
	for _, p := range ptrs {
		v := reflect.ValueOf(p)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return nil, fmt.Errorf("state codec: %T is not a non-nil pointer", p)
		}
		var err error
		if b, err = encodeValue(b, v.Elem()); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// decodeState reads what encodeState wrote into the values ptrs point at,
// in the same order, and fails unless b is consumed exactly.
func decodeState(b []byte, ptrs ...any) error {
	d := stateDecoder{b: b}
	for _, p := range ptrs {
		v := reflect.ValueOf(p)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return fmt.Errorf("state codec: %T is not a non-nil pointer", p)
		}
		if err := d.value(v.Elem()); err != nil {
			return err
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("state codec: %d bytes left over", len(d.b))
	}
	return nil
}

func encodeValue(b []byte, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return binary.AppendUvarint(b, v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float())), nil
	case reflect.String:
		s := v.String()
		return append(binary.AppendUvarint(b, uint64(len(s))), s...), nil
	case reflect.Slice:
		if v.IsNil() {
			return binary.AppendVarint(b, -1), nil
		}
		b = binary.AppendVarint(b, int64(v.Len()))
		return encodeElems(b, v)
	case reflect.Array:
		return encodeElems(b, v)
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, 0), nil
		}
		return encodeValue(append(b, 1), v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			var err error
			if b, err = encodeValue(b, v.Field(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("state codec: cannot encode a %s", v.Type())
}

func encodeElems(b []byte, v reflect.Value) ([]byte, error) {
	for i := range v.Len() {
		var err error
		if b, err = encodeValue(b, v.Index(i)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

var errStateShort = errors.New("state codec: truncated state")

type stateDecoder struct{ b []byte }

func (d *stateDecoder) varint() (int64, error) {
	x, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, errStateShort
	}
	d.b = d.b[n:]
	return x, nil
}

func (d *stateDecoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, errStateShort
	}
	d.b = d.b[n:]
	return x, nil
}

func (d *stateDecoder) bytes(n uint64) ([]byte, error) {
	if uint64(len(d.b)) < n {
		return nil, errStateShort
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out, nil
}

// value decodes into v, which must be addressable; unexported struct
// fields are written through their address.
func (d *stateDecoder) value(v reflect.Value) error {
	if !v.CanSet() {
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	}
	switch v.Kind() {
	case reflect.Bool:
		x, err := d.bytes(1)
		if err != nil {
			return err
		}
		v.SetBool(x[0] != 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := d.varint()
		if err != nil {
			return err
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x, err := d.uvarint()
		if err != nil {
			return err
		}
		v.SetUint(x)
	case reflect.Float32, reflect.Float64:
		x, err := d.bytes(8)
		if err != nil {
			return err
		}
		v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(x)))
	case reflect.String:
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		x, err := d.bytes(n)
		if err != nil {
			return err
		}
		v.SetString(string(x))
	case reflect.Slice:
		n, err := d.varint()
		if err != nil {
			return err
		}
		if n < 0 {
			v.SetZero()
			return nil
		}
		if n > int64(len(d.b)) { // every element takes at least one byte
			return errStateShort
		}
		v.Set(reflect.MakeSlice(v.Type(), int(n), int(n)))
		return d.elems(v)
	case reflect.Array:
		return d.elems(v)
	case reflect.Pointer:
		x, err := d.bytes(1)
		if err != nil {
			return err
		}
		if x[0] == 0 {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.value(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if err := d.value(v.Field(i)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("state codec: cannot decode a %s", v.Type())
	}
	return nil
}

func (d *stateDecoder) elems(v reflect.Value) error {
	for i := range v.Len() {
		if err := d.value(v.Index(i)); err != nil {
			return err
		}
	}
	return nil
}

// blobSchema is the schema of a state table holding encoded Go state.
var blobSchema = arrow.NewSchema([]arrow.Field{{Name: "state", Type: arrow.BinaryTypes.Binary}}, nil)

// putBlob saves the encoding of the values ptrs point at as the one-row
// table name of w.
func putBlob(alloc memory.Allocator, w *StateWriter, name string, ptrs ...any) error {
	b, err := encodeState(nil, ptrs...)
	if err != nil {
		return fmt.Errorf("state %q: %w", name, err)
	}
	bb := array.NewBinaryBuilder(alloc, arrow.BinaryTypes.Binary)
	defer bb.Release()
	bb.Append(b)
	col := bb.NewArray()
	defer col.Release()
	return w.Put(name, array.NewRecordBatch(blobSchema, []arrow.Array{col}, 1))
}

// loadBlob decodes the table name saved by putBlob into ptrs.
func loadBlob(r *StateReader, name string, ptrs ...any) error {
	t := r.Table(name)
	if len(t) != 1 || t[0].NumRows() != 1 || t[0].NumCols() != 1 {
		return fmt.Errorf("state %q missing or malformed", name)
	}
	col, ok := t[0].Column(0).(*array.Binary)
	if !ok {
		return fmt.Errorf("state %q: column is %s, not binary", name, t[0].Column(0).DataType())
	}
	if err := decodeState(col.Value(0), ptrs...); err != nil {
		return fmt.Errorf("state %q: %w", name, err)
	}
	return nil
}

// stateBatch makes a batch of n rows from cols (taking them over), with
// columns named c0, c1, ...: a state table of arrays that have no schema
// of their own.
func stateBatch(cols []arrow.Array, n int) arrow.RecordBatch {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: c.DataType(), Nullable: true}
	}
	b := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	return b
}
