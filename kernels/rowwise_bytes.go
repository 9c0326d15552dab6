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
