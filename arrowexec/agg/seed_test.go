package agg

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestKeyHashDependsOnSeed: keys crafted to share the top bits of their
// hash (the home slot) under one seed spread over the table under
// another, for integers and strings; seed 0 (HyperLogLog's) is stable.
func TestKeyHashDependsOnSeed(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	const want = 64 // keys colliding in their top 8 bits under seed 1
	ib := array.NewInt64Builder(alloc)
	defer ib.Release()
	sb := array.NewStringBuilder(alloc)
	defer sb.Release()
	ni, ns := 0, 0
	for v := int64(0); ni < want || ns < want; v++ {
		if ni < want && hash64(uint64(v), 1)>>56 == 0 {
			ib.Append(v)
			ni++
		}
		if s := fmt.Sprint("key", v); ns < want && hashBytes([]byte(s), 1)>>56 == 0 {
			sb.Append(s)
			ns++
		}
	}
	for _, a := range []arrow.Array{ib.NewArray(), sb.NewArray()} {
		h := make([]uint64, a.Len())
		hashColumn(a, nil, h, 1)
		for k, x := range h {
			if x>>56 != 0 {
				t.Fatalf("%s row %d: top bits %d under seed 1", a.DataType(), k, x>>56)
			}
		}
		hashColumn(a, nil, h, 2)
		slots := map[uint64]bool{}
		for _, x := range h {
			slots[x>>56] = true
		}
		if len(slots) < want/2 {
			t.Errorf("%s: keys colliding under seed 1 fall in %d of 256 slots under seed 2", a.DataType(), len(slots))
		}
		a.Release()
	}
	// HyperLogLog hashes with seed 0: the fixed constants alone
	if hash64(12345, 0) != mum(12345^k0, k1)^mum(12345^k2, k3) {
		t.Error("seed 0 changed the unseeded hash")
	}
}

// TestSeedsGiveSameResults: tables with different hash seeds fed the same
// rows (every aggregate kind, DISTINCT included, every key layout) are in
// the same state, saved state included; a state saved under one seed
// loads into a table of another and goes on identically.
func TestSeedsGiveSameResults(t *testing.T) {
	for ki, kc := range keyConfigs {
		t.Run(kc.name, func(t *testing.T) {
			alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer alloc.AssertSize(t, 0)
			f := newFeeder(t, alloc, uint64(ki+77), kc)
			defer f.tbl.Release()
			kt := f.keyTypes()
			seeded := func(seed uint64) *Table {
				tb, err := NewTableSeeded(alloc, kt, f.specs, seed)
				if err != nil {
					t.Fatal(err)
				}
				return tb
			}
			a, b := seeded(1), seeded(2)
			defer a.Release()
			defer b.Release()
			feed := func(rows int, tables ...*Table) {
				for done := 0; done < rows; done += 50 {
					keys, inputs, _, _, release := genBatch(f, 50)
					for _, tb := range tables {
						if err := tb.Update(keys, inputs, nil, nil); err != nil {
							t.Fatal(err)
						}
					}
					release()
				}
			}
			feed(1000, a, b)
			sameState(t, alloc, a, b, "seeds 1 and 2")
			rec, err := a.SaveState(alloc)
			if err != nil {
				t.Fatal(err)
			}
			rec = ipcRoundTrip(t, alloc, rec)
			c := seeded(3)
			defer c.Release()
			err = c.LoadState(rec)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, alloc, a, c, "saved under seed 1, loaded under seed 3")
			feed(500, a, c)
			sameState(t, alloc, a, c, "after further updates")
		})
	}
}
