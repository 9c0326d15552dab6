package bench

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
)

const eventsDDL = `CREATE STREAM events (k BIGINT, v BIGINT, price DECIMAL(18,4), x DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (connector = 'replay');
`

// makeEvents builds rows events with keys distinct keys and event time
// advancing by one millisecond every perMS rows.
func makeEvents(alloc memory.Allocator, schema *arrow.Schema, rows, keys, perMS, batch int) []arrow.RecordBatch {
	r := rand.New(rand.NewPCG(5, 6))
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	var out []arrow.RecordBatch
	for i := 0; i < rows; i++ {
		b.Field(0).(*array.Int64Builder).Append(r.Int64N(int64(keys)))
		b.Field(1).(*array.Int64Builder).Append(r.Int64N(1000))
		b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(r.Int64N(10_000_000)))
		b.Field(3).(*array.Float64Builder).Append(r.Float64())
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000 + int64(i/perMS)))
		if (i+1)%batch == 0 || i == rows-1 {
			out = append(out, b.NewRecordBatch())
		}
	}
	return out
}

// runWindowBench plans sql over the events stream and runs it b.N times
// over the same in-memory batches, reporting input rows/s and the state
// bytes per (key, window) at the peak.
func runWindowBench(b *testing.B, sql string, rows, keys, perMS int) {
	p, err := plan.Compile(eventsDDL+sql+` WITH (connector = 'discard');`, arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	batches := makeEvents(mem, p.Relation("events").Declared, rows, keys, perMS, 8192)
	defer func() {
		for _, bt := range batches {
			bt.Release()
		}
	}()
	var out atomic.Int64
	conns := &arrowexec.Connectors{}
	conns.RegisterSource("replay", func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return &replaySource{schema: spec.Schema, batches: batches, rounds: 1}, nil
	})
	conns.RegisterSink("discard", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discardSink{&out}, nil })
	var peakState int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rm := resource.NewManager(mem, 0)
		topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: rm})
		if err != nil {
			b.Fatal(err)
		}
		if err := topo.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		peakState = max(peakState, rm.Peak())
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	if out.Load() == 0 {
		b.Fatal("no output")
	}
	b.ReportMetric(float64(peakState)/(1<<20), "peak-MiB")
}

// BenchmarkTumbling: 10,000 keys, five aggregates, 10 s windows of 100,000
// rows each. Target: 10M rows/s on one core.
func BenchmarkTumbling(b *testing.B) {
	runWindowBench(b, `CREATE STREAM out AS SELECT k, COUNT(*) AS n, SUM(v) AS sv, AVG(x) AS ax, MIN(price) AS lo, MAX(v) AS hi, window_start
FROM events GROUP BY k WINDOW TUMBLING (INTERVAL '10' SECOND)`, 2_000_000, 10_000, 10)
}

// BenchmarkSliding: size/advance = 10 (every row in ten windows). Target:
// 3M rows/s on one core.
func BenchmarkSliding(b *testing.B) {
	runWindowBench(b, `CREATE STREAM out AS SELECT k, COUNT(*) AS n, SUM(v) AS sv, AVG(x) AS ax, MIN(price) AS lo, MAX(v) AS hi, window_start
FROM events GROUP BY k WINDOW SLIDING (INTERVAL '10' SECOND, INTERVAL '1' SECOND)`, 2_000_000, 10_000, 10)
}

// BenchmarkSession: session windows with a 20 s gap over 100,000 keys
// (each key sees an event about every 10 s of event time, so sessions
// split when a key is quiet for more than 20 s), five aggregates. Target: 2M rows/s on one core.
func BenchmarkSession(b *testing.B) {
	runWindowBench(b, `CREATE STREAM out AS SELECT k, COUNT(*) AS n, SUM(v) AS sv, AVG(x) AS ax, MIN(price) AS lo, MAX(v) AS hi, window_start, window_end
FROM events GROUP BY k WINDOW SESSION (INTERVAL '20' SECOND)`, 2_000_000, 100_000, 10)
}
