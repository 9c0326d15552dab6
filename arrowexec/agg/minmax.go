package agg

import (
	"bytes"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

func newMinMax(dt arrow.DataType, isMax bool) aggregator {
	switch kindOf(dt) {
	case kInt32:
		fill := int32(math.MaxInt32)
		if isMax {
			fill = math.MinInt32
		}
		return &mmOrd[int32]{dt: dt, max: isMax, fill: fill}
	case kInt64:
		fill := int64(math.MaxInt64)
		if isMax {
			fill = math.MinInt64
		}
		return &mmOrd[int64]{dt: dt, max: isMax, fill: fill}
	case kFloat64:
		// NaN is the largest DOUBLE: MIN starts at NaN, MAX at -Inf.
		fill := math.NaN()
		if isMax {
			fill = math.Inf(-1)
		}
		return &mmOrd[float64]{dt: dt, max: isMax, fill: fill}
	case kDecimal:
		fill := decimal128.New(math.MaxInt64, math.MaxUint64)
		if isMax {
			fill = decimal128.New(math.MinInt64, 0)
		}
		return &mmDec{dt: dt, max: isMax, fill: fill}
	case kBool:
		return &mmBool{max: isMax}
	case kString:
		return &mmString{max: isMax}
	}
	return &nullAgg{}
}

// mmOrd is MIN/MAX over integer or DOUBLE storage. vals starts at the
// identity of the operation (fill), so the loops need no "first value"
// test; nn tells a real extreme from the fill.
type mmOrd[T int32 | int64 | float64] struct {
	dt   arrow.DataType
	max  bool
	fill T
	vals []T
	nn   bitset
}

func (a *mmOrd[T]) skipNulls() bool { return true }
func (a *mmOrd[T]) grow(n int)      { a.vals = growTo(a.vals, n, a.fill); a.nn = a.nn.grow(n) }
func (a *mmOrd[T]) bytes() int64    { return sizeOf(a.vals) + sizeOf(a.nn) }

func (a *mmOrd[T]) update(in *input) error {
	vals := kernels.Values[T](in.arr)
	if a.max {
		maxLoop(a.vals, a.nn, in.ids, in.rows, vals)
	} else {
		minLoop(a.vals, a.nn, in.ids, in.rows, vals)
	}
	return nil
}

// minLoop and maxLoop order DOUBLEs as kernels.CompareFloat does (NaN
// largest); the NaN tests fold away for integers.
func minLoop[T int32 | int64 | float64](m []T, nn bitset, ids []uint32, rows []int32, vals []T) {
	if rows == nil {
		vals = vals[:len(ids)]
		for k, g := range ids {
			v, c := vals[k], m[g]
			if v < c || (c != c && v == v) {
				m[g] = v
			}
			nn[g>>6] |= 1 << (g & 63)
		}
		return
	}
	rows = rows[:len(ids)]
	for k, g := range ids {
		v, c := vals[rows[k]], m[g]
		if v < c || (c != c && v == v) {
			m[g] = v
		}
		nn[g>>6] |= 1 << (g & 63)
	}
}

func maxLoop[T int32 | int64 | float64](m []T, nn bitset, ids []uint32, rows []int32, vals []T) {
	if rows == nil {
		vals = vals[:len(ids)]
		for k, g := range ids {
			v, c := vals[k], m[g]
			if v > c || (v != v && c == c) {
				m[g] = v
			}
			nn[g>>6] |= 1 << (g & 63)
		}
		return
	}
	rows = rows[:len(ids)]
	for k, g := range ids {
		v, c := vals[rows[k]], m[g]
		if v > c || (v != v && c == c) {
			m[g] = v
		}
		nn[g>>6] |= 1 << (g & 63)
	}
}

func (a *mmOrd[T]) combine(into, from uint32, _ *scratch) error {
	if !a.nn.get(from) {
		return nil
	}
	v, c := a.vals[from], a.vals[into]
	if a.max && (v > c || (v != v && c == c)) || !a.max && (v < c || (c != c && v == v)) {
		a.vals[into] = v
	}
	a.nn.set(into)
	return nil
}

func (a *mmOrd[T]) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return emitFixed(alloc, a.dt, groups, a.vals, a.nn), nil
}

// mmDec is MIN/MAX over DECIMAL (one type, so one scale: values compare
// as 128-bit integers).
type mmDec struct {
	dt   arrow.DataType
	max  bool
	fill decimal128.Num
	vals []decimal128.Num
	nn   bitset
}

func (a *mmDec) skipNulls() bool { return true }
func (a *mmDec) grow(n int)      { a.vals = growTo(a.vals, n, a.fill); a.nn = a.nn.grow(n) }
func (a *mmDec) bytes() int64    { return sizeOf(a.vals) + sizeOf(a.nn) }

func decLess(x, y decimal128.Num) bool {
	xh, yh := x.HighBits(), y.HighBits()
	return xh < yh || xh == yh && x.LowBits() < y.LowBits()
}

func (a *mmDec) update(in *input) error {
	vals := kernels.Values[decimal128.Num](in.arr)
	m, nn, ids := a.vals, a.nn, in.ids
	switch {
	case in.rows == nil && !a.max:
		vals = vals[:len(ids)]
		for k, g := range ids {
			if v := vals[k]; decLess(v, m[g]) {
				m[g] = v
			}
			nn[g>>6] |= 1 << (g & 63)
		}
	case in.rows == nil:
		vals = vals[:len(ids)]
		for k, g := range ids {
			if v := vals[k]; decLess(m[g], v) {
				m[g] = v
			}
			nn[g>>6] |= 1 << (g & 63)
		}
	case !a.max:
		rows := in.rows[:len(ids)]
		for k, g := range ids {
			if v := vals[rows[k]]; decLess(v, m[g]) {
				m[g] = v
			}
			nn[g>>6] |= 1 << (g & 63)
		}
	default:
		rows := in.rows[:len(ids)]
		for k, g := range ids {
			if v := vals[rows[k]]; decLess(m[g], v) {
				m[g] = v
			}
			nn[g>>6] |= 1 << (g & 63)
		}
	}
	return nil
}

func (a *mmDec) combine(into, from uint32, _ *scratch) error {
	if !a.nn.get(from) {
		return nil
	}
	v, c := a.vals[from], a.vals[into]
	if a.max && decLess(c, v) || !a.max && decLess(v, c) {
		a.vals[into] = v
	}
	a.nn.set(into)
	return nil
}

func (a *mmDec) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return emitFixed(alloc, a.dt, groups, a.vals, a.nn), nil
}

// mmBool is MIN (logical AND) / MAX (logical OR) over BOOLEAN.
type mmBool struct {
	max  bool
	n    int
	vals bitset // MIN starts true, MAX false
	nn   bitset
}

func (a *mmBool) skipNulls() bool { return true }
func (a *mmBool) bytes() int64    { return sizeOf(a.vals) + sizeOf(a.nn) }

func (a *mmBool) grow(n int) {
	a.vals, a.nn = a.vals.grow(n), a.nn.grow(n)
	if !a.max {
		for g := a.n; g < n; g++ {
			a.vals.set(uint32(g))
		}
	}
	a.n = max(a.n, n)
}

func (a *mmBool) update(in *input) error {
	bm, off := boolCol(in.arr)
	for k, g := range in.ids {
		b := bit(bm, off+rowOf(in.rows, k))
		if a.max && b {
			a.vals.set(g)
		} else if !a.max && !b {
			a.vals.clr(g)
		}
		a.nn.set(g)
	}
	return nil
}

func (a *mmBool) combine(into, from uint32, _ *scratch) error {
	if !a.nn.get(from) {
		return nil
	}
	b := a.vals.get(from)
	if a.max && b {
		a.vals.set(into)
	} else if !a.max && !b {
		a.vals.clr(into)
	}
	a.nn.set(into)
	return nil
}

func (a *mmBool) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return emitBools(alloc, groups, a.vals, a.nn), nil
}

// mmString is MIN/MAX over VARCHAR, byte-wise. Per batch it first finds
// each group's best row (pointing into the batch), then copies only those
// that beat the stored value.
type mmString struct {
	max  bool
	vals stringStore // valid bits double as "has a value"
}

func (a *mmString) skipNulls() bool { return true }
func (a *mmString) grow(n int)      { a.vals.grow(n) }
func (a *mmString) bytes() int64    { return a.vals.bytes() }

func (a *mmString) better(x, y []byte) bool {
	c := bytes.Compare(x, y)
	return a.max && c > 0 || !a.max && c < 0
}

func (a *mmString) update(in *input) error {
	offs, data := strCol(in.arr)
	val := func(r int32) []byte { return data[offs[r]:offs[r+1]] }
	pick := in.pick
	seen := in.scr.aggU32[:0] // groups of the batch
	for k, g := range in.ids {
		r := int32(rowOf(in.rows, k))
		switch cur := pick[g]; {
		case cur < 0:
			pick[g] = r
			seen = append(seen, g)
		case a.better(val(r), val(cur)):
			pick[g] = r
		}
	}
	in.scr.aggU32 = seen
	var err error
	for _, g := range seen {
		r := pick[g]
		pick[g] = -1
		if err == nil && (!a.vals.valid.get(g) || a.better(val(r), a.vals.get(g))) {
			err = a.vals.set(g, val(r))
		}
	}
	return err
}

func (a *mmString) combine(into, from uint32, _ *scratch) error {
	if !a.vals.valid.get(from) {
		return nil
	}
	if !a.vals.valid.get(into) || a.better(a.vals.get(from), a.vals.get(into)) {
		return a.vals.copyGroup(into, from)
	}
	return nil
}

func (a *mmString) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return a.vals.emit(alloc, groups), nil
}

// nullAgg is MIN/MAX/FIRST/LAST of an untyped NULL: always NULL.
type nullAgg struct{}

func (nullAgg) skipNulls() bool                        { return true }
func (nullAgg) grow(int)                               {}
func (nullAgg) update(*input) error                    { return nil }
func (nullAgg) combine(uint32, uint32, *scratch) error { return nil }
func (nullAgg) bytes() int64                           { return 0 }
func (nullAgg) emit(_ memory.Allocator, groups []uint32) (arrow.Array, error) {
	return array.NewNull(len(groups)), nil
}
