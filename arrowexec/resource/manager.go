// Package resource accounts memory for the engine. A Manager wraps an Arrow
// memory.Allocator: every query gets its own Allocator whose allocations are
// counted per query and globally, and stateful operators reserve memory
// before retaining batches. The global limit (max_memory_mb) is enforced on
// both paths.
package resource

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

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
}

// Error does not repeat the query name: the engine prefixes every query
// error with it.
func (e *LimitError) Error() string {
	return fmt.Sprintf("%v: requested %d bytes with %d in use of %d (max_memory_mb)", ErrMemoryLimit, e.Requested, e.Used, e.Limit)
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
}

// NewManager returns a Manager allocating from base (memory.DefaultAllocator
// when nil) with a global limit in bytes (0: unlimited).
func NewManager(base memory.Allocator, limitBytes int64) *Manager {
	if base == nil {
		base = memory.DefaultAllocator
	}
	return &Manager{base: base, limit: limitBytes, queries: map[string]*Allocator{}}
}

// Limit is the global limit in bytes (0: unlimited).
func (m *Manager) Limit() int64 { return m.limit }

// Used is the number of bytes allocated or reserved by all queries.
func (m *Manager) Used() int64 { return m.used.Load() }

// Peak is the largest value Used has had.
func (m *Manager) Peak() int64 { return m.peak.Load() }

// Query returns the allocator of the named query, creating it on first use.
func (m *Manager) Query(name string) *Allocator {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.queries[name]
	if !ok {
		a = &Allocator{m: m, name: name}
		m.queries[name] = a
	}
	return a
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
		return &LimitError{Query: query, Requested: n, Used: used - n, Limit: m.limit}
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
// *LimitError when the global limit would be passed; the query driver
// recovers it (see Recover) and fails only that query. It is safe for
// concurrent use.
type Allocator struct {
	m         *Manager
	name      string
	allocated atomic.Int64
	reserved  atomic.Int64
}

var _ memory.Allocator = (*Allocator)(nil)

// Allocate implements memory.Allocator.
func (a *Allocator) Allocate(size int) []byte {
	if err := a.m.grow(a.name, int64(size), true); err != nil {
		panic(err)
	}
	a.allocated.Add(int64(size))
	return a.m.base.Allocate(size)
}

// Reallocate implements memory.Allocator.
func (a *Allocator) Reallocate(size int, b []byte) []byte {
	delta := int64(size - len(b))
	if err := a.m.grow(a.name, delta, true); err != nil {
		panic(err)
	}
	a.allocated.Add(delta)
	return a.m.base.Reallocate(size, b)
}

// Free implements memory.Allocator.
func (a *Allocator) Free(b []byte) {
	n := int64(len(b))
	a.allocated.Add(-n)
	a.m.used.Add(-n)
	a.m.base.Free(b)
}

// Allocated is the query's live allocated bytes.
func (a *Allocator) Allocated() int64 { return a.allocated.Load() }

// Reserved is the query's reserved bytes.
func (a *Allocator) Reserved() int64 { return a.reserved.Load() }

// Reserve accounts n bytes of state the caller is about to retain. It returns
// an error wrapping ErrMemoryLimit, and reserves nothing, when that would
// pass the limit. The holder of the state reserves, not its producer.
func (a *Allocator) Reserve(n int64) error {
	if err := a.m.grow(a.name, n, true); err != nil {
		return err
	}
	a.reserved.Add(n)
	return nil
}

// Unreserve returns n reserved bytes.
func (a *Allocator) Unreserve(n int64) {
	a.reserved.Add(-n)
	a.m.used.Add(-n)
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
