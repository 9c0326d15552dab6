package kernels

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestCaseASCII maps sliced arrays with nulls and checks strings.ToLower /
// ToUpper; a non-ASCII byte makes it decline.
func TestCaseASCII(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewStringBuilder(mem)
	vals := []string{"Apple", "", "GOOGLE", "x", "baidu@[`{Z", "", "Facebook", "channel-12"}
	for i, v := range vals {
		if i == 3 || i == 5 {
			b.AppendNull()
			continue
		}
		b.Append(v)
	}
	full := b.NewStringArray()
	b.Release()
	defer full.Release()
	for _, off := range []int{0, 1, 2} {
		for _, n := range []int{1, 3, len(vals) - off} {
			s := array.NewSlice(full, int64(off), int64(off+n)).(*array.String)
			for _, lower := range []bool{true, false} {
				lo, hi, f := byte('A'), byte('Z'), strings.ToLower
				if !lower {
					lo, hi, f = 'a', 'z', strings.ToUpper
				}
				out, ok := CaseASCII(mem, s, lo, hi)
				if !ok {
					t.Fatal("declined ASCII")
				}
				o := out.(*array.String)
				for i := 0; i < n; i++ {
					if o.IsNull(i) != s.IsNull(i) || o.Value(i) != f(s.Value(i)) {
						t.Errorf("off %d row %d: %q (null %v), want %q", off, i, o.Value(i), o.IsNull(i), f(s.Value(i)))
					}
				}
				out.Release()
			}
			s.Release()
		}
	}
	nb := array.NewStringBuilder(mem)
	nb.AppendValues([]string{"a", "É"}, nil)
	na := nb.NewStringArray()
	nb.Release()
	if _, ok := CaseASCII(mem, na, 'A', 'Z'); ok {
		t.Error("mapped a non-ASCII array")
	}
	na.Release()
}
