package arrowexec

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// BreakerConfig configures a circuit breaker (WITH options of a source or
// sink: failure_threshold, failure_window, open_timeout, half_open_calls,
// breaker_max_open).
type BreakerConfig struct {
	// FailureThreshold transient failures within FailureWindow open the
	// breaker; 0 means no breaker.
	FailureThreshold int
	FailureWindow    time.Duration
	// OpenTimeout is how long the breaker stays open before letting trial
	// calls through (half-open).
	OpenTimeout time.Duration
	// HalfOpenCalls trial calls are let through while half-open; the
	// breaker closes once that many have succeeded and opens again at the
	// first that fails.
	HalfOpenCalls int
	// MaxOpen, when positive, is how long an outage (from the breaker
	// opening until it closes again) may last before waiting calls give
	// up with ErrBreakerOpen, failing the query. 0: wait forever.
	MaxOpen time.Duration
}

// DefaultBreakerConfig: open after 5 failures within 60s, half-open after
// 30s with 1 trial call, never give up.
func DefaultBreakerConfig() BreakerConfig {
	return BreakerConfig{FailureThreshold: 5, FailureWindow: time.Minute, OpenTimeout: 30 * time.Second, HalfOpenCalls: 1}
}

// halfOpenPoll is how often a call waits for a trial slot while half-open.
const halfOpenPoll = 5 * time.Millisecond

// Breaker is a circuit breaker: closed (calls go through) → open after
// FailureThreshold failures within FailureWindow (calls wait) → half-open
// after OpenTimeout (HalfOpenCalls trial calls go through) → closed when
// they succeed, or open again when one fails. Callers call Wait before a
// call, then Success, Failure or Release after it. It is safe for
// concurrent use.
type Breaker struct {
	cfg   BreakerConfig
	clock Clock

	st     atomic.Int32  // BreakerState, for lock-free reads
	mirror *atomic.Int32 // a stats field kept equal to st (may be nil)

	mu        sync.Mutex
	state     BreakerState
	failures  []time.Time // closed: failure times within the window
	openedAt  time.Time
	downSince time.Time // when the current outage began; zero while closed
	trials    int       // half-open: trial calls admitted and not finished
	successes int       // half-open: trial calls that succeeded
}

// NewBreaker returns a closed breaker; clock nil means SystemClock.
func NewBreaker(cfg BreakerConfig, clock Clock) *Breaker {
	if clock == nil {
		clock = SystemClock
	}
	cfg.HalfOpenCalls = max(cfg.HalfOpenCalls, 1)
	return &Breaker{cfg: cfg, clock: clock}
}

// Mirror makes the breaker keep st equal to its state (a FaultStats field
// read by metrics). Call it before the breaker is used.
func (b *Breaker) Mirror(st *atomic.Int32) {
	b.mirror = st
	st.Store(b.st.Load())
}

// State returns the current state. An open breaker whose OpenTimeout has
// passed reports open until the next call turns it half-open.
func (b *Breaker) State() BreakerState { return BreakerState(b.st.Load()) }

// Config returns the breaker's configuration.
func (b *Breaker) Config() BreakerConfig { return b.cfg }

func (b *Breaker) setLocked(s BreakerState) {
	b.state = s
	b.st.Store(int32(s))
	if b.mirror != nil {
		b.mirror.Store(int32(s))
	}
}

func (b *Breaker) openLocked(now time.Time) {
	b.setLocked(BreakerOpen)
	b.openedAt = now
	if b.downSince.IsZero() {
		b.downSince = now
	}
	b.failures = b.failures[:0]
	b.trials, b.successes = 0, 0
}

// Allow reports whether a call may go now; when not, wait is how long
// until it may be worth asking again. While half-open it admits up to
// HalfOpenCalls calls.
func (b *Breaker) Allow() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	if b.state == BreakerOpen {
		reopen := b.openedAt.Add(b.cfg.OpenTimeout)
		if now.Before(reopen) {
			return false, reopen.Sub(now)
		}
		b.setLocked(BreakerHalfOpen)
		b.trials, b.successes = 0, 0
	}
	if b.state == BreakerHalfOpen {
		if b.trials >= b.cfg.HalfOpenCalls {
			return false, halfOpenPoll
		}
		b.trials++
	}
	return true, 0
}

// Wait blocks until a call may go (see Allow). It returns ctx.Err() when
// ctx ends first, and an error wrapping ErrBreakerOpen when the outage
// has lasted longer than MaxOpen.
func (b *Breaker) Wait(ctx context.Context) error {
	for {
		ok, wait := b.Allow()
		if ok {
			return nil
		}
		if b.cfg.MaxOpen > 0 {
			b.mu.Lock()
			since := b.downSince
			b.mu.Unlock()
			if !since.IsZero() {
				left := since.Add(b.cfg.MaxOpen).Sub(b.clock.Now())
				if left <= 0 {
					return fmt.Errorf("%w for longer than breaker_max_open (%s)", ErrBreakerOpen, b.cfg.MaxOpen)
				}
				wait = min(wait, left)
			}
		}
		if err := b.clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// Success records a call that succeeded.
func (b *Breaker) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != BreakerHalfOpen {
		return
	}
	b.trials = max(b.trials-1, 0)
	b.successes++
	if b.successes >= b.cfg.HalfOpenCalls {
		b.setLocked(BreakerClosed)
		b.failures = b.failures[:0]
		b.downSince = time.Time{}
		b.trials, b.successes = 0, 0
	}
}

// Failure records a call that failed with a transient error.
func (b *Breaker) Failure() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	switch b.state {
	case BreakerHalfOpen:
		b.openLocked(now)
	case BreakerClosed:
		cut := now.Add(-b.cfg.FailureWindow)
		n := 0
		for _, t := range b.failures {
			if t.After(cut) {
				b.failures[n] = t
				n++
			}
		}
		b.failures = append(b.failures[:n], now)
		if len(b.failures) >= b.cfg.FailureThreshold {
			b.openLocked(now)
		}
	}
}

// Trip opens a breaker that is not open (the retries of a call are
// exhausted: the connector is considered down).
func (b *Breaker) Trip() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != BreakerOpen {
		b.openLocked(b.clock.Now())
	}
}

// Release ends a call that neither succeeded nor failed transiently (a
// permanent or data error): a half-open trial slot is freed.
func (b *Breaker) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen {
		b.trials = max(b.trials-1, 0)
	}
}
