package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/server"
)

// discardExporter drops spans: the benchmark measures making them, not
// shipping them.
type discardExporter struct{ spans atomic.Int64 }

func (d *discardExporter) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	d.spans.Add(int64(len(s)))
	return nil
}
func (d *discardExporter) Shutdown(context.Context) error { return nil }

// observedView is one topology as the metrics collector sees it.
type observedView struct {
	topo *arrowexec.Topology
	mgr  *resource.Manager
}

func (v *observedView) MetricsPipelines() []server.PipelineView {
	if v.topo == nil {
		return nil
	}
	return []server.PipelineView{{Name: "bench", Topology: v.topo, State: "running", Started: time.Now()}}
}
func (v *observedView) MemoryManager() *resource.Manager { return v.mgr }

// BenchmarkObservability measures the cost of observability on the
// filter/projection and tumbling-window pipelines: "off" builds without
// instrumentation or tracing; "on" instruments every operator, traces with
// the default sampler (1% of batches, spans exported to a discarding
// exporter) and scrapes /metrics every 100 ms meanwhile. Compare the rows/s
// of the two in one run (the target: under 5%):
//
//	go test -run '^$' -bench Observability -count 5 ./bench/
func BenchmarkObservability(b *testing.B) {
	cases := []struct {
		name, sql string
		batches   func(mem memory.Allocator, p *plan.Pipeline) ([]arrow.RecordBatch, int, int)
	}{
		{"filter_project", fmt.Sprintf(tradesDDL, "replay", "") + fmt.Sprintf(filterProjectSQL, "discard", ""),
			func(mem memory.Allocator, p *plan.Pipeline) ([]arrow.RecordBatch, int, int) {
				return makeBatches(mem, p.Relation("trades").Schema, 16, 8192), 8, 16 * 8192 * 8
			}},
		{"tumbling", eventsDDL + `CREATE STREAM out AS SELECT k, COUNT(*) AS n, SUM(v) AS sv, AVG(x) AS ax, MIN(price) AS lo, MAX(v) AS hi, window_start
FROM events GROUP BY k WINDOW TUMBLING (INTERVAL '10' SECOND) WITH (connector = 'discard');`,
			func(mem memory.Allocator, p *plan.Pipeline) ([]arrow.RecordBatch, int, int) {
				return makeEvents(mem, p.Relation("events").Declared, 1_000_000, 10_000, 10, 8192), 1, 1_000_000
			}},
	}
	for _, c := range cases {
		for _, on := range []bool{false, true} {
			name := c.name + "/off"
			if on {
				name = c.name + "/on"
			}
			b.Run(name, func(b *testing.B) { runObserved(b, c.sql, c.batches, on) })
		}
	}
}

func runObserved(b *testing.B, sql string, mk func(memory.Allocator, *plan.Pipeline) ([]arrow.RecordBatch, int, int), on bool) {
	p, err := plan.Compile(sql, arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	batches, rounds, rows := mk(mem, p)
	defer func() {
		for _, bt := range batches {
			bt.Release()
		}
	}()
	var out atomic.Int64
	conns := &arrowexec.Connectors{}
	conns.RegisterSource("replay", func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return &replaySource{schema: spec.Schema, batches: batches, rounds: rounds}, nil
	})
	conns.RegisterSink("discard", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discardSink{&out}, nil })
	var tel *server.Telemetry
	exp := &discardExporter{}
	if on {
		if tel, err = server.NewTelemetry(context.Background(), server.TracingConfig{SpanExporter: exp}); err != nil {
			b.Fatal(err)
		}
		defer tel.Shutdown(context.Background())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rm := resource.NewManager(mem, 0)
		topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: rm, Instrument: on, Tracer: tel.Tracer()})
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		scraped := make(chan struct{})
		if on {
			h := server.MetricsHandler(&observedView{topo: topo, mgr: rm}, server.ServiceCounters{}, "")
			go func() {
				defer close(scraped)
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
					}
				}
			}()
		} else {
			close(scraped)
		}
		if err := topo.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		close(stop)
		<-scraped
	}
	b.ReportMetric(float64(int64(rows)*int64(b.N))/b.Elapsed().Seconds(), "rows/s")
	if out.Load() == 0 {
		b.Fatal("no output")
	}
}
