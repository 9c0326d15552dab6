package arrowexec

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock whose Sleep advances its time at once (and records
// the sleeps), so breaker and retry timing is tested without waiting.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.advance(d)
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func TestBreakerStateMachine(t *testing.T) {
	clock := newFakeClock()
	var mirror atomic.Int32
	b := NewBreaker(BreakerConfig{FailureThreshold: 3, FailureWindow: 10 * time.Second,
		OpenTimeout: 5 * time.Second, HalfOpenCalls: 2}, clock)
	b.Mirror(&mirror)
	state := func(want BreakerState) {
		t.Helper()
		if got := b.State(); got != want {
			t.Fatalf("state %s, want %s", got, want)
		}
		if got := BreakerState(mirror.Load()); got != want {
			t.Fatalf("mirrored state %s, want %s", got, want)
		}
	}
	allow := func(want bool) time.Duration {
		t.Helper()
		ok, wait := b.Allow()
		if ok != want {
			t.Fatalf("Allow = %v, want %v (state %s)", ok, want, b.State())
		}
		return wait
	}

	// Failures older than the window do not count.
	b.Failure()
	b.Failure()
	clock.advance(11 * time.Second)
	b.Failure()
	state(BreakerClosed)
	allow(true)
	b.Failure()
	state(BreakerClosed)
	b.Failure() // three within 10s
	state(BreakerOpen)

	// Open: calls wait for the open timeout.
	if wait := allow(false); wait != 5*time.Second {
		t.Fatalf("wait %v, want 5s", wait)
	}
	clock.advance(4 * time.Second)
	if wait := allow(false); wait != time.Second {
		t.Fatalf("wait %v, want 1s", wait)
	}

	// Half-open: two trial calls, then callers poll.
	clock.advance(time.Second)
	allow(true)
	state(BreakerHalfOpen)
	allow(true)
	if wait := allow(false); wait != halfOpenPoll {
		t.Fatalf("wait %v, want %v", wait, halfOpenPoll)
	}
	b.Success()
	state(BreakerHalfOpen) // one of two trials succeeded
	b.Success()
	state(BreakerClosed)

	// A failed trial opens it again, for a full open timeout.
	b.Failure()
	b.Failure()
	b.Failure()
	state(BreakerOpen)
	clock.advance(5 * time.Second)
	allow(true)
	b.Failure()
	state(BreakerOpen)
	if wait := allow(false); wait != 5*time.Second {
		t.Fatalf("wait after a failed trial %v, want 5s", wait)
	}

	// A trial ending with a permanent error frees its slot.
	clock.advance(5 * time.Second)
	allow(true)
	allow(true)
	allow(false)
	b.Release()
	allow(true)
	state(BreakerHalfOpen)

	// Trip opens a closed breaker at once.
	b.Success()
	b.Success()
	state(BreakerClosed)
	b.Trip()
	state(BreakerOpen)
}

func TestBreakerWait(t *testing.T) {
	clock := newFakeClock()
	b := NewBreaker(BreakerConfig{FailureThreshold: 1, FailureWindow: time.Minute, OpenTimeout: 30 * time.Second}, clock)
	b.Failure()
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clock.slept(); len(got) != 1 || got[0] != 30*time.Second {
		t.Fatalf("slept %v, want [30s]", got)
	}
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %s after waiting", b.State())
	}

	// breaker_max_open: waiting gives up once the outage is that long.
	clock = newFakeClock()
	b = NewBreaker(BreakerConfig{FailureThreshold: 1, FailureWindow: time.Minute, OpenTimeout: 30 * time.Second, MaxOpen: 45 * time.Second}, clock)
	b.Failure()
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Failure() // the trial fails: open for 30s more, 60s in all
	err := b.Wait(context.Background())
	if !errors.Is(err, ErrBreakerOpen) || Classify(err) != ClassPermanent {
		t.Fatalf("got %v, want ErrBreakerOpen (permanent)", err)
	}
	if got := clock.Now().Sub(time.Unix(1_700_000_000, 0)); got != 45*time.Second {
		t.Fatalf("gave up after %v, want 45s", got)
	}

	// A cancelled context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b = NewBreaker(BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Hour}, nil)
	b.Failure()
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestBreakerConcurrent exercises the breaker from several goroutines
// (run with -race).
func TestBreakerConcurrent(t *testing.T) {
	b := NewBreaker(BreakerConfig{FailureThreshold: 3, FailureWindow: time.Second, OpenTimeout: time.Millisecond, HalfOpenCalls: 2}, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := b.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
				if (i+g)%3 == 0 {
					b.Failure()
				} else {
					b.Success()
				}
				_ = b.State()
			}
		}()
	}
	wg.Wait()
}
