package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// This file applies the error model (fault.go) to connectors: sinks whose
// writes and flushes are retried behind a circuit breaker, sources whose
// reads and commits are, the failure strategy for bad records, and the
// memory backpressure of sources.

// GuardedSink is a Sink whose Write and Flush run under a Guard (retries,
// circuit breaker; see Guard). While the breaker is open Write and Flush
// block, so the query stops reading and its sources pause: nothing is
// dropped and, since nothing new is flushed, no source offset is
// committed. With the retry_with_backoff strategy, a write whose retries
// are exhausted dead-letters the batch's rows instead. Errors are named
// after the guard (WithOperator). It implements BreakerReporter.
type GuardedSink struct {
	sink   Sink
	guard  *Guard
	failed *DataErrors // retry_with_backoff: where exhausted batches go; else nil
}

var (
	_ Sink            = (*GuardedSink)(nil)
	_ BreakerReporter = (*GuardedSink)(nil)
)

// GuardSink wraps s. dl, when not nil, receives the rows of batches whose
// writes exhausted their retries (failure_strategy retry_with_backoff).
func GuardSink(s Sink, g *Guard, dl *DataErrors) *GuardedSink {
	return &GuardedSink{sink: s, guard: g, failed: dl}
}

// Unwrap returns the guarded sink.
func (s *GuardedSink) Unwrap() Sink { return s.sink }

// Guard returns the sink's guard.
func (s *GuardedSink) Guard() *Guard { return s.guard }

// Open implements Sink (not retried: opening fails on configuration).
func (s *GuardedSink) Open(ctx context.Context) error {
	return WithOperator(s.guard.Name, s.sink.Open(ctx))
}

// Write implements Sink.
func (s *GuardedSink) Write(ctx context.Context, msg Message) error {
	call := func(ctx context.Context) error { return s.sink.Write(ctx, msg) }
	var exhausted func(context.Context, error) (bool, error)
	if s.failed != nil && msg.Batch != nil && msg.Batch.NumRows() > 0 {
		exhausted = func(ctx context.Context, cause error) (bool, error) {
			return true, s.failed.deadLetterBatch(ctx, s.guard.Name, msg, cause, s.guard.Retry.MaxRetries)
		}
	}
	return WithOperator(s.guard.Name, s.guard.DoElse(ctx, "write", call, exhausted))
}

// Flush implements Sink.
func (s *GuardedSink) Flush(ctx context.Context) error {
	return WithOperator(s.guard.Name, s.guard.Do(ctx, "flush", s.sink.Flush))
}

// Close implements Sink.
func (s *GuardedSink) Close() error { return WithOperator(s.guard.Name, s.sink.Close()) }

// BreakerState implements BreakerReporter.
func (s *GuardedSink) BreakerState() BreakerState { return s.guard.BreakerState() }

// Retries implements BreakerReporter.
func (s *GuardedSink) Retries() int64 { return s.guard.Retries() }

// Resumable is implemented by sources whose Next may be called again after
// it returned a transient error and then continues where it stopped (no
// row lost or repeated). Only their reads are retried; other sources fail
// at the first error. A source may report false when it cannot resume
// (e.g. after a partial batch).
type Resumable interface {
	Resumable() bool
}

// SourceFault is the fault tolerance of a source node, set by the planner
// (nil: none).
type SourceFault struct {
	// Guard runs the reads of a Resumable source and the commits of a
	// committing one (nil: neither is retried).
	Guard *Guard
	// DataErrors is the source's bad-record handler (its counters are
	// bound to the source's stats when it runs); may be nil.
	DataErrors *DataErrors
	// Readers are the allocators of the queries reading the stream: while
	// one of them, or the engine, is above HighWater of its memory limit,
	// the source pauses (at most MemoryWait per batch) for its readers to
	// drain what is queued.
	Readers    []*resource.Allocator
	MemoryWait time.Duration
	// Logger receives commit failures that are skipped (a later commit
	// covers them).
	Logger *slog.Logger

	bindOnce sync.Once
}

// bind makes the guard and the handler count into st, once (reads and
// commits run on different goroutines).
func (f *SourceFault) bind(st *SourceStats) {
	f.bindOnce.Do(func() {
		if f.Guard != nil {
			f.Guard.Bind(&st.FaultStats)
		}
		if f.DataErrors != nil {
			f.DataErrors.Bind(&st.FaultStats)
		}
	})
}

// HighWater is the fraction of a memory limit above which sources feeding
// a query pause (memory backpressure).
const HighWater = 0.9

// sourceReader returns how runSource reads s: Next, under the source's
// guard when it is resumable, after a memory pause when its readers are
// near their limit. It binds the guard's counters to st.
func (t *Topology) sourceReader(s *SourceNode, st *SourceStats, to []*Inlet) func(context.Context) (Message, error) {
	f := s.Fault
	if f == nil {
		return s.Op.Next
	}
	f.bind(st)
	g := f.Guard
	if r, ok := SourceAs[Resumable](s.Op); !ok || !r.Resumable() {
		g = nil
	}
	return func(ctx context.Context) (Message, error) {
		f.pauseForMemory(ctx, t.Resources, to, &st.FaultStats)
		if g == nil {
			return s.Op.Next(ctx)
		}
		var msg Message
		err := g.Do(ctx, "read", func(ctx context.Context) error {
			var err error
			msg, err = s.Op.Next(ctx)
			return err
		})
		return msg, WithOperator(g.Name, err)
	}
}

// pressured reports whether the engine or a reader is above HighWater.
func (f *SourceFault) pressured(m *resource.Manager) bool {
	if m != nil && m.Pressure() >= HighWater {
		return true
	}
	for _, a := range f.Readers {
		if a.Pressure() >= HighWater {
			return true
		}
	}
	return false
}

// pauseForMemory waits, at most MemoryWait, while memory is under pressure
// and the readers still have queued messages (whose release frees memory).
func (f *SourceFault) pauseForMemory(ctx context.Context, m *resource.Manager, to []*Inlet, st *FaultStats) {
	if f.MemoryWait <= 0 || !queued(to) || !f.pressured(m) {
		return
	}
	st.MemoryPauses.Add(1)
	deadline := time.Now().Add(f.MemoryWait)
	for queued(to) && f.pressured(m) && time.Now().Before(deadline) {
		if SystemClock.Sleep(ctx, 2*time.Millisecond) != nil {
			return
		}
	}
}

// queued reports whether a reader has messages waiting.
func queued(to []*Inlet) bool {
	for _, in := range to {
		if len(in.ch) > 0 && !in.Closed() {
			return true
		}
	}
	return false
}

// guardCommits makes c's commits go through s's guard. A commit that
// still fails transiently is logged and skipped: the next one covers its
// positions (at-least-once either way).
func (t *Topology) guardCommits(s *SourceNode, c Committer) Committer {
	if s.Fault == nil || s.Fault.Guard == nil {
		return c
	}
	t.tapsOnce()
	s.Fault.bind(t.sourceStats[s.Stream]) // before any goroutine uses the guard
	return &guardedCommitter{Committer: c, g: s.Fault.Guard, log: s.Fault.Logger, stream: s.Stream}
}

type guardedCommitter struct {
	Committer
	g      *Guard
	log    *slog.Logger
	stream string
}

func (c *guardedCommitter) Commit(ctx context.Context, mark any) error {
	err := c.g.Do(ctx, "commit", func(ctx context.Context) error { return c.Committer.Commit(ctx, mark) })
	if err != nil && ctx.Err() == nil && Classify(err) == ClassTransient {
		if c.log != nil {
			c.log.Warn("commit failed; the next commit covers it", "stream", c.stream, "error", err)
		}
		return nil
	}
	return WithOperator(c.g.Name+" commit", err)
}

// DataErrors applies a failure strategy to bad records (data errors). It
// implements DeadLetter: connectors and operators hand it every bad record
// as they would to a dead-letter sink, and it dead-letters, logs and
// skips, or returns the error that fails the query. Writes to the
// dead-letter sink that fail transiently are retried under Guard. It is
// safe for concurrent use.
type DataErrors struct {
	Strategy FailureStrategy
	Sink     DeadLetter // the dead-letter sink; nil: none
	// Query is put in records that name none (the query, or the queries
	// reading a source).
	Query  string
	Guard  *Guard       // retries of dead-letter writes; nil: none
	Logger *slog.Logger // log_and_continue; nil: text to stderr

	own   FaultStats
	stats atomic.Pointer[FaultStats]
	once  sync.Once
}

var _ DeadLetter = (*DataErrors)(nil)

// Bind makes the handler count into st (a query's or source's stats)
// instead of its own counters, retries of dead-letter writes included
// (the dead-letter breaker's state is not mirrored: st.BreakerState is the
// connector's). Call it before the handler is used.
func (h *DataErrors) Bind(st *FaultStats) {
	h.stats.Store(st)
	if h.Guard != nil {
		h.Guard.Stats = st
	}
}

// Stats returns the counters the handler counts into.
func (h *DataErrors) Stats() *FaultStats {
	if st := h.stats.Load(); st != nil {
		return st
	}
	return &h.own
}

// logEvery: log_and_continue logs the first logFirst records, then one
// in logEvery, with the running count.
const (
	logFirst = 10
	logEvery = 1000
)

// DeadLetter implements DeadLetter by applying the strategy to rec.
func (h *DataErrors) DeadLetter(ctx context.Context, rec DeadLetterRecord) error {
	if rec.Query == "" {
		rec.Query = h.Query
	}
	if rec.Source == "" && rec.Query != "" { // a row an operator of the query could not process
		rec.Source = "query " + rec.Query
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now().UTC()
	}
	switch h.Strategy {
	case LogAndContinue:
		n := h.Stats().Skipped.Add(1)
		if n <= logFirst || n%logEvery == 0 {
			h.logger().Warn("bad record skipped (failure_strategy = log_and_continue)",
				"query", rec.Query, "source", rec.Source, "position", rec.Position, "field", rec.Field,
				"reason", rec.Reason, "skipped", n)
		}
		return nil
	case DeadLetterStrategy, RetryWithBackoff:
		if h.Sink != nil {
			return h.deadLetter(ctx, rec)
		}
	}
	return DataError(errors.New(describeRecord(rec, h.Strategy)))
}

// describeRecord is the error of a bad record that fails the query.
func describeRecord(rec DeadLetterRecord, s FailureStrategy) string {
	var b strings.Builder
	b.WriteString("bad record")
	if rec.Source != "" {
		b.WriteString(" from " + rec.Source)
	}
	if rec.Position != "" {
		b.WriteString(" at " + rec.Position)
	}
	if rec.Field != "" {
		b.WriteString(": field " + rec.Field)
	}
	b.WriteString(": " + rec.Reason)
	if s == FailQuery {
		b.WriteString(" (failure_strategy = fail)")
	} else {
		b.WriteString(" (no dead-letter sink)")
	}
	return b.String()
}

func (h *DataErrors) deadLetter(ctx context.Context, rec DeadLetterRecord) error {
	call := func(ctx context.Context) error { return h.Sink.DeadLetter(ctx, rec) }
	var err error
	if h.Guard != nil {
		err = h.Guard.Do(ctx, "write", call)
	} else {
		err = call(ctx)
	}
	if err != nil {
		return WithOperator("dead letter", err)
	}
	h.Stats().DeadLettered.Add(1)
	return nil
}

// deadLetterBatch dead-letters every row of msg, whose write to the sink
// named sink failed with cause after retries.
func (h *DataErrors) deadLetterBatch(ctx context.Context, sink string, msg Message, cause error, retries int) error {
	b := msg.Batch
	reason := fmt.Sprintf("%s write failed after %d retries: %v", sink, retries, cause)
	for i := 0; i < int(b.NumRows()); i++ {
		rec := DeadLetterRecord{Time: time.Now().UTC(), Query: h.Query, Source: sink,
			Position: fmt.Sprintf("row %d of %d", i+1, b.NumRows()), Reason: reason, Raw: RowJSON(b, i)}
		if err := h.deadLetter(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

func (h *DataErrors) logger() *slog.Logger {
	h.once.Do(func() {
		if h.Logger == nil {
			h.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
	})
	return h.Logger
}

// DeadLetterSpec is what a dead-letter connector needs to open a sink.
type DeadLetterSpec struct {
	Name  string // the pipeline, for the client id and errors
	Topic string // the destination (a Kafka topic)
	// Options are the WITH options of the stream or query whose records it
	// receives: a connector of the same kind may take its connection
	// options (brokers, security) from them.
	Options Options
	BaseDir string
}

// DeadLetterSink is a dead-letter destination the topology owns: Close
// flushes it and is called after the run. Implementations are safe for
// concurrent use.
type DeadLetterSink interface {
	DeadLetter
	Close() error
}

// DeadLetterFactory opens a dead-letter sink for a connector ("kafka").
type DeadLetterFactory func(spec DeadLetterSpec) (DeadLetterSink, error)

// RegisterDeadLetter adds a dead-letter factory under name.
func (c *Connectors) RegisterDeadLetter(name string, f DeadLetterFactory) {
	if c.deadLetters == nil {
		c.deadLetters = map[string]DeadLetterFactory{}
	}
	c.deadLetters[name] = f
}

// DeadLetter returns the dead-letter factory of a connector.
func (c *Connectors) DeadLetter(name string) (DeadLetterFactory, error) {
	if f, ok := c.deadLetters[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("no dead-letter connector %q (known: %s)", name, strings.Join(sortedKeys(c.deadLetters), ", "))
}

// Own hands the topology a dead-letter sink (or anything else) to close
// after Run, or on Discard.
func (t *Topology) Own(c interface{ Close() error }) { t.owned = append(t.owned, c) }

// closeOwned closes what the topology owns, once.
func (t *Topology) closeOwned() error {
	var errs []error
	t.ownedOnce.Do(func() {
		for _, c := range t.owned {
			errs = append(errs, c.Close())
		}
	})
	return errors.Join(errs...)
}
