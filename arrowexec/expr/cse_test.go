package expr

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// counted wraps LOWER(x) in a function that counts the rows it is
// evaluated on: the test hook for "computed once".
func counted(t *testing.T, x Expr, rows *atomic.Int64) Expr {
	t.Helper()
	lower, err := Func("LOWER", []Expr{x})
	if err != nil {
		t.Fatal(err)
	}
	l := lower.(*opExpr)
	return &opExpr{name: "COUNTED", args: l.args, typ: l.typ, bcast: true,
		kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			rows.Add(int64(n))
			return l.kernel(ctx, a, n)
		}}
}

func mustExpr(t *testing.T) func(Expr, error) Expr {
	return func(e Expr, err error) Expr {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
}

func evalPlain(t *testing.T, ctx *Context, batch arrow.RecordBatch, exprs []Expr) []arrow.Array {
	t.Helper()
	out, err := evalAll(ctx, batch, exprs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameArrays(t *testing.T, what string, got, want []arrow.Array) {
	t.Helper()
	for i := range want {
		if !array.ApproxEqual(got[i], want[i], array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
			t.Errorf("%s: expression %d: got %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestProgramComputesCommonOnce: a sub-expression used in several
// expressions (and several times in one) is evaluated once per batch, on
// every row, and the results equal evaluating each expression alone; at
// batch sizes 1, 3 and 100, sliced.
func TestProgramComputesCommonOnce(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	must := mustExpr(t)
	var rows atomic.Int64
	s := col("s")
	f := func() Expr { return counted(t, s, &rows) }
	vc := func(v string) Expr { return Lit(v, sqltypes.Varchar) }
	exprs := []Expr{
		must(Case(nil, []Expr{must(Binary("=", f(), vc("abc"))), must(Binary("=", f(), vc("a")))},
			[]Expr{vc("0"), vc("1")}, must(Func("CONCAT", []Expr{f(), vc("!")})))),
		must(InList(f(), []Expr{vc("abc"), vc("héllo")}, false)),
		f(),
		col("i"),
	}
	p := NewProgram(exprs, len(testCols))
	if len(p.Shared()) != 1 || !strings.HasPrefix(p.Shared()[0].String(), "COUNTED(") {
		t.Fatalf("shared: %v", p.Shared())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 3, 100} {
		batch, _ := randomBatch(mem, rng, n, 2)
		ctx := &Context{Alloc: mem}
		rows.Store(0)
		got, err := p.Eval(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if rows.Load() != int64(n) {
			t.Errorf("%d rows: the common sub-expression was evaluated on %d rows", n, rows.Load())
		}
		want := evalPlain(t, ctx, batch, exprs)
		sameArrays(t, "shared", got, want)
		releaseAll(got)
		releaseAll(want)
		batch.Release()
	}
}

// TestProgramSharing covers which sub-expressions are shared.
func TestProgramSharing(t *testing.T) {
	must := mustExpr(t)
	var rows atomic.Int64
	s := col("s")
	f := func() Expr { return counted(t, s, &rows) }
	cond := must(Binary("=", col("i"), Lit(int32(1), sqltypes.Int)))
	keys := func(es []Expr) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.String())
		}
		return out
	}
	// only in branches evaluated for some rows: not shared (it would run
	// on rows that never needed it)
	lazyOnly := must(Case(nil, []Expr{cond}, []Expr{f()}, f()))
	if sh := NewProgram([]Expr{lazyOnly}, len(testCols)).Shared(); len(sh) != 0 {
		t.Errorf("branch-only occurrences shared: %v", keys(sh))
	}
	// once in a branch, once evaluated on every row: shared
	if sh := NewProgram([]Expr{lazyOnly, f()}, len(testCols)).Shared(); len(sh) != 1 {
		t.Errorf("eager + branch occurrences: shared %v", keys(sh))
	}
	// columns and literals are never shared; different columns with one
	// name are different
	a, a2 := Col(0, "a", sqltypes.Int), Col(7, "a", sqltypes.Int)
	one := Lit(int32(1), sqltypes.Int)
	sum := func(x Expr) Expr { return must(Binary("+", x, one)) }
	if sh := NewProgram([]Expr{sum(a), sum(a2), a, one}, len(testCols)).Shared(); len(sh) != 0 {
		t.Errorf("shared: %v", keys(sh))
	}
	// nested: the outer tree and the inner one used outside it
	d := col("d")
	inner := func() Expr { return must(Binary("+", d, Lit(1.5, sqltypes.Double))) }
	outer := func() Expr { return must(Binary("*", inner(), inner())) }
	p := NewProgram([]Expr{outer(), must(Binary("-", outer(), inner()))}, len(testCols))
	if got := keys(p.Shared()); len(got) != 2 || got[0] != "(d + 1.5)" {
		t.Errorf("nested: shared %v", got)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	batch, _ := randomBatch(mem, rand.New(rand.NewPCG(5, 6)), 50, 1)
	defer batch.Release()
	ctx := &Context{Alloc: mem}
	got, err := p.Eval(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := evalPlain(t, ctx, batch, p.Exprs())
	sameArrays(t, "nested", got, want)
	releaseAll(got)
	releaseAll(want)
}

// TestProgramErrorNamesExpression: an error names the expression as
// written, or the shared sub-expression that failed.
func TestProgramErrorNamesExpression(t *testing.T) {
	must := mustExpr(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	big := Col(0, "i", sqltypes.Int)
	over := func() Expr { return must(Binary("+", big, Lit(int32(2147483647), sqltypes.Int))) }
	p := NewProgram([]Expr{must(Binary("*", over(), over())), over()}, len(testCols))
	batch, _ := randomBatch(mem, rand.New(rand.NewPCG(1, 1)), 200, 0)
	defer batch.Release()
	_, err := p.Eval(&Context{Alloc: mem}, batch)
	var ee *EvalError
	if err == nil || !errorsAs(err, &ee) || ee.Expr.String() != "(i + 2147483647)" {
		t.Errorf("error %v", err)
	}
}

func errorsAs(err error, target **EvalError) bool {
	e, ok := err.(*EvalError)
	*target = e
	return ok
}

// TestCarry: the filter's costly sub-expressions evaluated on every row
// that the projection also computes are carried, the projection reading
// them as columns; Nexmark q21's shape.
func TestCarry(t *testing.T) {
	must := mustExpr(t)
	vc := func(v string) Expr { return Lit(v, sqltypes.Varchar) }
	s, i := col("s"), col("i")
	re := func() Expr {
		return must(Func("REGEXP_EXTRACT", []Expr{s, vc("(&|^)x=([^&]*)"), Lit(int64(2), sqltypes.BigInt)}))
	}
	low := func() Expr { return must(Func("LOWER", []Expr{s})) }
	pred := must(Binary("OR", IsNull(re(), true), must(InList(low(), []Expr{vc("a"), vc("b")}, false))))
	proj := []Expr{i, must(Case(nil, []Expr{must(Binary("=", low(), vc("a")))}, []Expr{vc("0")}, re())),
		must(Binary("+", i, Lit(int32(1), sqltypes.Int)))}
	n := len(testCols)
	carry, rewritten := Carry(pred, proj, n)
	if len(carry) != 2 || carry[0].String() != re().String() || carry[1].String() != low().String() {
		t.Fatalf("carry %v", carry)
	}
	want := "CASE WHEN (LOWER(s) = 'a') THEN '0' ELSE " + re().String() + " END"
	if rewritten[1].String() != want || !slicesEqual(Columns(rewritten[1]), []int{n, n + 1}) {
		t.Errorf("rewritten %s over %v", rewritten[1], Columns(rewritten[1]))
	}
	// i + 1 is cheap: recomputed rather than carried
	if c, _ := Carry(must(Binary(">", must(Binary("+", i, Lit(int32(1), sqltypes.Int))), i)), proj, n); len(c) != 0 {
		t.Errorf("carried %v", c)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// randomTree builds a random expression from a small grammar, so that
// separately built trees are often structurally equal.
func randomTree(t *testing.T, rng *rand.Rand, depth int) Expr {
	must := mustExpr(t)
	if depth == 0 || rng.IntN(4) == 0 {
		switch rng.IntN(5) {
		case 0:
			return col("i")
		case 1:
			return col("j")
		case 2:
			return Lit(int32(rng.IntN(2)), sqltypes.Int)
		case 3:
			return Lit(int64(1), sqltypes.BigInt)
		}
		return Lit(nil, sqltypes.Int)
	}
	a, b := randomTree(t, rng, depth-1), randomTree(t, rng, depth-1)
	switch rng.IntN(6) {
	case 0:
		return must(Binary("+", a, b))
	case 1:
		return must(Binary("-", a, b))
	case 2:
		return must(Case(nil, []Expr{must(Binary("<", a, b))}, []Expr{a}, b))
	case 3:
		return must(Func("COALESCE", []Expr{a, b}))
	case 4:
		in := must(InList(a, []Expr{Lit(int32(1), sqltypes.Int), Lit(int32(rng.IntN(2)), sqltypes.Int)}, rng.IntN(2) == 0))
		return must(Case(nil, []Expr{in}, []Expr{a}, b))
	}
	return must(Func("ABS", []Expr{a}))
}

// TestKeyerIDsMatchKeys: the keyer gives two trees the same id exactly
// when their structural keys are equal, whatever objects they are built
// from; the sub-trees shared by NewProgram and Carry rest on it.
func TestKeyerIDsMatchKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var trees []Expr
	for range 300 {
		e := randomTree(t, rng, 4)
		walk(e, func(x Expr) { trees = append(trees, x) })
	}
	k := newKeyer()
	keys := make([]string, len(trees))
	ids := make([]int, len(trees))
	for i, e := range trees {
		keys[i], ids[i] = Key(e), k.id(e)
	}
	equalPairs := 0
	for i := 0; i < len(trees); i += 3 {
		for j := i + 1; j < len(trees); j += 2 {
			a, b := trees[i], trees[j]
			sameKey := keys[i] == keys[j]
			if sameID := ids[i] == ids[j]; sameKey != sameID {
				t.Fatalf("%s and %s: equal keys %v, equal ids %v", a, b, sameKey, sameID)
			}
			if sameKey && a != b {
				equalPairs++
			}
		}
	}
	if equalPairs < 100 {
		t.Fatalf("only %d equal pairs of distinct objects: the test compares too little", equalPairs)
	}
}

// TestProgramSharesDeepChain: in a long OR chain whose terms repeat, the
// repeated term is shared and the results equal evaluating the chain
// unshared; a chain this deep took minutes when sub-trees were compared
// by their full keys.
func TestProgramSharesDeepChain(t *testing.T) {
	must := mustExpr(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var rows atomic.Int64
	term := func(k int) Expr {
		return must(Binary("=", counted(t, col("s"), &rows), Lit(strings.Repeat("a", k%5), sqltypes.Varchar)))
	}
	chain := term(0)
	for k := 1; k < 1000; k++ {
		chain = must(Binary("OR", chain, term(k)))
	}
	p := NewProgram([]Expr{chain}, len(testCols))
	found := false
	for _, e := range p.Shared() {
		found = found || e.String() == "COUNTED(s)"
	}
	if !found {
		t.Fatalf("shared %d sub-expressions, want COUNTED(s) among them", len(p.Shared()))
	}
	batch, _ := randomBatch(mem, rand.New(rand.NewPCG(1, 2)), 40, 1)
	defer batch.Release()
	ctx := &Context{Alloc: mem}
	rows.Store(0)
	got, err := p.Eval(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Load() != 40 {
		t.Errorf("COUNTED(s) evaluated on %d rows, want 40 (once per row)", rows.Load())
	}
	want := evalPlain(t, ctx, batch, []Expr{chain})
	sameArrays(t, "deep chain", got, want)
	releaseAll(got)
	releaseAll(want)
}
