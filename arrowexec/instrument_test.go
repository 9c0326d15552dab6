package arrowexec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// instrumentedFilter builds q: Filter(v > 89) over an instrumented Inlet,
// both wrapped as the plan's builder does.
func instrumentedFilter(t *testing.T, mem memory.Allocator, q *QueryNode, stream string) {
	t.Helper()
	in := NewInlet(testSchema, 2)
	q.Inputs = append(q.Inputs, Subscription{stream, in})
	mark := len(q.Operators)
	wIn := q.Instrument(in, "Inlet", stream, mark)
	f, err := NewFilter(mem, wIn, greaterThan(t, 89))
	if err != nil {
		t.Fatal(err)
	}
	q.Root = q.Instrument(f, "Filter", "", mark)
}

func TestInstrumentationCountsAndProfiles(t *testing.T) {
	for _, size := range []int{1, 3, 1000} {
		t.Run(fmt.Sprint("batch", size), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			q := &QueryNode{Name: "q1", Sinks: []Sink{&collectSink{}}}
			instrumentedFilter(t, mem, q, "src")
			if !passesRowsThrough(q.Root) {
				t.Fatal("an instrumented filter over an inlet must still pass rows through (commits)")
			}
			topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 100, size: size}}}, Queries: []*QueryNode{q}}

			// Readers (metrics scrapes, profiles) run concurrently with the
			// topology: -race checks the counters.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					p := topo.Profile()
					_ = p.WriteText(&strings.Builder{})
					for _, o := range q.Operators {
						_ = o.RowsOut.Load() + o.Late() + o.StateBytes.Load()
					}
					q.Stats.SinkLatency.Snapshot()
					time.Sleep(100 * time.Microsecond)
				}
			}()
			err := topo.Run(context.Background())
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}

			if len(q.Operators) != 2 {
				t.Fatalf("%d operators", len(q.Operators))
			}
			inlet, filter := q.Operators[0], q.Operators[1]
			if inlet.Parent != filter.ID || filter.Parent != -1 || !inlet.Input || filter.Input {
				t.Fatalf("tree: inlet %+v filter %+v", inlet, filter)
			}
			batches := int64((100 + size - 1) / size)
			if inlet.RowsOut.Load() != 100 || inlet.BatchesOut.Load() != batches {
				t.Fatalf("inlet %d rows %d batches, want 100, %d", inlet.RowsOut.Load(), inlet.BatchesOut.Load(), batches)
			}
			if filter.RowsOut.Load() != 10 || filter.Watermark.Load() != FinalWatermark {
				t.Fatalf("filter %d rows, watermark %s", filter.RowsOut.Load(), FormatWatermark(filter.Watermark.Load()))
			}
			if filter.Label() != "q1/1:Filter" {
				t.Fatalf("label %q", filter.Label())
			}
			if n, _, _ := q.Stats.SinkLatency.Snapshot(); n != uint64(q.Stats.Batches.Load()) {
				t.Fatalf("sink latency counted %d batches, query wrote %d", n, q.Stats.Batches.Load())
			}
			if n, _, _ := q.Stats.BatchLatency.Snapshot(); n == 0 {
				t.Fatal("no batch latency observed")
			}

			p := topo.Profile()
			if len(p.Queries) != 1 || len(p.Queries[0].Operators) != 2 || len(p.Sources) != 1 {
				t.Fatalf("profile %+v", p)
			}
			root, leaf := p.Queries[0].Operators[0], p.Queries[0].Operators[1]
			if root.Name != "Filter" || root.Depth != 0 || root.RowsIn != 100 || root.RowsOut != 10 ||
				leaf.Name != "Inlet" || leaf.Depth != 1 || !leaf.Input || leaf.RowsOut != 100 {
				t.Fatalf("operators %+v", p.Queries[0].Operators)
			}
			if p.Sources[0].Rows != 100 || p.Sources[0].Batches != batches || p.Sources[0].TotalRows != -1 {
				t.Fatalf("source %+v", p.Sources[0])
			}
			var share float64
			for _, o := range p.Queries[0].Operators {
				if o.SelfSeconds < 0 || o.Share < 0 || o.Share > 1 {
					t.Fatalf("operator time %+v", o)
				}
				share += o.Share
			}
			if share > 1.0001 {
				t.Fatalf("operator shares add up to %f", share)
			}
			if p.Bound == "" || !strings.HasPrefix(p.Verdict, "bottleneck: ") {
				t.Fatalf("bound %q verdict %q", p.Bound, p.Verdict)
			}
			var text strings.Builder
			if err := p.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"query q1: 10 rows out", "Filter", "Inlet src (waiting for input)", "sinks", "bottleneck: "} {
				if !strings.Contains(text.String(), want) {
					t.Fatalf("report lacks %q:\n%s", want, text.String())
				}
			}
		})
	}
}

func TestInstrumentationCopiesLateCounters(t *testing.T) {
	for _, strategy := range []string{"drop", "include_in_next_window", "dead_letter"} {
		t.Run(strategy, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rows := genAggRows(rand.New(rand.NewPCG(7, 7)), 400, 10)
			q := &QueryNode{Name: "q"}
			src := q.Instrument(&rowSource{alloc: mem, rows: rows, size: 7}, "Rows", "", 0)
			win := &WindowSpec{Kind: Tumbling, Size: 10, Advance: 10}
			op, err := NewAggregate(mem, src, aggTestConfig(t, win, LateDataSpec{Strategy: strategy}, false, &memDeadLetter{}))
			if err != nil {
				t.Fatal(err)
			}
			w := q.Instrument(op, "WindowAggregate", win.String(), 0)
			if err := w.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			drainAgg(t, w)
			st := q.Operators[1]
			got := AggregateStats{st.LateDropped.Load(), st.LateDeadLettered.Load(), st.LateRedirected.Load(), st.LateUpdated.Load()}
			if got != op.Stats() || !st.CountsLate {
				t.Fatalf("copied %+v, operator has %+v", got, op.Stats())
			}
			if st.Late() == 0 {
				t.Fatal("the generated rows should include late ones")
			}
			if q.Operators[0].Parent != st.ID {
				t.Fatalf("source parent %d", q.Operators[0].Parent)
			}
		})
	}
}

// memDeadLetter counts dead-lettered records.
type memDeadLetter struct{ n atomic.Int64 }

func (d *memDeadLetter) DeadLetter(context.Context, DeadLetterRecord) error {
	d.n.Add(1)
	return nil
}

// fakeTracer records spans; every span is sampled.
type fakeTracer struct {
	mu    sync.Mutex
	spans []fakeSpan
	next  int
}

type fakeSpan struct {
	name   string
	id     int
	parent int
	attrs  []Attr
	err    error
	ended  bool
}

type spanKey struct{}

func (f *fakeTracer) StartSpan(ctx context.Context, name string, attrs []Attr, _ ...string) (context.Context, func(error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	id := f.next
	parent, _ := ctx.Value(spanKey{}).(int)
	f.spans = append(f.spans, fakeSpan{name: name, id: id, parent: parent, attrs: attrs})
	return context.WithValue(ctx, spanKey{}, id), func(err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		s := &f.spans[id-1]
		if s.ended {
			panic("span ended twice")
		}
		s.ended, s.err = true, err
	}
}

func (f *fakeTracer) Recording(ctx context.Context) bool { return ctx.Value(spanKey{}) != nil }

func (f *fakeTracer) Traceparent(ctx context.Context) string {
	if id, ok := ctx.Value(spanKey{}).(int); ok {
		return fmt.Sprintf("00-%032x-%016x-01", 1, id)
	}
	return ""
}

// traceSink records the traceparent of each write's context.
type traceSink struct {
	collectSink
	tr     Tracer
	parent []string
}

func (s *traceSink) Write(ctx context.Context, m Message) error {
	if m.Batch != nil {
		s.parent = append(s.parent, s.tr.Traceparent(ctx))
	}
	return s.collectSink.Write(ctx, m)
}

func TestBatchSpansNestOperatorsAndReachSinks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tr := &fakeTracer{}
	sink := &traceSink{tr: tr}
	q := &QueryNode{Name: "q1", Sinks: []Sink{sink}, Line: 3, Column: 1}
	instrumentedFilter(t, mem, q, "src")
	topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 100, size: 10}}},
		Queries: []*QueryNode{q}, Tracer: tr, TraceAttrs: []Attr{{"ferris.pipeline", "p"}}}
	if err := topo.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	byName := map[string][]fakeSpan{}
	byID := map[int]fakeSpan{}
	for _, s := range tr.spans {
		if !s.ended {
			t.Fatalf("span %s not ended", s.name)
		}
		byName[s.name] = append(byName[s.name], s)
		byID[s.id] = s
	}
	batches := byName["ferris.query.batch"]
	if len(batches) < 10 {
		t.Fatalf("%d batch spans", len(batches))
	}
	attrs := fmt.Sprint(batches[0].attrs)
	for _, want := range []string{"ferris.pipeline p", "ferris.query q1", "ferris.sql.line 3"} {
		if !strings.Contains(attrs, want) {
			t.Fatalf("batch span attributes %s lack %q", attrs, want)
		}
	}
	for _, s := range byName["ferris.operator Filter"] {
		if byID[s.parent].name != "ferris.query.batch" {
			t.Fatalf("filter span's parent is %q", byID[s.parent].name)
		}
	}
	for _, s := range byName["ferris.operator Inlet"] {
		if byID[s.parent].name != "ferris.operator Filter" {
			t.Fatalf("inlet span's parent is %q", byID[s.parent].name)
		}
	}
	if len(byName["ferris.operator Inlet"]) == 0 || len(byName["ferris.sink.write"]) == 0 {
		t.Fatalf("spans: %v", byName)
	}
	if len(sink.parent) == 0 {
		t.Fatal("sink saw no batch")
	}
	for _, p := range sink.parent {
		if p == "" {
			t.Fatal("a sink write's context carries no span")
		}
	}
}

func TestLatencyHistogram(t *testing.T) {
	var h LatencyHistogram
	for _, d := range []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		h.Observe(d)
	}
	n, sum, cum := h.Snapshot()
	if n != 4 || sum < 60 || sum > 60.01 {
		t.Fatalf("count %d sum %f", n, sum)
	}
	if cum[0.0001] != 2 || cum[0.0025] != 2 || cum[0.005] != 3 || cum[10] != 3 {
		t.Fatalf("cumulative %v", cum)
	}
}
