package agg

import (
	"bytes"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

// kind is the physical storage class of a SQL type.
type kind uint8

const (
	kUnsupported kind = iota
	kInt32            // INT, DATE
	kInt64            // BIGINT, TIMESTAMP, INTERVAL
	kFloat64          // DOUBLE
	kDecimal          // DECIMAL(p,s)
	kString           // VARCHAR
	kBool             // BOOLEAN
	kNull             // the type of an untyped NULL
)

func kindOf(dt arrow.DataType) kind {
	if dt == nil {
		return kUnsupported
	}
	switch dt.ID() {
	case arrow.INT32, arrow.DATE32:
		return kInt32
	case arrow.INT64, arrow.TIMESTAMP, arrow.DURATION:
		return kInt64
	case arrow.FLOAT64:
		return kFloat64
	case arrow.DECIMAL128:
		return kDecimal
	case arrow.STRING:
		return kString
	case arrow.BOOL:
		return kBool
	case arrow.NULL:
		return kNull
	}
	return kUnsupported
}

// keyCol stores one key column of every group, in group id order. Methods
// work on a whole batch at a time; rows are array row indexes.
type keyCol interface {
	// appendRows appends the keys of rows of a as new groups.
	appendRows(a arrow.Array, rows []int32) error
	// equal sets eq[j] to false where group gids[j]'s key differs from row
	// rows[j] of a (NULL equals NULL).
	equal(a arrow.Array, rows []int32, gids []uint32, eq []bool)
	// emit returns the keys of groups as a new array owned by the caller.
	emit(alloc memory.Allocator, groups []uint32) arrow.Array
	// truncate drops the keys of groups n and above.
	truncate(n int)
	bytes() int64
}

func newKeyCol(dt arrow.DataType) (keyCol, error) {
	switch kindOf(dt) {
	case kInt32:
		return &keyFixed[int32]{dt: dt}, nil
	case kInt64:
		return &keyFixed[int64]{dt: dt}, nil
	case kDecimal:
		return &keyFixed[decimal128.Num]{dt: dt}, nil
	case kFloat64:
		return &keyFloat{}, nil
	case kString:
		return &keyString{offs: []uint32{0}}, nil
	case kBool:
		return &keyBool{}, nil
	case kNull:
		return &keyNull{}, nil
	}
	return nil, fmt.Errorf("agg: unsupported key type %s", dt)
}

// keyValidity is the NULL bookkeeping shared by key columns.
type keyValidity struct {
	valid   bitset // bit g set: group g's key is not NULL
	anyNull bool
	n       int
}

func (v *keyValidity) appendValidity(a arrow.Array, rows []int32) {
	bm, off := validBits(a)
	v.valid = v.valid.grow(v.n + len(rows))
	for _, r := range rows {
		if bm == nil || bit(bm, off+int(r)) {
			v.valid.set(uint32(v.n))
		} else {
			v.anyNull = true
		}
		v.n++
	}
}

// equalNulls settles the NULL cases of equal: where exactly one side is
// NULL it clears eq[j]. It reports whether either side may hold NULLs at
// all; if so the caller skips the value comparison for NULL rows (two NULLs
// are equal whatever their value slots hold).
func (v *keyValidity) equalNulls(a arrow.Array, rows []int32, gids []uint32, eq []bool) bool {
	bm, off := validBits(a)
	if bm == nil && !v.anyNull {
		return false
	}
	for j, g := range gids {
		va := bm == nil || bit(bm, off+int(rows[j]))
		if va != v.valid.get(g) {
			eq[j] = false
		}
	}
	return true
}

func (v *keyValidity) truncateValidity(n int) {
	for i := n; i < v.n; i++ {
		v.valid.clr(uint32(i))
	}
	v.n = n
}

func (v *keyValidity) validSet() bitset {
	if !v.anyNull {
		return nil
	}
	return v.valid
}

// keyFixed stores fixed-width keys compared bit for bit. NULL keys store
// the zero value.
type keyFixed[T int32 | int64 | decimal128.Num] struct {
	dt   arrow.DataType
	vals []T
	keyValidity
}

func (c *keyFixed[T]) appendRows(a arrow.Array, rows []int32) error {
	vals := kernels.Values[T](a)
	bm, off := validBits(a)
	var zero T
	for _, r := range rows {
		if bm != nil && !bit(bm, off+int(r)) {
			c.vals = append(c.vals, zero)
			continue
		}
		c.vals = append(c.vals, vals[r])
	}
	c.appendValidity(a, rows)
	return nil
}

func (c *keyFixed[T]) equal(a arrow.Array, rows []int32, gids []uint32, eq []bool) {
	vals := kernels.Values[T](a)
	if !c.equalNulls(a, rows, gids, eq) {
		rows = rows[:len(gids)]
		eq = eq[:len(gids)]
		for j, g := range gids {
			eq[j] = eq[j] && c.vals[g] == vals[rows[j]]
		}
		return
	}
	// A NULL row's value slot holds anything: compare against the stored
	// zero only when both sides are valid.
	bm, off := validBits(a)
	for j, g := range gids {
		if eq[j] && (bm == nil || bit(bm, off+int(rows[j]))) {
			eq[j] = c.vals[g] == vals[rows[j]]
		}
	}
}

func (c *keyFixed[T]) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	return emitFixed(alloc, c.dt, groups, c.vals, c.validSet())
}

func (c *keyFixed[T]) truncate(n int) { c.vals = c.vals[:n]; c.truncateValidity(n) }

func (c *keyFixed[T]) bytes() int64 { return sizeOf(c.vals) + sizeOf(c.valid) }

// keyFloat stores DOUBLE keys as floatKey bits, so -0 = 0 and NaN = NaN.
type keyFloat struct {
	vals []uint64
	keyValidity
}

func (c *keyFloat) appendRows(a arrow.Array, rows []int32) error {
	vals := kernels.Values[float64](a)
	bm, off := validBits(a)
	for _, r := range rows {
		if bm != nil && !bit(bm, off+int(r)) {
			c.vals = append(c.vals, 0)
			continue
		}
		c.vals = append(c.vals, floatKey(vals[r]))
	}
	c.appendValidity(a, rows)
	return nil
}

func (c *keyFloat) equal(a arrow.Array, rows []int32, gids []uint32, eq []bool) {
	vals := kernels.Values[float64](a)
	nulls := c.equalNulls(a, rows, gids, eq)
	bm, off := validBits(a)
	for j, g := range gids {
		if eq[j] && (!nulls || bm == nil || bit(bm, off+int(rows[j]))) {
			eq[j] = c.vals[g] == floatKey(vals[rows[j]])
		}
	}
}

func (c *keyFloat) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	vb, nulls := validityOf(alloc, groups, c.validSet())
	defer releaseOnPanic(vb)
	buf, o := newFixed[float64](alloc, len(groups))
	for j, g := range groups {
		o[j] = math.Float64frombits(c.vals[g])
	}
	return makeArray(arrow.PrimitiveTypes.Float64, len(groups), nulls, vb, buf)
}

func (c *keyFloat) truncate(n int) { c.vals = c.vals[:n]; c.truncateValidity(n) }

func (c *keyFloat) bytes() int64 { return sizeOf(c.vals) + sizeOf(c.valid) }

// keyString stores VARCHAR keys in one byte buffer: group g's key is
// data[offs[g]:offs[g+1]]. Bytes are copied out of the input batch.
type keyString struct {
	offs []uint32
	data []byte
	keyValidity
}

func (c *keyString) appendRows(a arrow.Array, rows []int32) error {
	offs, data := strCol(a)
	bm, off := validBits(a)
	for _, r := range rows {
		if bm == nil || bit(bm, off+int(r)) {
			c.data = append(c.data, data[offs[r]:offs[r+1]]...)
		}
		if len(c.data) > math.MaxUint32 {
			return fmt.Errorf("agg: VARCHAR key bytes overflow 4 GiB")
		}
		c.offs = append(c.offs, uint32(len(c.data)))
	}
	c.appendValidity(a, rows)
	return nil
}

func (c *keyString) equal(a arrow.Array, rows []int32, gids []uint32, eq []bool) {
	offs, data := strCol(a)
	nulls := c.equalNulls(a, rows, gids, eq)
	bm, off := validBits(a)
	for j, g := range gids {
		r := rows[j]
		if eq[j] && (!nulls || bm == nil || bit(bm, off+int(r))) {
			eq[j] = bytes.Equal(c.data[c.offs[g]:c.offs[g+1]], data[offs[r]:offs[r+1]])
		}
	}
}

func (c *keyString) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	return emitStrings(alloc, groups, c.validSet(), func(g uint32) []byte { return c.data[c.offs[g]:c.offs[g+1]] })
}

func (c *keyString) truncate(n int) {
	c.data = c.data[:c.offs[n]]
	c.offs = c.offs[:n+1]
	c.truncateValidity(n)
}

func (c *keyString) bytes() int64 { return sizeOf(c.offs) + sizeOf(c.data) + sizeOf(c.valid) }

// keyBool stores BOOLEAN keys as bits.
type keyBool struct {
	vals bitset
	keyValidity
}

func (c *keyBool) appendRows(a arrow.Array, rows []int32) error {
	bm, off := boolCol(a)
	vb, voff := validBits(a)
	c.vals = c.vals.grow(c.n + len(rows))
	for i, r := range rows {
		if (vb == nil || bit(vb, voff+int(r))) && bit(bm, off+int(r)) {
			c.vals.set(uint32(c.n + i))
		}
	}
	c.appendValidity(a, rows)
	return nil
}

func (c *keyBool) equal(a arrow.Array, rows []int32, gids []uint32, eq []bool) {
	bm, off := boolCol(a)
	nulls := c.equalNulls(a, rows, gids, eq)
	vb, voff := validBits(a)
	for j, g := range gids {
		r := int(rows[j])
		if eq[j] && (!nulls || vb == nil || bit(vb, voff+r)) {
			eq[j] = c.vals.get(g) == bit(bm, off+r)
		}
	}
}

func (c *keyBool) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	return emitBools(alloc, groups, c.vals, c.validSet())
}

func (c *keyBool) truncate(n int) {
	for i := n; i < c.n; i++ {
		c.vals.clr(uint32(i))
	}
	c.truncateValidity(n)
}

func (c *keyBool) bytes() int64 { return sizeOf(c.vals) + sizeOf(c.valid) }

// keyNull is a key column of the NULL type: every key is NULL.
type keyNull struct{}

func (c *keyNull) appendRows(arrow.Array, []int32) error        { return nil }
func (c *keyNull) equal(arrow.Array, []int32, []uint32, []bool) {}
func (c *keyNull) truncate(int)                                 {}
func (c *keyNull) bytes() int64                                 { return 0 }
func (c *keyNull) emit(_ memory.Allocator, groups []uint32) arrow.Array {
	return array.NewNull(len(groups))
}
