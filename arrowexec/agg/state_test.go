package agg

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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

// stateBytes encodes everything observable of tb as Arrow IPC (no
// compression): its results in id order and in first-seen order, the
// touched groups and its saved state (raw accumulators, sequence numbers,
// registers, DISTINCT sets). Equal bytes are the same state bit for bit.
func stateBytes(t *testing.T, alloc memory.Allocator, tb *Table) []byte {
	t.Helper()
	var buf bytes.Buffer
	write := func(cols []arrow.Array, md map[string]string) {
		defer releaseAll(cols)
		fields := make([]arrow.Field, len(cols))
		for i, c := range cols {
			fields[i] = arrow.Field{Name: fmt.Sprint(i), Type: c.DataType(), Nullable: true}
		}
		meta := arrow.MetadataFrom(md)
		rows := int64(tb.Len())
		if len(cols) > 0 {
			rows = int64(cols[0].Len())
		}
		rec := array.NewRecordBatch(arrow.NewSchema(fields, &meta), cols, rows)
		defer rec.Release()
		w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()), ipc.WithAllocator(alloc))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, groups := range [][]uint32{nil, tb.FirstSeenOrder()} {
		keys, res, err := tb.Emit(groups)
		if err != nil {
			t.Fatal(err)
		}
		write(append(keys, res...), nil)
	}
	fmt.Fprintf(&buf, "touched %v", tb.Touched())
	rec, err := tb.SaveState(alloc)
	if err != nil {
		t.Fatal(err)
	}
	md := rec.Schema().Metadata()
	cols := rec.Columns()
	for _, c := range cols {
		c.Retain()
	}
	rec.Release()
	write(cols, md.ToMap())
	return buf.Bytes()
}

// sameState fails the test unless tables a and b are in the same state
// (stateBytes); what is compared is named by what.
func sameState(t *testing.T, alloc memory.Allocator, a, b *Table, what string) {
	t.Helper()
	if !bytes.Equal(stateBytes(t, alloc, a), stateBytes(t, alloc, b)) {
		t.Fatalf("%s: the restored table differs:\n%s\nwant\n%s", what, emitString(t, b, nil), emitString(t, a, nil))
	}
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
						rows /= 6
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
				sameState(t, alloc, a, b, "restored")
				feed(600, a, b)
				combine(a, b)
				feed(100, a, b)
				sameState(t, alloc, a, b, "after further updates")
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
				sameState(t, alloc, ma, mb, "after Merge")
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

// TestStateGroupsWithoutValues restores groups that have seen only NULL
// arguments (MIN/MAX at their identity, SUM without a value, FIRST_VALUE
// of a NULL) and checks that later values update them as in the original.
func TestStateGroupsWithoutValues(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs, cols := allSpecs()
	kt := []arrow.DataType{sqltypes.BigInt}
	a, err := NewTable(alloc, kt, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	r := rand.New(rand.NewPCG(5, 5))
	update := func(tables []*Table, vals func(c column) []any) {
		key := buildArray(alloc, sqltypes.BigInt, []any{int64(1), int64(2)})
		defer key.Release()
		inputs := make([]arrow.Array, len(specs))
		for j, c := range cols {
			if c >= 0 {
				inputs[j] = buildArray(alloc, inputColumns[c].dt, vals(inputColumns[c]))
				defer inputs[j].Release()
			}
		}
		for _, tb := range tables {
			if err := tb.Update([]arrow.Array{key}, inputs, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	update([]*Table{a}, func(column) []any { return []any{nil, nil} })
	b := restored(t, alloc, a, kt, specs)
	defer b.Release()
	update([]*Table{a, b}, func(c column) []any {
		v := c.gen(r)
		for v == nil && c.name != "allnull" {
			v = c.gen(r)
		}
		return []any{v, nil}
	})
	sameState(t, alloc, a, b, "after values")
}

// TestStateUpdateIDs round-trips a keyless table whose many groups
// UpdateIDs numbered (as session windows use it), with groups combined
// into others, at several points of a random run, and checks that the
// restored table then behaves identically under further UpdateIDs
// (combined-away ids included) and Combine.
func TestStateUpdateIDs(t *testing.T) {
	specs, cols := allSpecs()
	for _, bs := range []int{1, 7, 300} {
		t.Run(fmt.Sprintf("batch%d", bs), func(t *testing.T) {
			alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer alloc.AssertSize(t, 0)
			a, err := NewTable(alloc, nil, specs)
			if err != nil {
				t.Fatal(err)
			}
			tables := []*Table{a}
			defer func() {
				for _, tb := range tables {
					tb.Release()
				}
			}()
			r := rand.New(rand.NewPCG(uint64(bs), 9))
			step := func() {
				n := bs
				inputs := make([]arrow.Array, len(specs))
				arrays := make([]arrow.Array, len(inputColumns))
				for c, col := range inputColumns {
					vals := make([]any, n)
					for i := range vals {
						vals[i] = col.gen(r)
					}
					arrays[c] = buildSliced(alloc, col.dt, vals, bs == 7, r, func() any { return col.gen(r) })
				}
				for j, c := range cols {
					if c >= 0 {
						inputs[j] = arrays[c]
					}
				}
				ids := make([]uint32, n)
				next := a.Len()
				for k := range ids {
					if next == 0 || r.IntN(4) == 0 {
						ids[k] = uint32(next)
						next++
					} else {
						ids[k] = uint32(r.IntN(next))
					}
				}
				for _, tb := range tables {
					if err := tb.UpdateIDs(inputs, nil, ids); err != nil {
						t.Fatal(err)
					}
				}
				releaseAll(arrays)
				if n := a.Len(); n > 1 && r.IntN(3) == 0 {
					into, from := uint32(r.IntN(n)), uint32(r.IntN(n))
					for _, tb := range tables {
						tb.Combine(into, from)
					}
				}
			}
			rows := 3000
			if bs < 10 {
				rows = 300
			}
			rounds := rows / bs
			for round := range 3 * rounds {
				step()
				if round%rounds == rounds/2 {
					tables = append(tables, restored(t, alloc, a, nil, specs))
					sameState(t, alloc, a, tables[len(tables)-1], "restored")
				}
			}
			if a.Len() < 10 {
				t.Fatalf("only %d groups: the test checks little", a.Len())
			}
			for i, b := range tables[1:] {
				sameState(t, alloc, a, b, fmt.Sprintf("copy %d after further updates", i))
			}
		})
	}
}
