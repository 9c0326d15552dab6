package agg

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// distinct feeds an aggregate only the first occurrence of each (group,
// value) pair: a second groupMap keyed by (group id, value) is the set of
// pairs seen. The pairs of a group are chained (head, next) so that
// Combine can replay one group's values into another.
type distinct struct {
	alloc memory.Allocator
	dt    arrow.DataType // of the values
	inner aggregator
	set   *groupMap
	head  []uint32 // per group: first pair + 1, 0 if none
	next  []uint32 // per pair: next pair of the same group + 1
	pick  []int32  // for the inner aggregate during combine, all -1
}

func newDistinct(alloc memory.Allocator, inner aggregator, dt arrow.DataType) (aggregator, error) {
	col, err := newKeyCol(dt)
	if err != nil {
		return nil, err
	}
	return &distinct{alloc: alloc, dt: dt, inner: inner, set: newGroupMap([]keyCol{col}, true)}, nil
}

func (a *distinct) skipNulls() bool { return true }

func (a *distinct) grow(n int) {
	a.inner.grow(n)
	a.head = growTo(a.head, n, 0)
	a.pick = growTo(a.pick, n, -1)
}

func (a *distinct) bytes() int64 {
	return a.inner.bytes() + a.set.bytes() + sizeOf(a.head) + sizeOf(a.next) + sizeOf(a.pick)
}

// add looks up the pairs (ids[k], row rows[k] of arr) and passes the rows
// that are new pairs to the inner aggregate.
func (a *distinct) add(arr arrow.Array, ids []uint32, rows []int32, seq uint64, pick []int32, scr *scratch) error {
	scr.dPairs = growTo(scr.dPairs, len(ids), 0)
	pairs := scr.dPairs[:len(ids)]
	a.set.s = scr
	keys := [1]arrow.Array{arr}
	n0, err := a.set.find(keys[:], rows, ids, pairs)
	a.set.s = nil
	if err != nil || a.set.n == n0 {
		return err
	}
	// New pairs are numbered in first-seen order, so the first occurrence
	// of each is where the next expected number appears.
	nids, nrows := scr.dIDs[:0], scr.dRows[:0]
	want := uint32(n0)
	for k, p := range pairs {
		if p == want {
			want++
			nids = append(nids, ids[k])
			nrows = append(nrows, int32(rowOf(rows, k)))
		}
	}
	scr.dIDs, scr.dRows = nids, nrows
	a.next = growTo(a.next, a.set.n, 0)
	for p := n0; p < a.set.n; p++ {
		g := a.set.prefix[p]
		a.next[p] = a.head[g]
		a.head[g] = uint32(p) + 1
	}
	return a.inner.update(&input{arr: arr, ids: nids, rows: nrows, seq: seq, pick: pick, scr: scr})
}

func (a *distinct) update(in *input) error {
	return a.add(in.arr, in.ids, in.rows, in.seq, in.pick, in.scr)
}

// combine replays from's distinct values into into: those new to into
// update into's inner state.
func (a *distinct) combine(into, from uint32, scr *scratch) error {
	var entries []uint32
	for p := a.head[from]; p != 0; p = a.next[p-1] {
		entries = append(entries, p-1)
	}
	if len(entries) == 0 {
		return nil
	}
	vals := a.set.cols[0].emit(a.alloc, entries)
	defer vals.Release()
	ids := make([]uint32, len(entries))
	for i := range ids {
		ids[i] = into
	}
	return a.add(vals, ids, nil, 0, a.pick, scr)
}

func (a *distinct) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return a.inner.emit(alloc, groups)
}
