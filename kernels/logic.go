package kernels

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// words views a bitmap buffer made by allocBitmap as 64-bit words.
func words(b *memory.Buffer) []uint64 {
	bs := b.Bytes()
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(bs))), len(bs)/8)
}

// normBits returns the value bits and the validity bits (nil when there are
// no nulls) of a BOOLEAN operand as fresh offset-0 bitmaps of n bits; a
// broadcast constant is expanded.
func normBits(alloc memory.Allocator, a arrow.Array, n int) (data, valid *memory.Buffer) {
	data = allocBitmap(alloc, n)
	if bcast(a, n) == 0 {
		if a.IsNull(0) {
			return data, allocBitmap(alloc, n)
		}
		vals, off := boolBitmapOf(a)
		bitutil.SetBitsTo(data.Bytes(), 0, int64(n), bitutil.BitIsSet(vals, off))
		return data, nil
	}
	vals, off := boolBitmapOf(a)
	bitutil.CopyBitmap(vals, off, n, data.Bytes(), 0)
	if a.NullN() > 0 {
		valid = allocBitmap(alloc, n)
		bitutil.CopyBitmap(a.NullBitmapBytes(), off, n, valid.Bytes(), 0)
	}
	return data, valid
}

// And is SQL's three-valued AND of two BOOLEAN operands: false if either
// side is false, else NULL if either side is NULL, else true.
func And(alloc memory.Allocator, l, r arrow.Array, n int) arrow.Array {
	return logic(alloc, l, r, n, false)
}

// Or is SQL's three-valued OR: true if either side is true, else NULL if
// either side is NULL, else false.
func Or(alloc memory.Allocator, l, r arrow.Array, n int) arrow.Array {
	return logic(alloc, l, r, n, true)
}

func logic(alloc memory.Allocator, l, r arrow.Array, n int, or bool) arrow.Array {
	da, va := normBits(alloc, l, n)
	db, vb := normBits(alloc, r, n)
	defer db.Release()
	a, b := words(da), words(db)
	if va != nil || vb != nil {
		if va == nil {
			va = allOnes(alloc, n)
		}
		if vb == nil {
			vb = allOnes(alloc, n)
		}
		x, y := words(va), words(vb)
		for i := range x {
			if or { // known true on either side decides
				x[i] = x[i]&y[i] | x[i]&a[i] | y[i]&b[i]
			} else { // known false on either side decides
				x[i] = x[i]&y[i] | x[i]&^a[i] | y[i]&^b[i]
			}
		}
		vb.Release()
	}
	for i := range a {
		if or {
			a[i] |= b[i]
		} else {
			a[i] &= b[i]
		}
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, va, da)
}

// Not is SQL's NOT: NULL stays NULL.
func Not(alloc memory.Allocator, x arrow.Array) arrow.Array {
	n := x.Len()
	d, v := normBits(alloc, x, n)
	w := words(d)
	for i := range w {
		w[i] = ^w[i]
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, v, d)
}

// IsNull computes x IS NULL (or IS NOT NULL when not is set); the result is
// never NULL. x may have any type.
func IsNull(alloc memory.Allocator, x arrow.Array, not bool) arrow.Array {
	n := x.Len()
	out := allocBitmap(alloc, n)
	switch {
	case x.DataType().ID() == arrow.NULL:
		bitutil.SetBitsTo(out.Bytes(), 0, int64(n), !not)
	case x.NullN() == 0:
		bitutil.SetBitsTo(out.Bytes(), 0, int64(n), not)
	default:
		bitutil.CopyBitmap(x.NullBitmapBytes(), x.Data().Offset(), n, out.Bytes(), 0)
		if !not {
			w := words(out)
			for i := range w {
				w[i] = ^w[i]
			}
		}
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, nil, out)
}

// IsBool computes x IS [NOT] TRUE / FALSE for a BOOLEAN x; the result is
// never NULL (NULL IS TRUE is false, NULL IS NOT TRUE is true).
func IsBool(alloc memory.Allocator, x arrow.Array, value, not bool) arrow.Array {
	n := x.Len()
	d, v := normBits(alloc, x, n)
	w := words(d)
	var vw []uint64
	if v != nil {
		vw = words(v)
	}
	for i := range w {
		t := w[i]
		if !value {
			t = ^t
		}
		if vw != nil {
			t &= vw[i]
		}
		if not {
			t = ^t
		}
		w[i] = t
	}
	if v != nil {
		v.Release()
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, nil, d)
}
