package arrowexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// flakySink fails Write with a transient error (writing nothing) while
// down says so, then writes to collectSink. It records the breaker state
// it sees at each call.
type flakySink struct {
	collectSink
	down   func(m Message) bool
	calls  atomic.Int64
	guard  *Guard
	seenMu sync.Mutex
	seen   map[BreakerState]bool
}

func (f *flakySink) Write(ctx context.Context, m Message) error {
	f.calls.Add(1)
	if f.guard != nil {
		f.seenMu.Lock()
		if f.seen == nil {
			f.seen = map[BreakerState]bool{}
		}
		f.seen[f.guard.BreakerState()] = true
		f.seenMu.Unlock()
	}
	if f.down(m) {
		return Transient(errors.New("sink unavailable"))
	}
	return f.collectSink.Write(ctx, m)
}

func (f *flakySink) written() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.values)
}

// checkOnce checks that values are 0..n-1, each exactly once, except skip.
func checkOnce(t *testing.T, values []int64, n int, skip func(int64) bool) {
	t.Helper()
	got := slices.Clone(values)
	slices.Sort(got)
	var want []int64
	for i := range int64(n) {
		if skip == nil || !skip(i) {
			want = append(want, i)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d values (first %v), want %d distinct", len(got), got[:min(len(got), 10)], len(want))
	}
}

// TestGuardedSinkFailsThenRecovers: a sink failing its first writes with
// transient errors gets every row exactly once, the retries counted.
func TestGuardedSinkFailsThenRecovers(t *testing.T) {
	for _, size := range []int{1, 3, 100} {
		t.Run(fmt.Sprint("batch", size), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			var failures atomic.Int64
			sink := &flakySink{down: func(Message) bool { return failures.Add(1) <= 3 }}
			in := NewInlet(testSchema, 2)
			q := &QueryNode{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}}
			g := NewGuard("sink flaky", RetryPolicy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Multiplier: 2},
				DefaultBreakerConfig(), nil)
			g.Bind(&q.Stats.FaultStats)
			q.Sinks = []Sink{GuardSink(sink, g, nil)}
			topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 300, size: size}}}, Queries: []*QueryNode{q}}
			if err := topo.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkOnce(t, sink.values, 300, nil)
			if got := q.Stats.RetriesTotal.Load(); got != 3 {
				t.Fatalf("RetriesTotal %d, want 3", got)
			}
			if q.Stats.Breaker() != BreakerClosed {
				t.Fatalf("breaker %s", q.Stats.Breaker())
			}
		})
	}
}

// TestGuardedSinkPermanentError: a permanent error fails the query at once,
// named after the sink, and other queries go on.
func TestGuardedSinkPermanentError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := NewInlet(testSchema, 2)
	q := &QueryNode{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}, CorrelationID: "abc"}
	g := NewGuard("sink file", DefaultRetryPolicy(), DefaultBreakerConfig(), nil)
	q.Sinks = []Sink{GuardSink(&collectSink{failAt: 5}, g, nil)}
	topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 100, size: 2}}}, Queries: []*QueryNode{q}}
	err := topo.Run(context.Background())
	if err == nil || err.Error() != `query "q" (operator sink file, correlation id abc): writing sink: sink broke` {
		t.Fatalf("got %v", err)
	}
	if g.Retries() != 0 {
		t.Fatalf("%d retries of a permanent error", g.Retries())
	}
}

// commitSource is a countSource whose position (rows emitted) can be
// committed; it records the highest commit.
type commitSource struct {
	countSource
	committed atomic.Int64
}

func (s *commitSource) Mark() any { return int64(s.i) }
func (s *commitSource) Commit(_ context.Context, mark any) error {
	if m := mark.(int64); m > s.committed.Load() {
		s.committed.Store(m)
	}
	return nil
}

// TestBreakerBackpressure: a sink down longer than the breaker's threshold
// opens it; the source pauses (it cannot run ahead of the sink by more than
// what the channels hold) and nothing is committed past what the sink has;
// the breaker goes half-open, closes when the sink is back, and every row
// arrives exactly once.
func TestBreakerBackpressure(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const n, size, depth = 2000, 10, 2
	var down atomic.Bool
	down.Store(true)
	sink := &flakySink{down: func(Message) bool { return down.Load() }}
	src := &commitSource{countSource: countSource{alloc: mem, n: n, size: size}}
	in := NewInlet(testSchema, depth)
	q := &QueryNode{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}}
	g := NewGuard("sink flaky", RetryPolicy{MaxRetries: 1, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond, Multiplier: 1},
		BreakerConfig{FailureThreshold: 2, FailureWindow: time.Minute, OpenTimeout: 20 * time.Millisecond, HalfOpenCalls: 1}, nil)
	g.Bind(&q.Stats.FaultStats)
	sink.guard = g
	q.Sinks = []Sink{GuardSink(sink, g, nil)}
	topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: src}}, Queries: []*QueryNode{q}, CommitInterval: time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- topo.Run(context.Background()) }()

	deadline := time.Now().Add(10 * time.Second)
	for q.Stats.Breaker() != BreakerOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker never opened")
		}
		time.Sleep(time.Millisecond)
	}
	st := topo.SourceStats("src")
	for range 50 { // 100ms of outage
		in, written, committed := st.RowsIn.Load(), int64(sink.written()), src.committed.Load()
		if in-written > (depth+2)*size {
			t.Fatalf("source ran ahead while the sink was down: %d rows read, %d written", in, written)
		}
		if committed > written {
			t.Fatalf("committed %d rows, only %d written", committed, written)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if calls := sink.calls.Load(); calls > 20 {
		t.Fatalf("%d write attempts in 100ms: the breaker does not pace them", calls)
	}
	down.Store(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkOnce(t, sink.values, n, nil)
	if q.Stats.Breaker() != BreakerClosed || q.Stats.RetriesTotal.Load() == 0 {
		t.Fatalf("breaker %s, %d retries", q.Stats.Breaker(), q.Stats.RetriesTotal.Load())
	}
	if !sink.seen[BreakerHalfOpen] {
		t.Fatal("no trial call while half-open")
	}
	if src.committed.Load() != n {
		t.Fatalf("committed %d of %d", src.committed.Load(), n)
	}
}

// TestRetryWithBackoffDeadLettersBatch: with retry_with_backoff a batch
// whose write keeps failing is dead-lettered row by row after its retries;
// the other rows are written.
func TestRetryWithBackoffDeadLettersBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	poison := func(m Message) bool {
		return m.Batch != nil && slices.Contains(m.Batch.Column(0).(*array.Int64).Int64Values(), 50)
	}
	sink := &flakySink{down: poison}
	dlq := &recordingDL{}
	in := NewInlet(testSchema, 2)
	q := &QueryNode{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}}
	h := &DataErrors{Strategy: RetryWithBackoff, Sink: dlq, Query: "q"}
	h.Bind(&q.Stats.FaultStats)
	g := NewGuard("sink flaky", RetryPolicy{MaxRetries: 2, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond, Multiplier: 1},
		DefaultBreakerConfig(), nil)
	g.Bind(&q.Stats.FaultStats)
	q.Sinks = []Sink{GuardSink(sink, g, h)}
	topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: &countSource{alloc: mem, n: 100, size: 10}}}, Queries: []*QueryNode{q}}
	if err := topo.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, sink.values, 100, func(v int64) bool { return v >= 50 && v < 60 })
	if len(dlq.recs) != 10 || q.Stats.DeadLettered.Load() != 10 || q.Stats.RetriesTotal.Load() != 2 {
		t.Fatalf("%d dead letters (%d counted), %d retries", len(dlq.recs), q.Stats.DeadLettered.Load(), q.Stats.RetriesTotal.Load())
	}
	r := dlq.recs[0]
	if r.Raw != `{"v":50}` || r.Query != "q" || r.Source != "sink flaky" || r.Position != "row 1 of 10" ||
		!strings.Contains(r.Reason, "failed after 2 retries: sink unavailable") {
		t.Fatalf("record %+v", r)
	}
}

// flakyDL fails its first n records transiently.
type flakyDL struct {
	recordingDL
	n atomic.Int64
}

func (d *flakyDL) DeadLetter(ctx context.Context, r DeadLetterRecord) error {
	if d.n.Add(-1) >= 0 {
		return Transient(errors.New("dead-letter topic unavailable"))
	}
	return d.recordingDL.DeadLetter(ctx, r)
}

func TestDataErrorsStrategies(t *testing.T) {
	rec := DeadLetterRecord{Source: "trades (t.jsonl)", Position: "line 3", Field: "price", Reason: "expected DECIMAL, found \"x\"", Raw: `{"price":"x"}`}
	ctx := context.Background()

	var logs bytes.Buffer
	h := &DataErrors{Strategy: LogAndContinue, Query: "q", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	for range 12 {
		if err := h.DeadLetter(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if h.Stats().Skipped.Load() != 12 || strings.Count(logs.String(), "bad record skipped") != logFirst ||
		!strings.Contains(logs.String(), "position=\"line 3\"") {
		t.Fatalf("skipped %d, logs:\n%s", h.Stats().Skipped.Load(), logs.String())
	}

	h = &DataErrors{Strategy: FailQuery, Sink: &recordingDL{}, Query: "q"}
	err := h.DeadLetter(ctx, rec)
	if !errors.Is(err, ErrData) || err.Error() != `bad record from trades (t.jsonl) at line 3: field price: expected DECIMAL, found "x" (failure_strategy = fail)` {
		t.Fatalf("got %v", err)
	}

	dl := &flakyDL{}
	dl.n.Store(2)
	var st FaultStats
	h = &DataErrors{Strategy: DeadLetterStrategy, Sink: dl, Query: "q",
		Guard: NewGuard("dead letter", RetryPolicy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}, BreakerConfig{}, nil)}
	h.Bind(&st)
	h.Guard.Bind(&st)
	if err := h.DeadLetter(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if len(dl.recs) != 1 || dl.recs[0].Query != "q" || dl.recs[0].Time.IsZero() || st.DeadLettered.Load() != 1 || st.RetriesTotal.Load() != 2 {
		t.Fatalf("records %+v, dead-lettered %d, retries %d", dl.recs, st.DeadLettered.Load(), st.RetriesTotal.Load())
	}

	// dead_letter without a sink fails like fail, saying why.
	h = &DataErrors{Strategy: DeadLetterStrategy}
	if err := h.DeadLetter(ctx, rec); !errors.Is(err, ErrData) || !strings.HasSuffix(err.Error(), "(no dead-letter sink)") {
		t.Fatalf("got %v", err)
	}
}

// flakySource is a resumable countSource whose Next fails transiently at
// the given calls.
type flakySource struct {
	countSource
	calls     int
	failAt    map[int]bool
	resumable bool
}

func (s *flakySource) Resumable() bool { return s.resumable }
func (s *flakySource) Next(ctx context.Context) (Message, error) {
	s.calls++
	if s.failAt[s.calls] {
		return Message{}, Transient(errors.New("broker unreachable"))
	}
	return s.countSource.Next(ctx)
}

func TestSourceReadRetries(t *testing.T) {
	for _, resumable := range []bool{true, false} {
		t.Run(fmt.Sprint("resumable=", resumable), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			src := &flakySource{countSource: countSource{alloc: mem, n: 100, size: 7}, failAt: map[int]bool{3: true, 4: true, 9: true}, resumable: resumable}
			sink := &collectSink{}
			in := NewInlet(testSchema, 2)
			q := &QueryNode{Name: "q", Root: in, Inputs: []Subscription{{"src", in}}, Sinks: []Sink{sink}}
			fault := &SourceFault{Guard: NewGuard("source flaky", RetryPolicy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}, DefaultBreakerConfig(), nil)}
			topo := &Topology{Sources: []*SourceNode{{Stream: "src", Op: src, Fault: fault}}, Queries: []*QueryNode{q}, CorrelationID: "c0ffee00"}
			err := topo.Run(context.Background())
			if !resumable {
				if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), `source "src" (correlation id c0ffee00): broker unreachable`) {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkOnce(t, sink.values, 100, nil)
			if got := topo.SourceStats("src").RetriesTotal.Load(); got != 3 {
				t.Fatalf("RetriesTotal %d, want 3", got)
			}
		})
	}
}

// TestSourcePausesUnderMemoryPressure: above 90% of a reader's limit the
// source waits for the reader to drain what is queued before reading on.
func TestSourcePausesUnderMemoryPressure(t *testing.T) {
	m := resource.NewManager(nil, 0)
	reader := m.Query("reader")
	reader.SetLimit(1000)
	if err := reader.Reserve(950); err != nil {
		t.Fatal(err)
	}
	in := NewInlet(testSchema, 1)
	if err := in.Push(context.Background(), Message{Watermark: 1}); err != nil {
		t.Fatal(err)
	}
	f := &SourceFault{Readers: []*resource.Allocator{reader}, MemoryWait: 5 * time.Second}
	var st FaultStats
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = in.Next(context.Background()) // the reader drains its queue
	}()
	start := time.Now()
	f.pauseForMemory(context.Background(), m, []*Inlet{in}, &st)
	if d := time.Since(start); d < 40*time.Millisecond || d > 4*time.Second || st.MemoryPauses.Load() != 1 {
		t.Fatalf("paused %v, %d pauses", d, st.MemoryPauses.Load())
	}
	// Below the high-water mark, or with nothing queued, no pause.
	reader.Unreserve(950)
	_ = in.Push(context.Background(), Message{Watermark: 2})
	start = time.Now()
	f.pauseForMemory(context.Background(), m, []*Inlet{in}, &st)
	if d := time.Since(start); d > 100*time.Millisecond || st.MemoryPauses.Load() != 1 {
		t.Fatalf("paused %v without pressure", d)
	}
}
