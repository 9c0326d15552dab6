package agg

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// distinct feeds an aggregate only the first occurrence of each (group,
// value) pair: a second groupMap keyed by (group id, value) is the set of
// pairs seen. The pairs of a group are chained (head, next) so that
// Combine can replay one group's values into another (built on the first
// Combine).
//
// COUNT(DISTINCT) aggregates of one table over values of the same type
// share one set (see shareDistinct), with a bit per member and pair saying
// which members saw the pair. A query such as Nexmark q16 counts x and
// several CASE WHEN c THEN x END over the same x: the filtered values are
// a subset of x's, so the shared set holds each pair once instead of once
// per aggregate (Flink shares the set of COUNT(DISTINCT x) FILTER (WHERE
// c) the same way). Only COUNT shares: its result does not depend on the
// order in which the pairs reach it, which a shared set changes when the
// state is reloaded from an older checkpoint.
type distinct struct {
	alloc memory.Allocator
	dt    arrow.DataType // of the values
	inner aggregator
	s     *distinctSet
	bit   uint8   // this member's bit in s.mask (0 when the set is not shared)
	owner bool    // accounts and resets s (the first member)
	pick  []int32 // for the inner aggregate during combine, all -1
}

// distinctSet is the set of (group, value) pairs of one or more distinct
// aggregates.
type distinctSet struct {
	set    *groupMap
	head   []uint32 // per group: first pair + 1, 0 if none
	next   []uint32 // per pair: next pair of the same group + 1
	linked int      // pairs chained (see link)
	// mask, when the set is shared (members > 1): per pair, the bits of
	// the members that saw it.
	mask    []uint8
	members int
	loads   []distinctLoad // LoadState of a shared set: one per member read so far
}

// maxShare is the number of members a set can have (bits of a mask).
const maxShare = 8

func newDistinct(alloc memory.Allocator, inner aggregator, dt arrow.DataType) (aggregator, error) {
	col, err := newKeyCol(dt)
	if err != nil {
		return nil, err
	}
	s := &distinctSet{set: newGroupMap([]keyCol{col}, true, true), members: 1}
	return &distinct{alloc: alloc, dt: dt, inner: inner, s: s, owner: true}, nil
}

// shareDistinct makes the COUNT(DISTINCT) aggregates of aggs over values
// of the same type share sets of up to maxShare members. It is called
// once, on a new table.
func shareDistinct(aggs []aggregator) {
	var sets []*distinct // owners of shared sets, not yet full
	for _, a := range aggs {
		d, ok := a.(*distinct)
		if !ok {
			continue
		}
		if _, ok := d.inner.(*countAgg); !ok {
			continue
		}
		joined := false
		for i, o := range sets {
			if !arrow.TypeEqual(o.dt, d.dt) {
				continue
			}
			if o.s.members == 1 {
				o.bit = 1
			}
			d.s, d.bit, d.owner = o.s, 1<<o.s.members, false
			o.s.members++
			if o.s.members == maxShare {
				sets = append(sets[:i], sets[i+1:]...)
			}
			joined = true
			break
		}
		if !joined {
			sets = append(sets, d)
		}
	}
}

func (a *distinct) skipNulls() bool { return true }

func (a *distinct) grow(n int) {
	a.inner.grow(n)
	a.s.head = growTo(a.s.head, n, 0)
	a.pick = growTo(a.pick, n, -1)
}

func (a *distinct) bytes() int64 {
	b := a.inner.bytes() + sizeOf(a.pick)
	if a.owner {
		s := a.s
		b += s.set.bytes() + sizeOf(s.head) + sizeOf(s.next) + sizeOf(s.mask)
	}
	return b
}

// add looks up the pairs (ids[k], row rows[k] of arr) and passes the rows
// that are new pairs to the inner aggregate.
func (a *distinct) add(arr arrow.Array, ids []uint32, rows []int32, seq uint64, pick []int32, scr *scratch) error {
	s := a.s
	scr.dPairs = growTo(scr.dPairs, len(ids), 0)
	pairs := scr.dPairs[:len(ids)]
	s.set.s = scr
	keys := [1]arrow.Array{arr}
	n0, err := s.set.find(keys[:], rows, ids, pairs)
	s.set.s = nil
	if err != nil {
		return err
	}
	if s.members > 1 {
		s.mask = growTo(s.mask, s.set.n, 0)
	}
	nids, nrows := scr.dIDs[:0], scr.dRows[:0]
	if a.bit == 0 {
		if s.set.n == n0 {
			return nil
		}
		// New pairs are numbered in first-seen order, so the first
		// occurrence of each is where the next expected number appears.
		want := uint32(n0)
		for k, p := range pairs {
			if p == want {
				want++
				nids = append(nids, ids[k])
				nrows = append(nrows, int32(rowOf(rows, k)))
			}
		}
	} else {
		// A pair is new to this member where its bit is clear.
		mask, bit := s.mask, a.bit
		for k, p := range pairs {
			if mask[p]&bit == 0 {
				mask[p] |= bit
				nids = append(nids, ids[k])
				nrows = append(nrows, int32(rowOf(rows, k)))
			}
		}
		if len(nids) == 0 {
			return nil
		}
	}
	scr.dIDs, scr.dRows = nids, nrows
	return a.inner.update(&input{arr: arr, ids: nids, rows: nrows, seq: seq, pick: pick, scr: scr})
}

// link chains the pairs not chained yet into their groups' lists. Only
// Combine reads the chains, so they are built on its first call and kept
// up to date by the next ones: tables that are never combined (tumbling
// and hopping windows) do without the 4 bytes per pair.
func (s *distinctSet) link() {
	n := s.set.n
	if s.linked == n {
		return
	}
	s.next = growTo(s.next, n, 0)
	for p := s.linked; p < n; p++ {
		g := s.set.prefix[p]
		s.next[p] = s.head[g]
		s.head[g] = uint32(p) + 1
	}
	s.linked = n
}

// has reports whether the member saw pair p.
func (a *distinct) has(p uint32) bool { return a.bit == 0 || a.s.mask[p]&a.bit != 0 }

func (a *distinct) update(in *input) error {
	return a.add(in.arr, in.ids, in.rows, in.seq, in.pick, in.scr)
}

// combine replays from's distinct values into into: those new to into
// update into's inner state.
func (a *distinct) combine(into, from uint32, scr *scratch) error {
	s := a.s
	s.link()
	var entries []uint32
	for p := s.head[from]; p != 0; p = s.next[p-1] {
		if a.has(p - 1) {
			entries = append(entries, p-1)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	vals := s.set.cols[0].emit(a.alloc, entries)
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
