package arrowexec

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// This file is the engine's side of observability: an instrumentation
// decorator that counts what each operator produces and how long it takes
// (as Thanos' promql-engine times its operators), and the small hook
// interfaces through which connectors and the server take part. arrowexec
// imports no metrics or tracing library: the server reads these counters at
// scrape time and implements Tracer over OpenTelemetry.

// OperatorStats are the live counters of one operator of a query, kept by
// its instrumentation wrapper (see QueryNode.Instrument). The atomics are
// written by the goroutine driving the operator and safe to read
// concurrently; the other fields are set when the query is built and never
// change.
type OperatorStats struct {
	ID     int    // index in QueryNode.Operators (inputs come before their consumer)
	Parent int    // ID of the operator consuming this one's output; -1 for the root
	Query  string // QueryNode.Name
	Name   string // kind: Filter, Project, WindowAggregate, Inlet, ...
	Detail string // what it works on (a stream name, a window), for reports
	// Input marks an operator reading a stream (an Inlet): its time is time
	// the query spent waiting for input.
	Input bool

	RowsOut    atomic.Int64
	BatchesOut atomic.Int64
	// Nanos is the wall time spent in Next, its inputs' time included;
	// SelfNanos excludes the time its inputs spent in their Next during
	// its calls (inputs read on other goroutines, as a join's are, may
	// make it an underestimate; it never goes below zero or backwards).
	Nanos     atomic.Int64
	SelfNanos atomic.Int64
	Watermark atomic.Int64 // of the last message returned; NoWatermark before
	// StateBytes is the memory the operator has reserved for its state
	// (windows, groups, held rows), as of its last Next.
	StateBytes atomic.Int64
	// StatePeakBytes is the largest StateBytes seen.
	StatePeakBytes atomic.Int64
	// Late rows, as of the operator's last Next (operators implementing
	// LateCounter), by what was done with them.
	LateDropped, LateDeadLettered, LateRedirected, LateUpdated atomic.Int64
	CountsLate                                                 bool // the operator implements LateCounter

	childNanos atomic.Int64 // time its inputs spent in Next, added by them
}

// Label names the operator in metrics and reports: "query/ID:Name". It is
// stable for a given plan and has low cardinality.
func (s *OperatorStats) Label() string {
	return s.Query + "/" + strconv.Itoa(s.ID) + ":" + s.Name
}

// Late is the number of late rows the operator handled, all strategies.
func (s *OperatorStats) Late() int64 {
	return s.LateDropped.Load() + s.LateDeadLettered.Load() + s.LateRedirected.Load() + s.LateUpdated.Load()
}

// LateCounter is implemented by operators that handle late rows
// (AggregateOp, SessionOp, OverOp). Stats is called only by the goroutine
// driving the operator, between calls to Next: the instrumentation wrapper
// copies the counters into OperatorStats atomics after every Next, so
// readers (metrics scrapes) never race with the operator.
type LateCounter interface {
	Stats() AggregateStats
}

// StateSizer is implemented by operators that reserve memory for their
// state; ReservedBytes is called by the goroutine driving the operator.
type StateSizer interface {
	ReservedBytes() int64
}

// ReservedBytes implements StateSizer.
func (a *AggregateOp) ReservedBytes() int64 { return a.reserve }

// ReservedBytes implements StateSizer.
func (s *SessionOp) ReservedBytes() int64 { return s.reserve }

// ReservedBytes implements StateSizer.
func (o *OverOp) ReservedBytes() int64 { return o.reserve }

// ReservedBytes implements StateSizer.
func (j *JoinOp) ReservedBytes() int64 { return j.resv }

// Attr is a span attribute: Value is a string, bool, int, int64 or float64.
type Attr struct {
	Key   string
	Value any
}

// Tracer is the tracing hook of the engine, implemented by the server over
// OpenTelemetry; a nil Tracer means no tracing and costs nothing. All
// methods are safe for concurrent use.
type Tracer interface {
	// StartSpan starts a span named name, a child of the span ctx carries
	// (if any), with attrs, and linked to the spans named by links (W3C
	// traceparent header values; malformed ones are ignored). It returns a
	// context carrying the new span and the function that ends it,
	// recording err on the span when it is not nil. end must be called
	// exactly once.
	StartSpan(ctx context.Context, name string, attrs []Attr, links ...string) (_ context.Context, end func(err error))
	// Recording reports whether ctx carries a span that is sampled: the
	// per-operator spans of a batch are started only then.
	Recording(ctx context.Context) bool
	// Traceparent returns the W3C traceparent header value of the span ctx
	// carries, or "" when it carries none.
	Traceparent(ctx context.Context) string
}

// LagReporter is implemented by sources that know how far they are behind
// the end of their input: a Kafka source reports its consumer lag in
// records per assigned partition. Lag is safe for concurrent use with Next.
type LagReporter interface {
	Lag() map[int32]int64
}

// OffsetResetReporter is implemented by sources that may lose their
// position when the brokers lose data (a Kafka source then follows its
// start_offset): OffsetResets counts those resets. It is safe for
// concurrent use.
type OffsetResetReporter interface {
	OffsetResets() int64
}

// RowTotaler is implemented by bounded sources that know how many rows
// they will produce (a generator with rows = N); progress reports use it.
// TotalRows returns -1 when the total is unknown. It is safe for
// concurrent use.
type RowTotaler interface {
	TotalRows() int64
}

// BreakerState is the state of a circuit breaker guarding a connector.
type BreakerState int32

const (
	BreakerClosed   BreakerState = iota // calls go through
	BreakerHalfOpen                     // a trial call is allowed
	BreakerOpen                         // calls fail fast
)

func (s BreakerState) String() string {
	switch s {
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	}
	return "closed"
}

// BreakerReporter is implemented by sources and sinks guarded by a circuit
// breaker with retries. Metrics read it at scrape time, so both methods are
// safe for concurrent use. No connector implements it yet (fault tolerance
// is a later issue): until then metrics report every breaker closed with
// no retries.
type BreakerReporter interface {
	BreakerState() BreakerState
	Retries() int64
}

// SourceAs finds an implementation of T in a source operator or, through
// a WatermarkAssigner, the connector under it.
func SourceAs[T any](op Operator) (T, bool) {
	for op != nil {
		if v, ok := op.(T); ok {
			return v, true
		}
		w, ok := op.(*WatermarkAssigner)
		if !ok {
			break
		}
		op = w.input
	}
	var zero T
	return zero, false
}

// Instrument wraps op, just built for q, so that its counters appear in
// q.Operators, and returns the wrapper. mark is len(q.Operators) when the
// builder started on op: every operator registered since then that has no
// consumer yet is one of op's inputs. A ProjectOp straight over an Inlet (a
// scan selecting columns) gets its Inlet instrumented too, so time waiting
// for input is told apart from work. name and detail describe op in
// reports. Build-time only; not safe for concurrent use.
//
// The wrapper costs two clock readings and a few atomic adds per batch,
// nothing per row, and starts spans only when the topology has a Tracer
// and the batch is sampled.
func (q *QueryNode) Instrument(op Operator, name, detail string, mark int) Operator {
	if p, ok := op.(*ProjectOp); ok {
		if in, ok := p.input.(*Inlet); ok {
			p.input = q.Instrument(in, "Inlet", detail, len(q.Operators))
		}
	}
	st := &OperatorStats{ID: len(q.Operators), Parent: -1, Query: q.Name, Name: name, Detail: detail}
	st.Watermark.Store(NoWatermark)
	for _, c := range q.Operators[mark:] {
		if c.Parent < 0 {
			c.Parent = st.ID
		}
	}
	q.Operators = append(q.Operators, st)
	w := &Instrumented{in: op, st: st, q: q, span: "ferris.operator " + name}
	if _, ok := op.(*Inlet); ok {
		st.Input = true
		w.wait = &q.Stats.inputWait
	}
	if lc, ok := op.(LateCounter); ok {
		w.late, st.CountsLate = lc, true
	}
	w.state, _ = op.(StateSizer)
	w.attrs = []Attr{{"ferris.query", q.Name}, {"ferris.operator", st.Label()}}
	return w
}

// Instrumented is the instrumentation decorator of an operator (see
// QueryNode.Instrument). It is itself an Operator with the same contract.
type Instrumented struct {
	in     Operator
	st     *OperatorStats
	q      *QueryNode
	late   LateCounter
	state  StateSizer
	wait   *atomic.Int64 // the query's input-wait clock, for Inlets
	parent *atomic.Int64 // the consumer's childNanos, set at Open
	tracer Tracer        // the topology's, taken at Open
	span   string
	attrs  []Attr
}

var _ Operator = (*Instrumented)(nil)

// Unwrap returns the instrumented operator.
func (w *Instrumented) Unwrap() Operator { return w.in }

// OperatorStats returns the operator's counters.
func (w *Instrumented) OperatorStats() *OperatorStats { return w.st }

// Schema implements Operator.
func (w *Instrumented) Schema() *arrow.Schema { return w.in.Schema() }

// Open implements Operator.
func (w *Instrumented) Open(ctx context.Context) error {
	w.tracer = w.q.tracer
	if p := w.st.Parent; p >= 0 && p < len(w.q.Operators) {
		w.parent = &w.q.Operators[p].childNanos
	}
	return w.in.Open(ctx)
}

// Next implements Operator: it counts the message and the time spent.
func (w *Instrumented) Next(ctx context.Context) (Message, error) {
	var end func(error)
	if w.tracer != nil && w.tracer.Recording(ctx) {
		ctx, end = w.tracer.StartSpan(ctx, w.span, w.attrs)
	}
	st := w.st
	c0 := st.childNanos.Load()
	start := time.Now()
	msg, err := w.in.Next(ctx)
	d := int64(time.Since(start))
	st.Nanos.Add(d)
	st.SelfNanos.Add(max(d-(st.childNanos.Load()-c0), 0))
	if w.parent != nil {
		w.parent.Add(d)
	}
	if w.wait != nil {
		w.wait.Add(d)
	}
	if err == nil {
		if msg.Batch != nil {
			st.RowsOut.Add(msg.Batch.NumRows())
			st.BatchesOut.Add(1)
		}
		st.Watermark.Store(msg.Watermark)
	}
	w.snapshot()
	if end != nil {
		if errors.Is(err, io.EOF) {
			end(nil)
		} else {
			end(err)
		}
	}
	return msg, err
}

// snapshot copies the operator's own counters into its stats.
func (w *Instrumented) snapshot() {
	if w.late != nil {
		s := w.late.Stats()
		st := w.st
		st.LateDropped.Store(s.LateDropped)
		st.LateDeadLettered.Store(s.LateDeadLettered)
		st.LateRedirected.Store(s.LateRedirected)
		st.LateUpdated.Store(s.LateUpdated)
	}
	if w.state != nil {
		b := w.state.ReservedBytes()
		w.st.StateBytes.Store(b)
		if b > w.st.StatePeakBytes.Load() {
			w.st.StatePeakBytes.Store(b)
		}
	}
}

// Close implements Operator.
func (w *Instrumented) Close() error {
	err := w.in.Close()
	w.snapshot()
	return err
}

// LatencyBuckets are the upper bounds, in seconds, of LatencyHistogram's
// buckets (100µs to 10s, roughly ×2.5 apart).
var LatencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

var latencyBounds = func() (b [len(LatencyBuckets)]time.Duration) {
	for i, s := range LatencyBuckets {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

// LatencyHistogram counts durations in LatencyBuckets. The zero value is
// ready; Observe and Snapshot are safe for concurrent use and cost a few
// comparisons and two atomic adds.
type LatencyHistogram struct {
	counts [len(LatencyBuckets) + 1]atomic.Uint64 // the last: above every bound
	sum    atomic.Int64                           // nanoseconds
}

// Observe counts d.
func (h *LatencyHistogram) Observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot returns how many durations were observed, their sum in seconds,
// and the cumulative count at or below each of LatencyBuckets.
func (h *LatencyHistogram) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(LatencyBuckets))
	for i, b := range LatencyBuckets {
		count += h.counts[i].Load()
		cumulative[b] = count
	}
	count += h.counts[len(LatencyBuckets)].Load()
	return count, time.Duration(h.sum.Load()).Seconds(), cumulative
}

// observeBatch accounts one output batch: read at t0, returned by the root
// at t1, written to the sinks at t2; wait is the time the query's inlets
// waited for input meanwhile.
func (s *QueryStats) observeBatch(sinks, instrumented bool, t0, t1, t2 time.Time, wait int64) {
	sink := t2.Sub(t1)
	if sinks {
		s.SinkNanos.Add(int64(sink))
		s.SinkLatency.Observe(sink)
	}
	if instrumented {
		// Inputs read on other goroutines (joins) may wait longer than
		// the root did.
		proc := max(t1.Sub(t0)-time.Duration(wait), 0)
		s.BatchLatency.Observe(proc + sink)
	}
}

// batchTracing starts a span per message a query pulls from its root (the
// operators' spans nest under it when it is sampled) and one per sink
// write. Without a Tracer it does nothing.
type batchTracing struct {
	tr        Tracer
	attrs     []Attr
	sinkAttrs []Attr
	endFn     func(error)
}

func (t *Topology) batchTracing(q *QueryNode) *batchTracing {
	b := &batchTracing{tr: t.Tracer}
	if b.tr == nil {
		return b
	}
	b.attrs = append(append(b.attrs, t.TraceAttrs...), Attr{"ferris.query", q.Name})
	if q.Line > 0 {
		b.attrs = append(b.attrs, Attr{"ferris.sql.line", q.Line}, Attr{"ferris.sql.column", q.Column})
	}
	b.sinkAttrs = append(append([]Attr(nil), t.TraceAttrs...), Attr{"ferris.query", q.Name})
	return b
}

// start ends the previous batch's span and starts the next one.
func (b *batchTracing) start(ctx context.Context) context.Context {
	if b.tr == nil {
		return ctx
	}
	b.end(nil)
	ctx, b.endFn = b.tr.StartSpan(ctx, "ferris.query.batch", b.attrs)
	return ctx
}

// end ends the current batch's span, recording err unless it is io.EOF.
func (b *batchTracing) end(err error) {
	if b.endFn == nil {
		return
	}
	f := b.endFn
	b.endFn = nil
	if errors.Is(err, io.EOF) {
		err = nil
	}
	f(err)
}

// writeSinks writes msg to q's sinks inside a span when the batch is
// sampled. The sinks see the span in ctx (the Kafka sink propagates it in
// record headers).
func (b *batchTracing) writeSinks(ctx context.Context, q *QueryNode, msg Message) error {
	if b.tr == nil || len(q.Sinks) == 0 || msg.Batch == nil || !b.tr.Recording(ctx) {
		return writeSinks(ctx, q, msg)
	}
	sctx, end := b.tr.StartSpan(ctx, "ferris.sink.write", b.sinkAttrs)
	err := writeSinks(sctx, q, msg)
	end(err)
	return err
}
