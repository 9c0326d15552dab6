package bench

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
)

const joinDDL = `CREATE STREAM l (k BIGINT, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '100' MILLISECOND) WITH (connector = 'replay');
CREATE STREAM r (k BIGINT, w BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '100' MILLISECOND) WITH (connector = 'replay');
`

// makeJoinSide builds rows of (k, v, ts) over keys keys, event time
// advancing 1 ms every perMS rows, with up to 50 ms of jitter.
func makeJoinSide(alloc memory.Allocator, schema *arrow.Schema, seed uint64, rows, keys, perMS, batch int) []arrow.RecordBatch {
	r := rand.New(rand.NewPCG(seed, 9))
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	var out []arrow.RecordBatch
	for i := 0; i < rows; i++ {
		b.Field(0).(*array.Int64Builder).Append(r.Int64N(int64(keys)))
		b.Field(1).(*array.Int64Builder).Append(r.Int64N(1000))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000 + int64(i/perMS) - r.Int64N(50)))
		if (i+1)%batch == 0 || i == rows-1 {
			out = append(out, b.NewRecordBatch())
		}
	}
	return out
}

// BenchmarkIntervalJoin: an INNER interval join of two streams of 1M rows
// each over 10,000 keys, right rows within [0, 1s] after the left row's
// time; event time advances 1 ms every 10 rows, so each side holds about
// 10,000 rows (one per key) and each row meets about one row of the
// other side. Runs through the whole engine (sources, watermark
// assigners, inlets, join, projection, sink); rows/s counts input rows of
// both sides.
func BenchmarkIntervalJoin(b *testing.B) {
	const rows, keys, perMS = 1_000_000, 10_000, 10
	p, err := plan.Compile(joinDDL+`CREATE STREAM out AS SELECT l.k, l.v, r.w, l.ts FROM l JOIN r ON l.k = r.k
AND r.ts BETWEEN l.ts AND l.ts + INTERVAL '1' SECOND WITH (connector = 'discard');`, arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	data := map[string][]arrow.RecordBatch{
		"l": makeJoinSide(mem, p.Relation("l").Declared, 1, rows, keys, perMS, 8192),
		"r": makeJoinSide(mem, p.Relation("r").Declared, 2, rows, keys, perMS, 8192),
	}
	defer func() {
		for _, bs := range data {
			for _, bt := range bs {
				bt.Release()
			}
		}
	}()
	var out atomic.Int64
	conns := &arrowexec.Connectors{}
	conns.RegisterSource("replay", func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return &replaySource{schema: spec.Schema, batches: data[spec.Name], rounds: 1}, nil
	})
	conns.RegisterSink("discard", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discardSink{&out}, nil })
	var peak int64
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
		peak = max(peak, rm.Peak())
	}
	b.ReportMetric(float64(2*rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(out.Load())/float64(b.N), "out-rows")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
	if out.Load() == 0 {
		b.Fatal("no output")
	}
}
