// Package kernels holds pure, vectorised functions over Arrow arrays:
// comparison, arithmetic (integer, floating point and exact decimal),
// three-valued boolean logic, casts, string helpers, take and filter.
//
// Conventions shared by every kernel:
//   - Inputs are never modified or retained; they may be slices (non-zero
//     offset) and may carry validity bitmaps.
//   - Results are freshly allocated from the allocator passed in and belong
//     to the caller, who must Release them.
//   - Binary kernels take an explicit row count n; an operand of length 1
//     while n != 1 is broadcast (it stands for a constant).
//   - Kernels are safe for concurrent use: they hold no state.
//   - No context, logging or metrics: errors are returned.
package kernels

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Fixed is the set of Go element types of the fixed-width Arrow arrays the
// engine uses (TIMESTAMP, DATE and INTERVAL are read through their integer
// storage: int64, int32 and int64).
type Fixed interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64 | decimal128.Num
}

// Values returns the a.Len() values of a fixed-width array as a []T,
// honouring the array offset. T must have the element width of a's type.
// The slice aliases a's buffer: do not modify it and do not use it after a
// is released. Values of null slots are unspecified.
func Values[T Fixed](a arrow.Array) []T {
	d := a.Data()
	bufs := d.Buffers()
	if a.Len() == 0 || len(bufs) < 2 || bufs[1] == nil {
		return nil
	}
	var z T
	b := bufs[1].Bytes()
	all := unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/int(unsafe.Sizeof(z)))
	return all[d.Offset() : d.Offset()+d.Len()]
}

// allocFixed allocates a data buffer for n values of T (contents unspecified).
func allocFixed[T Fixed](alloc memory.Allocator, n int) (*memory.Buffer, []T) {
	var z T
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize(n * int(unsafe.Sizeof(z)))
	b := buf.Bytes()
	if n == 0 {
		return buf, nil
	}
	return buf, unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// allocBitmap allocates a zeroed bitmap of n bits, rounded up to whole
// 64-bit words so that word loops may run over it.
func allocBitmap(alloc memory.Allocator, n int) *memory.Buffer {
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize((n + 63) / 64 * 8)
	clear(buf.Bytes())
	return buf
}

// allOnes allocates a bitmap of n set bits.
func allOnes(alloc memory.Allocator, n int) *memory.Buffer {
	buf := allocBitmap(alloc, n)
	bitutil.SetBitsTo(buf.Bytes(), 0, int64(n), true)
	return buf
}

// finish wraps buffers into an array of type dt with n rows, computing the
// null count from validity (dropped when it has no nulls). It takes over the
// caller's references to the buffers.
func finish(dt arrow.DataType, n int, validity *memory.Buffer, bufs ...*memory.Buffer) arrow.Array {
	nulls := 0
	if validity != nil {
		nulls = n - bitutil.CountSetBits(validity.Bytes(), 0, n)
		if nulls == 0 {
			validity.Release()
			validity = nil
		}
	}
	all := append([]*memory.Buffer{validity}, bufs...)
	d := array.NewData(dt, n, all, nil, nulls, 0)
	out := array.MakeFromData(d)
	d.Release()
	for _, b := range all {
		if b != nil {
			b.Release()
		}
	}
	return out
}

// bcast returns the index mask for operand a in a kernel over n rows: 0 when
// a is a broadcast constant (length 1), all ones otherwise.
func bcast(a arrow.Array, n int) int {
	if a.Len() == 1 && n != 1 {
		return 0
	}
	return -1
}

// andValidity returns a fresh validity bitmap of n bits that is the AND of
// the validity of args (broadcast operands included), or nil when no
// argument has nulls.
func andValidity(alloc memory.Allocator, n int, args ...arrow.Array) *memory.Buffer {
	var out *memory.Buffer
	for _, a := range args {
		if a.NullN() == 0 {
			continue
		}
		if bcast(a, n) == 0 { // a NULL constant: everything is NULL
			if out != nil {
				out.Release()
			}
			return allocBitmap(alloc, n)
		}
		bm, off := a.NullBitmapBytes(), a.Data().Offset()
		if out == nil {
			out = allocBitmap(alloc, n)
			bitutil.CopyBitmap(bm, off, n, out.Bytes(), 0)
			continue
		}
		bitutil.BitmapAnd(out.Bytes(), bm, 0, int64(off), out.Bytes(), 0, int64(n))
	}
	return out
}

// boolBitmapOf returns the value bitmap and offset of a boolean array.
func boolBitmapOf(a arrow.Array) ([]byte, int) {
	return a.Data().Buffers()[1].Bytes(), a.Data().Offset()
}

// Count returns the number of rows of a boolean mask that are true and
// non-null.
func Count(mask *array.Boolean) int {
	n := mask.Len()
	if n == 0 {
		return 0
	}
	vals, off := boolBitmapOf(mask)
	if mask.NullN() == 0 {
		return bitutil.CountSetBits(vals, off, n)
	}
	tmp := make([]byte, bitutil.BytesForBits(int64(n)))
	bitutil.BitmapAnd(vals, mask.NullBitmapBytes(), int64(off), int64(off), tmp, 0, int64(n))
	return bitutil.CountSetBits(tmp, 0, n)
}
