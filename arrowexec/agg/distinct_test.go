package agg

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// q16Specs are COUNT(DISTINCT) aggregates as in Nexmark q16: over x, over
// CASE WHEN price in one of three ranges THEN x END, the same over y, then
// one more over x (a ninth member: a second shared set) and SUM(DISTINCT
// x), which does not share.
var q16Specs = func() []Spec {
	var s []Spec
	for i := 0; i < 9; i++ {
		s = append(s, Spec{Func: "count", Input: sqltypes.BigInt, Distinct: true})
	}
	return append(s, Spec{Func: "sum", Input: sqltypes.BigInt, Distinct: true})
}()

// q16Row is one input row: key (nil: NULL), x, y (nil: NULL), price.
type q16Row struct {
	key, x, y any
	price     int
}

// arg is the argument of spec j for the row, nil for NULL.
func (r q16Row) arg(j int) any {
	v := r.x
	if j >= 4 && j < 8 {
		v = r.y
	}
	switch j % 4 {
	case 1:
		if r.price >= 30 {
			return nil
		}
	case 2:
		if r.price < 30 || r.price >= 70 {
			return nil
		}
	case 3:
		if r.price < 70 {
			return nil
		}
	}
	if j == 8 {
		return r.x
	}
	return v
}

// distinctRef is the row-at-a-time reference: per live key, per spec, the
// set of values seen.
type distinctRef struct {
	groups map[string][]map[int64]bool
	fwd    map[string]string // combined-away key -> key it went to
}

func newDistinctRef() *distinctRef {
	return &distinctRef{groups: map[string][]map[int64]bool{}, fwd: map[string]string{}}
}

func refKeyOf(k any) string {
	if k == nil {
		return "NULL"
	}
	return fmt.Sprint(k)
}

func (r *distinctRef) live(k string) string {
	for {
		f, ok := r.fwd[k]
		if !ok {
			return k
		}
		k = f
	}
}

func (r *distinctRef) add(row q16Row) {
	k := r.live(refKeyOf(row.key))
	g := r.groups[k]
	if g == nil {
		g = make([]map[int64]bool, len(q16Specs))
		for j := range g {
			g[j] = map[int64]bool{}
		}
		r.groups[k] = g
	}
	for j := range q16Specs {
		if v := row.arg(j); v != nil {
			g[j][v.(int64)] = true
		}
	}
}

func (r *distinctRef) combine(into, from string) {
	into, from = r.live(into), r.live(from)
	if into == from {
		return
	}
	for j, s := range r.groups[from] {
		for v := range s {
			r.groups[into][j][v] = true
		}
	}
	delete(r.groups, from)
	r.fwd[from] = into
}

func (r *distinctRef) merge(o *distinctRef) {
	for k, g := range o.groups {
		k = r.live(k)
		if r.groups[k] == nil {
			r.groups[k] = make([]map[int64]bool, len(q16Specs))
			for j := range r.groups[k] {
				r.groups[k][j] = map[int64]bool{}
			}
		}
		for j, s := range g {
			for v := range s {
				r.groups[k][j][v] = true
			}
		}
	}
}

// check compares tb's results with the reference.
func (r *distinctRef) check(t *testing.T, tb *Table, what string) {
	t.Helper()
	keys, res, err := tb.Emit(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(append(keys, res...))
	if keys[0].Len() != len(r.groups) {
		t.Fatalf("%s: %d groups, want %d", what, keys[0].Len(), len(r.groups))
	}
	for i := 0; i < keys[0].Len(); i++ {
		k := refKeyOf(valueAt(keys[0], i))
		g := r.groups[k]
		if g == nil {
			t.Fatalf("%s: unexpected group %s", what, k)
		}
		for j, s := range g {
			var want int64
			if q16Specs[j].Func == "sum" {
				for v := range s {
					want += v
				}
			} else {
				want = int64(len(s))
			}
			var got int64
			if v := valueAt(res[j], i); v != nil {
				got = v.(int64)
			} else if len(s) > 0 {
				t.Fatalf("%s: group %s spec %d: NULL, want %d", what, k, j, want)
			}
			if got != want {
				t.Fatalf("%s: group %s spec %d: got %d, want %d", what, k, j, got, want)
			}
		}
	}
}

// feedQ16 adds rows to tb (in batches, some with a selection vector) and
// to ref.
func feedQ16(t *testing.T, alloc memory.Allocator, tb *Table, ref *distinctRef, rows []q16Row, bs int, rng *rand.Rand) {
	t.Helper()
	for lo := 0; lo < len(rows); lo += bs {
		batch := rows[lo:min(lo+bs, len(rows))]
		keys := make([]any, len(batch))
		args := make([][]any, len(q16Specs))
		for i, r := range batch {
			keys[i] = r.key
			for j := range args {
				args[j] = append(args[j], r.arg(j))
			}
		}
		var sel []int32
		if rng.IntN(3) == 0 {
			for i := range batch {
				if rng.IntN(4) != 0 {
					sel = append(sel, int32(i))
				}
			}
		}
		gen := func() any { return int64(rng.IntN(1000)) }
		k := buildSliced(alloc, sqltypes.BigInt, keys, bs > 1, rng, gen)
		var in []arrow.Array
		for j := range args {
			in = append(in, buildSliced(alloc, sqltypes.BigInt, args[j], bs > 1, rng, gen))
		}
		err := tb.Update([]arrow.Array{k}, in, sel, nil)
		k.Release()
		releaseAll(in)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range batch {
			if sel == nil || containsRow(sel, int32(i)) {
				ref.add(r)
			}
		}
	}
}

func containsRow(sel []int32, i int32) bool {
	for _, s := range sel {
		if s == i {
			return true
		}
	}
	return false
}

func q16Rows(rng *rand.Rand, n, keys, vals int) []q16Row {
	rows := make([]q16Row, n)
	for i := range rows {
		r := q16Row{price: rng.IntN(100)}
		if rng.IntN(20) != 0 {
			r.key = int64(rng.IntN(keys))
		}
		if rng.IntN(10) != 0 {
			r.x = int64(rng.IntN(vals))
		}
		if rng.IntN(10) != 0 {
			r.y = int64(rng.IntN(vals)) - int64(vals/2)
		}
		rows[i] = r
	}
	return rows
}

// TestDistinctSharedSet checks COUNT(DISTINCT) aggregates that share a
// set (q16's x and filtered x, over two columns, more members than one
// set holds) against a row-at-a-time reference through updates,
// combines, merges and a state round trip, at batch sizes 1, 3 and 100.
func TestDistinctSharedSet(t *testing.T) {
	for _, bs := range []int{1, 3, 100} {
		t.Run(fmt.Sprintf("batch%d", bs), func(t *testing.T) {
			alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer alloc.AssertSize(t, 0)
			rng := rand.New(rand.NewPCG(uint64(bs), 16))
			kt := []arrow.DataType{sqltypes.BigInt}
			newT := func() *Table {
				tb, err := NewTable(alloc, kt, q16Specs)
				if err != nil {
					t.Fatal(err)
				}
				return tb
			}
			a, ref := newT(), newDistinctRef()
			defer a.Release()
			if d := a.aggs[0].(*distinct); d.s.members != maxShare || a.aggs[8].(*distinct).s == d.s ||
				a.aggs[9].(*distinct).bit != 0 {
				t.Fatal("sets are not shared as expected")
			}
			n := 600
			if bs == 1 {
				n = 200
			}
			feedQ16(t, alloc, a, ref, q16Rows(rng, n, 12, 40), bs, rng)
			ref.check(t, a, "update")

			// combine a few groups (by key, as a session operator would)
			keyOf := func(tb *Table, g uint32) string {
				if tb.fwd != nil {
					g = tb.find(g)
				}
				ks, rs, err := tb.Emit([]uint32{g})
				if err != nil {
					t.Fatal(err)
				}
				defer releaseAll(append(ks, rs...))
				return refKeyOf(valueAt(ks[0], 0))
			}
			for i := 0; i < 4; i++ {
				into, from := uint32(rng.IntN(a.Len())), uint32(rng.IntN(a.Len()))
				ki, kf := keyOf(a, into), keyOf(a, from)
				a.Combine(into, from)
				ref.combine(ki, kf)
			}
			ref.check(t, a, "combine")

			// merge another table in
			b, refB := newT(), newDistinctRef()
			feedQ16(t, alloc, b, refB, q16Rows(rng, n, 16, 40), bs, rng)
			if err := a.Merge(b); err != nil {
				t.Fatal(err)
			}
			b.Release()
			ref.merge(refB)
			ref.check(t, a, "merge")

			// state round trip: the restored table behaves the same
			c := restored(t, alloc, a, kt, q16Specs)
			defer c.Release()
			sameState(t, alloc, a, c, "restored")
			more := q16Rows(rng, n/2, 14, 50)
			refC := newDistinctRef()
			refC.merge(ref)
			for k, f := range ref.fwd {
				refC.fwd[k] = f
			}
			feedQ16(t, alloc, a, ref, more, bs, rand.New(rand.NewPCG(1, 2)))
			feedQ16(t, alloc, c, refC, more, bs, rand.New(rand.NewPCG(1, 2)))
			ki, kf := keyOf(a, 0), keyOf(a, 1)
			a.Combine(0, 1)
			c.Combine(0, 1)
			ref.combine(ki, kf)
			refC.combine(ki, kf)
			ref.check(t, a, "updated after the round trip")
			refC.check(t, c, "restored and updated")
			sameState(t, alloc, a, c, "restored, updated and combined")
		})
	}
}

// TestDistinctSharedBytes checks that COUNT(DISTINCT x) and three
// COUNT(DISTINCT CASE WHEN <price range> THEN x END), as in q16, keep
// each (group, value) pair once: their state costs at most 0.65 times as
// much per pair counted (the sum of the four counts) as COUNT(DISTINCT x)
// alone, where one set per aggregate costs as much per pair as one.
func TestDistinctSharedBytes(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(7, 16))
	const n = 100000
	keys, x := make([]any, n), make([]any, n)
	ranges := make([][]any, 3)
	for i := range keys {
		keys[i] = int64(rng.IntN(50))
		v := int64(rng.IntN(4000))
		x[i] = v
		p := rng.IntN(3)
		for r := range ranges {
			if r == p {
				ranges[r] = append(ranges[r], v)
			} else {
				ranges[r] = append(ranges[r], nil)
			}
		}
	}
	k := buildArray(alloc, sqltypes.BigInt, keys)
	defer k.Release()
	inputs := []arrow.Array{buildArray(alloc, sqltypes.BigInt, x)}
	for _, r := range ranges {
		inputs = append(inputs, buildArray(alloc, sqltypes.BigInt, r))
	}
	defer releaseAll(inputs)
	perPair := func(m int) float64 {
		specs := make([]Spec, m)
		for j := range specs {
			specs[j] = Spec{Func: "count", Input: sqltypes.BigInt, Distinct: true}
		}
		tb, err := NewTable(alloc, []arrow.DataType{sqltypes.BigInt}, specs)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Release()
		if err := tb.Update([]arrow.Array{k}, inputs[:m], nil, nil); err != nil {
			t.Fatal(err)
		}
		ks, res, err := tb.Emit(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer releaseAll(append(ks, res...))
		var pairs int64
		for _, r := range res {
			for i := 0; i < r.Len(); i++ {
				pairs += valueAt(r, i).(int64)
			}
		}
		b := float64(tb.StateBytes()) / float64(pairs)
		t.Logf("%d COUNT(DISTINCT): %d pairs counted, %d state bytes, %.1f bytes per pair", m, pairs, tb.StateBytes(), b)
		return b
	}
	one, four := perPair(1), perPair(4)
	if four > 0.65*one {
		t.Fatalf("four COUNT(DISTINCT) over one column: %.1f bytes per pair, want at most 0.65 x %.1f", four, one)
	}
}
