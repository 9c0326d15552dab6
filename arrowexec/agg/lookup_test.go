package agg

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestFindMatchesUpdate builds a table of (BIGINT, VARCHAR) keys, NULLs
// included, and looks up present and absent keys with Find, whole
// batches, selections and sliced arrays, with and without colliding
// hashes: Find returns the ids Update handed out and NoGroup for the
// rest, and never adds a group.
func TestFindMatchesUpdate(t *testing.T) {
	for _, collide := range []bool{false, true} {
		for _, bs := range []int{1, 3, 1000} {
			t.Run(fmt.Sprintf("collide=%v/batch%d", collide, bs), func(t *testing.T) {
				alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer alloc.AssertSize(t, 0)
				tbl, err := NewTable(alloc, []arrow.DataType{sqltypes.BigInt, sqltypes.Varchar}, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tbl.Release()
				tbl.groups.collide = collide
				r := rand.New(rand.NewPCG(uint64(bs), 9))
				type key struct {
					i    int64
					s    string
					null bool
				}
				ids := map[key]uint32{}
				gen := func(n, domain int) ([]key, []arrow.Array) {
					ib := array.NewInt64Builder(alloc)
					sb := array.NewStringBuilder(alloc)
					defer ib.Release()
					defer sb.Release()
					keys := make([]key, n)
					for k := range keys {
						keys[k] = key{i: int64(r.IntN(domain)), s: fmt.Sprint("s", r.IntN(3)), null: r.IntN(10) == 0}
						if keys[k].null {
							ib.AppendNull()
						} else {
							ib.Append(keys[k].i)
						}
						sb.Append(keys[k].s)
					}
					return keys, []arrow.Array{ib.NewArray(), sb.NewArray()}
				}
				release := func(a []arrow.Array) {
					for _, x := range a {
						x.Release()
					}
				}
				norm := func(k key) key {
					if k.null {
						k.i = 0
					}
					return k
				}
				// build
				for done := 0; done < 300; done += bs {
					keys, arrs := gen(min(bs, 300-done), 50)
					out := make([]uint32, len(keys))
					if err := tbl.Update(arrs, nil, nil, out); err != nil {
						t.Fatal(err)
					}
					for k, id := range out {
						ids[norm(keys[k])] = id
					}
					release(arrs)
				}
				n := tbl.Len()
				// probe: a wider domain, so some keys are absent
				for round := 0; round < 20; round++ {
					keys, arrs := gen(bs+2, 100)
					sel := []int32(nil)
					probe := arrs
					off := 0
					switch round % 3 {
					case 1: // a selection
						for k := range keys {
							if k%2 == 0 {
								sel = append(sel, int32(k))
							}
						}
					case 2: // sliced arrays
						off = 1
						probe = []arrow.Array{array.NewSlice(arrs[0], 1, int64(len(keys))), array.NewSlice(arrs[1], 1, int64(len(keys)))}
						defer release(probe)
					}
					rows := len(keys) - off
					if sel != nil {
						rows = len(sel)
					}
					out := make([]uint32, rows)
					if err := tbl.Find(probe, sel, out); err != nil {
						t.Fatal(err)
					}
					for j, got := range out {
						k := j + off
						if sel != nil {
							k = int(sel[j])
						}
						want, ok := ids[norm(keys[k])]
						if !ok {
							want = NoGroup
						}
						if got != want {
							t.Fatalf("key %+v: got id %d, want %d", keys[k], got, want)
						}
					}
					release(arrs)
				}
				if tbl.Len() != n {
					t.Fatalf("Find added groups: %d, was %d", tbl.Len(), n)
				}
			})
		}
	}
}

// TestFindWithoutKeys: a keyless table has group 0 once a row was added.
func TestFindWithoutKeys(t *testing.T) {
	tbl, err := NewTable(memory.NewGoAllocator(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	ids := make([]uint32, 2)
	if err := tbl.Find(nil, []int32{0, 1}, ids); err != nil || ids[0] != NoGroup {
		t.Fatalf("empty table: %v %v", ids, err)
	}
	if err := tbl.Update(nil, nil, []int32{0}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Find(nil, []int32{0, 1}, ids); err != nil || ids[0] != 0 || ids[1] != 0 {
		t.Fatalf("one group: %v %v", ids, err)
	}
}
