package expr

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// tradeBatches builds batches of (volume BIGINT, x DOUBLE, ticker VARCHAR,
// price DECIMAL(18,4)).
func tradeBatches(alloc memory.Allocator, nb, rows int) (*arrow.Schema, []arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
		{Name: "x", Type: sqltypes.Double, Nullable: true},
		{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
		{Name: "price", Type: sqltypes.Decimal(18, 4), Nullable: true},
	}, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	tickers := []string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "BRK.B"}
	var out []arrow.RecordBatch
	for range nb {
		b := array.NewRecordBuilder(alloc, schema)
		for range rows {
			b.Field(0).(*array.Int64Builder).Append(rng.Int64N(2000))
			b.Field(1).(*array.Float64Builder).Append(rng.Float64() * 100)
			b.Field(2).(*array.StringBuilder).Append(tickers[rng.IntN(len(tickers))])
			b.Field(3).(*array.Decimal128Builder).Append(decimal128.FromI64(rng.Int64N(10_000_000)))
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return schema, out
}

func BenchmarkFilterProject(b *testing.B) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(b, 0)
	const rows = 4096
	_, batches := tradeBatches(mem, 16, rows)
	defer func() {
		for _, bt := range batches {
			bt.Release()
		}
	}()
	volume := Col(0, "volume", sqltypes.BigInt)
	x := Col(1, "x", sqltypes.Double)
	ticker := Col(2, "ticker", sqltypes.Varchar)
	price := Col(3, "price", sqltypes.Decimal(18, 4))
	must := func(e Expr, err error) Expr {
		if err != nil {
			b.Fatal(err)
		}
		f, err := Fold(e)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	where := must(Binary(">", volume, Lit(int64(1000), sqltypes.BigInt)))
	projs := []Expr{ticker, must(Binary("*", price, volume)), must(Binary("*", x, Lit(int32(2), sqltypes.Int)))}
	ctx := &Context{Alloc: mem, Now: time.Now()}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := batches[i%len(batches)]
		m, err := where.Eval(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		f, err := kernels.Filter(mem, batch, m.(*array.Boolean))
		m.Release()
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range projs {
			a, err := p.Eval(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			a.Release()
		}
		f.Release()
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
