package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
	"github.com/ferrisstreams/ferris/sources/nexmark"
)

// nexmarkQueries are the runnable Nexmark queries of nexmark/queries.
var nexmarkQueries = []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q10", "q11", "q12",
	"q14", "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22"}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkNexmark runs each Nexmark query over FERRIS_NEXMARK_EVENTS
// events (default 1,000,000; generation included) through the whole
// engine, output discarded (q10 writes its file), and reports events/s and
// events per CPU-second. `ferris bench nexmark` is the full runner (peak
// RSS, latency); this is its CI-sized equivalent.
func BenchmarkNexmark(b *testing.B) {
	events := envInt("FERRIS_NEXMARK_EVENTS", 1_000_000)
	for _, q := range nexmarkQueries {
		b.Run(q, func(b *testing.B) {
			src, err := os.ReadFile(filepath.Join("nexmark", "queries", q+".sql"))
			if err != nil {
				b.Fatal(err)
			}
			runPipelineBench(b, string(src), events, func(r *plan.Relation) {
				if r.Options["connector"] == "nexmark" {
					r.Options["events"] = strconv.FormatInt(events, 10)
				}
			})
		})
	}
}

// BenchmarkWorkloads runs the reference workloads (workloads/*.sql) over
// FERRIS_WORKLOAD_ROWS generated rows per input (default 1,000,000) and
// reports input records/s (both inputs for the join).
func BenchmarkWorkloads(b *testing.B) {
	rows := envInt("FERRIS_WORKLOAD_ROWS", 1_000_000)
	for _, w := range []string{"simple_select", "window_aggregation", "join", "pipeline"} {
		b.Run(w, func(b *testing.B) {
			src, err := os.ReadFile(filepath.Join("workloads", w+".sql"))
			if err != nil {
				b.Fatal(err)
			}
			inputs := int64(1)
			if w == "join" {
				inputs = 2
			}
			runPipelineBench(b, string(src), rows*inputs, func(r *plan.Relation) {
				if r.Options["connector"] == "generator" {
					r.Options["rows"] = strconv.FormatInt(rows, 10)
				}
			})
		})
	}
}

// runPipelineBench compiles src, lets set adjust each source, and runs it
// b.N times with stdout discarded, reporting events (what events counts)
// per second and per CPU-second.
func runPipelineBench(b *testing.B, src string, events int64, set func(*plan.Relation)) {
	p, err := plan.Compile(src, arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range p.Relations {
		if r.Kind != plan.DerivedStream {
			set(r)
		}
	}
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	nexmark.Register(conns)
	sinks.Register(conns)
	var out atomic.Int64
	discarded := discardSink{&out}
	conns.RegisterSink("stdout", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discarded, nil })
	dir := b.TempDir()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(memory.NewGoAllocator(), 0), BaseDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if err := topo.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(events*int64(b.N))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events*int64(b.N))/cpu.Seconds(), "events/cpu-s")
}
