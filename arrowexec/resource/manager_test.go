package resource

import (
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestManagerCountsPerQueryAndGlobally(t *testing.T) {
	checked := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer checked.AssertSize(t, 0)
	m := NewManager(checked, 0)
	a, b := m.Query("a"), m.Query("b")

	ba := array.NewInt64Builder(a)
	ba.AppendValues(make([]int64, 1000), nil)
	arr := ba.NewArray()
	ba.Release()
	bb := array.NewInt64Builder(b)
	bb.Append(1)
	arr2 := bb.NewArray()
	bb.Release()

	if a.Allocated() < 8000 {
		t.Fatalf("query a allocated %d, want >= 8000", a.Allocated())
	}
	if b.Allocated() <= 0 || b.Allocated() >= a.Allocated() {
		t.Fatalf("query b allocated %d, a %d", b.Allocated(), a.Allocated())
	}
	if got, want := m.Used(), a.Allocated()+b.Allocated(); got != want {
		t.Fatalf("global used %d, want %d", got, want)
	}
	arr.Release()
	arr2.Release()
	if m.Used() != 0 || a.Allocated() != 0 || b.Allocated() != 0 {
		t.Fatalf("after release: used=%d a=%d b=%d", m.Used(), a.Allocated(), b.Allocated())
	}
	if m.Peak() < 8000 {
		t.Fatalf("peak %d", m.Peak())
	}
}

func TestReserveEnforcesLimit(t *testing.T) {
	m := NewManager(memory.NewGoAllocator(), 1000)
	q := m.Query("q")
	if err := q.Reserve(600); err != nil {
		t.Fatal(err)
	}
	err := m.Query("other").Reserve(500)
	if !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("want ErrMemoryLimit, got %v", err)
	}
	var le *LimitError
	if !errors.As(err, &le) || le.Query != "other" || le.Used != 600 {
		t.Fatalf("bad limit error %#v", le)
	}
	if m.Used() != 600 {
		t.Fatalf("failed reservation leaked: used %d", m.Used())
	}
	q.Unreserve(600)
	if err := m.Query("other").Reserve(500); err != nil {
		t.Fatal(err)
	}
}

func TestAllocatePanicRecoveredAsLimitError(t *testing.T) {
	m := NewManager(memory.NewGoAllocator(), 4096)
	run := func() (err error) {
		defer Recover(&err)
		b := array.NewInt64Builder(m.Query("big"))
		defer b.Release()
		b.AppendValues(make([]int64, 10000), nil)
		return nil
	}
	if err := run(); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("want ErrMemoryLimit, got %v", err)
	}
}
