package agg

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestUpdateIDsMatchReference drives a keyless table through UpdateIDs
// with caller-numbered groups (new ones dense, in first-seen order; old
// ones, combined-away ones included, at random) and compares every
// aggregate with the row-at-a-time reference, keyed by the group id, at
// batch sizes 1, 3 and 4096, with sliced arrays, selections and Combine.
func TestUpdateIDsMatchReference(t *testing.T) {
	specs, cols := allSpecs()
	for _, bs := range []int{1, 3, 4096} {
		for mi, md := range []struct {
			name                    string
			sliced, useSel, combine bool
		}{{"plain", false, false, false}, {"sliced+sel", true, true, false}, {"combine", false, true, true}} {
			t.Run(fmt.Sprintf("batch%d/%s", bs, md.name), func(t *testing.T) {
				alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer alloc.AssertSize(t, 0)
				tbl, err := NewTable(alloc, nil, specs)
				if err != nil {
					t.Fatal(err)
				}
				defer tbl.Release()
				ref := newRef(specs)
				r := rand.New(rand.NewPCG(uint64(bs), uint64(mi)))
				rows := 3000
				if bs < 10 {
					rows = 300
				}
				for done := 0; done < rows; {
					n := min(bs, rows-done)
					done += n
					inVals := make([][]any, len(inputColumns))
					arrays := make([]arrow.Array, len(inputColumns))
					for c, col := range inputColumns {
						for i := 0; i < n; i++ {
							inVals[c] = append(inVals[c], col.gen(r))
						}
						arrays[c] = buildSliced(alloc, col.dt, inVals[c], md.sliced, r, func() any { return col.gen(r) })
					}
					inputs := make([]arrow.Array, len(specs))
					for j, c := range cols {
						if c >= 0 {
							inputs[j] = arrays[c]
						}
					}
					var sel []int32
					if md.useSel {
						sel = []int32{}
						for i := 0; i < n; i++ {
							if r.IntN(10) < 7 {
								sel = append(sel, int32(i))
							}
						}
					}
					m := n
					if sel != nil {
						m = len(sel)
					}
					ids := make([]uint32, m)
					next := tbl.Len()
					for k := range ids {
						if next == 0 || r.IntN(4) == 0 {
							ids[k] = uint32(next)
							next++
						} else {
							ids[k] = uint32(r.IntN(next))
						}
					}
					before := append([]uint32(nil), ids...)
					err := tbl.UpdateIDs(inputs, sel, ids)
					for _, a := range arrays {
						a.Release()
					}
					if err != nil {
						t.Fatalf("UpdateIDs: %v", err)
					}
					for k := range ids {
						if ids[k] != before[k] {
							t.Fatalf("UpdateIDs changed ids[%d]", k)
						}
						i := k
						if sel != nil {
							i = int(sel[k])
						}
						args := make([]any, len(specs))
						for j, c := range cols {
							if c >= 0 {
								args[j] = inVals[c][i]
							}
						}
						ref.add([]any{int64(ids[k])}, args)
					}
					if tbl.Len() != len(ref.groups) {
						t.Fatalf("Len = %d, want %d", tbl.Len(), len(ref.groups))
					}
					if md.combine && tbl.Len() > 1 && r.IntN(3) == 0 {
						a, b := uint32(r.IntN(tbl.Len())), uint32(r.IntN(tbl.Len()))
						tbl.Combine(a, b)
						ref.combine(int(a), int(b))
					}
				}
				checkEmit(t, tbl, ref, nil)
			})
		}
	}
}

// TestUpdateIDsErrors checks the numbering rule and the keyless-table
// requirement, and that a refused call changes nothing.
func TestUpdateIDsErrors(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	specs := []Spec{{Func: "count_star"}}
	tbl, err := NewTable(alloc, nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if err := tbl.UpdateIDs([]arrow.Array{nil}, nil, []uint32{0, 1, 0, 2}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]uint32{{4}, {3, 5}, {0, 4, 3}} {
		if err := tbl.UpdateIDs([]arrow.Array{nil}, nil, bad); err == nil {
			t.Fatalf("ids %v accepted", bad)
		}
		if tbl.Len() != 3 {
			t.Fatalf("refused ids %v changed Len to %d", bad, tbl.Len())
		}
	}
	_, res, err := tbl.Emit(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res[0]); got != "[2 1 1]" {
		t.Fatalf("counts %s, want [2 1 1]", got)
	}
	res[0].Release()

	keyed, err := NewTable(alloc, []arrow.DataType{sqltypes.BigInt}, specs)
	if err != nil {
		t.Fatal(err)
	}
	defer keyed.Release()
	if err := keyed.UpdateIDs([]arrow.Array{nil}, nil, []uint32{0}); err == nil {
		t.Fatal("UpdateIDs on a keyed table accepted")
	}
}
