package agg

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// benchSpecs are the five typical aggregates of the benchmark.
var benchSpecs = []Spec{
	{Func: "count_star"},
	{Func: "sum", Input: sqltypes.BigInt},
	{Func: "avg", Input: sqltypes.Double},
	{Func: "min", Input: sqltypes.Decimal(18, 4)},
	{Func: "max", Input: sqltypes.BigInt},
}

type benchBatch struct {
	keys, inputs []arrow.Array
	n            int
}

// makeBenchBatches builds nb batches of rows rows whose keys are drawn
// uniformly from nkeys distinct values of type keyType.
func makeBenchBatches(alloc memory.Allocator, keyType arrow.DataType, nkeys, nb, rows int) []benchBatch {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]benchBatch, nb)
	for b := range out {
		kb := array.NewBuilder(alloc, keyType)
		vb := array.NewInt64Builder(alloc)
		fb := array.NewFloat64Builder(alloc)
		db := array.NewDecimal128Builder(alloc, sqltypes.Decimal(18, 4).(*arrow.Decimal128Type))
		for i := 0; i < rows; i++ {
			k := r.IntN(nkeys)
			switch kb := kb.(type) {
			case *array.Int64Builder:
				kb.Append(int64(k) * 1000003)
			case *array.StringBuilder:
				kb.Append(fmt.Sprintf("ticker-%06d", k))
			}
			vb.Append(r.Int64N(1e6))
			fb.Append(r.Float64() * 100)
			db.Append(decimal128.FromI64(r.Int64N(1e9)))
		}
		key, v, f, d := kb.NewArray(), vb.NewArray(), fb.NewArray(), db.NewArray()
		kb.Release()
		vb.Release()
		fb.Release()
		db.Release()
		out[b] = benchBatch{
			keys:   []arrow.Array{key},
			inputs: []arrow.Array{nil, v, f, d, v},
			n:      rows,
		}
		// the batch holds one reference per distinct array
		v.Retain()
	}
	return out
}

func releaseBatches(bs []benchBatch) {
	for _, b := range bs {
		for _, a := range b.keys {
			a.Release()
		}
		for _, a := range b.inputs {
			if a != nil {
				a.Release()
			}
		}
	}
}

// BenchmarkUpdate measures Update throughput for five aggregates (COUNT(*),
// SUM(BIGINT), AVG(DOUBLE), MIN(DECIMAL(18,4)), MAX(BIGINT)) in batches of
// 4096 rows; the table is warmed so every key exists (a window's steady
// state). state-B/group is StateBytes/Len.
func BenchmarkUpdate(b *testing.B) {
	for _, kt := range []struct {
		name string
		dt   arrow.DataType
	}{{"bigint", sqltypes.BigInt}, {"varchar", sqltypes.Varchar}} {
		for _, nkeys := range []int{10000, 100000} {
			b.Run(fmt.Sprintf("%s/keys=%d", kt.name, nkeys), func(b *testing.B) {
				alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer alloc.AssertSize(b, 0)
				const rows = 4096
				batches := makeBenchBatches(alloc, kt.dt, nkeys, 64, rows)
				defer releaseBatches(batches)
				tbl, err := NewTable(alloc, []arrow.DataType{kt.dt}, benchSpecs)
				if err != nil {
					b.Fatal(err)
				}
				defer tbl.Release()
				for _, bt := range batches {
					if err := tbl.Update(bt.keys, bt.inputs, nil, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					bt := batches[i%len(batches)]
					if err := tbl.Update(bt.keys, bt.inputs, nil, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
				b.ReportMetric(float64(tbl.StateBytes())/float64(tbl.Len()), "state-B/group")
			})
		}
	}
}

// BenchmarkUpdateCold measures building the table from empty each time
// (every key new: a fresh window), 10,000 keys.
func BenchmarkUpdateCold(b *testing.B) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(b, 0)
	const rows = 4096
	batches := makeBenchBatches(alloc, sqltypes.BigInt, 10000, 16, rows)
	defer releaseBatches(batches)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tbl, err := NewTable(alloc, []arrow.DataType{sqltypes.BigInt}, benchSpecs)
		if err != nil {
			b.Fatal(err)
		}
		for _, bt := range batches {
			if err := tbl.Update(bt.keys, bt.inputs, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
		tbl.Release()
	}
	b.StopTimer()
	b.ReportMetric(float64(rows*len(batches)*b.N)/b.Elapsed().Seconds(), "rows/s")
}
