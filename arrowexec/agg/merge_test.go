package agg

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// genBatch makes one random batch of n rows for f's keys and specs: the
// arrays (released by release) and the logical values.
func genBatch(f *feeder, n int) (keys, inputs []arrow.Array, keyVals, inVals [][]any, release func()) {
	r := f.rng
	keyVals = make([][]any, len(f.kc.cols))
	for c, col := range f.kc.cols {
		for i := 0; i < n; i++ {
			keyVals[c] = append(keyVals[c], col.gen(r))
		}
	}
	inVals = make([][]any, len(inputColumns))
	for c, col := range inputColumns {
		for i := 0; i < n; i++ {
			inVals[c] = append(inVals[c], col.gen(r))
		}
	}
	var arrays []arrow.Array
	mk := func(col column, vals []any) arrow.Array {
		a := buildSliced(f.alloc, col.dt, vals, f.sliced, r, func() any { return col.gen(r) })
		arrays = append(arrays, a)
		return a
	}
	keys = make([]arrow.Array, len(f.kc.cols))
	for c, col := range f.kc.cols {
		keys[c] = mk(col, keyVals[c])
	}
	cols := make([]arrow.Array, len(inputColumns))
	for c, col := range inputColumns {
		cols[c] = mk(col, inVals[c])
	}
	inputs = make([]arrow.Array, len(f.specs))
	for j, c := range f.specCols {
		if c >= 0 {
			inputs[j] = cols[c]
		}
	}
	return keys, inputs, keyVals, inVals, func() { releaseAll(arrays) }
}

func refKey(key []any) string {
	var sb strings.Builder
	for _, k := range key {
		sb.WriteString(normKey(k))
		sb.WriteByte('|')
	}
	return sb.String()
}

// checkByKey emits groups of tb (nil: all in id order) and checks that
// the rows have the keys wantOrder, in that order, and the values the
// reference computes for those keys.
func checkByKey(t *testing.T, tb *Table, groups []uint32, ref *refTable, wantOrder []string) {
	t.Helper()
	keys, results, err := tb.Emit(groups)
	if err != nil {
		t.Fatalf("Emit: %v", err)
	}
	defer releaseAll(keys)
	defer releaseAll(results)
	rows := len(wantOrder)
	for _, a := range append(keys, results...) {
		if a.Len() != rows {
			t.Fatalf("Emit gave %d rows, want %d", a.Len(), rows)
		}
	}
	for i, want := range wantOrder {
		key := make([]any, len(keys))
		for c, a := range keys {
			key[c] = valueAt(a, i)
		}
		if got := refKey(key); got != want {
			t.Fatalf("row %d has key %s, want %s", i, got, want)
		}
		g := ref.groups[ref.index[want]]
		for j, s := range ref.specs {
			w, err := refResult(s, g.vals[j])
			if err != nil {
				t.Fatalf("reference overflow in spec %d %+v", j, s)
			}
			if got := valueAt(results[j], i); !sameValue(s, got, w) {
				t.Fatalf("spec %d %s(distinct=%v, %s) key %v: got %v, want %v (%d rows)",
					j, s.Func, s.Distinct, s.Input, g.key, show(got), show(w), len(g.vals[j]))
			}
		}
	}
}

// TestMergeMatchesOneTable splits random rows across several tables (each
// row to one of them, numbered from one shared counter with SetSeq),
// merges them and checks the result against the reference fed all rows:
// every aggregate, NULLs, DISTINCT, FIRST/LAST order across tables, the
// group order Merge creates and the first-seen order it keeps.
func TestMergeMatchesOneTable(t *testing.T) {
	type mode struct {
		name           string
		sliced, intoP0 bool
		parts          int
		collide        bool
	}
	modes := []mode{{"fresh/2", false, false, 2, false}, {"into-first/4", true, true, 4, false},
		{"fresh/5/collide", false, false, 5, true}}
	for _, kc := range keyConfigs {
		for _, bs := range []int{1, 7, 1024} {
			for mi, md := range modes {
				if md.collide && (kc.cols == nil || strings.HasSuffix(kc.name, "-many")) {
					continue
				}
				t.Run(fmt.Sprintf("%s/batch%d/%s", kc.name, bs, md.name), func(t *testing.T) {
					rows := 2500
					if bs < 10 {
						rows = 200
					}
					if testing.Short() {
						rows /= 3
					}
					alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer alloc.AssertSize(t, 0)
					f := newFeeder(t, alloc, uint64(bs*10+mi+100), kc)
					defer f.tbl.Release()
					f.sliced = md.sliced
					kt := f.keyTypes()
					parts := make([]*Table, md.parts)
					partRefs := make([]*refTable, md.parts)
					for p := range parts {
						tb, err := NewTable(alloc, kt, f.specs)
						if err != nil {
							t.Fatal(err)
						}
						defer tb.Release()
						parts[p], partRefs[p] = tb, newRef(f.specs)
					}
					var seq uint64
					for done := 0; done < rows; {
						n := min(bs, rows-done)
						keys, inputs, keyVals, inVals, release := genBatch(f, n)
						sels := make([][]int32, len(parts))
						for i := 0; i < n; i++ {
							// skewed: part 0 gets most rows
							p := f.rng.IntN(len(parts) + 2)
							p = max(p-2, 0)
							sels[p] = append(sels[p], int32(i))
							key := make([]any, len(keys))
							for c := range keys {
								key[c] = keyVals[c][i]
							}
							args := make([]any, len(f.specs))
							for j, c := range f.specCols {
								if c >= 0 {
									args[j] = inVals[c][i]
								}
							}
							f.ref.add(key, args)
							partRefs[p].add(key, args)
						}
						f.tbl.SetSeq(seq)
						if err := f.tbl.Update(keys, inputs, nil, nil); err != nil {
							t.Fatal(err)
						}
						for p, sel := range sels {
							if len(sel) == 0 {
								continue
							}
							parts[p].SetSeq(seq)
							if err := parts[p].Update(keys, inputs, sel, nil); err != nil {
								t.Fatal(err)
							}
						}
						release()
						seq += uint64(n)
						done += n
					}
					checkEmit(t, f.tbl, f.ref, kt)

					dst := parts[0]
					srcs := parts[1:]
					var order []string
					if !md.intoP0 {
						var err error
						if dst, err = NewTable(alloc, kt, f.specs); err != nil {
							t.Fatal(err)
						}
						defer dst.Release()
						srcs = parts
						// a reused scratch table: Reset must forget everything
						keys, inputs, _, _, release := genBatch(f, 300)
						if err := dst.Update(keys, inputs, nil, nil); err != nil {
							t.Fatal(err)
						}
						release()
						if err := dst.Merge(parts[0]); err != nil {
							t.Fatal(err)
						}
						dst.Combine(0, uint32(dst.Len()-1))
						dst.Reset()
					}
					if md.collide {
						dst.groups.collide = true
					}
					seen := map[string]bool{}
					addOrder := func(r *refTable) {
						for _, g := range r.groups {
							if k := refKey(g.key); !seen[k] {
								seen[k] = true
								order = append(order, k)
							}
						}
					}
					if md.intoP0 {
						addOrder(partRefs[0])
					}
					for i, src := range srcs {
						before := src.StateBytes()
						ids := make([]uint32, src.Len())
						if err := dst.MergeIDs(src, ids); err != nil {
							t.Fatalf("Merge: %v", err)
						}
						if src.StateBytes() != before {
							t.Fatalf("Merge changed its source")
						}
						r := partRefs[i]
						if md.intoP0 {
							r = partRefs[i+1]
						}
						addOrder(r)
						for g, id := range ids {
							if got, want := id, uint32(slices.Index(order, refKey(r.groups[g].key))); got != want {
								t.Fatalf("MergeIDs: group %d went to %d, want %d", g, got, want)
							}
						}
					}
					if dst.Len() != len(order) {
						t.Fatalf("merged table has %d groups, want %d", dst.Len(), len(order))
					}
					// id order: the order Merge created the groups in
					checkByKey(t, dst, nil, f.ref, order)
					// first-seen order: that of one table fed all rows
					var whole []string
					for _, g := range f.ref.groups {
						whole = append(whole, refKey(g.key))
					}
					fs := dst.FirstSeenOrder()
					if fs == nil {
						if !slices.Equal(order, whole) {
							t.Fatalf("FirstSeenOrder is nil but the id order is not first-seen order")
						}
					} else {
						checkByKey(t, dst, fs, f.ref, whole)
					}
					if dst.StateBytes() <= 0 {
						t.Fatalf("StateBytes = %d", dst.StateBytes())
					}
					if md.intoP0 {
						return // parts[0] now holds the merge
					}
					// the same through a key dictionary: MapKeys, ResetStates, MergeMapped
					dict, err := NewTable(alloc, kt, f.specs)
					if err != nil {
						t.Fatal(err)
					}
					defer dict.Release()
					keys, inputs, _, _, release := genBatch(f, 100)
					if err := dict.Update(keys, inputs, nil, nil); err != nil {
						t.Fatal(err)
					}
					release()
					dict.ResetStates()
					var present []uint32
					var partIDs [][]uint32
					seenID := map[uint32]bool{}
					for _, p := range parts {
						ids := make([]uint32, p.Len())
						partIDs = append(partIDs, ids)
						half := p.Len() / 2
						if err := dict.MapKeys(p, 0, ids[:half]); err == nil && half < p.Len() && half > 0 {
							t.Fatalf("MapKeys with a short ids succeeded")
						}
						if err := dict.MapKeys(p, 0, ids); err != nil {
							t.Fatal(err)
						}
						if err := dict.MergeMapped(p, ids); err != nil {
							t.Fatal(err)
						}
						for _, g := range ids {
							if !seenID[g] {
								seenID[g] = true
								present = append(present, g)
							}
						}
					}
					dict.SortFirstSeen(present)
					checkByKey(t, dict, present, f.ref, whole)

					// the same folds as sliding windows' stacks do them, in
					// tables aligned on the dictionary (groups without rows
					// included): a suffix s of the parts, then r = a copy of
					// s plus the other parts (CopyStates) and q = the other
					// parts plus s (MergeAligned)
					aligned := func() *Table {
						a, err := NewTable(alloc, kt, f.specs)
						if err != nil {
							t.Fatal(err)
						}
						ids := make([]uint32, dict.Len())
						if err := a.MapKeys(dict, 0, ids); err != nil {
							t.Fatal(err)
						}
						for g, id := range ids {
							if int(id) != g {
								t.Fatalf("MapKeys into an empty table: group %d got id %d", g, id)
							}
						}
						return a
					}
					half := len(parts) / 2
					fold := func(into *Table, ps []*Table, ids [][]uint32) {
						for i, p := range ps {
							if err := into.MergeMapped(p, ids[i]); err != nil {
								t.Fatal(err)
							}
						}
					}
					sfx, r, q := aligned(), aligned(), aligned()
					defer sfx.Release()
					defer r.Release()
					defer q.Release()
					fold(sfx, parts[half:], partIDs[half:])
					fold(r, parts, partIDs) // stale states: CopyStates must replace them
					if err := r.CopyStates(sfx); err != nil {
						t.Fatal(err)
					}
					fold(r, parts[:half], partIDs[:half])
					fold(q, parts[:half], partIDs[:half])
					if err := q.MergeAligned(sfx); err != nil {
						t.Fatal(err)
					}
					for _, tb := range []*Table{r, q} {
						got := slices.Clone(present)
						tb.SortFirstSeen(got)
						checkByKey(t, tb, got, f.ref, whole)
					}
					if sfx.Len() > 0 { // a table with fewer groups cannot take them
						small, err := NewTable(alloc, kt, f.specs)
						if err != nil {
							t.Fatal(err)
						}
						if small.MergeAligned(sfx) == nil || small.CopyStates(sfx) == nil {
							t.Fatalf("MergeAligned/CopyStates into a table with fewer groups succeeded")
						}
						small.Release()
					}
				})
			}
		}
	}
}

// TestMergeCombined merges tables that have combined-away groups: src's
// dead groups are skipped, and keys t combined away merge into the group
// they live on in.
func TestMergeCombined(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs := []Spec{{Func: "count_star"}, {Func: "sum", Input: sqltypes.BigInt}, {Func: "count", Input: sqltypes.BigInt, Distinct: true},
		{Func: "first_value", Input: sqltypes.BigInt}}
	mk := func(seq uint64, keys []any, vals []any) *Table {
		tb, err := NewTable(alloc, []arrow.DataType{sqltypes.Varchar}, specs)
		if err != nil {
			t.Fatal(err)
		}
		k := buildArray(alloc, sqltypes.Varchar, keys)
		v := buildArray(alloc, sqltypes.BigInt, vals)
		defer k.Release()
		defer v.Release()
		tb.SetSeq(seq)
		if err := tb.Update([]arrow.Array{k}, []arrow.Array{nil, v, v, v}, nil, nil); err != nil {
			t.Fatal(err)
		}
		return tb
	}
	dst := mk(10, []any{"a", "b", "c"}, []any{int64(1), int64(2), int64(3)})
	defer dst.Release()
	dst.Combine(0, 1) // b lives on in a
	src := mk(0, []any{"b", "x", "c", "y", "b"}, []any{int64(2), int64(5), int64(7), int64(9), int64(4)})
	defer src.Release()
	src.Combine(1, 3) // y lives on in x
	if err := dst.Merge(src); err != nil {
		t.Fatal(err)
	}
	// a+b: a(1) b(2) from dst, b(2) b(4) from src: 4 rows, sum 9, distinct
	// {1,2,4}, first is src's b at seq 0. c: 3 and 7, first src's c (seq 2).
	// x (+y): 5, 9; first x at seq 1. y's key was not carried over.
	got := emitString(t, dst, dst.FirstSeenOrder())
	want := `["a" "x" "c"] [4 2 2] [9 14 10] [3 2 2] [2 5 7]`
	if got != want {
		t.Fatalf("merged (first-seen order) = %s, want %s", got, want)
	}
	if got, want := emitString(t, dst, nil), `["a" "c" "x"] [4 2 2] [9 10 14] [3 2 2] [2 7 5]`; got != want {
		t.Fatalf("merged (id order) = %s, want %s", got, want)
	}
}

func emitString(t *testing.T, tb *Table, groups []uint32) string {
	t.Helper()
	keys, res, err := tb.Emit(groups)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAll(keys)
	defer releaseAll(res)
	var parts []string
	for _, a := range append(keys, res...) {
		parts = append(parts, fmt.Sprint(a))
	}
	return strings.Join(parts, " ")
}

func TestMergeErrors(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	mk := func(kt []arrow.DataType, specs ...Spec) *Table {
		tb, err := NewTable(alloc, kt, specs)
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	big := []arrow.DataType{sqltypes.BigInt}
	a := mk(big, Spec{Func: "sum", Input: sqltypes.BigInt})
	defer a.Release()
	for name, b := range map[string]*Table{
		"key type":   mk([]arrow.DataType{sqltypes.Int}, Spec{Func: "sum", Input: sqltypes.BigInt}),
		"key count":  mk(nil, Spec{Func: "sum", Input: sqltypes.BigInt}),
		"func":       mk(big, Spec{Func: "min", Input: sqltypes.BigInt}),
		"input type": mk(big, Spec{Func: "sum", Input: sqltypes.Int}),
		"distinct":   mk(big, Spec{Func: "sum", Input: sqltypes.BigInt, Distinct: true}),
	} {
		if err := a.Merge(b); err == nil {
			t.Errorf("%s: Merge of a different table succeeded", name)
		}
		b.Release()
		if err := a.Merge(b); err == nil {
			t.Errorf("%s: Merge of a released table succeeded", name)
		}
	}
	if err := a.Merge(a); err == nil {
		t.Errorf("Merge of a table into itself succeeded")
	}
	// overflow
	b := mk(big, Spec{Func: "sum", Input: sqltypes.BigInt})
	defer b.Release()
	for _, tb := range []*Table{a, b} {
		k := buildArray(alloc, sqltypes.BigInt, []any{int64(1)})
		v := buildArray(alloc, sqltypes.BigInt, []any{int64(1) << 62})
		if err := tb.Update([]arrow.Array{k}, []arrow.Array{v}, nil, nil); err != nil {
			t.Fatal(err)
		}
		k.Release()
		v.Release()
	}
	if err := a.Merge(b); !errors.Is(err, ErrOverflow) {
		t.Errorf("Merge overflow: err = %v", err)
	}
}
