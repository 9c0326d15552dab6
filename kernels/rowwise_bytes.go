package kernels

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// MapBytes is MapString for a function that returns bytes: the value is
// copied into the result, so f may return a buffer it reuses for every row
// (no string allocated per row). The result's bytes are reserved at the
// size of the first argument's when it is a VARCHAR column (a case mapping
// keeps it), sparing the builder's regrowth.
func MapBytes(alloc memory.Allocator, n int, args []arrow.Array, f func(i int) ([]byte, bool, error)) (arrow.Array, error) {
	validity := andValidity(alloc, n, args...)
	if validity != nil {
		defer validity.Release()
	}
	b := array.NewStringBuilder(alloc)
	defer b.Release()
	b.Reserve(n)
	if len(args) > 0 && args[0].Len() == n {
		if s, ok := args[0].(*array.String); ok {
			b.ReserveData(len(s.ValueBytes()))
		}
	}
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
		b.BinaryBuilder.Append(v)
	}
	return b.NewArray(), nil
}

// CaseASCII maps the case of a VARCHAR array whose bytes are all ASCII in
// one pass over its bytes: every byte in [lo, hi] ('A'-'Z' or 'a'-'z') has
// its case bit flipped. Lengths do not change, so the offsets are the
// input's, rebased. It returns false, allocating nothing, when a byte is
// not ASCII (the caller maps row by row). The result belongs to the caller.
func CaseASCII(alloc memory.Allocator, s *array.String, lo, hi byte) (arrow.Array, bool) {
	n := s.Len()
	offs := s.ValueOffsets()
	if n == 0 || len(offs) != n+1 {
		return nil, false
	}
	var raw []byte
	if b := s.Data().Buffers()[2]; b != nil {
		raw = b.Bytes()
	}
	start, end := offs[0], offs[n]
	src := raw[start:end]
	for _, c := range src {
		if c >= utf8RuneSelf {
			return nil, false
		}
	}
	data := memory.NewResizableBuffer(alloc)
	data.Resize(len(src))
	dst := data.Bytes()
	for i, c := range src {
		if c-lo <= hi-lo {
			c ^= 0x20
		}
		dst[i] = c
	}
	obuf := memory.NewResizableBuffer(alloc)
	obuf.Resize((n + 1) * 4)
	o := arrow.Int32Traits.CastFromBytes(obuf.Bytes())
	for i, v := range offs {
		o[i] = v - start
	}
	var validity *memory.Buffer
	if s.NullN() > 0 {
		validity = allocBitmap(alloc, n)
		bitutil.CopyBitmap(s.NullBitmapBytes(), s.Data().Offset(), n, validity.Bytes(), 0)
	}
	return finish(arrow.BinaryTypes.String, n, validity, obuf, data), true
}

const utf8RuneSelf = 0x80
