package arrowexec

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// committingSource is a countSource that records commits: its mark is the
// number of rows returned so far.
type committingSource struct {
	countSource
	mu        sync.Mutex
	committed int64
	sinks     []*flushTrackingSink
	t         *testing.T
}

func (s *committingSource) Mark() any { return int64(s.i) }

func (s *committingSource) Commit(_ context.Context, mark any) error {
	m := mark.(int64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if m <= s.committed {
		return nil
	}
	// At-least-once: never commit rows a sink has not made durable.
	for _, k := range s.sinks {
		if k.durable() < m {
			s.t.Errorf("commit of %d rows while a sink has flushed only %d", m, k.durable())
		}
	}
	s.committed = m
	return nil
}

func (s *committingSource) get() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

// flushTrackingSink counts rows written and rows flushed; the source's
// values are 0..n-1, so after flushing it has everything below max+1.
type flushTrackingSink struct {
	collectSink
	fmu     sync.Mutex
	flushed int64
}

func (k *flushTrackingSink) Flush(context.Context) error {
	k.mu.Lock()
	n := int64(len(k.values))
	k.mu.Unlock()
	k.fmu.Lock()
	k.flushed = n
	k.fmu.Unlock()
	return nil
}

func (k *flushTrackingSink) durable() int64 {
	k.fmu.Lock()
	defer k.fmu.Unlock()
	return k.flushed
}

// holdingOp stands for a stateful operator: the engine cannot tell when the
// rows it read have left it.
type holdingOp struct{ *Inlet }

func TestCommitsFollowDurableSinks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := &committingSource{countSource: countSource{alloc: mem, n: 100, size: 7}, t: t}
	sink := &flushTrackingSink{}
	src.sinks = []*flushTrackingSink{sink}
	in := NewInlet(testSchema, 2)
	topo := &Topology{
		Sources:        []*SourceNode{{Stream: "src", Op: src}},
		Queries:        []*QueryNode{{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}, Sinks: []Sink{sink}}},
		CommitInterval: time.Nanosecond,
	}
	if err := topo.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := src.get(); got != 100 {
		t.Fatalf("committed %d rows, want all 100", got)
	}
}

func TestStatefulReadersCommitOnlyAfterTheFinalWatermark(t *testing.T) {
	for _, bounded := range []bool{true, false} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		src := &committingSource{countSource: countSource{alloc: mem, n: 50, size: 10, block: !bounded}, t: t}
		passSink, holdSink := &flushTrackingSink{}, &flushTrackingSink{}
		src.sinks = []*flushTrackingSink{passSink, holdSink}
		in1, in2 := NewInlet(testSchema, 8), NewInlet(testSchema, 8)
		topo := &Topology{
			Sources: []*SourceNode{{Stream: "src", Op: src}},
			Queries: []*QueryNode{
				{Name: "pass", Root: in1, Inputs: []Subscription{{"src", in1}}, Sinks: []Sink{passSink}},
				{Name: "hold", Root: holdingOp{in2}, Inputs: []Subscription{{"src", in2}}, Sinks: []Sink{holdSink}},
			},
			CommitInterval: time.Nanosecond,
		}
		done := make(chan error, 1)
		go func() { done <- topo.Run(context.Background()) }()
		if !bounded {
			// Wait until the pass-through query has consumed everything.
			for n := 0; n < 50; {
				time.Sleep(time.Millisecond)
				passSink.mu.Lock()
				n = len(passSink.values)
				passSink.mu.Unlock()
			}
			topo.Stop()
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := int64(50)
		if !bounded {
			want = 0 // drained without a final watermark: the holding query vouches for nothing
		}
		if got := src.get(); got != want {
			t.Errorf("bounded=%v: committed %d, want %d", bounded, got, want)
		}
		mem.AssertSize(t, 0)
	}
}
