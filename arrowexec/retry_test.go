package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

func TestBackoff(t *testing.T) {
	p := DefaultRetryPolicy()
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		7: 6400 * time.Millisecond, 8: 10 * time.Second, 50: 10 * time.Second} {
		if got := p.Backoff(n, 0.5); got != want { // u = 0.5: no jitter
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
	if lo, hi := p.Backoff(1, 0), p.Backoff(1, 0.999999); lo != 80*time.Millisecond || hi < 119*time.Millisecond || hi > 120*time.Millisecond {
		t.Errorf("jitter bounds %v, %v; want 80ms and ~120ms", lo, hi)
	}
	flat := RetryPolicy{MaxRetries: 2, InitialDelay: time.Second, MaxDelay: time.Second, Multiplier: 1}
	if got := flat.Backoff(5, 0.9); got != time.Second {
		t.Errorf("flat backoff %v", got)
	}
}

func TestClassify(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cases := []struct {
		err  error
		want ErrorClass
	}{
		{nil, ClassPermanent},
		{errors.New("boom"), ClassPermanent},
		{io.EOF, ClassPermanent},
		{context.Canceled, ClassPermanent},
		{fmt.Errorf("write: %w", context.DeadlineExceeded), ClassTransient},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ClassTransient},
		{fmt.Errorf("broker: %w", opErr), ClassTransient},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), ClassTransient},
		{&net.DNSError{Err: "timeout", IsTimeout: true}, ClassTransient},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, ClassPermanent},
		{fmt.Errorf("pipe: %w", syscall.EPIPE), ClassPermanent}, // a closed stdout never comes back
		{Transient(errors.New("flaky")), ClassTransient},
		{Permanent(opErr), ClassPermanent},
		{DataError(errors.New("bad")), ClassData},
		{DataError(Transient(errors.New("bad"))), ClassData},
		{fmt.Errorf("q: %w", &resource.LimitError{Limit: 1}), ClassResource},
		{ErrBreakerOpen, ClassPermanent},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	e := errors.New("flaky")
	if Transient(e).Error() != "flaky" || !errors.Is(Transient(e), e) || Transient(nil) != nil {
		t.Error("Transient changes the message, hides the cause or wraps nil")
	}
}

func TestQueryErrorNamesQueryOperatorAndCorrelation(t *testing.T) {
	topo := &Topology{CorrelationID: "5f2a9c1e"}
	q := &QueryNode{Name: "big", Root: filterOverInlet(t)}
	err := topo.queryError(q, WithOperator("sink kafka", Transient(errors.New("broker down"))))
	if got, want := err.Error(), `query "big" (operator sink kafka, correlation id 5f2a9c1e): broker down`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, ErrTransient) {
		t.Error("class lost")
	}
	err = topo.queryError(q, &resource.LimitError{Requested: 1, Limit: 2, Setting: "max_query_memory_mb"})
	if got, want := err.Error(), `query "big" (operator Filter, correlation id 5f2a9c1e): memory limit exceeded: requested 1 bytes with 0 in use of 2 (max_query_memory_mb)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, resource.ErrMemoryLimit) {
		t.Error("ErrMemoryLimit lost")
	}
	var qe *QueryError
	if !errors.As(err, &qe) || qe.Class() != ClassResource {
		t.Error("not a resource QueryError")
	}
	src := topo.sourceError(&SourceNode{Stream: "trades"}, errors.New("gone"))
	if got, want := src.Error(), `source "trades" (correlation id 5f2a9c1e): gone`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if id := NewCorrelationID(); len(id) != 8 || id == NewCorrelationID() {
		t.Errorf("correlation id %q", id)
	}
}

// filterOverInlet is a Filter over an Inlet, for naming tests.
func filterOverInlet(t *testing.T) Operator {
	f, err := NewFilter(nil, NewInlet(testSchema, 1), greaterThan(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// flaky fails its first n calls with err.
type flaky struct {
	n, calls int
	err      error
}

func (f *flaky) call(context.Context) error {
	f.calls++
	if f.calls <= f.n {
		return f.err
	}
	return nil
}

func TestGuardRetriesTransientErrors(t *testing.T) {
	clock := newFakeClock()
	var st FaultStats
	g := NewGuard("sink test", RetryPolicy{MaxRetries: 3, InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second, Multiplier: 2}, BreakerConfig{}, clock)
	g.Bind(&st)
	f := &flaky{n: 3, err: Transient(errors.New("down"))}
	if err := g.Do(context.Background(), "write", f.call); err != nil {
		t.Fatal(err)
	}
	if f.calls != 4 || g.Retries() != 3 || st.RetriesTotal.Load() != 3 {
		t.Fatalf("calls %d, retries %d/%d; want 4, 3", f.calls, g.Retries(), st.RetriesTotal.Load())
	}
	if got := fmt.Sprint(clock.slept()); got != "[100ms 200ms 400ms]" {
		t.Fatalf("backoff %s", got)
	}

	// Without a breaker, exhausted retries return the error.
	f = &flaky{n: 10, err: Transient(errors.New("down"))}
	err := g.Do(context.Background(), "write", f.call)
	if err == nil || f.calls != 4 || err.Error() != "sink test write failed after 3 retries: down" || !errors.Is(err, ErrTransient) {
		t.Fatalf("calls %d: %v", f.calls, err)
	}

	// Permanent and data errors are not retried.
	for _, e := range []error{errors.New("bad config"), DataError(errors.New("bad row"))} {
		f = &flaky{n: 1, err: e}
		if err := g.Do(context.Background(), "write", f.call); !errors.Is(err, e) || f.calls != 1 {
			t.Fatalf("calls %d: %v", f.calls, err)
		}
	}
}

// TestGuardBreakerTakesOver: when retries are exhausted the breaker opens
// and the call waits for half-open trials (backpressure) instead of
// failing; it succeeds when the connector comes back.
func TestGuardBreakerTakesOver(t *testing.T) {
	clock := newFakeClock()
	var st FaultStats
	g := NewGuard("sink test", RetryPolicy{MaxRetries: 2, InitialDelay: 10 * time.Millisecond, MaxDelay: time.Second, Multiplier: 2},
		BreakerConfig{FailureThreshold: 100, FailureWindow: time.Minute, OpenTimeout: 30 * time.Second, HalfOpenCalls: 1}, clock)
	g.Bind(&st)
	f := &flaky{n: 5, err: Transient(errors.New("down"))}
	var states []BreakerState
	call := func(ctx context.Context) error {
		states = append(states, g.BreakerState())
		return f.call(ctx)
	}
	if err := g.Do(context.Background(), "write", call); err != nil {
		t.Fatal(err)
	}
	// 3 calls (2 retries), then the breaker trips: two failed trials 30s
	// apart, then a successful one.
	if got := fmt.Sprint(states); got != "[closed closed closed half_open half_open half_open]" {
		t.Fatalf("states at each call %s", got)
	}
	if got := fmt.Sprint(clock.slept()); got != "[10ms 20ms 30s 30s 30s]" {
		t.Fatalf("waits %s", got)
	}
	if st.Breaker() != BreakerClosed || st.RetriesTotal.Load() != 5 {
		t.Fatalf("state %s, retries %d", st.Breaker(), st.RetriesTotal.Load())
	}

	// retry_with_backoff-like handler: the exhausted failure is handed over.
	f = &flaky{n: 100, err: Transient(errors.New("down"))}
	handled := 0
	err := g.DoElse(context.Background(), "write", f.call, func(_ context.Context, cause error) (bool, error) {
		handled++
		return true, nil
	})
	if err != nil || handled != 1 || f.calls != 3 {
		t.Fatalf("err %v, handled %d, calls %d", err, handled, f.calls)
	}

	// breaker_max_open: the call fails once the outage is too long.
	g = NewGuard("source test", RetryPolicy{MaxRetries: 1, InitialDelay: time.Millisecond},
		BreakerConfig{FailureThreshold: 5, FailureWindow: time.Minute, OpenTimeout: 10 * time.Second, MaxOpen: time.Minute}, clock)
	f = &flaky{n: 1000, err: Transient(errors.New("down"))}
	err = g.Do(context.Background(), "read", f.call)
	if !errors.Is(err, ErrBreakerOpen) || Classify(err) != ClassPermanent {
		t.Fatalf("got %v", err)
	}
	if f.calls != 8 { // 2 before the trip, then one trial every 10s for 60s
		t.Fatalf("%d calls", f.calls)
	}
}
