package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// ErrUpstreamFailed is wrapped by the error of a query whose input stream
// ended because the query or source producing it failed.
var ErrUpstreamFailed = errors.New("upstream failed")

// SourceNode is a source connector producing the stream Stream.
type SourceNode struct {
	Stream string
	Op     Operator
	// Fault is the source's retry, breaker, bad-record and memory
	// backpressure setup (guard.go); nil: none.
	Fault *SourceFault
}

// Subscription connects a stream to an Inlet of a query.
type Subscription struct {
	Stream string
	Inlet  *Inlet
}

// QueryNode is one continuous query: an operator tree whose leaves are
// Inlets, writing to sinks and, when Output is set, producing a stream other
// queries read.
type QueryNode struct {
	Name   string
	Root   Operator
	Inputs []Subscription
	Sinks  []Sink
	// SinkColumns, when non-zero, is how many leading columns sinks
	// receive (hidden columns such as RowWatermarkColumn come last).
	SinkColumns int
	Output      string
	Stats       QueryStats
	// Line and Column are the SQL position of the query's statement
	// (span attributes); 0 when unknown.
	Line, Column int
	// Operators are the counters of its instrumented operators (see
	// Instrument), inputs before their consumers; empty when the query was
	// built without instrumentation.
	Operators []*OperatorStats
	// Memory is the query's allocator, when it has one of its own (the
	// profile reports its use).
	Memory *resource.Allocator
	// CorrelationID names the run in the query's errors (fault.go); the
	// topology's when empty.
	CorrelationID string

	tracer           Tracer // the topology's, set by Run
	restoredFinished bool   // the restored checkpoint says it had ended
}

// QueryStats are live counters of a query, safe to read concurrently.
type QueryStats struct {
	RowsOut   atomic.Int64
	Batches   atomic.Int64
	Watermark atomic.Int64
	State     atomic.Int32 // a QueryState
	// SinkNanos is the time spent writing to sinks, EmitNanos the time
	// spent handing output to the queries and taps reading it (blocked
	// while they are behind).
	SinkNanos, EmitNanos atomic.Int64
	// SinkLatency counts the time to write each batch to the sinks.
	SinkLatency LatencyHistogram
	// BatchLatency counts, for each output batch of an instrumented query,
	// the time its operators and sinks spent on it, time waiting for input
	// excluded.
	BatchLatency LatencyHistogram

	inputWait atomic.Int64 // instrumented inlets: time spent waiting for input

	// FaultStats: RetriesTotal, BreakerState of its sink, bad records
	// dead-lettered or skipped (fault.go).
	FaultStats

	errMu sync.Mutex
	err   error // what the query failed with
}

// Err is the error the query failed with (a *QueryError), nil while it
// runs or after a clean end.
func (s *QueryStats) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// QueryState is the lifecycle state of a query.
type QueryState int32

const (
	QueryPending QueryState = iota
	QueryRunning
	QueryFinished
	QueryFailed
	QueryCancelled
)

func (s QueryState) String() string {
	return [...]string{"pending", "running", "finished", "failed", "cancelled"}[s]
}

// SourceStats are live counters of a source.
type SourceStats struct {
	RowsIn  atomic.Int64
	Batches atomic.Int64
	// ReadNanos is the time spent in the source's Next (reading and
	// decoding), PushNanos the time spent handing batches to the queries
	// reading it (blocked while they are behind: backpressure).
	ReadNanos, PushNanos atomic.Int64
	// FaultStats: RetriesTotal of reads and commits, BreakerState, bad
	// records dead-lettered or skipped, memory pauses (fault.go).
	FaultStats
}

// Topology is a runnable pipeline: sources and the queries reading them.
type Topology struct {
	Sources []*SourceNode
	Queries []*QueryNode
	// Resources, when set, turns memory-limit panics of a query's allocator
	// into that query's error.
	Resources *resource.Manager
	// CommitInterval is how often queries that pass rows straight through
	// to their sinks flush them so committing sources (Committer) can
	// commit; 0 means DefaultCommitInterval.
	CommitInterval time.Duration
	// Tracer, when set, traces each query's batches (see Tracer);
	// TraceAttrs are added to every batch span (pipeline name,
	// correlation id).
	Tracer     Tracer
	TraceAttrs []Attr
	// CorrelationID names this run of the pipeline in every query and
	// source error (fault.go).
	CorrelationID string
	// Checkpoints, when set, saves the topology's state periodically and
	// Run resumes from the latest checkpoint (checkpoint.go).
	Checkpoints     *CheckpointConfig
	CheckpointStats CheckpointStats

	owned     []interface{ Close() error } // dead-letter sinks (guard.go)
	ownedOnce sync.Once

	sourceStats map[string]*SourceStats
	stopMu      sync.Mutex
	stopCh      chan struct{}
	stopped     bool
	tapInit     sync.Once
	taps        taps
}

// stopChan returns the channel Stop closes, creating it on first use.
func (t *Topology) stopChan() chan struct{} {
	t.stopMu.Lock()
	defer t.stopMu.Unlock()
	if t.stopCh == nil {
		t.stopCh = make(chan struct{})
	}
	return t.stopCh
}

// Stop asks a running topology to drain: sources stop at the next batch
// boundary and end their streams (without a final watermark), queries
// process what is in flight, sinks flush, and Run returns nil. It is safe to
// call from any goroutine, more than once, and before Run.
func (t *Topology) Stop() {
	ch := t.stopChan()
	t.stopMu.Lock()
	defer t.stopMu.Unlock()
	if !t.stopped {
		t.stopped = true
		close(ch)
	}
}

// SourceStats returns the live counters of the named source stream (nil
// for an unknown stream). It is safe to call concurrently with Run.
func (t *Topology) SourceStats(stream string) *SourceStats {
	t.tapsOnce()
	return t.sourceStats[stream]
}

// Discard closes every source, operator and sink of a topology that was
// built but will not run (validation, or a failed build). Do not call it
// after Run, which closes everything itself.
func (t *Topology) Discard() {
	defer t.closeOwned()
	for _, s := range t.Sources {
		_ = s.Op.Close()
	}
	for _, q := range t.Queries {
		if q.Root != nil {
			_ = q.Root.Close()
		}
		for _, s := range q.Sinks {
			_ = s.Close()
		}
	}
}

// Run runs the topology until every source ends and every query has drained,
// or ctx is cancelled. A source error cancels the whole run; a query error
// fails that query (and queries reading its output) while the others go on;
// once every query has ended, the sources stop. A panic in a source,
// operator or sink is that source's or query's error (PanicError).
// Run returns the errors joined, each naming its source or query; it returns
// nil after a clean end of bounded input, and ctx.Err() after cancellation.
// Every operator and sink is closed before Run returns.
func (t *Topology) Run(ctx context.Context) error {
	subs := map[string][]*Inlet{}
	produced := map[string]bool{}
	for _, s := range t.Sources {
		produced[s.Stream] = true
	}
	for _, q := range t.Queries {
		for _, in := range q.Inputs {
			subs[in.Stream] = append(subs[in.Stream], in.Inlet)
		}
		if q.Output != "" {
			produced[q.Output] = true
		}
	}
	for _, q := range t.Queries {
		for _, in := range q.Inputs {
			if !produced[in.Stream] {
				return fmt.Errorf("query %q reads stream %q, which nothing produces", q.Name, in.Stream)
			}
		}
	}

	trackers := map[*Inlet]*commitTracker{}
	srcTracker := map[*SourceNode]*commitTracker{}
	for _, s := range t.Sources {
		if c := committerOf(s.Op); c != nil {
			tr := newCommitTracker(t.guardCommits(s, c), subs[s.Stream])
			srcTracker[s] = tr
			for _, in := range subs[s.Stream] {
				trackers[in] = tr
			}
		}
	}
	ck, err := t.prepareCheckpoints(srcTracker)
	if err != nil {
		t.Discard()
		return err
	}
	interval := t.CommitInterval
	if interval <= 0 {
		interval = DefaultCommitInterval
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopCh := t.stopChan()
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	go func() {
		select {
		case <-stopCh:
			ck.finalCheckpoint(ctx, finalCheckpointWait)
			stopSources()
		case <-ctx.Done():
		}
	}()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	t.tapsOnce()
	for _, s := range t.Sources {
		st := t.sourceStats[s.Stream]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t.runSource(ctx, srcCtx, s, st, subs[s.Stream], srcTracker[s], ck)
			t.endTaps(s.Stream, err)
			if err != nil {
				fail(t.sourceError(s, err))
				cancel()
			}
		}()
	}
	// Once every query has ended (failed, most likely), nothing reads the
	// sources: they stop, as after Stop.
	var live atomic.Int64
	live.Store(int64(len(t.Queries)))
	for _, q := range t.Queries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if live.Add(-1) == 0 {
					stopSources()
				}
			}()
			c := queryCommits{trackers: trackers, interval: interval,
				passThrough: passesRowsThrough(q.Root) && len(subs[q.Output]) == 0}
			err := t.runQuery(ctx, q, subs[q.Output], c, ck)
			if q.Output != "" {
				t.endTaps(q.Output, err)
			}
			// Cancelled while the caller's ctx is live: a failed source
			// cancelled the run and reports the cause itself.
			if err != nil && !(errors.Is(err, context.Canceled) && parent.Err() == nil) {
				err = t.queryError(q, err)
				q.Stats.errMu.Lock()
				q.Stats.err = err
				q.Stats.errMu.Unlock()
				fail(err)
			}
		}()
	}
	ckDone := t.runCheckpoints(ctx, ck)
	wg.Wait()
	ckDone()
	if err := t.closeOwned(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return t.finishCheckpoints(ck)
}

// fanout hands msg to every subscriber, retaining the batch once per extra
// subscriber; it consumes msg.
func fanout(ctx context.Context, msg Message, to []*Inlet) error {
	if len(to) == 0 {
		msg.Release()
		return nil
	}
	for range to[1:] {
		if msg.Batch != nil {
			msg.Batch.Retain()
		}
	}
	var err error
	for _, in := range to {
		if err != nil {
			msg.Release() // a reference no subscriber will take
			continue
		}
		err = in.Push(ctx, msg)
	}
	return err
}

func finish(to []*Inlet, err error) {
	for _, in := range to {
		if err != nil {
			in.Fail(fmt.Errorf("%w: %v", ErrUpstreamFailed, err))
		} else {
			in.Finish()
		}
	}
}

// runSource drives one source. srcCtx is cancelled by Stop: the source then
// ends its stream cleanly, while ctx still governs delivery downstream.
func (t *Topology) runSource(ctx, srcCtx context.Context, s *SourceNode, st *SourceStats, to []*Inlet, commits *commitTracker, ck *checkpointer) (err error) {
	atEnd := false
	defer func() {
		if err != nil && ctx.Err() == nil && srcCtx.Err() != nil {
			err = nil // stopped by Stop: a clean, drained end
		}
		finish(to, err)
	}()
	defer func() {
		if cerr := closeRecovered(s.Op); err == nil {
			err = cerr
		}
	}()
	defer func() { // before Close: the source's final position
		switch {
		case atEnd && err == nil:
			ck.sourceEnded(s, nil)
		case err == nil || ctx.Err() == nil && srcCtx.Err() != nil:
			ck.sourceEnded(s, errStopped)
		default:
			ck.sourceEnded(s, err)
		}
	}()
	defer RecoverPanic(&err) // a source panicking or allocating past max_memory_mb fails, not the process
	if err := s.Op.Open(srcCtx); err != nil {
		return err
	}
	last := NoWatermark
	var seq int64
	read := t.sourceReader(s, st, to) // guard.go: retries, breaker, memory pauses
	for {
		if srcCtx.Err() != nil {
			return srcCtx.Err()
		}
		if b := ck.barrierFor(s); b != nil {
			ck.sourceBarrier(s, b, seq)
			if err := fanout(ctx, Message{Watermark: last, Barrier: b}, to); err != nil {
				return err
			}
		}
		t0 := time.Now()
		msg, err := read(srcCtx)
		t1 := time.Now()
		st.ReadNanos.Add(int64(t1.Sub(t0)))
		if errors.Is(err, io.EOF) {
			atEnd = true
			if last != FinalWatermark {
				final := Message{Watermark: FinalWatermark}
				t.toTaps(s.Stream, final)
				return fanout(ctx, final, to)
			}
			return nil
		}
		if err != nil {
			return err
		}
		st.RowsIn.Add(msg.Rows())
		st.Batches.Add(1)
		if msg.Watermark < last {
			msg.Watermark = last // never backwards
		}
		last = msg.Watermark
		if commits != nil {
			seq++
			msg.seq = seq
			commits.record(seq)
		}
		t.toTaps(s.Stream, msg)
		err = fanout(ctx, msg, to)
		st.PushNanos.Add(int64(time.Since(t1)))
		if err != nil {
			return err
		}
	}
}

// queryCommits is how a query takes part in source commits.
type queryCommits struct {
	trackers map[*Inlet]*commitTracker
	interval time.Duration
	// passThrough: the query holds no rows between reads and nothing reads
	// its output, so once its sinks are flushed, everything it consumed is
	// durable.
	passThrough bool
}

// ack tells the committing sources of q's inputs that what q consumed is
// durable.
func (c queryCommits) ack(ctx context.Context, q *QueryNode) error {
	for _, in := range q.Inputs {
		if tr := c.trackers[in.Inlet]; tr != nil && in.Inlet.consumed > 0 {
			if err := tr.ack(ctx, in.Inlet, in.Inlet.consumed); err != nil {
				return fmt.Errorf("committing stream %s: %w", in.Stream, err)
			}
		}
	}
	return nil
}

func (t *Topology) runQuery(ctx context.Context, q *QueryNode, to []*Inlet, commits queryCommits, ck *checkpointer) (err error) {
	q.Stats.State.Store(int32(QueryRunning))
	q.Stats.Watermark.Store(NoWatermark)
	defer func() {
		switch {
		case err == nil:
			q.Stats.State.Store(int32(QueryFinished))
		case errors.Is(err, context.Canceled):
			q.Stats.State.Store(int32(QueryCancelled))
		default:
			q.Stats.State.Store(int32(QueryFailed))
		}
	}()
	defer func() { finish(to, err) }()
	defer func() {
		for _, s := range q.Sinks {
			if cerr := closeRecovered(s); err == nil && cerr != nil {
				err = WithOperator("sink", fmt.Errorf("closing sink: %w", cerr))
			}
		}
	}()
	defer func() {
		if cerr := closeRecovered(q.Root); err == nil {
			err = cerr
		}
	}()
	defer RecoverPanic(&err) // a panicking operator or sink fails its query, not the process
	if ck != nil {
		defer func() {
			if err != nil {
				ck.queryEnded(q, nil, err)
			}
		}()
	}

	for _, s := range q.Sinks {
		if err := s.Open(ctx); err != nil {
			return WithOperator("sink", fmt.Errorf("opening sink: %w", err))
		}
	}
	if q.restoredFinished { // it had ended before the checkpoint it resumes from
		pos, err := sinkPositions(q)
		ck.queryEnded(q, pos, err)
		return err
	}
	q.tracer = t.Tracer
	if err := q.Root.Open(ctx); err != nil {
		return err
	}
	flush := func() error {
		for _, s := range q.Sinks {
			if err := s.Flush(ctx); err != nil {
				return WithOperator("sink", fmt.Errorf("flushing sink: %w", err))
			}
		}
		return nil
	}
	lastCommit := time.Now()
	final := false
	bt := t.batchTracing(q)
	defer func() { bt.end(err) }()
	for {
		bctx := bt.start(ctx)
		wait0 := q.Stats.inputWait.Load()
		t0 := time.Now()
		msg, err := q.Root.Next(bctx)
		t1 := time.Now()
		if errors.Is(err, io.EOF) {
			if err := flush(); err != nil {
				return err
			}
			if ck != nil {
				pos, err := sinkPositions(q)
				if err != nil {
					return err
				}
				ck.queryEnded(q, pos, nil)
				if final { // the end of its input, not a drained Stop
					if err := commitAtEnd(ctx, q, ck); err != nil {
						return err
					}
				}
			}
			// Drained (Stop) or at the end of its input: a query holding
			// state vouches only when a final watermark flushed it.
			if commits.passThrough || final {
				return commits.ack(ctx, q)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if msg.Barrier != nil {
			if err := t.passBarrier(ctx, q, msg, to, ck, flush); err != nil {
				return err
			}
			continue
		}
		q.Stats.RowsOut.Add(msg.Rows())
		if msg.Batch != nil {
			q.Stats.Batches.Add(1)
		}
		q.Stats.Watermark.Store(msg.Watermark)
		final = msg.Watermark == FinalWatermark
		if err := bt.writeSinks(bctx, q, msg); err != nil {
			msg.Release()
			return err
		}
		t2 := time.Now()
		if msg.Batch != nil {
			q.Stats.observeBatch(len(q.Sinks) > 0, len(q.Operators) > 0, t0, t1, t2, q.Stats.inputWait.Load()-wait0)
		}
		if commits.passThrough && len(commits.trackers) > 0 && time.Since(lastCommit) >= commits.interval {
			lastCommit = time.Now()
			if err := flush(); err != nil {
				msg.Release()
				return err
			}
			if err := commits.ack(ctx, q); err != nil {
				msg.Release()
				return err
			}
		}
		if q.Output != "" {
			t.toTaps(q.Output, msg)
		}
		err = fanout(ctx, msg, to)
		q.Stats.EmitNanos.Add(int64(time.Since(t2)))
		if err != nil {
			return err
		}
	}
}

// writeSinks writes msg to every sink of q, without its hidden columns. A
// sink's panic is its error, so that the caller still releases msg.
func writeSinks(ctx context.Context, q *QueryNode, msg Message) (err error) {
	defer RecoverPanic(&err)
	if len(q.Sinks) == 0 {
		return nil
	}
	if q.SinkColumns > 0 && msg.Batch != nil && int(msg.Batch.NumCols()) > q.SinkColumns {
		b := msg.Batch
		fields := b.Schema().Fields()[:q.SinkColumns]
		visible := array.NewRecordBatch(arrow.NewSchema(fields, nil), b.Columns()[:q.SinkColumns], b.NumRows())
		defer visible.Release()
		msg = Message{Batch: visible, Watermark: msg.Watermark}
	}
	for _, s := range q.Sinks {
		if err := s.Write(ctx, msg); err != nil {
			return WithOperator("sink", fmt.Errorf("writing sink: %w", err))
		}
	}
	return nil
}
