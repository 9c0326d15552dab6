// Package resource accounts memory for the engine. A Manager wraps an Arrow
// memory.Allocator: every query gets its own Allocator whose allocations are
// counted per query and globally, and stateful operators reserve memory
// before retaining batches. The global limit (max_memory_mb) and each
// query's own limit (max_query_memory_mb, SetLimit) are enforced on both
// paths. An allocation or reservation that would pass a limit waits (at
// most the allocator's SetWait bound) for memory to be released by other
// goroutines (readers releasing batches, other queries) before failing
// with ErrMemoryLimit: backpressure first, then the failure of that query
// only.
package resource

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrMemoryLimit is wrapped by every error caused by the memory limit.
var ErrMemoryLimit = errors.New("memory limit exceeded")

// LimitError reports which query hit the limit and by how much.
type LimitError struct {
	Query     string
	Requested int64
	Used      int64
	Limit     int64
	// Setting names the limit: "max_memory_mb" (global),
	// "max_query_memory_mb" (the query's own) or "max_memory_mb of
	// <group>" (a group's, see SetGroupLimit).
	Setting string
}

// Error does not repeat the query name: the engine prefixes every query
// error with it.
func (e *LimitError) Error() string {
	setting := e.Setting
	if setting == "" {
		setting = "max_memory_mb"
	}
	return fmt.Sprintf("%v: requested %d bytes with %d in use of %d (%s)", ErrMemoryLimit, e.Requested, e.Used, e.Limit, setting)
}

func (e *LimitError) Unwrap() error { return ErrMemoryLimit }

// Manager accounts memory globally and per query. It is safe for concurrent
// use. A limit of 0 means unlimited.
type Manager struct {
	base  memory.Allocator
	limit int64
	used  atomic.Int64 // allocated + reserved bytes, all queries
	peak  atomic.Int64

	mu      sync.Mutex
	queries map[string]*Allocator
	groups  map[string]*group
}

// group is the shared limit of the queries whose names start with prefix.
type group struct {
	prefix string
	limit  atomic.Int64 // bytes; 0: none
	used   atomic.Int64 // allocated + reserved bytes of its queries
}

// NewManager returns a Manager allocating from base (memory.DefaultAllocator
// when nil) with a global limit in bytes (0: unlimited).
func NewManager(base memory.Allocator, limitBytes int64) *Manager {
	if base == nil {
		base = memory.DefaultAllocator
	}
	return &Manager{base: base, limit: limitBytes, queries: map[string]*Allocator{}, groups: map[string]*group{}}
}

// Limit is the global limit in bytes (0: unlimited).
func (m *Manager) Limit() int64 { return m.limit }

// Used is the number of bytes allocated or reserved by all queries.
func (m *Manager) Used() int64 { return m.used.Load() }

// Peak is the largest value Used has had.
func (m *Manager) Peak() int64 { return m.peak.Load() }

// Pressure is Used as a fraction of the global limit (0 when unlimited).
func (m *Manager) Pressure() float64 {
	if m.limit <= 0 {
		return 0
	}
	return float64(m.used.Load()) / float64(m.limit)
}

// Query returns the allocator of the named query, creating it on first use.
func (m *Manager) Query(name string) *Allocator {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.queries[name]
	if !ok {
		a = &Allocator{m: m, name: name}
		for _, g := range m.groups {
			if strings.HasPrefix(name, g.prefix) {
				a.group.Store(g)
			}
		}
		m.queries[name] = a
	}
	return a
}

// SetGroupLimit bounds the memory (allocated plus reserved bytes) of all
// the queries whose names start with prefix, together, to bytes (0: none),
// within the global limit: e.g. a pipeline's queries and sources sharing a
// name prefix. Call it before the group's queries allocate; calling it
// again changes the limit. Prefixes must not be prefixes of each other.
func (m *Manager) SetGroupLimit(prefix string, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[prefix]
	if !ok {
		g = &group{prefix: prefix}
		m.groups[prefix] = g
		for name, a := range m.queries {
			if strings.HasPrefix(name, prefix) {
				a.group.Store(g)
				g.used.Add(a.allocated.Load() + a.reserved.Load())
			}
		}
	}
	g.limit.Store(max(bytes, 0))
}

// Usage is a snapshot of one query's accounting.
type Usage struct {
	Query     string
	Allocated int64 // live bytes from the query's Allocator
	Reserved  int64 // bytes reserved by stateful operators
}

// Snapshot returns per-query usage sorted by query name.
func (m *Manager) Snapshot() []Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Usage, 0, len(m.queries))
	for _, a := range m.queries {
		out = append(out, Usage{Query: a.name, Allocated: a.allocated.Load(), Reserved: a.reserved.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Query < out[j].Query })
	return out
}

// grow adds n bytes to the global count, failing if that passes the limit.
func (m *Manager) grow(query string, n int64, enforce bool) error {
	used := m.used.Add(n)
	if enforce && m.limit > 0 && n > 0 && used > m.limit {
		m.used.Add(-n)
		return &LimitError{Query: query, Requested: n, Used: used - n, Limit: m.limit, Setting: "max_memory_mb"}
	}
	for {
		p := m.peak.Load()
		if used <= p || m.peak.CompareAndSwap(p, used) {
			break
		}
	}
	return nil
}

// Allocator is a query's memory.Allocator. Allocate panics with a
// *LimitError when the global limit or the query's own would be passed
// (after waiting, see SetWait); the query driver recovers it (see Recover)
// and fails only that query. It is safe for concurrent use.
type Allocator struct {
	m         *Manager
	name      string
	allocated atomic.Int64
	reserved  atomic.Int64
	limit     atomic.Int64 // the query's own limit in bytes; 0: none
	wait      atomic.Int64 // nanoseconds to wait for memory before failing
	group     atomic.Pointer[group]
}

// SetLimit sets the query's own limit in bytes (max_query_memory_mb; 0:
// none), on top of the global one. Allocated plus reserved bytes count.
func (a *Allocator) SetLimit(bytes int64) { a.limit.Store(max(bytes, 0)) }

// Limit is the query's own limit in bytes (0: none).
func (a *Allocator) Limit() int64 { return a.limit.Load() }

// SetWait sets how long an allocation or reservation that would pass a
// limit waits for memory to be released before failing (memory_wait_ms;
// 0: fail at once).
func (a *Allocator) SetWait(d time.Duration) { a.wait.Store(int64(max(d, 0))) }

// Pressure is the query's use (allocated plus reserved) as a fraction of
// its own limit (0 without one).
func (a *Allocator) Pressure() float64 {
	lim := a.limit.Load()
	if lim <= 0 {
		return 0
	}
	return float64(a.allocated.Load()+a.reserved.Load()) / float64(lim)
}

// grow accounts n more bytes against the query's limit and the global
// one. When that would pass a limit it waits, polling, up to the wait
// bound for memory to be released, then returns the *LimitError.
func (a *Allocator) grow(n int64) error {
	err := a.tryGrow(n)
	wait := time.Duration(a.wait.Load())
	if err == nil || wait <= 0 {
		return err
	}
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for time.Now().Before(deadline) {
		time.Sleep(min(pause, time.Until(deadline)))
		pause = min(2*pause, 20*time.Millisecond)
		if err = a.tryGrow(n); err == nil {
			return nil
		}
	}
	return err
}

func (a *Allocator) tryGrow(n int64) error {
	if lim := a.limit.Load(); lim > 0 && n > 0 {
		if used := a.allocated.Load() + a.reserved.Load(); used+n > lim {
			return &LimitError{Query: a.name, Requested: n, Used: used, Limit: lim, Setting: "max_query_memory_mb"}
		}
	}
	g := a.group.Load()
	if g != nil {
		used := g.used.Add(n)
		if lim := g.limit.Load(); lim > 0 && n > 0 && used > lim {
			g.used.Add(-n)
			return &LimitError{Query: a.name, Requested: n, Used: used - n, Limit: lim,
				Setting: "max_memory_mb of " + strings.TrimSuffix(g.prefix, "/")}
		}
	}
	err := a.m.grow(a.name, n, true)
	if err != nil && g != nil {
		g.used.Add(-n)
	}
	return err
}

// shrink returns n bytes to the query's group and the global count.
func (a *Allocator) shrink(n int64) {
	if g := a.group.Load(); g != nil {
		g.used.Add(-n)
	}
	a.m.used.Add(-n)
}

var _ memory.Allocator = (*Allocator)(nil)

// Allocate implements memory.Allocator.
func (a *Allocator) Allocate(size int) []byte {
	if err := a.grow(int64(size)); err != nil {
		panic(err)
	}
	a.allocated.Add(int64(size))
	return a.m.base.Allocate(size)
}

// Reallocate implements memory.Allocator.
func (a *Allocator) Reallocate(size int, b []byte) []byte {
	delta := int64(size - len(b))
	if err := a.grow(delta); err != nil {
		panic(err)
	}
	a.allocated.Add(delta)
	return a.m.base.Reallocate(size, b)
}

// Free implements memory.Allocator.
func (a *Allocator) Free(b []byte) {
	n := int64(len(b))
	a.allocated.Add(-n)
	a.shrink(n)
	a.m.base.Free(b)
}

// Allocated is the query's live allocated bytes.
func (a *Allocator) Allocated() int64 { return a.allocated.Load() }

// Reserved is the query's reserved bytes.
func (a *Allocator) Reserved() int64 { return a.reserved.Load() }

// Reserve accounts n bytes of state the caller is about to retain. When
// that would pass a limit it waits (see SetWait) for memory to be
// released, then returns an error wrapping ErrMemoryLimit and reserves
// nothing. The holder of the state reserves, not its producer.
func (a *Allocator) Reserve(n int64) error {
	if err := a.grow(n); err != nil {
		return err
	}
	a.reserved.Add(n)
	return nil
}

// Unreserve returns n reserved bytes.
func (a *Allocator) Unreserve(n int64) {
	a.reserved.Add(-n)
	a.shrink(n)
}

// Recover turns a *LimitError panic raised by Allocate into an error stored
// in *err. Use it as `defer resource.Recover(&err)` at the top of the
// goroutine that drives a query; other panics are re-raised.
func Recover(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if le, ok := r.(*LimitError); ok {
		*err = le
		return
	}
	panic(r)
}
