package arrowexec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// RetryPolicy says how a connector retries a call that failed with a
// transient error: up to MaxRetries times, waiting InitialDelay before the
// first retry and Multiplier times longer before each next one, at most
// MaxDelay, each wait spread by ±Jitter (a fraction) so that many clients
// do not retry in step. It is read from the WITH options max_retries,
// initial_delay, max_delay, multiplier and jitter of a source or sink.
type RetryPolicy struct {
	MaxRetries   int
	InitialDelay time.Duration
	MaxDelay     time.Duration
	Multiplier   float64
	Jitter       float64
}

// DefaultRetryPolicy: 3 retries after 100ms, 200ms, 400ms (±20%), at most
// 10s apart.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 3, InitialDelay: 100 * time.Millisecond, MaxDelay: 10 * time.Second, Multiplier: 2, Jitter: 0.2}
}

// Backoff is the wait before retry number n (1 for the first retry); u is
// a uniform random number in [0, 1) that spreads it by ±Jitter. The wait
// before jitter is min(InitialDelay × Multiplier^(n-1), MaxDelay).
func (p RetryPolicy) Backoff(n int, u float64) time.Duration {
	d := float64(p.InitialDelay)
	for i := 1; i < n && d < float64(p.MaxDelay); i++ {
		d *= max(p.Multiplier, 1)
	}
	if p.MaxDelay > 0 {
		d = min(d, float64(p.MaxDelay))
	}
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*u-1)
	}
	return time.Duration(max(d, 0))
}

// Clock is the time source of retries and circuit breakers, injected so
// tests can use a fake one. Implementations are safe for concurrent use.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or returns ctx.Err() when ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the wall clock.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Guard runs the calls of one connector (a sink's writes and flushes, a
// source's reads and commits) with retries and a circuit breaker:
//
//   - a call that succeeds closes a half-open breaker;
//   - a call failing with a permanent or data error is returned at once
//     (the caller fails the query, or handles the record);
//   - a call failing with a transient error counts as a breaker failure and
//     is retried after the policy's backoff, up to MaxRetries times;
//   - when the retries are exhausted the breaker is tripped open, unless
//     DoElse's handler takes the failure (retry_with_backoff dead-letters a
//     sink's batch). The call is then tried again each time the breaker
//     lets a trial call through (after open_timeout), and meanwhile Do
//     blocks: the pipeline backpressures, nothing is dropped. Do gives up
//     only when the breaker stays open longer than breaker_max_open
//     (ErrBreakerOpen) or ctx ends.
//
// A Guard is safe for concurrent use (a source's reads and its commits run
// on different goroutines); Stats may be set before first use only.
type Guard struct {
	Name    string // the connector, for errors: "sink kafka", "source trades"
	Retry   RetryPolicy
	Breaker *Breaker    // nil: no breaker (retries only, then the error)
	Clock   Clock       // nil: SystemClock
	Stats   *FaultStats // RetriesTotal is counted here (may be nil); see Bind

	retries atomic.Int64 // also counted when Stats is nil
}

// NewGuard returns a Guard with the policy and a breaker built from cfg
// (no breaker when cfg.FailureThreshold is 0).
func NewGuard(name string, retry RetryPolicy, cfg BreakerConfig, clock Clock) *Guard {
	g := &Guard{Name: name, Retry: retry, Clock: clock}
	if cfg.FailureThreshold > 0 {
		g.Breaker = NewBreaker(cfg, clock)
	}
	return g
}

// Bind makes the guard count its retries in st and mirror its breaker's
// state there. Call it before the guard is used.
func (g *Guard) Bind(st *FaultStats) {
	g.Stats = st
	if g.Breaker != nil {
		g.Breaker.Mirror(&st.BreakerState)
	}
}

func (g *Guard) clock() Clock {
	if g.Clock == nil {
		return SystemClock
	}
	return g.Clock
}

// Retries is the number of retries so far.
func (g *Guard) Retries() int64 { return g.retries.Load() }

// BreakerState is the breaker's state (closed without a breaker).
func (g *Guard) BreakerState() BreakerState {
	if g.Breaker == nil {
		return BreakerClosed
	}
	return g.Breaker.State()
}

func (g *Guard) countRetry() {
	g.retries.Add(1)
	if g.Stats != nil {
		g.Stats.RetriesTotal.Add(1)
	}
}

// Do runs call under the guard (see Guard). what names the call in errors
// ("write", "flush", "read", "commit").
func (g *Guard) Do(ctx context.Context, what string, call func(context.Context) error) error {
	return g.DoElse(ctx, what, call, nil)
}

// DoElse is Do with a handler offered each transient failure whose
// retries are exhausted: handled = true ends the call with err (nil: the
// call is given up and skipped, e.g. its rows were dead-lettered).
func (g *Guard) DoElse(ctx context.Context, what string, call func(context.Context) error,
	exhausted func(ctx context.Context, cause error) (handled bool, err error)) error {
	clock := g.clock()
	retry := 0
	for {
		if g.Breaker != nil {
			if err := g.Breaker.Wait(ctx); err != nil {
				return fmt.Errorf("%s %s: %w", g.Name, what, err)
			}
		}
		err := call(ctx)
		if err == nil {
			if g.Breaker != nil {
				g.Breaker.Success()
			}
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if Classify(err) != ClassTransient {
			if g.Breaker != nil {
				g.Breaker.Release() // a trial call that did not fail transiently
			}
			return err
		}
		if g.Breaker != nil {
			g.Breaker.Failure()
		}
		if retry >= g.Retry.MaxRetries {
			if exhausted != nil {
				if handled, herr := exhausted(ctx, err); handled {
					return herr
				}
			}
			if g.Breaker == nil {
				return fmt.Errorf("%s %s failed after %d retries: %w", g.Name, what, retry, err)
			}
			// Exhausted: the connector is down. Let the breaker pace the
			// next attempts (open_timeout apart); the pipeline waits.
			g.Breaker.Trip()
			g.countRetry()
			continue
		}
		retry++
		g.countRetry()
		if err := clock.Sleep(ctx, g.Retry.Backoff(retry, rand.Float64())); err != nil {
			return err
		}
	}
}
