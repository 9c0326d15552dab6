package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// MapSubstring builds a VARCHAR array of n rows whose row i is a substring
// of row i of subject (a column of n rows, or a broadcast constant of one
// row): f receives row i's text and returns the byte range [lo, hi) of it
// to keep, or ok false for NULL. Rows where an array of args is NULL are
// NULL without calling f (pass subject in args for its NULLs to count).
//
// s is only valid during the call to f (it aliases subject's bytes). The
// first error f returns, in row order, is returned. The ranges are
// recorded in a first pass and the bytes copied into one data buffer of
// the exact size in a second, so nothing is allocated per row. The result
// belongs to the caller.
func MapSubstring(alloc memory.Allocator, n int, subject *array.String, args []arrow.Array, f func(i int, s string) (lo, hi int, ok bool, err error)) (arrow.Array, error) {
	validity := andValidity(alloc, n, args...)
	release := func() {
		if validity != nil {
			validity.Release()
		}
	}
	var vb []byte
	if validity != nil {
		vb = validity.Bytes()
	}
	offs, data := binaryOffsets(subject)
	m := bcast(subject, n)
	obuf, o := allocFixed[int32](alloc, n+1)
	starts := make([]int32, n)
	total := 0
	for i := 0; i < n; i++ {
		o[i] = int32(total)
		if vb != nil && !bitutil.BitIsSet(vb, i) {
			continue
		}
		r := i & m
		from, to := int(offs[r]), int(offs[r+1])
		var s string
		if to > from {
			s = unsafe.String(&data[from], to-from)
		}
		lo, hi, ok, err := f(i, s)
		if err != nil {
			obuf.Release()
			release()
			return nil, err
		}
		if !ok {
			if vb == nil {
				validity = allOnes(alloc, n)
				vb = validity.Bytes()
			}
			bitutil.ClearBit(vb, i)
			continue
		}
		if lo < 0 || hi < lo || hi > len(s) {
			obuf.Release()
			release()
			return nil, fmt.Errorf("kernels.MapSubstring: range [%d, %d) of a %d-byte row", lo, hi, len(s))
		}
		starts[i] = int32(from + lo)
		total += hi - lo
		if total > math.MaxInt32 {
			obuf.Release()
			release()
			return nil, fmt.Errorf("kernels.MapSubstring: result over %d bytes", math.MaxInt32)
		}
	}
	o[n] = int32(total)
	dbuf, d := allocFixed[uint8](alloc, total)
	for i := 0; i < n; i++ {
		if a, b := o[i], o[i+1]; b > a {
			copyBytes(d[a:b], data[starts[i]:starts[i]+b-a])
		}
	}
	return finish(arrow.BinaryTypes.String, n, validity, obuf, dbuf), nil
}
