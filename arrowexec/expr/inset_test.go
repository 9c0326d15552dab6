package expr

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// orOfEqualities builds x = l0 OR x = l1 OR ... (NOT of it when not): the
// definition of IN that the hash-set form must agree with.
func orOfEqualities(t *testing.T, x Expr, list []Expr, not bool) Expr {
	must := mustExpr(t)
	var out Expr
	for _, e := range list {
		eq := must(Binary("=", x, e))
		if out == nil {
			out = eq
		} else {
			out = must(Binary("OR", out, eq))
		}
	}
	if not {
		out = must(Unary("NOT", out))
	}
	return out
}

// TestInListOfConstantsUsesHashSet: an IN list of constants over an
// INT, BIGINT or VARCHAR value is one hash lookup per row, and gives the
// values of the OR of the equalities (NULL rules included) at batch sizes
// 1, 3 and 100, sliced; lists that need x cast keep the equalities.
func TestInListOfConstantsUsesHashSet(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	must := mustExpr(t)
	vc := func(v string) Expr { return Lit(v, sqltypes.Varchar) }
	ic := func(v int32) Expr { return Lit(v, sqltypes.Int) }
	bc := func(v int64) Expr { return Lit(v, sqltypes.BigInt) }
	null := Lit(nil, sqltypes.Null)
	lower := must(Func("LOWER", []Expr{col("s")}))
	cases := []struct {
		x    Expr
		list []Expr
	}{
		{col("s"), []Expr{vc("a"), vc("abc"), vc("日本語")}},
		{col("s"), []Expr{vc("a"), null}},
		{lower, []Expr{vc("abc"), vc("héllo")}},
		{col("i"), []Expr{ic(0), ic(1), ic(-1), ic(7)}},
		{col("i"), []Expr{ic(1), null, ic(3)}},
		{col("i"), []Expr{vc("1"), ic(2)}}, // '1' is cast to INT, not i
		{col("b"), []Expr{bc(0), bc(5), bc(-3)}},
		{col("b"), []Expr{ic(1), ic(2)}}, // INT constants widened to BIGINT
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, c := range cases {
		for _, not := range []bool{false, true} {
			got := must(InList(c.x, c.list, not))
			inner := got
			if o, ok := got.(*evalOnce); ok {
				inner = o.over
			}
			if _, ok := inner.(*inSetExpr); !ok {
				t.Fatalf("%s: built %T, want the hash-set form", got, inner)
			}
			want := orOfEqualities(t, c.x, c.list, not)
			for _, n := range []int{1, 3, 100} {
				batch, rows := randomBatch(mem, rng, n, 2)
				checkAgainstReference(t, mem, got, batch, rows)
				ctx := &Context{Alloc: mem}
				g := evalPlain(t, ctx, batch, []Expr{got})
				w := evalPlain(t, ctx, batch, []Expr{want})
				sameArrays(t, got.String(), g, w)
				releaseAll(g)
				releaseAll(w)
				batch.Release()
			}
		}
	}
	// i would be cast to DOUBLE or BIGINT to compare: the equalities stay
	for _, list := range [][]Expr{{Lit(1.5, sqltypes.Double)}, {bc(1 << 40)}, {col("j"), ic(1)}} {
		e := must(InList(col("i"), list, false))
		if _, ok := e.(*inSetExpr); ok {
			t.Errorf("%s: hash set for a list needing casts of x or columns", e)
		}
	}
}
