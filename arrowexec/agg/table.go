package agg

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Table holds groups (distinct key tuples) and their aggregate states.
//
// Groups get dense ids 0, 1, 2, ... in first-seen order (the order of
// their first row across Update calls), whatever the batching. With no key
// columns there is one group, id 0, created by the first Update that adds a
// row. States live in Go memory owned by the table (StateBytes accounts
// for them); arrays returned by Emit are allocated from the table's
// allocator and belong to the caller.
//
// A Table is not safe for concurrent use.
type Table struct {
	alloc    memory.Allocator
	keyTypes []arrow.DataType
	specs    []Spec
	groups   *groupMap // nil without key columns
	n        int       // groups
	aggs     []aggregator
	seq      uint64   // sequence number of row 0 of the next batch
	first    []uint64 // per group: sequence number of its first row

	touched bitset
	dead    bitset   // combined-away groups (allocated by the first Combine)
	fwd     []uint32 // group -> group it was combined into (itself if live)
	err     error    // sticky error of a Combine
	bytes   int64
	closed  bool

	usePick    bool    // some aggregate needs input.pick
	distinct   bool    // some aggregate is DISTINCT (merges need mergeArgs.srcMap)
	pick       []int32 // per group, all -1 between calls
	in         input
	emitGroups []uint32
}

// NewTable makes a table for key columns of keyTypes (may be empty: one
// global group) and the aggregates specs. Output arrays are allocated from
// alloc. It fails if a key type or a spec is not supported (see
// ResultType).
//
// Keys are hashed with a random seed chosen once per process, so that
// keys from outside cannot be crafted to collide. Saved states hold keys,
// not hashes: LoadState rehashes them, so a state loads into a table of
// any seed.
func NewTable(alloc memory.Allocator, keyTypes []arrow.DataType, specs []Spec) (*Table, error) {
	return NewTableSeeded(alloc, keyTypes, specs, processSeed)
}

// NewTableSeeded is NewTable hashing keys with seed. Tables of different
// seeds give the same results.
func NewTableSeeded(alloc memory.Allocator, keyTypes []arrow.DataType, specs []Spec, seed uint64) (*Table, error) {
	t := &Table{alloc: alloc, keyTypes: keyTypes, specs: specs}
	if len(keyTypes) > 0 {
		cols := make([]keyCol, len(keyTypes))
		for i, dt := range keyTypes {
			c, err := newKeyCol(dt)
			if err != nil {
				return nil, err
			}
			cols[i] = c
		}
		t.groups = newGroupMap(cols, false, false)
		t.groups.seed = seed
	}
	for _, s := range specs {
		a, err := newAggregator(alloc, s)
		if err != nil {
			return nil, err
		}
		t.aggs = append(t.aggs, a)
		t.usePick = t.usePick || needsPick(a)
		_, d := a.(*distinct)
		t.distinct = t.distinct || d
	}
	for _, a := range t.aggs {
		if d, ok := a.(*distinct); ok && d.owner {
			d.s.set.seed = seed
		}
	}
	shareDistinct(t.aggs)
	t.account()
	return t, nil
}

// Len is the number of group ids handed out, combined-away groups
// included.
func (t *Table) Len() int { return t.n }

// Update adds the rows selected by sel (nil: all rows of the batch;
// otherwise ascending row indexes) to their groups, creating groups as
// needed. keys[i] has keyTypes[i]; inputs[j] is the argument of specs[j]
// (nil for count_star). Arrays may be sliced and have nulls; they are not
// retained (VARCHAR bytes are copied). ids, if non-nil, receives the group
// id of each selected row and must have room for len(sel) (or batch
// length) entries. Rows of a combined-away group's key go to the group it
// was combined into.
//
// The batch length is that of the first non-nil array; a batch with no
// arrays at all (no keys, only count_star) takes its row count from sel,
// else from ids. Update returns an error for overflow (e.g. "SUM
// overflow", wrapping ErrOverflow), for arguments that do not match the
// table, and for a pending Combine overflow; after an error the states of
// the batch's groups are unspecified (the query is expected to fail). It
// never panics on data.
func (t *Table) Update(keys, inputs []arrow.Array, sel []int32, ids []uint32) error {
	if t.closed {
		return fmt.Errorf("agg: Update on a released Table")
	}
	if t.err != nil {
		return t.err
	}
	n, batchLen, err := t.checkArgs(keys, inputs, sel, ids)
	if err != nil || n == 0 {
		return err
	}
	scr := getScratch(len(t.specs))
	defer putScratch(scr)
	if ids == nil {
		scr.ids = growTo(scr.ids, n, 0)
		ids = scr.ids
	}
	ids = ids[:n]

	// group ids
	n0 := t.n
	if t.groups == nil {
		if t.n == 0 {
			t.n = 1
		}
		clear(ids)
	} else {
		t.groups.s = scr
		_, err := t.groups.find(keys, sel, nil, ids)
		t.groups.s = nil
		if err != nil {
			return err
		}
		t.n = t.groups.n
	}
	t.growStates()
	if t.n > n0 {
		t.setFirst(ids, sel, n0)
	}
	if t.fwd != nil {
		t.forward(ids)
	}
	return t.apply(ids, inputs, sel, scr, batchLen)
}

// setFirst records the sequence numbers of the first rows of the groups
// n0..t.n-1 created by an Update: new ids are handed out in order of
// their first row, so the first occurrence of each is where the next
// expected id appears.
func (t *Table) setFirst(ids []uint32, sel []int32, n0 int) {
	want := uint32(n0)
	for k, g := range ids {
		if g == want {
			t.first[g] = t.seq + uint64(rowOf(sel, k))
			if want++; int(want) == t.n {
				return
			}
		}
	}
}

// SetSeq sets the sequence number of row 0 of the next Update's batch:
// row r of that batch is numbered seq+r, and Update then moves the
// number past the batch. FIRST_VALUE/LAST_VALUE and first-seen order
// (FirstSeenOrder) compare rows by these numbers, within a table and
// across the tables folded together by Merge. A caller that feeds several
// tables from one stream (the panes of sliding windows, say) sets each
// table's number from one shared row counter before every Update, so that
// the numbers of all tables follow arrival order. Numbers must grow in
// update order within a table: a row numbered at or below an earlier row
// of the same table makes the FIRST/LAST and first-seen order of their
// groups unspecified.
func (t *Table) SetSeq(seq uint64) { t.seq = seq }

// checkArgs validates the shape of Update's arguments and returns the
// number of selected rows and the length of the batch.
func (t *Table) checkArgs(keys, inputs []arrow.Array, sel []int32, ids []uint32) (n, batchLen int, err error) {
	n, err = t.checkShape(keys, inputs, sel, ids)
	if err != nil || n == 0 {
		return n, 0, err
	}
	switch {
	case sel == nil:
		batchLen = n
	case len(keys) > 0:
		batchLen = keys[0].Len()
	default:
		batchLen = int(sel[n-1]) + 1
		for _, a := range inputs {
			if a != nil {
				batchLen = a.Len()
				break
			}
		}
	}
	return n, batchLen, nil
}

func (t *Table) checkShape(keys, inputs []arrow.Array, sel []int32, ids []uint32) (int, error) {
	if len(keys) != len(t.keyTypes) || len(inputs) != len(t.specs) {
		return 0, fmt.Errorf("agg: Update got %d keys and %d inputs, want %d and %d",
			len(keys), len(inputs), len(t.keyTypes), len(t.specs))
	}
	batch := -1
	check := func(a arrow.Array, what string, i int, want arrow.DataType) error {
		if a == nil {
			return fmt.Errorf("agg: %s %d is nil", what, i)
		}
		if want != nil && kindOf(a.DataType()) != kindOf(want) {
			return fmt.Errorf("agg: %s %d has type %s, want %s", what, i, a.DataType(), want)
		}
		if batch < 0 {
			batch = a.Len()
		} else if a.Len() != batch {
			return fmt.Errorf("agg: %s %d has %d rows, want %d", what, i, a.Len(), batch)
		}
		return nil
	}
	for i, a := range keys {
		if err := check(a, "key", i, t.keyTypes[i]); err != nil {
			return 0, err
		}
	}
	for j, a := range inputs {
		if t.specs[j].Input == nil || canonical(t.specs[j].Func) == "count_star" {
			if a != nil {
				if err := check(a, "input", j, nil); err != nil {
					return 0, err
				}
			}
			continue
		}
		if err := check(a, "input", j, t.specs[j].Input); err != nil {
			return 0, err
		}
	}
	n := len(sel)
	switch {
	case sel != nil:
		if n > 0 && batch >= 0 && (sel[0] < 0 || int(sel[n-1]) >= batch) {
			return 0, fmt.Errorf("agg: selection %d..%d outside batch of %d rows", sel[0], sel[n-1], batch)
		}
	case batch >= 0:
		n = batch
	case ids != nil:
		n = len(ids)
	default:
		return 0, fmt.Errorf("agg: Update without arrays needs sel or ids to give the row count")
	}
	if ids != nil && len(ids) < n {
		return 0, fmt.Errorf("agg: ids has room for %d rows, want %d", len(ids), n)
	}
	return n, nil
}

// nonNull returns the (ids, rows) of the selected rows where inputs[j] is
// not NULL; an input array shared by several aggregates is filtered once.
func nonNull(s *scratch, j int, inputs []arrow.Array, ids []uint32, sel []int32) ([]uint32, []int32) {
	arr := inputs[j]
	for i := 0; i < j; i++ {
		if s.nnSrc[i] == arr {
			return s.nnIDs[i], s.nnRows[i]
		}
	}
	bm, off := arr.NullBitmapBytes(), arr.Data().Offset()
	nid, nrow := s.nnIDs[j][:0], s.nnRows[j][:0]
	if arr.DataType().ID() != arrow.NULL {
		for k, g := range ids {
			r := rowOf(sel, k)
			if bit(bm, off+r) {
				nid = append(nid, g)
				nrow = append(nrow, int32(r))
			}
		}
	}
	s.nnIDs[j], s.nnRows[j], s.nnSrc[j] = nid, nrow, arr
	return nid, nrow
}

// forward maps ids of combined-away groups to the groups they live on in.
func (t *Table) forward(ids []uint32) {
	fwd := t.fwd
	for k, g := range ids {
		if fwd[g] != g {
			ids[k] = t.find(g)
		}
	}
}

// find returns the live group g was combined into (union-find with path
// halving).
func (t *Table) find(g uint32) uint32 {
	fwd := t.fwd
	for fwd[g] != g {
		fwd[g] = fwd[fwd[g]]
		g = fwd[g]
	}
	return g
}

func (t *Table) growStates() {
	for _, a := range t.aggs {
		a.grow(t.n)
	}
	t.touched = t.touched.grow(t.n)
	if t.dead != nil {
		t.dead = t.dead.grow(t.n)
		for g := len(t.fwd); g < t.n; g++ {
			t.fwd = append(t.fwd, uint32(g))
		}
	}
	if t.usePick {
		t.pick = growTo(t.pick, t.n, -1)
	}
	t.first = growTo(t.first, t.n, 0)
}

// account recomputes StateBytes from the sizes of the table's arrays: a
// constant amount of work per call, independent of the number of groups.
func (t *Table) account() {
	b := sizeOf(t.touched) + sizeOf(t.dead) + sizeOf(t.fwd) + sizeOf(t.pick) + sizeOf(t.emitGroups) + sizeOf(t.first)
	if t.groups != nil {
		b += t.groups.bytes()
	}
	for _, a := range t.aggs {
		b += a.bytes()
	}
	t.bytes = b
}

// StateBytes is the memory the table holds (hash table, keys, aggregate
// states), maintained by Update and Combine; it is O(1) to call.
// Batch-sized scratch buffers are borrowed from a shared pool per call and
// not counted.
func (t *Table) StateBytes() int64 { return t.bytes }

// Emit returns, for the given group ids (nil: all groups in id order,
// skipping combined-away ones), the key columns then one column per spec.
// The arrays are allocated from the table's allocator and owned by the
// caller. Emitting a combined-away group explicitly gives unspecified
// aggregate values. Emit fails for a result that does not fit its type
// (SUM/AVG of DECIMAL beyond 38 digits) and after a Combine overflow.
func (t *Table) Emit(groups []uint32) (keys, results []arrow.Array, err error) {
	if t.closed {
		return nil, nil, fmt.Errorf("agg: Emit on a released Table")
	}
	if t.err != nil {
		return nil, nil, t.err
	}
	if groups == nil {
		groups = t.emitGroups[:0]
		for g := 0; g < t.n; g++ {
			if t.dead == nil || !t.dead.get(uint32(g)) {
				groups = append(groups, uint32(g))
			}
		}
		t.emitGroups = groups[:0]
	}
	for _, g := range groups {
		if int(g) >= t.n {
			return nil, nil, fmt.Errorf("agg: Emit of group %d, table has %d", g, t.n)
		}
	}
	// The columns built so far are released on an error and also when an
	// allocation panics (past a memory limit, see resource.Allocator).
	var ks, rs []arrow.Array
	done := false
	defer func() {
		if !done {
			releaseAll(ks)
			releaseAll(rs)
		}
	}()
	if t.groups != nil {
		for _, c := range t.groups.cols {
			ks = append(ks, c.emit(t.alloc, groups))
		}
	}
	for _, a := range t.aggs {
		r, err := a.emit(t.alloc, groups)
		if err != nil {
			return nil, nil, err
		}
		rs = append(rs, r)
	}
	done = true
	return ks, rs, nil
}

// Touched returns the ids of the live groups updated (or combined into)
// since the last ClearTouched, ascending, in a new slice.
func (t *Table) Touched() []uint32 {
	var out []uint32
	for w, bits := range t.touched {
		if t.dead != nil {
			bits &^= t.dead[w]
		}
		for bits != 0 {
			b := uint32(trailingZeros(bits))
			out = append(out, uint32(w)<<6|b)
			bits &= bits - 1
		}
	}
	return out
}

// ClearTouched forgets which groups were touched.
func (t *Table) ClearTouched() { clear(t.touched) }

// Combine merges the state of group from into group into (merging session
// windows). Afterwards from is dead: Emit(nil) and Touched skip it, and
// rows of its key go to into. If into was itself combined away, the merge
// goes to the group it lives on in. Ids at or above Len are ignored;
// combining a group with itself (or with a group already combined into it)
// does nothing. FIRST_VALUE/LAST_VALUE keep the value of whichever group's
// row came first/last in update order; DISTINCT aggregates replay from's
// distinct values into into. Combine has no error result: an overflow
// while merging is reported by the next Update or Emit.
func (t *Table) Combine(into, from uint32) {
	if t.closed || int(into) >= t.n || int(from) >= t.n {
		return
	}
	if t.dead == nil {
		t.dead = make(bitset, 0).grow(t.n)
		t.fwd = make([]uint32, t.n)
		for g := range t.fwd {
			t.fwd[g] = uint32(g)
		}
	}
	into, from = t.find(into), t.find(from)
	if into == from {
		return
	}
	scr := getScratch(len(t.specs))
	for _, a := range t.aggs {
		if err := a.combine(into, from, scr); err != nil && t.err == nil {
			t.err = err
		}
	}
	putScratch(scr)
	t.first[into] = min(t.first[into], t.first[from])
	t.dead.set(from)
	t.touched.clr(from)
	t.touched.set(into)
	t.fwd[from] = into
	t.account()
}

// Release frees the table's state; the table is unusable afterwards.
// Release is idempotent.
func (t *Table) Release() {
	if t.closed {
		return
	}
	t.closed = true
	*t = Table{closed: true}
}

// apply marks the groups ids as touched and updates every aggregate with
// the rows sel (nil: all) of inputs, row i going to group ids[i]; the tail
// shared by Update and UpdateIDs once group ids are known.
func (t *Table) apply(ids []uint32, inputs []arrow.Array, sel []int32, scr *scratch, batchLen int) error {
	touched := t.touched
	for _, g := range ids {
		touched[g>>6] |= 1 << (g & 63)
	}

	in := &t.in
	for j, a := range t.aggs {
		*in = input{arr: inputs[j], ids: ids, rows: sel, seq: t.seq, pick: t.pick, scr: scr}
		if in.arr != nil && a.skipNulls() && in.arr.NullN() > 0 {
			in.ids, in.rows = nonNull(scr, j, inputs, ids, sel)
			if len(in.ids) == 0 {
				continue
			}
		}
		if err := a.update(in); err != nil {
			*in = input{}
			return err
		}
	}
	*in = input{} // do not retain the batch
	t.seq += uint64(batchLen)
	t.account()
	return nil
}
