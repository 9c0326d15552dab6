package agg

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// ipcRoundTrip encodes rec as a checkpoint does (Arrow IPC with zstd),
// releases it and returns the decoded batch.
func ipcRoundTrip(t *testing.T, alloc memory.Allocator, rec arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()), ipc.WithZstd(), ipc.WithAllocator(alloc))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := ipc.NewReader(&buf, ipc.WithAllocator(alloc))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatalf("no batch decoded: %v", r.Err())
	}
	out := r.RecordBatch()
	out.Retain()
	return out
}

// restored returns a new table loaded from src's saved state.
func restored(t *testing.T, alloc memory.Allocator, src *Table, kt []arrow.DataType, specs []Spec) *Table {
	t.Helper()
	rec, err := src.SaveState(alloc)
	if err != nil {
		t.Fatal(err)
	}
	rec = ipcRoundTrip(t, alloc, rec)
	defer rec.Release()
	dst, err := NewTable(alloc, kt, specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.LoadState(rec); err != nil {
		dst.Release()
		t.Fatal(err)
	}
	return dst
}

// stateString renders everything observable of tb: its groups' results in
// id order and in first-seen order, the touched groups and its saved state
// (raw accumulators, sequence numbers, registers, DISTINCT sets).
func stateString(t *testing.T, alloc memory.Allocator, tb *Table) string {
	t.Helper()
	rec, err := tb.SaveState(alloc)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var sb strings.Builder
	fmt.Fprintf(&sb, "emit: %s\nfirst-seen: %s\ntouched: %v\nstate %v:\n", emitString(t, tb, nil),
		emitString(t, tb, tb.FirstSeenOrder()), tb.Touched(), rec.Schema().Metadata())
	for i, c := range rec.Columns() {
		fmt.Fprintf(&sb, "%s: %v\n", rec.Schema().Field(i).Name, c)
	}
	return sb.String()
}

// TestStateRoundTrip saves a table fed with random rows (every aggregate
// kind over every input type, DISTINCT included, every key layout, some
// groups combined), loads the state into a new table through Arrow IPC,
// and checks that the two then behave identically under further Update,
// Combine, ClearTouched and Merge: same results, order, touched groups
// and state, bit for bit.
func TestStateRoundTrip(t *testing.T) {
	for ki, kc := range keyConfigs {
		for _, bs := range []int{7, 500} {
			t.Run(fmt.Sprintf("%s/batch%d", kc.name, bs), func(t *testing.T) {
				alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer alloc.AssertSize(t, 0)
				f := newFeeder(t, alloc, uint64(ki*1000+bs), kc)
				defer f.tbl.Release()
				f.sliced = bs == 7
				kt := f.keyTypes()
				a := f.tbl
				var seq uint64
				feed := func(rows int, tables ...*Table) {
					if testing.Short() {
						rows /= 3
					}
					for done := 0; done < rows; done += bs {
						keys, inputs, _, _, release := genBatch(f, bs)
						for _, tb := range tables {
							tb.SetSeq(seq)
							if err := tb.Update(keys, inputs, nil, nil); err != nil {
								t.Fatal(err)
							}
						}
						release()
						seq += uint64(bs) + 3 // gaps, as between the panes of a window
					}
				}
				combine := func(tables ...*Table) {
					n := a.Len()
					for c := 0; kc.cols != nil && c < 1+n/8; c++ {
						into, from := uint32(f.rng.IntN(n)), uint32(f.rng.IntN(n))
						for _, tb := range tables {
							tb.Combine(into, from)
						}
					}
				}
				feed(600, a)
				a.ClearTouched()
				feed(100, a)
				combine(a)

				b := restored(t, alloc, a, kt, f.specs)
				defer b.Release()
				if got, want := stateString(t, alloc, b), stateString(t, alloc, a); got != want {
					t.Fatalf("restored table differs:\n%s\nwant\n%s", got, want)
				}
				feed(600, a, b)
				combine(a, b)
				feed(100, a, b)
				if got, want := stateString(t, alloc, b), stateString(t, alloc, a); got != want {
					t.Fatalf("after further updates the restored table differs:\n%s\nwant\n%s", got, want)
				}
				// Merge replays DISTINCT sets in pair order
				ma, mb := restored(t, alloc, a, kt, f.specs), restored(t, alloc, b, kt, f.specs)
				defer ma.Release()
				defer mb.Release()
				feed(50, ma, mb)
				if err := ma.Merge(a); err != nil {
					t.Fatal(err)
				}
				if err := mb.Merge(b); err != nil {
					t.Fatal(err)
				}
				if got, want := stateString(t, alloc, mb), stateString(t, alloc, ma); got != want {
					t.Fatalf("after Merge the restored table differs:\n%s\nwant\n%s", got, want)
				}
			})
		}
	}
}

// TestStateDecimalExact checks that 128-bit DECIMAL sums beyond 38 digits
// (valid while later rows bring them back into range) survive a round
// trip exactly.
func TestStateDecimalExact(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	dt := sqltypes.Decimal(38, 6)
	specs := []Spec{{Func: "sum", Input: dt}, {Func: "avg", Input: dt}, {Func: "sum", Input: dt, Distinct: true}}
	a, err := NewTable(alloc, nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	big, _ := decimal128.FromString("99999999999999999999999999999999.999999", 38, 6)
	update := func(tables []*Table, vals ...decimal128.Num) {
		b := array.NewDecimal128Builder(alloc, dt.(*arrow.Decimal128Type))
		defer b.Release()
		b.AppendValues(vals, nil)
		arr := b.NewArray()
		defer arr.Release()
		for _, tb := range tables {
			if err := tb.Update(nil, []arrow.Array{arr, arr, arr}, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	half, _ := decimal128.FromString("50000000000000000000000000000000", 38, 6)
	update([]*Table{a}, big, half, decimal128.FromI64(1)) // about 1.5e32: beyond 38 digits
	b := restored(t, alloc, a, nil, specs)
	defer b.Release()
	update([]*Table{a, b}, half.Negate(), decimal128.FromI64(-2))
	got, want := emitString(t, b, nil), emitString(t, a, nil)
	if got != want || !strings.Contains(got, "99999999999999999999999999999999.999998") {
		t.Fatalf("restored = %s, want %s (= 99999999999999999999999999999999.999998 for the SUM)", got, want)
	}
}

// TestStateLoadErrors checks that LoadState refuses a non-empty table and
// a state of other specs.
func TestStateLoadErrors(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs := []Spec{{Func: "count_star"}, {Func: "sum", Input: sqltypes.BigInt}}
	kt := []arrow.DataType{sqltypes.BigInt}
	a, _ := NewTable(alloc, kt, specs)
	defer a.Release()
	b := array.NewInt64Builder(alloc)
	b.AppendValues([]int64{1, 2, 1}, nil)
	k := b.NewArray()
	b.Release()
	defer k.Release()
	if err := a.Update([]arrow.Array{k}, []arrow.Array{nil, k}, nil, nil); err != nil {
		t.Fatal(err)
	}
	rec, err := a.SaveState(alloc)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if err := a.LoadState(rec); err == nil {
		t.Fatal("LoadState into a non-empty table succeeded")
	}
	other, _ := NewTable(alloc, kt, []Spec{{Func: "count_star"}, {Func: "sum", Input: sqltypes.Double}})
	defer other.Release()
	if err := other.LoadState(rec); err == nil || other.Len() != 0 {
		t.Fatalf("LoadState of other specs: err %v, %d groups", err, other.Len())
	}
}
