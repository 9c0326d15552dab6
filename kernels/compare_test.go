package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestCompareStringScalar checks the = and <> fast path against a literal
// (either side) on sliced arrays with nulls.
func TestCompareStringScalar(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	words := []string{"", "a", "apple", "Apple", "applf", "appl", "é", "apple\x00"}
	rng := rand.New(rand.NewPCG(1, 2))
	b := array.NewStringBuilder(mem)
	var vals []string
	var nulls []bool
	for range 300 {
		if rng.IntN(6) == 0 {
			b.AppendNull()
			vals, nulls = append(vals, ""), append(nulls, true)
			continue
		}
		w := words[rng.IntN(len(words))]
		b.Append(w)
		vals, nulls = append(vals, w), append(nulls, false)
	}
	full := b.NewArray()
	b.Release()
	defer full.Release()
	for _, off := range []int{0, 1, 7} {
		for _, n := range []int{1, 3, 100} {
			a := array.NewSlice(full, int64(off), int64(off+n))
			for _, w := range words {
				sb := array.NewStringBuilder(mem)
				sb.Append(w)
				lit := sb.NewArray()
				sb.Release()
				for _, op := range []CmpOp{Eq, Ne} {
					for _, litLeft := range []bool{false, true} {
						l, r := a, arrow.Array(lit)
						if litLeft {
							l, r = r, l
						}
						got, err := Compare(mem, op, l, r, n)
						if err != nil {
							t.Fatal(err)
						}
						g := got.(*array.Boolean)
						for i := 0; i < n; i++ {
							if nulls[off+i] != g.IsNull(i) {
								t.Fatalf("row %d: null %v", i, g.IsNull(i))
							}
							if !nulls[off+i] && g.Value(i) != ((vals[off+i] == w) == (op == Eq)) {
								t.Fatalf("%q %s %q: %v", vals[off+i], op, w, g.Value(i))
							}
						}
						got.Release()
					}
				}
				lit.Release()
			}
			a.Release()
		}
	}
}
