package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

const tradesDDL = `CREATE STREAM trades (volume BIGINT, x DOUBLE, ticker VARCHAR, price DECIMAL(18,4))
WITH (connector = '%s', path = '%s', format = 'json');
`

// The filter keeps about half the rows; the projection does exact DECIMAL
// and DOUBLE arithmetic.
const filterProjectSQL = `CREATE STREAM out AS SELECT ticker, price * volume AS notional, x * 2 AS x2
FROM trades WHERE volume > 1000 WITH (connector = '%s', path = '%s', format = 'json');`

var tickers = []string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "JPM", "GS", "BAC", "XOM", "CVX"}

// makeBatches builds n batches of size rows of the trades schema.
func makeBatches(alloc memory.Allocator, schema *arrow.Schema, n, size int) []arrow.RecordBatch {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]arrow.RecordBatch, n)
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	for i := range out {
		for j := 0; j < size; j++ {
			b.Field(0).(*array.Int64Builder).Append(r.Int64N(2000))
			b.Field(1).(*array.Float64Builder).Append(r.Float64() * 100)
			b.Field(2).(*array.StringBuilder).Append(tickers[r.IntN(len(tickers))])
			b.Field(3).(*array.Decimal128Builder).Append(decimal128.FromI64(r.Int64N(10_000_000)))
		}
		out[i] = b.NewRecordBatch()
	}
	return out
}

// replaySource emits the same batches rounds times.
type replaySource struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	rounds  int
	i       int
}

func (s *replaySource) Schema() *arrow.Schema      { return s.schema }
func (s *replaySource) Open(context.Context) error { return nil }
func (s *replaySource) Close() error               { return nil }
func (s *replaySource) Next(context.Context) (arrowexec.Message, error) {
	if s.i >= s.rounds*len(s.batches) {
		return arrowexec.Message{}, io.EOF
	}
	b := s.batches[s.i%len(s.batches)]
	s.i++
	b.Retain()
	return arrowexec.Message{Batch: b, Watermark: arrowexec.NoWatermark}, nil
}

// discardSink counts rows.
type discardSink struct{ rows *atomic.Int64 }

func (d discardSink) Open(context.Context) error { return nil }
func (d discardSink) Write(_ context.Context, m arrowexec.Message) error {
	d.rows.Add(m.Rows())
	return nil
}
func (d discardSink) Flush(context.Context) error { return nil }
func (d discardSink) Close() error                { return nil }

// BenchmarkFilterProject runs the planned filter + projection over in-memory
// Arrow batches (BIGINT, DOUBLE, VARCHAR, DECIMAL) through the engine:
// source → inlet → filter → project → sink. Target: 20M rows/s on one core.
func BenchmarkFilterProject(b *testing.B) {
	const batchSize, nBatches = 8192, 16
	p, err := plan.Compile(fmt.Sprintf(tradesDDL, "replay", "")+fmt.Sprintf(filterProjectSQL, "discard", ""), arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	schema := p.Relation("trades").Schema
	mem := memory.NewGoAllocator()
	batches := makeBatches(mem, schema, nBatches, batchSize)
	defer func() {
		for _, bt := range batches {
			bt.Release()
		}
	}()
	var out atomic.Int64
	rounds := 8
	conns := &arrowexec.Connectors{}
	conns.RegisterSource("replay", func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return &replaySource{schema: spec.Schema, batches: batches, rounds: rounds}, nil
	})
	conns.RegisterSink("discard", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discardSink{&out}, nil })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, 0)})
		if err != nil {
			b.Fatal(err)
		}
		if err := topo.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	rows := int64(batchSize * nBatches * rounds)
	b.ReportMetric(float64(rows*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
	if out.Load() == 0 || out.Load() >= rows*int64(b.N) {
		b.Fatalf("filter kept %d of %d rows", out.Load(), rows*int64(b.N))
	}
}

// writeTradesFile writes n JSON lines of about 100 bytes each.
func writeTradesFile(tb testing.TB, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	var line []byte
	for i := 0; i < n; i++ {
		line = line[:0]
		line = append(line, `{"volume":`...)
		line = strconv.AppendInt(line, r.Int64N(2000), 10)
		line = append(line, `,"x":`...)
		line = strconv.AppendFloat(line, float64(r.IntN(100000))/100, 'f', -1, 64)
		line = append(line, `,"ticker":"`...)
		line = append(line, tickers[r.IntN(len(tickers))]...)
		line = append(line, `","price":`...)
		line = strconv.AppendInt(line, 100+r.Int64N(900), 10)
		line = append(line, '.')
		line = strconv.AppendInt(line, 1000+r.Int64N(9000), 10)
		line = append(line, `,"pad":"0123456789abcdef"}`...)
		line = append(line, '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func benchRows() int {
	if v, err := strconv.Atoi(os.Getenv("FERRIS_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

// BenchmarkJSONDecode reads a JSON-lines file of ~100-byte records into
// Arrow batches through the file source. Target: 1M records/s on one core.
func BenchmarkJSONDecode(b *testing.B) {
	n := benchRows()
	dir := b.TempDir()
	path := filepath.Join(dir, "trades.jsonl")
	writeTradesFile(b, path, n)
	p, err := plan.Compile(fmt.Sprintf(tradesDDL, "file", path)+"SELECT * FROM trades;", arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	r := p.Relation("trades")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src, err := sources.NewFile(arrowexec.SourceSpec{Name: "trades", Schema: r.Schema, Options: r.Options, BatchSize: 4096, Alloc: memory.DefaultAllocator})
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		var rows int64
		for {
			m, err := src.Next(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows += m.Rows()
			m.Release()
		}
		src.Close()
		if rows != int64(n) {
			b.Fatalf("decoded %d rows, want %d", rows, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRunJSONToJSON is `ferris run` in process: JSON lines file →
// filter/projection → JSON lines file, reporting input rows per wall second
// and per CPU second (user + system of the whole process). Target: 700,000
// rows per CPU-second on a 10-million-row file (FERRIS_BENCH_ROWS=10000000).
func BenchmarkRunJSONToJSON(b *testing.B) {
	n := benchRows()
	dir := b.TempDir()
	in := filepath.Join(dir, "trades.jsonl")
	writeTradesFile(b, in, n)
	out := filepath.Join(dir, "out.jsonl")
	p, err := plan.Compile(fmt.Sprintf(tradesDDL, "file", in)+fmt.Sprintf(filterProjectSQL, "file", out), arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(nil, 0), BaseDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := topo.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "rows/cpu-s")
}
