package kernels

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// randStrings returns n random strings (empty, ASCII, multi-byte UTF-8,
// invalid bytes), each NULL with probability 1/nullEvery (never when 0).
func randStrings(mem memory.Allocator, rng *rand.Rand, n, nullEvery int) *array.String {
	pieces := []string{"", "a", "&", "=", "channel_id=", "é", "日本", "\xff", "xyz", "Z"}
	b := array.NewStringBuilder(mem)
	defer b.Release()
	for i := 0; i < n; i++ {
		if nullEvery > 0 && rng.IntN(nullEvery) == 0 {
			b.AppendNull()
			continue
		}
		var sb strings.Builder
		for k := rng.IntN(6); k > 0; k-- {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		b.Append(sb.String())
	}
	return b.NewStringArray()
}

// TestMapSubstring compares MapSubstring with a row-at-a-time reference on
// random sliced columns with nulls, a broadcast subject, a second argument
// whose nulls propagate, and errors.
func TestMapSubstring(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(7, 21))
	// the range kept from a row: the bytes between the first "=" and the
	// next "&" (or the end); NULL when there is no "="; every third row of
	// a kind keeps the empty prefix
	pick := func(i int, s string) (int, int, bool) {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return 0, 0, false
		}
		if i%3 == 2 {
			return 0, 0, true
		}
		end := strings.IndexByte(s[eq+1:], '&')
		if end < 0 {
			return eq + 1, len(s), true
		}
		return eq + 1, eq + 1 + end, true
	}
	for _, nullEvery := range []int{0, 2, 5} {
		full := randStrings(mem, rng, 300, nullEvery)
		other := randStrings(mem, rng, 300, 7)
		for _, off := range []int{0, 1, 13} {
			for _, n := range []int{0, 1, 3, 64, 287} {
				s := array.NewSlice(full, int64(off), int64(off+n)).(*array.String)
				o := array.NewSlice(other, int64(off), int64(off+n)).(*array.String)
				for _, args := range [][]arrow.Array{{s}, {s, o}} {
					got, err := MapSubstring(mem, n, s, args, func(i int, v string) (int, int, bool, error) {
						if v != s.Value(i) {
							t.Fatalf("row %d: f got %q, want %q", i, v, s.Value(i))
						}
						lo, hi, ok := pick(i, v)
						return lo, hi, ok, nil
					})
					if err != nil {
						t.Fatal(err)
					}
					g := got.(*array.String)
					for i := 0; i < n; i++ {
						null := s.IsNull(i) || (len(args) > 1 && o.IsNull(i))
						want, ok := "", false
						if !null {
							var lo, hi int
							lo, hi, ok = pick(i, s.Value(i))
							want = s.Value(i)[lo:hi]
						}
						if g.IsNull(i) != !ok || (ok && g.Value(i) != want) {
							t.Fatalf("nulls 1/%d off %d n %d args %d row %d: %q (null %v), want %q (null %v)",
								nullEvery, off, n, len(args), i, g.Value(i), g.IsNull(i), want, !ok)
						}
					}
					if err := g.Validate(); err != nil { // structure (the bytes need not be UTF-8)
						t.Fatal(err)
					}
					got.Release()
				}
				s.Release()
				o.Release()
			}
		}
		full.Release()
		other.Release()
	}

	// a broadcast subject: every row sees its one value
	bb := array.NewStringBuilder(mem)
	bb.Append("k=日本&x")
	one := bb.NewStringArray()
	bb.Release()
	got, err := MapSubstring(mem, 5, one, []arrow.Array{one}, func(i int, v string) (int, int, bool, error) {
		lo, hi, ok := pick(0, v)
		return lo, hi, ok && i != 3, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	g := got.(*array.String)
	for i := 0; i < 5; i++ {
		if g.IsNull(i) != (i == 3) || (i != 3 && g.Value(i) != "日本") {
			t.Errorf("broadcast row %d: %q (null %v)", i, g.Value(i), g.IsNull(i))
		}
	}
	got.Release()

	// the first error in row order, nothing leaked; a bad range is an error
	boom := errors.New("boom")
	calls := 0
	if _, err := MapSubstring(mem, 5, one, []arrow.Array{one}, func(i int, v string) (int, int, bool, error) {
		calls++
		if i >= 2 {
			return 0, 0, false, boom
		}
		return 0, 0, i == 0, nil
	}); !errors.Is(err, boom) || calls != 3 {
		t.Errorf("error: %v after %d calls", err, calls)
	}
	if _, err := MapSubstring(mem, 2, one, []arrow.Array{one}, func(i int, v string) (int, int, bool, error) {
		return 0, len(v) + 1, true, nil
	}); err == nil {
		t.Error("range beyond the row accepted")
	}
	one.Release()
}
