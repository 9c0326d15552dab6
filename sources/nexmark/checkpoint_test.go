package nexmark

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// build returns an unopened nexmark source.
func build(t *testing.T, mem memory.Allocator, name string, kv ...string) *source {
	t.Helper()
	o := arrowexec.Options{"connector": "nexmark"}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	k := map[string]Kind{"bids": KindBid, "auctions": KindAuction, "persons": KindPerson}[name]
	if v, ok := o["kind"]; ok {
		k = map[string]Kind{"bid": KindBid, "auction": KindAuction, "person": KindPerson}[v]
	}
	op, err := Factory()(arrowexec.SourceSpec{Name: name, Schema: schemaOf(k), Options: o, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	return op.(*source)
}

// readBatches reads up to n batches (fewer at io.EOF) and renders their
// rows as drain does.
func readBatches(t *testing.T, op arrowexec.Operator, n int) []string {
	t.Helper()
	var rows []string
	for range n {
		m, err := op.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = appendRows(rows, m)
		m.Release()
	}
	return rows
}

// TestCheckpointResume: the rows source A returns up to its position,
// followed by the rows of source B seeking there, are exactly the rows of
// one uninterrupted source, for positions at the start, inside the
// sequence and at its end, over kinds, batch sizes and out-of-order
// groups.
func TestCheckpointResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   []string
	}{
		{"bids", []string{"batch_size", "7"}},
		{"auctions", []string{"batch_size", "1"}},
		{"persons", []string{"batch_size", "13", "out_of_order_group_size", "5", "seed", "7"}},
	} {
		for _, stop := range []int{0, 1, 5, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, stop), func(t *testing.T) {
				mem := checked(t)
				kv := append([]string{"events", "3000"}, tc.kv...)
				ref := build(t, mem, tc.name, kv...)
				if err := ref.Open(context.Background()); err != nil {
					t.Fatal(err)
				}
				want := drain(t, ref, 1<<30)

				a := build(t, mem, tc.name, kv...)
				if err := a.Open(context.Background()); err != nil {
					t.Fatal(err)
				}
				got := readBatches(t, a, stop)
				pos, err := a.Position()
				if err != nil {
					t.Fatal(err)
				}
				a.Close()

				b := build(t, mem, tc.name, kv...)
				if err := b.Seek(pos); err != nil {
					t.Fatal(err)
				}
				if err := b.Open(context.Background()); err != nil {
					t.Fatal(err)
				}
				got = append(got, drain(t, b, 1<<30)...)
				if !slices.Equal(got, want) {
					t.Errorf("position %s: A+B returned %d rows, an uninterrupted source %d; first difference at row %d",
						pos, len(got), len(want), firstDiff(got, want))
				}
			})
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestCheckpointRate: with a rate, a restored source paces on from the
// saved event: it is due when the source starts, and the rest comes at the
// rate rather than in a burst.
func TestCheckpointRate(t *testing.T) {
	mem := checked(t)
	kv := []string{"events", "1200", "rate", "4000", "batch_size", "20", "linger_ms", "5"}
	ref := build(t, mem, "bids", kv...)
	if err := ref.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := drain(t, ref, 20)

	a := build(t, mem, "bids", kv...)
	if err := a.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := readBatches(t, a, 20)
	pos, err := a.Position()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		t.Fatal(err)
	}
	if p.Next < 400 || p.Next > 1000 {
		t.Fatalf("position %s: expected 20 batches of 20 bids to take 400..1000 events", pos)
	}
	time.Sleep(100 * time.Millisecond) // the source is down

	b := build(t, mem, "bids", kv...)
	if err := b.Seek(pos); err != nil {
		t.Fatal(err)
	}
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got = append(got, readBatches(t, b, 1)...)
	// Without the restored pacing, event p.Next would be due p.Next/4000
	// s (>= 100ms) after B started.
	if due := b.dueAt(p.Next); due.Before(start) || due.After(start.Add(30*time.Millisecond)) {
		t.Errorf("event %d due %v after B started; want when it started", p.Next, due.Sub(start))
	}
	got = append(got, drain(t, b, 20)...)
	el := time.Since(start)
	if min := time.Duration(1200-p.Next) * time.Second / 4000 / 2; el < min {
		t.Errorf("B took %v for %d events at 4000/s, want at least %v", el, 1200-p.Next, min)
	}
	if !slices.Equal(got, want) {
		t.Errorf("A+B returned %d rows, an uninterrupted source %d; first difference at row %d", len(got), len(want), firstDiff(got, want))
	}
}

// TestCheckpointSeekErrors: Seek refuses positions of another sequence.
func TestCheckpointSeekErrors(t *testing.T) {
	mem := checked(t)
	a := build(t, mem, "bids", "seed", "3")
	pos, err := a.Position()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"seed", "4"}, "seed 3, the source has 4"},
		{[]string{"seed", "3", "kind", "person"}, "kind bid"},
		{[]string{"seed", "3", "event_rate", "5"}, "event_rate"},
		{[]string{"seed", "3", "out_of_order_group_size", "5"}, "out_of_order_group_size"},
	} {
		name := "bids"
		if err := build(t, mem, name, tc.kv...).Seek(pos); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Seek = %v, want an error with %q", tc.kv, err, tc.want)
		}
	}
	if err := build(t, mem, "bids").Seek([]byte(`{"next":-1}`)); err == nil {
		t.Error("Seek to event -1 succeeded")
	}
}

// TestCheckpointPartialBatch: rows of a batch still being filled when Next
// failed (its context ended) are not in the position.
func TestCheckpointPartialBatch(t *testing.T) {
	mem := checked(t)
	a := build(t, mem, "bids", "rate", "2000", "batch_size", "1000", "linger_ms", "10000")
	if err := a.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v, want the context's deadline", err)
	}
	if a.rows == 0 || a.next == 0 {
		t.Fatalf("no partial batch (rows %d, next event %d)", a.rows, a.next)
	}
	pos, err := a.Position()
	if err != nil {
		t.Fatal(err)
	}
	var p position
	if err := json.Unmarshal(pos, &p); err != nil || p.Next != 0 {
		t.Errorf("position %s (%v), want event 0", pos, err)
	}
}
