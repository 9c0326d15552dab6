package arrowexec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// This file is the engine's error model. Every error a query or source
// ends with falls in one of four classes, which decide what the engine
// does with it:
//
//   - transient (ErrTransient): the operation may succeed if tried again
//     (a broker unreachable, a timeout). Retried with backoff per the
//     connector's RetryPolicy, guarded by its circuit breaker; while the
//     breaker is open the pipeline backpressures. See Guard.
//   - permanent (ErrPermanent, and every error not otherwise classified):
//     retrying cannot help (a bad configuration, a missing topic, a full
//     disk). Fails the query at once.
//   - data (ErrData): one record or row is bad (malformed input, a value
//     that does not fit). Handled per record by the failure_strategy:
//     dead-lettered, logged and skipped, or failing the query. See
//     DataErrors.
//   - resource (resource.ErrMemoryLimit): the memory budget is exhausted.
//     Allocations and reservations wait a bounded time for memory to be
//     released (sources feeding a query near its limit pause), then fail
//     only that query.

// Sentinel errors of the error classes, for errors.Is. Connectors mark
// their errors with Transient, Permanent or DataError; Classify also
// recognises network errors and timeouts as transient.
var (
	ErrTransient = errors.New("transient error")
	ErrPermanent = errors.New("permanent error")
	ErrData      = errors.New("bad record")
	// ErrBreakerOpen is wrapped by the error of a connector whose circuit
	// breaker stayed open longer than breaker_max_open; it is permanent.
	ErrBreakerOpen = errors.New("circuit breaker open")
)

// ErrorClass is what kind of failure an error is (see Classify).
type ErrorClass int

const (
	ClassPermanent ErrorClass = iota // fail the query
	ClassTransient                   // retry, then backpressure through the breaker
	ClassData                        // handle the record per failure_strategy
	ClassResource                    // memory: backpressure, then fail the query
)

func (c ErrorClass) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassData:
		return "data"
	case ClassResource:
		return "resource"
	}
	return "permanent"
}

// Classify returns the class of err (ClassPermanent for nil). Explicit
// marks win, in this order: data, resource, permanent, transient. Unmarked
// errors are transient when they are network errors (*net.OpError, a
// net.Error that timed out, connection refused, reset or aborted, host or
// network unreachable), deadline errors (context.DeadlineExceeded,
// os.ErrDeadlineExceeded), or io.ErrUnexpectedEOF from a network
// connection; context.Canceled and everything else is permanent.
// Kafka clients mark retriable Kafka errors (kerr.IsRetriable) with
// Transient where they surface.
func Classify(err error) ErrorClass {
	switch {
	case err == nil:
		return ClassPermanent
	case errors.Is(err, ErrData):
		return ClassData
	case errors.Is(err, resource.ErrMemoryLimit):
		return ClassResource
	case errors.Is(err, ErrPermanent), errors.Is(err, ErrBreakerOpen), errors.Is(err, context.Canceled):
		return ClassPermanent
	case errors.Is(err, ErrTransient):
		return ClassTransient
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ClassTransient
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, errno) {
			return ClassTransient
		}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return ClassTransient
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTransient
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && (dns.IsTimeout || dns.IsTemporary) {
		return ClassTransient
	}
	return ClassPermanent
}

// classified marks an error with a class sentinel without changing its
// message.
type classified struct {
	err  error
	mark error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.mark} }

func mark(err, sentinel error) error {
	if err == nil || errors.Is(err, sentinel) {
		return err
	}
	return &classified{err: err, mark: sentinel}
}

// Transient marks err as transient (errors.Is(err, ErrTransient)); its
// message is unchanged. It returns nil for nil.
func Transient(err error) error { return mark(err, ErrTransient) }

// Permanent marks err as permanent.
func Permanent(err error) error { return mark(err, ErrPermanent) }

// DataError marks err as a data error (a bad record).
func DataError(err error) error { return mark(err, ErrData) }

// OperatorError names the part of a query or source an error came from:
// an operator ("Filter"), a sink ("sink kafka"), a source read or a
// commit. QueryError reports the innermost one.
type OperatorError struct {
	Operator string
	Err      error
}

func (e *OperatorError) Error() string { return e.Err.Error() }
func (e *OperatorError) Unwrap() error { return e.Err }

// WithOperator attaches an operator name to err, unless err already has
// one (the innermost name is the most precise). It returns nil for nil.
func WithOperator(operator string, err error) error {
	var oe *OperatorError
	if err == nil || errors.As(err, &oe) {
		return err
	}
	return &OperatorError{Operator: operator, Err: err}
}

// QueryError is the error a query or source fails with: it names the query
// (or source stream), the operator that failed and the correlation id of
// the run, then the cause. Its message reads
//
//	query "big_trades" (operator sink kafka, correlation id 5f2a9c1e): ...
//
// (parts that are unknown are left out). Unwrap gives the cause, so
// errors.Is works with the class sentinels and ErrMemoryLimit.
type QueryError struct {
	Kind          string // "query" or "source"
	Query         string // the query or source stream name
	Operator      string
	CorrelationID string
	Err           error
}

func (e *QueryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", e.Kind, e.Query)
	var parts []string
	if e.Operator != "" {
		parts = append(parts, "operator "+e.Operator)
	}
	if e.CorrelationID != "" {
		parts = append(parts, "correlation id "+e.CorrelationID)
	}
	if len(parts) > 0 {
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *QueryError) Unwrap() error { return e.Err }

// Class is the class of the cause.
func (e *QueryError) Class() ErrorClass { return Classify(e.Err) }

// queryError wraps the error q failed with (see QueryError). The operator
// is the innermost OperatorError's, else the kind of q's root operator.
func (t *Topology) queryError(q *QueryNode, err error) error {
	id := q.CorrelationID
	if id == "" {
		id = t.CorrelationID
	}
	qe := &QueryError{Kind: "query", Query: q.Name, CorrelationID: id, Err: err}
	var oe *OperatorError
	if errors.As(err, &oe) {
		qe.Operator = oe.Operator
	} else if !errors.Is(err, ErrUpstreamFailed) && !errors.Is(err, context.Canceled) {
		qe.Operator = OperatorKind(q.Root)
	}
	return qe
}

// sourceError wraps the error a source failed with.
func (t *Topology) sourceError(s *SourceNode, err error) error {
	qe := &QueryError{Kind: "source", Query: s.Stream, CorrelationID: t.CorrelationID, Err: err}
	var oe *OperatorError
	if errors.As(err, &oe) {
		qe.Operator = oe.Operator
	}
	return qe
}

// OperatorKind names an operator by its type: "Filter", "Project",
// "Aggregate", "Inlet", ... (an Instrumented wrapper is looked through).
func OperatorKind(op Operator) string {
	if op == nil {
		return ""
	}
	if w, ok := op.(*Instrumented); ok {
		return OperatorKind(w.in)
	}
	t := fmt.Sprintf("%T", op)
	t = t[strings.LastIndexByte(t, '.')+1:]
	return strings.TrimSuffix(t, "Op")
}

// NewCorrelationID returns a short random id (8 hex digits) naming one run
// of a pipeline in its errors, logs and spans.
func NewCorrelationID() string {
	var b [4]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return hex.EncodeToString(b[:])
}

// FailureStrategy is what a query does with a bad record (a data error):
// the failure_strategy option or setting.
type FailureStrategy string

const (
	// LogAndContinue logs the record (rate-limited), counts it and skips it.
	LogAndContinue FailureStrategy = "log_and_continue"
	// DeadLetterStrategy sends the record to the dead-letter sink and
	// skips it; the default when the pipeline has a dead-letter sink.
	DeadLetterStrategy FailureStrategy = "dead_letter"
	// FailQuery fails the query at the first bad record, with an error
	// naming the source, position and field; the default without a
	// dead-letter sink.
	FailQuery FailureStrategy = "fail"
	// RetryWithBackoff retries transient errors per the retry policy and
	// dead-letters what still fails: bad records, and the rows of a sink
	// write whose retries are exhausted.
	RetryWithBackoff FailureStrategy = "retry_with_backoff"
)

// FailureStrategies are the accepted values of failure_strategy.
var FailureStrategies = []string{string(LogAndContinue), string(DeadLetterStrategy), string(FailQuery), string(RetryWithBackoff)}

// strictness orders strategies when several queries read one source: the
// strictest of theirs applies to the source's bad records.
func (s FailureStrategy) strictness() int {
	switch s {
	case FailQuery:
		return 3
	case DeadLetterStrategy, RetryWithBackoff:
		return 2
	case LogAndContinue:
		return 1
	}
	return 0
}

// Stricter returns the stricter of s and o (fail > dead_letter,
// retry_with_backoff > log_and_continue > unset).
func (s FailureStrategy) Stricter(o FailureStrategy) FailureStrategy {
	if o.strictness() > s.strictness() {
		return o
	}
	return s
}

// FaultStats are the fault-tolerance counters of a query (QueryStats) or a
// source (SourceStats). All are safe to read concurrently.
type FaultStats struct {
	// RetriesTotal counts re-attempts of failed calls: sink writes and
	// flushes (queries), reads and commits (sources), dead-letter writes.
	RetriesTotal atomic.Int64
	// BreakerState is the state of the circuit breaker guarding the
	// query's sink or the source: a BreakerState (0 closed, 1 half-open,
	// 2 open).
	BreakerState atomic.Int32
	// DeadLettered counts bad records sent to the dead-letter sink by the
	// failure strategy (late rows are counted by their operators);
	// Skipped counts bad records logged and skipped (log_and_continue).
	DeadLettered, Skipped atomic.Int64
	// MemoryPauses counts the times a source paused because a query it
	// feeds (or the engine) was above 90% of its memory limit.
	MemoryPauses atomic.Int64
}

// Breaker returns BreakerState as a BreakerState.
func (s *FaultStats) Breaker() BreakerState { return BreakerState(s.BreakerState.Load()) }
