package agg

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// column is a generated input or key column: its type and a generator of
// logical values (nil is NULL).
type column struct {
	name string
	dt   arrow.DataType
	gen  func(r *rand.Rand) any
}

func withNulls(p float64, f func(r *rand.Rand) any) func(r *rand.Rand) any {
	return func(r *rand.Rand) any {
		if r.Float64() < p {
			return nil
		}
		return f(r)
	}
}

var strPool = func() []string {
	r := rand.New(rand.NewPCG(7, 7))
	out := []string{"", "a", "A", "ab", "é", "日本", "zzzzzzzzzzzzzzzzzzzzzzzz"}
	for len(out) < 300 {
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		out = append(out, string(b))
	}
	return out
}()

func pickFloat(r *rand.Rand) any {
	switch r.IntN(20) {
	case 0:
		return math.NaN()
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return 0.0
	case 3:
		if r.IntN(4) == 0 {
			return math.Inf(1 - 2*r.IntN(2))
		}
	case 4:
		return float64(r.IntN(10))
	}
	return r.NormFloat64() * 1000
}

// inputColumns are the argument columns every aggregate is tried on.
var inputColumns = []column{
	{"int", sqltypes.Int, withNulls(0.15, func(r *rand.Rand) any { return int32(r.IntN(101) - 50) })},
	{"bigint", sqltypes.BigInt, withNulls(0.15, func(r *rand.Rand) any { return r.Int64N(2e12) - 1e12 })},
	{"double", sqltypes.Double, withNulls(0.15, pickFloat)},
	{"dec18", sqltypes.Decimal(18, 4), withNulls(0.15, func(r *rand.Rand) any { return decimal128.FromI64(r.Int64N(2e14) - 1e14) })},
	{"dec38", sqltypes.Decimal(38, 10), withNulls(0.15, func(r *rand.Rand) any {
		n := decimal128.FromI64(r.Int64N(2e15) - 1e15)
		return n.Mul(decimal128.FromI64(1e15)).Add(decimal128.FromI64(r.Int64N(1e15)))
	})},
	{"varchar", sqltypes.Varchar, withNulls(0.15, func(r *rand.Rand) any { return strPool[r.IntN(len(strPool))] })},
	{"bool", sqltypes.Boolean, withNulls(0.15, func(r *rand.Rand) any { return r.IntN(2) == 1 })},
	{"ts", sqltypes.Timestamp, withNulls(0.15, func(r *rand.Rand) any { return 1.7e12 + r.Int64N(1e9) })},
	{"date", sqltypes.Date, withNulls(0.15, func(r *rand.Rand) any { return int32(19000 + r.IntN(1000)) })},
	{"interval", sqltypes.Interval, withNulls(0.15, func(r *rand.Rand) any { return r.Int64N(1e8) - 1e7 })},
	{"allnull", sqltypes.BigInt, func(r *rand.Rand) any { return nil }},
}

var allFuncs = []string{"count_star", "count", "sum", "avg", "min", "max", "stddev_samp", "stddev_pop",
	"var_samp", "var_pop", "stddev", "variance", "first_value", "last_value", "approx_count_distinct"}

// allSpecs returns every supported (func, input column) pair plus DISTINCT
// variants, and for each the index of its input column (-1 for
// count_star).
func allSpecs() ([]Spec, []int) {
	var specs []Spec
	var cols []int
	specs = append(specs, Spec{Func: "count_star"})
	cols = append(cols, -1)
	for _, f := range allFuncs[1:] {
		for c, col := range inputColumns {
			for _, d := range []bool{false, true} {
				s := Spec{Func: f, Input: col.dt, Distinct: d}
				if _, err := ResultType(s); err != nil {
					continue
				}
				if d && !slices.Contains([]string{"count", "sum", "avg", "min", "var_pop", "stddev", "approx_count_distinct"}, f) {
					continue
				}
				specs = append(specs, s)
				cols = append(cols, c)
			}
		}
	}
	return specs, cols
}

type keyConfig struct {
	name string
	cols []column
}

var keyConfigs = []keyConfig{
	{"global", nil},
	{"bigint-few", []column{{"k", sqltypes.BigInt, withNulls(0.1, func(r *rand.Rand) any { return int64(r.IntN(10)) - 3 })}}},
	{"varchar-int", []column{
		{"s", sqltypes.Varchar, withNulls(0.05, func(r *rand.Rand) any { return strPool[r.IntN(len(strPool))] })},
		{"i", sqltypes.Int, withNulls(0.1, func(r *rand.Rand) any { return int32(r.IntN(4)) })},
	}},
	{"mixed", []column{
		{"d", sqltypes.Double, withNulls(0.1, func(r *rand.Rand) any {
			return []float64{0, math.Copysign(0, -1), 1.5, math.NaN(), -2}[r.IntN(5)]
		})},
		{"b", sqltypes.Boolean, withNulls(0.1, func(r *rand.Rand) any { return r.IntN(2) == 1 })},
		{"m", sqltypes.Decimal(18, 4), withNulls(0.1, func(r *rand.Rand) any { return decimal128.FromI64(int64(r.IntN(3)) - 1) })},
		{"t", sqltypes.Timestamp, withNulls(0.1, func(r *rand.Rand) any { return int64(r.IntN(2)) })},
		{"dt", sqltypes.Date, withNulls(0.1, func(r *rand.Rand) any { return int32(r.IntN(2)) })},
		{"iv", sqltypes.Interval, withNulls(0.1, func(r *rand.Rand) any { return int64(r.IntN(2)) })},
	}},
	{"bigint-many", []column{{"k", sqltypes.BigInt, withNulls(0.01, func(r *rand.Rand) any { return r.Int64N(20000) })}}},
	{"varchar-many", []column{{"k", sqltypes.Varchar, withNulls(0.01, func(r *rand.Rand) any { return fmt.Sprintf("key-%d", r.IntN(20000)) })}}},
}

// feeder drives a Table and the reference with the same random rows.
type feeder struct {
	t        *testing.T
	alloc    memory.Allocator
	rng      *rand.Rand
	kc       keyConfig
	specs    []Spec
	specCols []int
	tbl      *Table
	ref      *refTable
	sliced   bool
	useSel   bool
	useIDs   bool
}

func newFeeder(t *testing.T, alloc memory.Allocator, seed uint64, kc keyConfig, inputs ...string) *feeder {
	specs, cols := allSpecs()
	if len(inputs) > 0 { // only specs over these input columns
		var s2 []Spec
		var c2 []int
		for j, c := range cols {
			if c < 0 || slices.Contains(inputs, inputColumns[c].name) {
				s2, c2 = append(s2, specs[j]), append(c2, c)
			}
		}
		specs, cols = s2, c2
	}
	var kt []arrow.DataType
	for _, c := range kc.cols {
		kt = append(kt, c.dt)
	}
	tbl, err := NewTable(alloc, kt, specs)
	if err != nil {
		t.Fatal(err)
	}
	return &feeder{t: t, alloc: alloc, rng: rand.New(rand.NewPCG(seed, 1)), kc: kc, specs: specs,
		specCols: cols, tbl: tbl, ref: newRef(specs)}
}

func (f *feeder) keyTypes() []arrow.DataType {
	var kt []arrow.DataType
	for _, c := range f.kc.cols {
		kt = append(kt, c.dt)
	}
	return kt
}

// batch feeds one batch of n rows; if checkTouched, Touched is verified
// against the batch's groups.
func (f *feeder) batch(n int, checkTouched bool) {
	t, r := f.t, f.rng
	keyVals := make([][]any, len(f.kc.cols))
	for c, col := range f.kc.cols {
		for i := 0; i < n; i++ {
			keyVals[c] = append(keyVals[c], col.gen(r))
		}
	}
	inVals := make([][]any, len(inputColumns))
	for c, col := range inputColumns {
		for i := 0; i < n; i++ {
			inVals[c] = append(inVals[c], col.gen(r))
		}
	}
	var sel []int32
	if f.useSel {
		sel = []int32{}
		for i := 0; i < n; i++ {
			if r.IntN(10) < 7 {
				sel = append(sel, int32(i))
			}
		}
	}
	var arrays []arrow.Array
	mk := func(col column, vals []any) arrow.Array {
		a := buildSliced(f.alloc, col.dt, vals, f.sliced, r, func() any { return col.gen(r) })
		arrays = append(arrays, a)
		return a
	}
	defer func() {
		for _, a := range arrays {
			a.Release()
		}
	}()
	keys := make([]arrow.Array, len(f.kc.cols))
	for c, col := range f.kc.cols {
		keys[c] = mk(col, keyVals[c])
	}
	cols := make([]arrow.Array, len(inputColumns))
	for c, col := range inputColumns {
		cols[c] = mk(col, inVals[c])
	}
	inputs := make([]arrow.Array, len(f.specs))
	for j, c := range f.specCols {
		if c >= 0 {
			inputs[j] = cols[c]
		}
	}
	m := n
	if sel != nil {
		m = len(sel)
	}
	var ids []uint32
	if f.useIDs {
		ids = make([]uint32, m)
	}
	if checkTouched {
		f.tbl.ClearTouched()
	}
	if err := f.tbl.Update(keys, inputs, sel, ids); err != nil {
		t.Fatalf("Update: %v", err)
	}
	// reference
	var want []uint32
	for k := 0; k < m; k++ {
		i := k
		if sel != nil {
			i = int(sel[k])
		}
		key := make([]any, len(keys))
		for c := range keys {
			key[c] = keyVals[c][i]
		}
		args := make([]any, len(f.specs))
		for j, c := range f.specCols {
			if c >= 0 {
				args[j] = inVals[c][i]
			}
		}
		g := f.ref.add(key, args)
		want = append(want, uint32(g))
		if ids != nil && ids[k] != uint32(g) {
			t.Fatalf("row %d: group id %d, want %d", k, ids[k], g)
		}
	}
	if f.tbl.Len() != len(f.ref.groups) {
		t.Fatalf("Len = %d, want %d", f.tbl.Len(), len(f.ref.groups))
	}
	if checkTouched {
		slices.Sort(want)
		want = slices.Compact(want)
		if got := f.tbl.Touched(); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("Touched = %v, want %v", got, want)
		}
	}
}

func TestAggregatesMatchReference(t *testing.T) {
	type mode struct {
		name                          string
		sliced, useSel, iids, collide bool
	}
	modes := []mode{{"plain", false, false, false, false}, {"sliced", true, false, true, false},
		{"sel", false, true, true, false}, {"sliced+sel", true, true, false, false},
		{"collide", false, true, true, true}}
	for _, kc := range keyConfigs {
		for _, bs := range []int{1, 3, 4096} {
			for mi, md := range modes {
				if md.collide && (kc.cols == nil || strings.HasSuffix(kc.name, "-many")) {
					continue // quadratic probing with colliding hashes
				}
				name := fmt.Sprintf("%s/batch%d/%s", kc.name, bs, md.name)
				t.Run(name, func(t *testing.T) {
					rows := 3000
					if bs < 10 {
						rows = 300
					}
					if testing.Short() {
						rows /= 3
					}
					alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer alloc.AssertSize(t, 0)
					f := newFeeder(t, alloc, uint64(bs*10+mi), kc)
					defer f.tbl.Release()
					f.sliced, f.useSel, f.useIDs = md.sliced, md.useSel, md.iids
					if md.collide {
						f.tbl.groups.collide = true
						for _, a := range f.tbl.aggs {
							if d, ok := a.(*distinct); ok {
								d.s.set.collide = true
							}
						}
					}
					for done, b := 0, 0; done < rows; b++ {
						n := min(bs, rows-done)
						f.batch(n, b%3 == 1)
						done += n
					}
					checkEmit(t, f.tbl, f.ref, f.keyTypes())
					if f.tbl.StateBytes() <= 0 {
						t.Fatalf("StateBytes = %d", f.tbl.StateBytes())
					}
				})
			}
		}
	}
}

func TestCombine(t *testing.T) {
	for _, kc := range keyConfigs[1:] {
		for _, bs := range []int{3, 500} {
			t.Run(fmt.Sprintf("%s/batch%d", kc.name, bs), func(t *testing.T) {
				alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer alloc.AssertSize(t, 0)
				f := newFeeder(t, alloc, uint64(bs), kc, "int", "double", "dec38", "varchar", "bool")
				defer f.tbl.Release()
				f.useIDs = true
				r := f.rng
				for round := 0; round < 3; round++ {
					for i := 0; i < 600/bs+1; i++ {
						f.batch(bs, false)
					}
					n := f.tbl.Len()
					f.tbl.ClearTouched()
					var into uint32
					for c := 0; c < 1+n/4; c++ {
						a, b := uint32(r.IntN(n)), uint32(r.IntN(n))
						f.tbl.Combine(a, b)
						f.ref.combine(int(a), int(b))
						into = uint32(f.ref.find(int(a)))
					}
					if n > 1 && !slices.Contains(f.tbl.Touched(), into) {
						t.Fatalf("Touched %v misses combined-into group %d", f.tbl.Touched(), into)
					}
					for _, g := range f.tbl.Touched() {
						if f.ref.groups[g].dead {
							t.Fatalf("Touched lists dead group %d", g)
						}
					}
					checkEmit(t, f.tbl, f.ref, f.keyTypes())
				}
			})
		}
	}
}

func TestEmitSubset(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	tbl, err := NewTable(alloc, []arrow.DataType{sqltypes.Varchar}, []Spec{{Func: "count_star"}, {Func: "max", Input: sqltypes.Varchar}})
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	k := buildArray(alloc, sqltypes.Varchar, []any{"x", "y", "x", nil, "z", nil})
	v := buildArray(alloc, sqltypes.Varchar, []any{"b", "", "c", "a", nil, "q"})
	defer k.Release()
	defer v.Release()
	if err := tbl.Update([]arrow.Array{k}, []arrow.Array{nil, v}, nil, nil); err != nil {
		t.Fatal(err)
	}
	keys, res, err := tbl.Emit([]uint32{3, 0})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, a := range append(keys, res...) {
			a.Release()
		}
	}()
	got := fmt.Sprint(keys[0], res[0], res[1])
	if want := `["z" "x"] [1 2] [(null) "c"]`; got != want {
		t.Fatalf("Emit = %s, want %s", got, want)
	}
}

func TestOverflow(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	one := func(dt arrow.DataType, vals ...any) arrow.Array { return buildArray(alloc, dt, vals) }

	t.Run("bigint update", func(t *testing.T) {
		tbl, _ := NewTable(alloc, nil, []Spec{{Func: "sum", Input: sqltypes.BigInt}})
		defer tbl.Release()
		a := one(sqltypes.BigInt, int64(math.MaxInt64-1), int64(1))
		defer a.Release()
		if err := tbl.Update(nil, []arrow.Array{a}, nil, nil); err != nil {
			t.Fatal(err)
		}
		b := one(sqltypes.BigInt, int64(1))
		defer b.Release()
		err := tbl.Update(nil, []arrow.Array{b}, nil, nil)
		if err == nil || !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "SUM overflow") {
			t.Fatalf("err = %v, want SUM overflow", err)
		}
	})
	t.Run("bigint negative", func(t *testing.T) {
		tbl, _ := NewTable(alloc, nil, []Spec{{Func: "sum", Input: sqltypes.BigInt}})
		defer tbl.Release()
		a := one(sqltypes.BigInt, int64(math.MinInt64), int64(-1))
		defer a.Release()
		if err := tbl.Update(nil, []arrow.Array{a}, nil, nil); !errors.Is(err, ErrOverflow) {
			t.Fatalf("err = %v, want overflow", err)
		}
	})
	t.Run("bigint combine", func(t *testing.T) {
		tbl, _ := NewTable(alloc, []arrow.DataType{sqltypes.Int}, []Spec{{Func: "sum", Input: sqltypes.BigInt}})
		defer tbl.Release()
		k := one(sqltypes.Int, int32(1), int32(2))
		a := one(sqltypes.BigInt, int64(math.MaxInt64), int64(1))
		defer k.Release()
		defer a.Release()
		if err := tbl.Update([]arrow.Array{k}, []arrow.Array{a}, nil, nil); err != nil {
			t.Fatal(err)
		}
		tbl.Combine(0, 1)
		if _, _, err := tbl.Emit(nil); !errors.Is(err, ErrOverflow) {
			t.Fatalf("Emit after overflowing Combine: err = %v", err)
		}
		if err := tbl.Update([]arrow.Array{k}, []arrow.Array{a}, nil, nil); !errors.Is(err, ErrOverflow) {
			t.Fatalf("Update after overflowing Combine: err = %v", err)
		}
	})
	big38 := decimal128.FromBigInt(decimal128.GetMaxValue(38).BigInt()) // 10^38-1
	t.Run("decimal emit", func(t *testing.T) {
		tbl, _ := NewTable(alloc, nil, []Spec{{Func: "sum", Input: sqltypes.Decimal(38, 2)}})
		defer tbl.Release()
		a := one(sqltypes.Decimal(38, 2), big38, decimal128.FromI64(1))
		defer a.Release()
		if err := tbl.Update(nil, []arrow.Array{a}, nil, nil); err != nil {
			t.Fatal(err)
		}
		_, _, err := tbl.Emit(nil)
		if !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "SUM overflow") {
			t.Fatalf("err = %v, want SUM overflow", err)
		}
		// back in range: fine again
		b := one(sqltypes.Decimal(38, 2), decimal128.FromI64(-5))
		defer b.Release()
		if err := tbl.Update(nil, []arrow.Array{b}, nil, nil); err != nil {
			t.Fatal(err)
		}
		_, res, err := tbl.Emit(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res[0].Release()
		want := new(big.Int).Sub(big38.BigInt(), big.NewInt(4))
		if got := valueAt(res[0], 0).(decimal128.Num).BigInt(); got.Cmp(want) != 0 {
			t.Fatalf("sum = %s, want %s", got, want)
		}
	})
	t.Run("decimal 128-bit update", func(t *testing.T) {
		tbl, _ := NewTable(alloc, nil, []Spec{{Func: "sum", Input: sqltypes.Decimal(38, 0)}})
		defer tbl.Release()
		a := one(sqltypes.Decimal(38, 0), big38, big38)
		defer a.Release()
		if err := tbl.Update(nil, []arrow.Array{a}, nil, nil); !errors.Is(err, ErrOverflow) {
			t.Fatalf("err = %v, want overflow", err)
		}
	})
	t.Run("decimal avg", func(t *testing.T) {
		tbl, _ := NewTable(alloc, nil, []Spec{{Func: "avg", Input: sqltypes.Decimal(38, 0)}})
		defer tbl.Release()
		a := one(sqltypes.Decimal(38, 0), decimal128.FromBigInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(36), nil)))
		defer a.Release()
		if err := tbl.Update(nil, []arrow.Array{a}, nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tbl.Emit(nil); !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "AVG overflow") {
			t.Fatalf("err = %v, want AVG overflow", err)
		}
	})
}

func TestResultType(t *testing.T) {
	cases := []struct {
		s    Spec
		want string // type name or error text
	}{
		{Spec{Func: "count_star"}, "BIGINT"},
		{Spec{Func: "count", Input: sqltypes.Varchar, Distinct: true}, "BIGINT"},
		{Spec{Func: "sum", Input: sqltypes.Int}, "BIGINT"},
		{Spec{Func: "sum", Input: sqltypes.Double}, "DOUBLE"},
		{Spec{Func: "sum", Input: sqltypes.Decimal(18, 4)}, "DECIMAL(38,4)"},
		{Spec{Func: "avg", Input: sqltypes.BigInt}, "DOUBLE"},
		{Spec{Func: "avg", Input: sqltypes.Decimal(18, 4)}, "DECIMAL(38,6)"},
		{Spec{Func: "avg", Input: sqltypes.Decimal(20, 8)}, "DECIMAL(38,8)"},
		{Spec{Func: "min", Input: sqltypes.Timestamp}, "TIMESTAMP"},
		{Spec{Func: "max", Input: sqltypes.Varchar}, "VARCHAR"},
		{Spec{Func: "stddev", Input: sqltypes.Decimal(10, 2)}, "DOUBLE"},
		{Spec{Func: "last_value", Input: sqltypes.Boolean}, "BOOLEAN"},
		{Spec{Func: "approx_count_distinct", Input: sqltypes.Varchar}, "BIGINT"},
		{Spec{Func: "count", Input: sqltypes.Null}, "BIGINT"},
		{Spec{Func: "sum", Input: sqltypes.Varchar}, "SUM(VARCHAR) is not supported"},
		{Spec{Func: "avg", Input: sqltypes.Timestamp}, "AVG(TIMESTAMP) is not supported"},
		{Spec{Func: "var_pop", Input: sqltypes.Boolean}, "VAR_POP(BOOLEAN) is not supported"},
		{Spec{Func: "first_value", Input: sqltypes.Int, Distinct: true}, "DISTINCT is not supported for FIRST_VALUE"},
		{Spec{Func: "median", Input: sqltypes.Int}, "unknown aggregate function MEDIAN"},
		{Spec{Func: "sum", Input: arrow.BinaryTypes.Binary}, "SUM(binary) is not supported"},
	}
	for _, c := range cases {
		dt, err := ResultType(c.s)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = sqltypes.Name(dt)
		}
		if got != c.want {
			t.Errorf("ResultType(%+v) = %q, want %q", c.s, got, c.want)
		}
	}
}

// TestNaNOrder pins PostgreSQL's order of DOUBLE: NaN above everything.
func TestNaNOrder(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs := []Spec{{Func: "min", Input: sqltypes.Double}, {Func: "max", Input: sqltypes.Double}, {Func: "count", Input: sqltypes.Double, Distinct: true}}
	tbl, _ := NewTable(alloc, nil, specs)
	defer tbl.Release()
	a := buildArray(alloc, sqltypes.Double, []any{1.0, math.NaN(), math.Inf(1), nil, math.NaN(), 0.0, math.Copysign(0, -1)})
	defer a.Release()
	if err := tbl.Update(nil, []arrow.Array{a, a, a}, nil, nil); err != nil {
		t.Fatal(err)
	}
	_, res, _ := tbl.Emit(nil)
	defer func() {
		for _, r := range res {
			r.Release()
		}
	}()
	if mn, mx, cd := valueAt(res[0], 0), valueAt(res[1], 0), valueAt(res[2], 0); mn != 0.0 || !math.IsNaN(mx.(float64)) || cd != int64(4) {
		t.Fatalf("min, max, count(distinct) = %v, %v, %v; want 0, NaN, 4", mn, mx, cd)
	}
}

func TestHLLAccuracy(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	// 3 standard errors: 3 * 1.04/sqrt(128)
	bound := 3 * 1.04 / math.Sqrt(HLLRegisters)
	for _, dt := range []arrow.DataType{sqltypes.BigInt, sqltypes.Varchar, sqltypes.Double} {
		for _, n := range []int{10, 1000, 100000} {
			tbl, err := NewTable(alloc, []arrow.DataType{sqltypes.Int}, []Spec{{Func: "approx_count_distinct", Input: dt}})
			if err != nil {
				t.Fatal(err)
			}
			// every group gets exactly n distinct values, each twice
			const groups = 4
			var worst float64
			total := 2 * n * groups
			for start := 0; start < total; start += 4096 {
				m := min(4096, total-start)
				kv, vv := make([]any, m), make([]any, m)
				for i := range m {
					g := (start + i) % groups
					x := ((start+i)/groups)%n*groups + g
					kv[i] = int32(g)
					switch dt.ID() {
					case arrow.INT64:
						vv[i] = int64(x)*7919 + 1
					case arrow.STRING:
						vv[i] = fmt.Sprintf("value-%d", x)
					default:
						vv[i] = float64(x) / 3
					}
				}
				k, v := buildArray(alloc, sqltypes.Int, kv), buildArray(alloc, dt, vv)
				if err := tbl.Update([]arrow.Array{k}, []arrow.Array{v}, nil, nil); err != nil {
					t.Fatal(err)
				}
				k.Release()
				v.Release()
			}
			keys, res, err := tbl.Emit(nil)
			if err != nil {
				t.Fatal(err)
			}
			for g := 0; g < groups; g++ {
				got := float64(valueAt(res[0], g).(int64))
				e := math.Abs(got-float64(n)) / float64(n)
				worst = math.Max(worst, e)
				if e > bound {
					t.Errorf("%s group %d: estimate %v for %d distinct (error %.3f > %.3f)", sqltypes.Name(dt), g, got, n, e, bound)
				}
			}
			t.Logf("%s n=%d: worst relative error %.4f (bound %.3f)", sqltypes.Name(dt), n, worst, bound)
			keys[0].Release()
			res[0].Release()
			tbl.Release()
		}
	}
}

func TestUpdateArgs(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	tbl, _ := NewTable(alloc, nil, []Spec{{Func: "count_star"}})
	// no arrays: the row count comes from sel or ids
	if err := tbl.Update(nil, []arrow.Array{nil}, []int32{0, 1, 2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Update(nil, []arrow.Array{nil}, nil, make([]uint32, 2)); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Update(nil, []arrow.Array{nil}, nil, nil); err == nil {
		t.Fatal("Update without a row count succeeded")
	}
	_, res, _ := tbl.Emit(nil)
	if got := valueAt(res[0], 0); got != int64(5) {
		t.Fatalf("count(*) = %v, want 5", got)
	}
	res[0].Release()
	tbl.Release()
	tbl.Release() // idempotent
	if err := tbl.Update(nil, []arrow.Array{nil}, []int32{0}, nil); err == nil {
		t.Fatal("Update after Release succeeded")
	}

	// an empty table emits nothing, even without keys
	tbl, _ = NewTable(alloc, nil, []Spec{{Func: "sum", Input: sqltypes.BigInt}})
	_, res, _ = tbl.Emit(nil)
	if res[0].Len() != 0 {
		t.Fatalf("empty table emitted %d rows", res[0].Len())
	}
	res[0].Release()
	tbl.Release()

	if _, err := NewTable(alloc, []arrow.DataType{arrow.BinaryTypes.Binary}, nil); err == nil {
		t.Fatal("BINARY key accepted")
	}
}

// TestFirstSeenOrder checks ids follow first appearance even when the
// hash table grows and collides in the middle of a batch.
func TestFirstSeenOrder(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	tbl, _ := NewTable(alloc, []arrow.DataType{sqltypes.BigInt}, []Spec{{Func: "count_star"}})
	defer tbl.Release()
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[int64]uint32{}
	for b := 0; b < 20; b++ {
		vals := make([]any, 5000)
		for i := range vals {
			vals[i] = r.Int64N(30000)
		}
		a := buildArray(alloc, sqltypes.BigInt, vals)
		ids := make([]uint32, len(vals))
		if err := tbl.Update([]arrow.Array{a}, []arrow.Array{nil}, nil, ids); err != nil {
			t.Fatal(err)
		}
		a.Release()
		for i, v := range vals {
			id, ok := seen[v.(int64)]
			if !ok {
				id = uint32(len(seen))
				seen[v.(int64)] = id
			}
			if ids[i] != id {
				t.Fatalf("batch %d row %d: id %d, want %d", b, i, ids[i], id)
			}
		}
	}
}

// TestStringStateCompaction replaces long VARCHAR states many times so the
// arena compacts, and checks the values survive.
func TestStringStateCompaction(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs := []Spec{{Func: "last_value", Input: sqltypes.Varchar}, {Func: "max", Input: sqltypes.Varchar}, {Func: "first_value", Input: sqltypes.Varchar}}
	tbl, _ := NewTable(alloc, []arrow.DataType{sqltypes.Int}, specs)
	defer tbl.Release()
	var last [3]string
	var maxv [3]string
	var first [3]any
	for b := 0; b < 400; b++ {
		kv, vv := make([]any, 3), make([]any, 3)
		for i := range kv {
			kv[i] = int32(i)
			s := strings.Repeat(string(rune('a'+b%26)), 100+b) + fmt.Sprint(b)
			if b%7 == 3 && i == 1 {
				vv[i] = nil
			} else {
				vv[i] = s
			}
			if b == 0 {
				first[i] = vv[i]
			}
			if vv[i] != nil && s > maxv[i] {
				maxv[i] = s
			}
			if vv[i] == nil {
				last[i] = "<nil>"
			} else {
				last[i] = s
			}
		}
		k, v := buildArray(alloc, sqltypes.Int, kv), buildArray(alloc, sqltypes.Varchar, vv)
		if err := tbl.Update([]arrow.Array{k}, []arrow.Array{v, v, v}, nil, nil); err != nil {
			t.Fatal(err)
		}
		k.Release()
		v.Release()
	}
	keys, res, err := tbl.Emit(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, a := range append(keys, res...) {
			a.Release()
		}
	}()
	for g := 0; g < 3; g++ {
		l := valueAt(res[0], g)
		if l == nil {
			l = "<nil>"
		}
		if l != last[g] || valueAt(res[1], g) != maxv[g] || valueAt(res[2], g) != first[g] {
			t.Fatalf("group %d: last, max, first = %.20v, %.20v, %.20v", g, l, valueAt(res[1], g), valueAt(res[2], g))
		}
	}
	if tbl.StateBytes() > 1<<20 {
		t.Fatalf("StateBytes %d: garbage not compacted", tbl.StateBytes())
	}
}

// TestNullType covers an untyped NULL as key and as argument.
func TestNullType(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs := []Spec{{Func: "count", Input: arrow.Null}, {Func: "max", Input: arrow.Null},
		{Func: "first_value", Input: arrow.Null}, {Func: "approx_count_distinct", Input: arrow.Null},
		{Func: "count", Input: arrow.Null, Distinct: true}, {Func: "count_star"}}
	tbl, err := NewTable(alloc, []arrow.DataType{arrow.Null, sqltypes.Int}, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	nul := array.NewNull(4)
	defer nul.Release()
	k := buildArray(alloc, sqltypes.Int, []any{int32(1), int32(2), int32(1), nil})
	defer k.Release()
	if err := tbl.Update([]arrow.Array{nul, k}, []arrow.Array{nul, nul, nul, nul, nul, nil}, nil, nil); err != nil {
		t.Fatal(err)
	}
	keys, res, err := tbl.Emit(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, a := range append(keys, res...) {
			a.Release()
		}
	}()
	got := fmt.Sprint(keys, res)
	want := "[[(null) (null) (null)] [1 2 (null)]] [[0 0 0] [(null) (null) (null)] [(null) (null) (null)] [0 0 0] [0 0 0] [2 1 1]]"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
