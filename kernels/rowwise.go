package kernels

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Row-wise kernels: for functions that are not worth a dedicated vector
// loop (string and date functions), f is called once per row where every
// argument is non-NULL (args of length 1 are broadcast and must be read at
// index 0 by f; the others at i). f returns the value and whether it is
// non-NULL, or an error that aborts the kernel.

// MapFixed builds a fixed-width array of type dt and n rows from f.
func MapFixed[O Fixed](alloc memory.Allocator, dt arrow.DataType, n int, args []arrow.Array, f func(i int) (O, bool, error)) (arrow.Array, error) {
	buf, o := allocFixed[O](alloc, n)
	clear(o) // NULL rows read as zero
	validity, err := mapRows(alloc, n, args, f, func(i int, v O) { o[i] = v })
	if err != nil {
		buf.Release()
		return nil, err
	}
	return finish(dt, n, validity, buf), nil
}

// MapBool builds a BOOLEAN array of n rows from f.
func MapBool(alloc memory.Allocator, n int, args []arrow.Array, f func(i int) (bool, bool, error)) (arrow.Array, error) {
	out := allocBitmap(alloc, n)
	validity, err := mapRows(alloc, n, args, f, func(i int, v bool) {
		if v {
			bitutil.SetBit(out.Bytes(), i)
		}
	})
	if err != nil {
		out.Release()
		return nil, err
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, validity, out), nil
}

// mapRows calls f for each of the n rows where every arg is non-NULL and
// set for each non-NULL result; it returns the validity of the result (nil:
// no NULLs), owned by the caller, or f's first error (nothing to release).
func mapRows[O any](alloc memory.Allocator, n int, args []arrow.Array, f func(i int) (O, bool, error), set func(i int, v O)) (*memory.Buffer, error) {
	validity := andValidity(alloc, n, args...)
	for i := 0; i < n; i++ {
		if validity != nil && !bitutil.BitIsSet(validity.Bytes(), i) {
			continue
		}
		v, ok, err := f(i)
		if err != nil {
			if validity != nil {
				validity.Release()
			}
			return nil, err
		}
		if !ok {
			if validity == nil {
				validity = allOnes(alloc, n)
			}
			bitutil.ClearBit(validity.Bytes(), i)
			continue
		}
		set(i, v)
	}
	return validity, nil
}

// MapString builds a VARCHAR array of n rows from f.
func MapString(alloc memory.Allocator, n int, args []arrow.Array, f func(i int) (string, bool, error)) (arrow.Array, error) {
	validity := andValidity(alloc, n, args...)
	if validity != nil {
		defer validity.Release()
	}
	b := array.NewStringBuilder(alloc)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		if validity != nil && !bitutil.BitIsSet(validity.Bytes(), i) {
			b.AppendNull()
			continue
		}
		v, ok, err := f(i)
		if err != nil {
			return nil, err
		}
		if !ok {
			b.AppendNull()
			continue
		}
		b.Append(v)
	}
	return b.NewArray(), nil
}

// Broadcast returns i, or 0 when a is a broadcast constant in a kernel over
// n rows: the index to read a at for row i.
func Broadcast(a arrow.Array, n, i int) int { return i & bcast(a, n) }
