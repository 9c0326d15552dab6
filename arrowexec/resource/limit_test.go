package resource

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestQueryLimit: a query's own limit (max_query_memory_mb) fails its
// reservations and allocations, naming the setting, while other queries
// and the global budget are unaffected.
func TestQueryLimit(t *testing.T) {
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer checked.AssertSize(t, 0)
	m := NewManager(checked, 1<<20)
	a, b := m.Query("a"), m.Query("b")
	a.SetLimit(1000)
	if err := a.Reserve(900); err != nil {
		t.Fatal(err)
	}
	if p := a.Pressure(); p < 0.89 || p > 0.91 {
		t.Fatalf("pressure %v", p)
	}
	err := a.Reserve(200)
	var le *LimitError
	if !errors.Is(err, ErrMemoryLimit) || !errors.As(err, &le) || le.Setting != "max_query_memory_mb" || le.Limit != 1000 || le.Used != 900 {
		t.Fatalf("got %v", err)
	}
	if err := b.Reserve(5000); err != nil { // b has no limit of its own
		t.Fatal(err)
	}
	b.Unreserve(5000)

	// Allocation past the query limit panics with the LimitError, which
	// Recover turns into the query's error.
	func() (err error) {
		defer func() {
			if !errors.Is(err, ErrMemoryLimit) {
				t.Errorf("allocation past the query limit: %v", err)
			}
		}()
		defer Recover(&err)
		bld := array.NewInt64Builder(a)
		defer bld.Release()
		bld.AppendValues(make([]int64, 100), nil)
		return nil
	}()
	a.Unreserve(900)
	if m.Used() != 0 {
		t.Fatalf("%d bytes still accounted", m.Used())
	}
	if err := a.Reserve(200); err != nil {
		t.Fatal(err)
	}
	a.Unreserve(200)
}

// TestReserveWaitsForMemory: with a wait bound, a reservation past the
// limit waits until another goroutine releases memory (backpressure), and
// fails with ErrMemoryLimit only when none is released in time.
func TestReserveWaitsForMemory(t *testing.T) {
	m := NewManager(nil, 1000)
	holder, waiter := m.Query("holder"), m.Query("waiter")
	waiter.SetWait(5 * time.Second)
	if err := holder.Reserve(800); err != nil {
		t.Fatal(err)
	}
	if p := m.Pressure(); p != 0.8 {
		t.Fatalf("pressure %v", p)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		holder.Unreserve(800)
	}()
	start := time.Now()
	if err := waiter.Reserve(500); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("reserved after %v, before the memory was released", d)
	}
	wg.Wait()

	waiter.SetWait(30 * time.Millisecond)
	start = time.Now()
	err := waiter.Reserve(600)
	if d := time.Since(start); !errors.Is(err, ErrMemoryLimit) || d < 30*time.Millisecond || d > 2*time.Second {
		t.Fatalf("after %v: %v", d, err)
	}
	waiter.Unreserve(500)
	if m.Used() != 0 {
		t.Fatalf("%d bytes still accounted", m.Used())
	}
}

// TestGroupLimit: a group's limit (a pipeline's max_memory_mb) bounds its
// queries together, allocations and reservations alike, within the global
// limit; queries outside the group are unaffected, and memory returned to
// the group can be taken again.
func TestGroupLimit(t *testing.T) {
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer checked.AssertSize(t, 0)
	m := NewManager(checked, 10000)
	early := m.Query("p/early") // created before the limit: joins the group
	if err := early.Reserve(100); err != nil {
		t.Fatal(err)
	}
	m.SetGroupLimit("p/", 1000)
	a, b, other := m.Query("p/a"), m.Query("p/source:s"), m.Query("q/a")
	if err := a.Reserve(500); err != nil {
		t.Fatal(err)
	}
	buf := b.Allocate(300) // 900 of 1000 in the group
	err := b.Reserve(200)
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrMemoryLimit) || le.Setting != "max_memory_mb of p" || le.Limit != 1000 || le.Used != 900 {
		t.Fatalf("past the group limit: %v", err)
	}
	if err := other.Reserve(5000); err != nil {
		t.Fatal(err)
	}
	// The global limit still applies to the group: 900 + 5000 in use.
	m.SetGroupLimit("p/", 0)
	if err := a.Reserve(4200); !errors.As(err, &le) || le.Setting != "max_memory_mb" {
		t.Fatalf("past the global limit: %v", err)
	}
	m.SetGroupLimit("p/", 1000)
	b.Free(buf)
	if err := b.Reserve(400); err != nil { // 600 in the group
		t.Fatal(err)
	}
	a.Unreserve(500)
	b.Unreserve(400)
	early.Unreserve(100)
	other.Unreserve(5000)
	if m.Used() != 0 {
		t.Fatalf("%d bytes still accounted", m.Used())
	}
}
