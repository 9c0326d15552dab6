package arrowexec

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// panicOp passes its input through and panics at its third Next (or in
// Close, with inClose).
type panicOp struct {
	Operator
	calls   int
	inClose bool
}

func (p *panicOp) Next(ctx context.Context) (Message, error) {
	if p.calls++; p.calls == 3 && !p.inClose {
		var s []int
		_ = s[p.calls] // an index out of range, like a corrupt buffer
	}
	return p.Operator.Next(ctx)
}

func (p *panicOp) Close() error {
	_ = p.Operator.Close()
	if p.inClose {
		panic("close broke")
	}
	return nil
}

// panicSink panics in its second Write.
type panicSink struct {
	collectSink
	writes int
}

func (p *panicSink) Write(ctx context.Context, m Message) error {
	if p.writes++; p.writes == 2 {
		panic("sink broke")
	}
	return p.collectSink.Write(ctx, m)
}

// panicSource panics after its first batch.
type panicSource struct{ countSource }

func (p *panicSource) Next(ctx context.Context) (Message, error) {
	if p.i > 0 {
		panic(errors.New("decoder broke"))
	}
	return p.countSource.Next(ctx)
}

// runWithin runs topo, failing t when it does not end within 10 s.
func runWithin(t *testing.T, topo *Topology) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- topo.Run(context.Background()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end")
		return nil
	}
}

// TestPanicFailsOnlyItsQuery: a panic in an operator, in a sink or in
// Close fails that query with a PanicError carrying the stack; the other
// query reads everything.
func TestPanicFailsOnlyItsQuery(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  func(in *Inlet) (Operator, Sink)
		want string
	}{
		{"operator", func(in *Inlet) (Operator, Sink) { return &panicOp{Operator: in}, &collectSink{} },
			"panic: runtime error: index out of range [3] with length 0"},
		{"close", func(in *Inlet) (Operator, Sink) { return &panicOp{Operator: in, inClose: true}, &collectSink{} },
			"panic: close broke"},
		{"sink", func(in *Inlet) (Operator, Sink) { return in, &panicSink{} }, "panic: sink broke"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			in1, in2 := NewInlet(testSchema, 1), NewInlet(testSchema, 1)
			root, sink := tc.bad(in1)
			good := &collectSink{}
			topo := &Topology{
				Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 100, size: 2}}},
				Queries: []*QueryNode{
					{Name: "bad", Root: root, Inputs: []Subscription{{"src", in1}}, Sinks: []Sink{sink}},
					{Name: "good", Root: in2, Inputs: []Subscription{{"src", in2}}, Sinks: []Sink{good}},
				},
			}
			err := runWithin(t, topo)
			var pe *PanicError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), `query "bad"`) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a PanicError of query bad: %s", err, tc.want)
			}
			if !strings.Contains(string(pe.Stack), "panic_test.go") || !errors.Is(err, ErrPermanent) {
				t.Fatalf("stack %s", pe.Stack)
			}
			if len(good.values) != 100 {
				t.Fatalf("good query got %d rows", len(good.values))
			}
			if QueryState(topo.Queries[0].Stats.State.Load()) != QueryFailed {
				t.Fatal("bad query not failed")
			}
		})
	}
}

// TestPanicInSourceFailsTheRun: a panicking source is the run's error.
func TestPanicInSourceFailsTheRun(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := NewInlet(testSchema, 1)
	topo := &Topology{
		Sources: []*SourceNode{{Stream: "src", Op: &panicSource{countSource{alloc: mem, n: 100, size: 2}}}},
		Queries: []*QueryNode{{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}, Sinks: []Sink{&collectSink{}}}},
	}
	err := runWithin(t, topo)
	var pe *PanicError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), `source "src"`) || !strings.Contains(err.Error(), "panic: decoder broke") {
		t.Fatalf("got %v", err)
	}
}

// TestFailedQueriesStopTheirSources: once its only query has failed, an
// endless source stops and the run ends with the query's error.
func TestFailedQueriesStopTheirSources(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in1, in2 := NewInlet(testSchema, 1), NewInlet(testSchema, 1)
	src := &countSource{alloc: mem, n: 1 << 62, size: 2}
	topo := &Topology{
		Sources: []*SourceNode{{Stream: "src", Op: src}},
		Queries: []*QueryNode{
			{Name: "a", Root: in1, Inputs: []Subscription{{"src", in1}}, Sinks: []Sink{&collectSink{failAt: 5}}},
			{Name: "b", Root: in2, Inputs: []Subscription{{"src", in2}}, Sinks: []Sink{&collectSink{failAt: 50}}},
		},
	}
	err := runWithin(t, topo)
	for _, want := range []string{`query "a" (operator sink): writing sink: sink broke`, `query "b" (operator sink): writing sink: sink broke`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "source") {
		t.Fatalf("a stopped source is no failure: %v", err)
	}
}
