package agg

import (
	"math/bits"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

// growTo extends s to length n, filling new elements with fill. Capacity
// grows geometrically (append's policy), so states grow amortised O(1) per
// group.
func growTo[T any](s []T, n int, fill T) []T {
	if n <= len(s) {
		return s
	}
	if n <= cap(s) {
		old := len(s)
		s = s[:n]
		for i := old; i < n; i++ {
			s[i] = fill
		}
		return s
	}
	old := len(s)
	s = append(s[:cap(s)], make([]T, n-cap(s))...)
	s = s[:n]
	for i := old; i < n; i++ {
		s[i] = fill
	}
	return s
}

// sizeOf is the bytes held by s's backing array.
func sizeOf[T any](s []T) int64 {
	var z T
	return int64(cap(s)) * int64(unsafe.Sizeof(z))
}

// bitset is a growable bitmap indexed by group id.
type bitset []uint64

func (b bitset) get(i uint32) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) set(i uint32)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) clr(i uint32)      { b[i>>6] &^= 1 << (i & 63) }
func (b bitset) put(i uint32, v bool) {
	if v {
		b.set(i)
	} else {
		b.clr(i)
	}
}

// grow makes room for n bits (new bits clear).
func (b bitset) grow(n int) bitset { return growTo(b, (n+63)>>6, 0) }

// bit reports whether bit i of an Arrow bitmap is set.
func bit(bm []byte, i int) bool { return bm[i>>3]&(1<<(i&7)) != 0 }

// validBits returns the validity bitmap and offset of a, or nil when a has
// no nulls.
func validBits(a arrow.Array) ([]byte, int) {
	if a.NullN() == 0 {
		return nil, 0
	}
	return a.NullBitmapBytes(), a.Data().Offset()
}

// rowOf maps position k of a selection to the array row.
func rowOf(rows []int32, k int) int {
	if rows == nil {
		return k
	}
	return int(rows[k])
}

// strCol gives access to the offsets and bytes of a VARCHAR array,
// honouring its offset: value i is data[offs[i]:offs[i+1]].
func strCol(a arrow.Array) (offs []int32, data []byte) {
	s := a.(*array.String)
	offs = s.ValueOffsets()
	if b := a.Data().Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	return offs, data
}

// boolCol returns the value bitmap and offset of a BOOLEAN array.
func boolCol(a arrow.Array) ([]byte, int) {
	return a.Data().Buffers()[1].Bytes(), a.Data().Offset()
}

// ---- building output arrays ----

// newBitmap allocates a zeroed bitmap buffer of n bits from alloc.
func newBitmap(alloc memory.Allocator, n int) *memory.Buffer {
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize(int(bitutil.BytesForBits(int64(n))))
	clear(buf.Bytes())
	return buf
}

// newFixed allocates a buffer for n values of T from alloc.
func newFixed[T kernels.Fixed](alloc memory.Allocator, n int) (*memory.Buffer, []T) {
	var z T
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize(n * int(unsafe.Sizeof(z)))
	if n == 0 {
		return buf, nil
	}
	b := buf.Bytes()
	return buf, unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// releaseOnPanic, deferred right after a buffer is allocated, releases
// the buffers (nil ones skipped) when a later allocation panics, as one
// past the memory limit does (see resource.Allocator), and panics on.
func releaseOnPanic(bufs ...*memory.Buffer) {
	if r := recover(); r != nil {
		for _, b := range bufs {
			if b != nil {
				b.Release()
			}
		}
		panic(r)
	}
}

// validityOf builds the validity buffer for groups from a per-group bitset
// (nil: all valid); it returns nil when every row is valid.
func validityOf(alloc memory.Allocator, groups []uint32, valid bitset) (*memory.Buffer, int) {
	if valid == nil {
		return nil, 0
	}
	nulls := 0
	for _, g := range groups {
		if !valid.get(g) {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	buf := newBitmap(alloc, len(groups))
	b := buf.Bytes()
	for j, g := range groups {
		if valid.get(g) {
			b[j>>3] |= 1 << (j & 7)
		}
	}
	return buf, nulls
}

// countValidity builds the validity buffer for groups that is set where
// n[g] > 0 (nil when all are).
func countValidity(alloc memory.Allocator, groups []uint32, n []int64) (*memory.Buffer, int) {
	nulls := 0
	for _, g := range groups {
		if n[g] == 0 {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	buf := newBitmap(alloc, len(groups))
	b := buf.Bytes()
	for j, g := range groups {
		if n[g] != 0 {
			b[j>>3] |= 1 << (j & 7)
		}
	}
	return buf, nulls
}

// makeArray wraps buffers into an array of type dt with n rows, taking over
// the caller's references.
func makeArray(dt arrow.DataType, n, nulls int, bufs ...*memory.Buffer) arrow.Array {
	d := array.NewData(dt, n, bufs, nil, nulls, 0)
	out := array.MakeFromData(d)
	d.Release()
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
	return out
}

// emitFixed gathers vals[g] for groups into a new array of type dt; valid
// (nil: all valid) marks non-NULL groups.
func emitFixed[T kernels.Fixed](alloc memory.Allocator, dt arrow.DataType, groups []uint32, vals []T, valid bitset) arrow.Array {
	vb, nulls := validityOf(alloc, groups, valid)
	defer releaseOnPanic(vb)
	buf, o := newFixed[T](alloc, len(groups))
	for j, g := range groups {
		o[j] = vals[g]
	}
	return makeArray(dt, len(groups), nulls, vb, buf)
}

// emitBools builds a BOOLEAN array from per-group value bits.
func emitBools(alloc memory.Allocator, groups []uint32, vals, valid bitset) arrow.Array {
	vb, nulls := validityOf(alloc, groups, valid)
	defer releaseOnPanic(vb)
	buf := newBitmap(alloc, len(groups))
	o := buf.Bytes()
	for j, g := range groups {
		if vals.get(g) {
			o[j>>3] |= 1 << (j & 7)
		}
	}
	return makeArray(arrow.FixedWidthTypes.Boolean, len(groups), nulls, vb, buf)
}

// emitStrings builds a VARCHAR array whose row j is get(groups[j]).
func emitStrings(alloc memory.Allocator, groups []uint32, valid bitset, get func(g uint32) []byte) arrow.Array {
	vb, nulls := validityOf(alloc, groups, valid)
	total := 0
	for _, g := range groups {
		total += len(get(g))
	}
	obuf, offs := newFixed[int32](alloc, len(groups)+1)
	defer releaseOnPanic(vb, obuf)
	dbuf := memory.NewResizableBuffer(alloc)
	dbuf.Resize(total)
	data := dbuf.Bytes()
	pos := 0
	for j, g := range groups {
		offs[j] = int32(pos)
		pos += copy(data[pos:], get(g))
	}
	offs[len(groups)] = int32(pos)
	return makeArray(arrow.BinaryTypes.String, len(groups), nulls, vb, obuf, dbuf)
}

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }
