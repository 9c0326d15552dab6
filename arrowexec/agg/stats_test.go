package agg

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestVarianceIsStable: variances of values around 1e9, folded from
// several tables (as windows are from their panes), agree with a
// two-pass computation, and equal values have exactly zero variance.
func TestVarianceIsStable(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	fns := []string{"var_pop", "var_samp", "stddev_pop", "stddev_samp"}
	var specs []Spec
	for _, f := range fns {
		specs = append(specs, Spec{Func: f, Input: sqltypes.Double})
	}
	r := rand.New(rand.NewPCG(3, 5))
	for trial := range 50 {
		n := 2 + r.IntN(200)
		xs := make([]float64, n)
		equal := trial%5 == 0
		for i := range xs {
			xs[i] = 1e9 + r.Float64()*1000
			if equal {
				xs[i] = 1e9 + 0.1
			}
		}
		// three tables of consecutive rows, merged into a fourth
		var tables []*Table
		for _, part := range [][]float64{xs[:n/3], xs[n/3 : 2*n/3], xs[2*n/3:]} {
			tbl, err := NewTable(alloc, []arrow.DataType{arrow.PrimitiveTypes.Int64}, specs)
			if err != nil {
				t.Fatal(err)
			}
			tables = append(tables, tbl)
			if len(part) == 0 {
				continue
			}
			kb, vb := array.NewInt64Builder(alloc), array.NewFloat64Builder(alloc)
			for _, x := range part {
				kb.Append(1)
				vb.Append(x)
			}
			k, v := kb.NewArray(), vb.NewArray()
			kb.Release()
			vb.Release()
			args := make([]arrow.Array, len(specs))
			for i := range args {
				args[i] = v
			}
			err = tbl.Update([]arrow.Array{k}, args, nil, nil)
			k.Release()
			v.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
		into, err := NewTable(alloc, []arrow.DataType{arrow.PrimitiveTypes.Int64}, specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range tables {
			if err := into.Merge(tbl); err != nil {
				t.Fatal(err)
			}
			tbl.Release()
		}
		keys, res, err := into.Emit([]uint32{0})
		into.Release()
		if err != nil {
			t.Fatal(err)
		}
		// two passes over the values less the first (exact: all are
		// within a factor of 2 of each other)
		var mean, m2 float64
		for _, x := range xs {
			mean += x - xs[0]
		}
		mean /= float64(n)
		for _, x := range xs {
			m2 += (x - xs[0] - mean) * (x - xs[0] - mean)
		}
		var msg string
		for i, f := range fns {
			want := m2 / float64(n)
			if f == "var_samp" || f == "stddev_samp" {
				want = m2 / float64(n-1)
			}
			if f == "stddev_pop" || f == "stddev_samp" {
				want = math.Sqrt(want)
			}
			got := res[i].(*array.Float64).Value(0)
			switch {
			case equal && got != 0:
				msg = f + ": nonzero over equal values"
			case !equal && math.Abs(got-want) > 1e-12*want:
				msg = f + ": differs from two passes"
			}
			if msg != "" {
				t.Errorf("trial %d (%d rows): %s: got %.17g, want %.17g", trial, n, msg, got, want)
				break
			}
		}
		for _, a := range append(keys, res...) {
			a.Release()
		}
		if msg != "" {
			break
		}
	}
}
