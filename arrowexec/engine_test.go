package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

var testSchema = arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)

// countSource emits the numbers 0..n-1 in batches of size, then io.EOF.
// With block set it never ends by itself (until ctx is cancelled).
type countSource struct {
	alloc      memory.Allocator
	n, size, i int
	block      bool
}

func (s *countSource) Schema() *arrow.Schema      { return testSchema }
func (s *countSource) Open(context.Context) error { return nil }
func (s *countSource) Close() error               { return nil }
func (s *countSource) Next(ctx context.Context) (Message, error) {
	if s.i >= s.n {
		if s.block {
			<-ctx.Done()
			return Message{}, ctx.Err()
		}
		return Message{}, io.EOF
	}
	b := array.NewInt64Builder(s.alloc)
	defer b.Release()
	for j := 0; j < s.size && s.i < s.n; j++ {
		b.Append(int64(s.i))
		s.i++
	}
	col := b.NewArray()
	defer col.Release()
	return Message{Batch: array.NewRecordBatch(testSchema, []arrow.Array{col}, int64(col.Len())), Watermark: int64(s.i)}, nil
}

// collectSink records the values it is written.
type collectSink struct {
	mu      sync.Mutex
	values  []int64
	last    Watermark
	flushed bool
	closed  int
	failAt  int // fail the write of this row count (0: never)
}

func (c *collectSink) Open(context.Context) error { return nil }
func (c *collectSink) Write(_ context.Context, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = m.Watermark
	if m.Batch == nil {
		return nil
	}
	col := m.Batch.Column(0).(*array.Int64)
	for i := 0; i < col.Len(); i++ {
		c.values = append(c.values, col.Value(i))
		if c.failAt > 0 && len(c.values) >= c.failAt {
			return errors.New("sink broke")
		}
	}
	return nil
}
func (c *collectSink) Flush(context.Context) error { c.flushed = true; return nil }
func (c *collectSink) Close() error                { c.closed++; return nil }

func greaterThan(t *testing.T, n int64) expr.Expr {
	t.Helper()
	e, err := expr.Binary(">", expr.Col(0, "v", arrow.PrimitiveTypes.Int64), expr.Lit(n, arrow.PrimitiveTypes.Int64))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestTopologyFansOutAndChains(t *testing.T) {
	for _, size := range []int{1, 3, 1000} {
		t.Run(fmt.Sprint("batch", size), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src := &countSource{alloc: mem, n: 100, size: size}

			// q1: v > 89 → sink1 and stream "big"; q2 reads "big" → sink2;
			// q3 reads the source directly → sink3.
			in1 := NewInlet(testSchema, 2)
			f1, err := NewFilter(mem, in1, greaterThan(t, 89))
			if err != nil {
				t.Fatal(err)
			}
			in2 := NewInlet(testSchema, 2)
			in3 := NewInlet(testSchema, 2)
			s1, s2, s3 := &collectSink{}, &collectSink{}, &collectSink{}
			topo := &Topology{
				Sources: []*SourceNode{{Stream: "src", Op: src}},
				Queries: []*QueryNode{
					{Name: "q1", Root: f1, Inputs: []Subscription{{"src", in1}}, Sinks: []Sink{s1}, Output: "big"},
					{Name: "q2", Root: NewLimit(in2, 5), Inputs: []Subscription{{"big", in2}}, Sinks: []Sink{s2}},
					{Name: "q3", Root: in3, Inputs: []Subscription{{"src", in3}}, Sinks: []Sink{s3}},
				},
			}
			if err := topo.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(s1.values) != 10 || s1.values[0] != 90 || s1.values[9] != 99 {
				t.Fatalf("q1 got %v", s1.values)
			}
			if fmt.Sprint(s2.values) != "[90 91 92 93 94]" {
				t.Fatalf("q2 got %v", s2.values)
			}
			if len(s3.values) != 100 {
				t.Fatalf("q3 got %d rows", len(s3.values))
			}
			for _, s := range []*collectSink{s1, s2, s3} {
				if !s.flushed || s.closed != 1 || s.last != FinalWatermark {
					t.Fatalf("sink flushed=%v closed=%d last=%s", s.flushed, s.closed, FormatWatermark(s.last))
				}
			}
			if got := topo.Queries[0].Stats.RowsOut.Load(); got != 10 {
				t.Fatalf("q1 rows out %d", got)
			}
			if got := topo.SourceStats("src").RowsIn.Load(); got != 100 {
				t.Fatalf("source rows in %d", got)
			}
		})
	}
}

func TestFailedQueryDoesNotStopOthers(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in1, in2 := NewInlet(testSchema, 1), NewInlet(testSchema, 1)
	bad, good := &collectSink{failAt: 5}, &collectSink{}
	topo := &Topology{
		Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 1000, size: 2}}},
		Queries: []*QueryNode{
			{Name: "bad", Root: in1, Inputs: []Subscription{{"src", in1}}, Sinks: []Sink{bad}},
			{Name: "good", Root: in2, Inputs: []Subscription{{"src", in2}}, Sinks: []Sink{good}},
		},
	}
	err := topo.Run(context.Background())
	if err == nil || !errors.Is(err, err) || err.Error() != `query "bad" (operator sink): writing sink: sink broke` {
		t.Fatalf("got %v", err)
	}
	if len(good.values) != 1000 {
		t.Fatalf("good query got %d rows", len(good.values))
	}
	if QueryState(topo.Queries[0].Stats.State.Load()) != QueryFailed || QueryState(topo.Queries[1].Stats.State.Load()) != QueryFinished {
		t.Fatal("wrong query states")
	}
}

func TestMemoryLimitFailsOnlyThatQuery(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rm := resource.NewManager(mem, 64<<10)
	in1, in2 := NewInlet(testSchema, 1), NewInlet(testSchema, 1)
	// The hungry query's projection allocates far beyond the limit.
	hungry := &hungryOp{Operator: in1, alloc: rm.Query("hungry")}
	good := &collectSink{}
	topo := &Topology{
		Resources: rm,
		Sources:   []*SourceNode{{Stream: "src", Op: &countSource{alloc: rm.Query("source"), n: 100, size: 10}}},
		Queries: []*QueryNode{
			{Name: "hungry", Root: hungry, Inputs: []Subscription{{"src", in1}}},
			{Name: "good", Root: in2, Inputs: []Subscription{{"src", in2}}, Sinks: []Sink{good}},
		},
	}
	err := topo.Run(context.Background())
	if !errors.Is(err, resource.ErrMemoryLimit) {
		t.Fatalf("want ErrMemoryLimit, got %v", err)
	}
	if len(good.values) != 100 {
		t.Fatalf("good query got %d rows", len(good.values))
	}
}

// hungryOp allocates 1 MiB per batch (and releases it).
type hungryOp struct {
	Operator
	alloc memory.Allocator
}

func (h *hungryOp) Next(ctx context.Context) (Message, error) {
	buf := h.alloc.Allocate(1 << 20)
	h.alloc.Free(buf)
	return h.Operator.Next(ctx)
}

func TestStopDrainsAndCancelStops(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := NewInlet(testSchema, 1)
	sink := &collectSink{}
	topo := &Topology{
		Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 10, size: 1, block: true}}},
		Queries: []*QueryNode{{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}, Sinks: []Sink{sink}}},
	}
	done := make(chan error, 1)
	go func() { done <- topo.Run(context.Background()) }()
	deadline := time.Now().Add(5 * time.Second)
	for topo.Queries[0].Stats.RowsOut.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	topo.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drained run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the run")
	}
	if len(sink.values) != 10 || !sink.flushed {
		t.Fatalf("sink got %d rows, flushed=%v", len(sink.values), sink.flushed)
	}

	in2 := NewInlet(testSchema, 1)
	topo2 := &Topology{
		Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 0, block: true}}},
		Queries: []*QueryNode{{Name: "q", Root: in2, Inputs: []Subscription{{"src", in2}}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := topo2.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled run returned %v", err)
	}
}

func TestUnknownInputStream(t *testing.T) {
	in := NewInlet(testSchema, 1)
	topo := &Topology{Queries: []*QueryNode{{Name: "q", Root: in, Inputs: []Subscription{{"nope", in}}}}}
	if err := topo.Run(context.Background()); err == nil {
		t.Fatal("want error")
	}
}

// TestMemoryLimitReleasesEverything: a query failing with the memory-limit
// error, at whichever allocation it happens (while the aggregate builds an
// output batch, column by column, included), releases every buffer it
// holds. The query's limit is swept, in steps of step bytes, until the
// query no longer fails.
func TestMemoryLimitReleasesEverything(t *testing.T) {
	grouped := AggregateConfig{Query: "q", Keys: []expr.Expr{expr.Col(0, "v", arrow.PrimitiveTypes.Int64)},
		Specs: []agg.Spec{{Func: "count_star"}}, Args: []expr.Expr{nil}, TimeCol: -1, WMCol: -1, EmitChanges: true,
		Schema: arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
			{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)}
	windowed := aggTestConfig(t, &WindowSpec{Kind: Tumbling, Size: 10, Advance: 10}, LateDataSpec{Strategy: "drop"}, true, nil)
	rows := genAggRows(rand.New(rand.NewPCG(1, 9)), 400, 8)
	for _, tc := range []struct {
		name   string
		source func(memory.Allocator) Operator
		schema *arrow.Schema
		cfg    AggregateConfig
		step   int64
	}{
		{"grouped", func(mem memory.Allocator) Operator { return &countSource{alloc: mem, n: 3000, size: 1000} }, testSchema, grouped, 1 << 10},
		{"windowed", func(mem memory.Allocator) Operator { return &rowSource{alloc: mem, rows: rows, size: 64} }, aggTestSchema, windowed, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := 0
			for limit := tc.step; ; limit += tc.step {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				rm := resource.NewManager(mem, 0)
				alloc := rm.Query("q")
				alloc.SetLimit(limit)
				in := NewInlet(tc.schema, 1)
				op, err := NewAggregate(alloc, in, tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				topo := &Topology{
					Resources: rm,
					Sources:   []*SourceNode{{Stream: "src", Op: tc.source(mem)}},
					Queries:   []*QueryNode{{Name: "q", Root: op, Inputs: []Subscription{{"src", in}}}},
				}
				err = topo.Run(context.Background())
				if n := mem.CurrentAlloc(); n != 0 {
					t.Fatalf("limit %d (%v): %d bytes still allocated", limit, err, n)
				}
				if err == nil {
					break
				}
				if !errors.Is(err, resource.ErrMemoryLimit) {
					t.Fatalf("limit %d: %v, want the memory-limit error", limit, err)
				}
				failed++
			}
			if failed == 0 {
				t.Fatal("the query never failed: the sweep tests nothing")
			}
		})
	}
}

// TestSourceMemoryLimitIsTheRunError: a source failing with the
// memory-limit error cancels the run; the queries it cancels do not add
// context.Canceled to Run's error, which a caller reads as a clean stop.
func TestSourceMemoryLimitIsTheRunError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rm := resource.NewManager(mem, 0)
	src := rm.Query("src")
	src.SetLimit(1 << 10) // a batch of 1000 values needs 8000 bytes
	in := NewInlet(testSchema, 1)
	topo := &Topology{
		Resources: rm,
		Sources:   []*SourceNode{{Stream: "src", Op: &countSource{alloc: src, n: 3000, size: 1000}}},
		// A query busy until the run is cancelled (e.g. writing to a sink).
		Queries: []*QueryNode{{Name: "q", Root: untilCancelled{in}, Inputs: []Subscription{{"src", in}}}},
	}
	err := topo.Run(context.Background())
	if !errors.Is(err, resource.ErrMemoryLimit) || errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want only the source's memory-limit error", err)
	}
}

// untilCancelled returns ctx.Err() once ctx is cancelled.
type untilCancelled struct{ Operator }

func (u untilCancelled) Next(ctx context.Context) (Message, error) {
	<-ctx.Done()
	return Message{}, ctx.Err()
}
