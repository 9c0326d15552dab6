package agg

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// mergeArgs is one Merge as the aggregators see it: group from[k] of the
// source table folds into group into[k] of the destination (into may
// repeat when the destination forwards several keys to one live group).
type mergeArgs struct {
	into, from []uint32
	// srcMap maps every group of the source to its destination group
	// (^0 for combined-away groups).
	srcMap  []uint32
	srcDead bitset // nil when the source has no combined-away groups
	alloc   memory.Allocator
	scr     *scratch
}

// Merge folds every live group of src into t by key, combining states as
// Combine does within a table: counts and sums add, MIN/MAX compare,
// FIRST_VALUE/LAST_VALUE keep the row with the smaller/larger sequence
// number (see SetSeq), STDDEV/VAR merge with Chan's formula, DISTINCT
// value sets are united and APPROX_COUNT_DISTINCT takes the register-wise
// maximum. Groups missing from t are created in src's first-seen order;
// a key that t combined away merges into the group it lives on in. The
// groups of t that received a group are marked touched, and each keeps
// the smaller first-row sequence number of the two (FirstSeenOrder).
// Combined-away groups of src are skipped: their keys are not forwarded
// in t.
//
// src is read, not changed, and stays owned by the caller; it must have
// the same key types and specs as t and must not be t (an error
// otherwise). Merge works a table at a time: src's keys are emitted once
// and t is probed with them in a batch, as Update probes, and the states
// are folded by loops specialised to each aggregate over (destination,
// source) group ids. An overflow (SUM beyond BIGINT, 128-bit sums) is
// returned as an error wrapping ErrOverflow; afterwards t's states are
// unspecified (the query is expected to fail).
func (t *Table) Merge(src *Table) error { return t.MergeIDs(src, nil) }

// MergeIDs is Merge that also writes into ids[g], for every group g of
// src (ids must have room for src.Len() entries), the group of t it was
// merged into, or ^uint32(0) if g was combined away. ids may be nil.
func (t *Table) MergeIDs(src *Table, ids []uint32) error {
	if err := t.checkMerge(src, ids); err != nil {
		return err
	}
	if src.n == 0 {
		return nil
	}
	scr := getScratch(len(t.specs))
	defer putScratch(scr)
	live := scr.mFrom[:0]
	for g := 0; g < src.n; g++ {
		if src.dead == nil || !src.dead.get(uint32(g)) {
			live = append(live, uint32(g))
		}
	}
	scr.mFrom = live
	scr.mInto = growTo(scr.mInto, len(live), 0)
	into := scr.mInto[:len(live)]

	n0 := t.n
	if t.groups == nil {
		t.n = 1 // no keys: one group, which src (n > 0) has too
		clear(into)
	} else {
		if err := t.findKeysOf(src, live, into, scr); err != nil {
			return err
		}
	}
	t.growStates()
	// New groups take their first-row number from src; they were created
	// in src's order, so the first occurrence of each is in id order.
	want := uint32(n0)
	for k, g := range into {
		if g == want {
			t.first[g] = src.first[live[k]]
			want++
		}
	}
	if t.fwd != nil {
		t.forward(into)
	}
	err := t.mergeStates(src, live, into, scr, ids != nil)
	if ids != nil {
		copy(ids, scr.mMap[:src.n])
	}
	return err
}

// mergeStates folds src's groups live[k] into t's groups into[k]. The
// map of every src group (scr.mMap, mergeArgs.srcMap) is built when
// wantMap is set or a DISTINCT aggregate needs it.
func (t *Table) mergeStates(src *Table, live, into []uint32, scr *scratch, wantMap bool) error {
	first, sfirst, touched := t.first, src.first, t.touched
	for k, g := range into {
		first[g] = min(first[g], sfirst[live[k]])
		touched[g>>6] |= 1 << (g & 63)
	}
	var srcMap []uint32
	if wantMap || t.distinct {
		scr.mMap = growTo(scr.mMap, src.n, 0)
		srcMap = scr.mMap[:src.n]
		for g := range srcMap {
			srcMap[g] = ^uint32(0)
		}
		for k, g := range live {
			srcMap[g] = into[k]
		}
	}
	m := &mergeArgs{into: into, from: live, srcMap: srcMap, srcDead: src.dead, alloc: t.alloc, scr: scr}
	var err error
	for j, a := range t.aggs {
		if err = a.merge(src.aggs[j], m); err != nil {
			break
		}
	}
	t.seq = max(t.seq, src.seq)
	t.account()
	return err
}

// MapKeys writes into ids[g-from], for each group g >= from of src (ids
// must have room for src.Len()-from entries), the group of t with g's
// key, creating missing groups with empty states in src's order; src
// must have the same key types as t (its aggregates may differ). With
// ResetStates and MergeMapped it lets a caller that folds the same
// tables into t again and again (the panes of successive sliding
// windows) look each key up once instead of once per fold.
func (t *Table) MapKeys(src *Table, from int, ids []uint32) error {
	if t.closed || src == nil || src.closed {
		return fmt.Errorf("agg: MapKeys with a released Table")
	}
	if len(t.keyTypes) != len(src.keyTypes) {
		return fmt.Errorf("agg: MapKeys of a table with %d keys into one with %d", len(src.keyTypes), len(t.keyTypes))
	}
	for i, dt := range t.keyTypes {
		if !arrow.TypeEqual(dt, src.keyTypes[i]) {
			return fmt.Errorf("agg: MapKeys: key %d has type %s, want %s", i, src.keyTypes[i], dt)
		}
	}
	if from >= src.n {
		return nil
	}
	if len(ids) < src.n-from {
		return fmt.Errorf("agg: MapKeys: ids has room for %d groups, want %d", len(ids), src.n-from)
	}
	ids = ids[:src.n-from]
	n0 := t.n
	if t.groups == nil {
		t.n = 1
		clear(ids)
	} else {
		scr := getScratch(len(t.specs))
		defer putScratch(scr)
		groups := scr.mFrom[:0]
		for g := from; g < src.n; g++ {
			groups = append(groups, uint32(g))
		}
		scr.mFrom = groups
		if err := t.findKeysOf(src, groups, ids, scr); err != nil {
			return err
		}
	}
	t.growStates()
	for g := n0; g < t.n; g++ {
		t.first[g] = ^uint64(0) // no row yet
	}
	if t.fwd != nil {
		t.forward(ids)
	}
	t.account()
	return nil
}

// ResetStates empties every group's aggregate state (as if no row had
// been added) and forgets touched groups, keeping the groups, their keys
// and the memory. First-seen sequence numbers become unknown until
// MergeMapped sets them.
func (t *Table) ResetStates() {
	if t.closed {
		return
	}
	for _, a := range t.aggs {
		a.reset()
	}
	t.touched, t.pick = t.touched[:0], t.pick[:0]
	t.growStates()
	for g := range t.first {
		t.first[g] = ^uint64(0)
	}
	t.err = nil
}

// MergeMapped is Merge for a src whose keys were mapped with MapKeys:
// every live group g of src folds into group into[g] of t (into must
// have an entry below Len for every group of src). It does not look at
// keys; otherwise it behaves as Merge (same specs required, groups marked
// touched, the smaller first-row number kept).
func (t *Table) MergeMapped(src *Table, into []uint32) error {
	if err := t.checkMerge(src, nil); err != nil {
		return err
	}
	if len(into) < src.n {
		return fmt.Errorf("agg: MergeMapped: %d mapped groups, src has %d", len(into), src.n)
	}
	if src.n == 0 {
		return nil
	}
	scr := getScratch(len(t.specs))
	defer putScratch(scr)
	live := scr.mFrom[:0]
	scr.mInto = scr.mInto[:0]
	for g := 0; g < src.n; g++ {
		if src.dead == nil || !src.dead.get(uint32(g)) {
			if int(into[g]) >= t.n {
				return fmt.Errorf("agg: MergeMapped: group %d maps to %d, table has %d", g, into[g], t.n)
			}
			live = append(live, uint32(g))
			scr.mInto = append(scr.mInto, into[g])
		}
	}
	scr.mFrom = live
	if t.fwd != nil {
		t.forward(scr.mInto)
	}
	return t.mergeStates(src, live, scr.mInto, scr, false)
}

// MergeAligned is MergeMapped with the identity map: group g of src
// folds into group g of t. It is for tables whose groups were all created
// by MapKeys from one dictionary table, in its order, so that equal ids
// mean equal keys (the caller keeps them so; keys are not compared). t
// must have at least src.Len() groups. Groups of src that hold no rows
// (first-row number unknown, as MapKeys and ResetStates leave them) are
// skipped: they change no state and are not marked touched in t.
// Otherwise it behaves as Merge.
func (t *Table) MergeAligned(src *Table) error {
	if err := t.checkMerge(src, nil); err != nil {
		return err
	}
	if src.n > t.n {
		return fmt.Errorf("agg: MergeAligned: src has %d groups, table has %d", src.n, t.n)
	}
	scr := getScratch(len(t.specs))
	defer putScratch(scr)
	live := scr.mFrom[:0]
	for g, f := range src.first[:src.n] {
		if f != ^uint64(0) && (src.dead == nil || !src.dead.get(uint32(g))) {
			live = append(live, uint32(g))
		}
	}
	scr.mFrom = live
	if len(live) == 0 {
		return nil
	}
	into := append(scr.mInto[:0], live...)
	scr.mInto = into
	if t.fwd != nil {
		t.forward(into)
	}
	return t.mergeStates(src, live, into, scr, false)
}

// CopyStates makes t's aggregate states, first-row numbers and touched
// marks those of src, group for group, and the states of t's groups
// from src.Len() on empty: what ResetStates then MergeAligned give, for
// tables aligned on one dictionary (see MergeAligned), but copying the
// states' memory where the aggregates allow it. t must have at least
// src.Len() groups and the same specs.
func (t *Table) CopyStates(src *Table) error {
	if err := t.checkMerge(src, nil); err != nil {
		return err
	}
	if src.n > t.n {
		return fmt.Errorf("agg: CopyStates: src has %d groups, table has %d", src.n, t.n)
	}
	fast := t.dead == nil && src.dead == nil
	for _, a := range t.aggs {
		_, ok := a.(stateCopier)
		fast = fast && ok
	}
	if !fast {
		t.ResetStates()
		return t.MergeAligned(src)
	}
	for j, a := range t.aggs {
		a.(stateCopier).copyStates(src.aggs[j], src.n)
	}
	words := (src.n + 63) >> 6
	t.touched = append(t.touched[:0], src.touched[:words]...)
	t.first = append(t.first[:0], src.first[:src.n]...)
	t.growStates()
	for g := src.n; g < t.n; g++ {
		t.first[g] = ^uint64(0)
	}
	t.seq = max(t.seq, src.seq)
	t.account()
	return nil
}

// stateCopier is implemented by aggregators whose states are plain
// per-group values: copyStates makes the states of groups 0..n-1 those
// of src (the same aggregate of another table) and drops the rest (the
// table grows them again, empty).
type stateCopier interface {
	copyStates(src aggregator, n int)
}

func (a *countAgg) copyStates(src aggregator, n int) {
	a.n = append(a.n[:0], src.(*countAgg).n[:n]...)
}

func (a *sumInt[T]) copyStates(src aggregator, n int) {
	o := src.(*sumInt[T])
	a.sums, a.nn = append(a.sums[:0], o.sums[:n]...), append(a.nn[:0], o.nn[:(n+63)>>6]...)
}

func (a *sumFloat) copyStates(src aggregator, n int) {
	o := src.(*sumFloat)
	a.sums, a.n = append(a.sums[:0], o.sums[:n]...), append(a.n[:0], o.n[:n]...)
}

func (a *sumWide) copyStates(src aggregator, n int) {
	o := src.(*sumWide)
	a.sums, a.n = append(a.sums[:0], o.sums[:n]...), append(a.n[:0], o.n[:n]...)
}

func (a *mmOrd[T]) copyStates(src aggregator, n int) {
	o := src.(*mmOrd[T])
	a.vals, a.nn = append(a.vals[:0], o.vals[:n]...), append(a.nn[:0], o.nn[:(n+63)>>6]...)
}

func (a *mmDec) copyStates(src aggregator, n int) {
	o := src.(*mmDec)
	a.vals, a.nn = append(a.vals[:0], o.vals[:n]...), append(a.nn[:0], o.nn[:(n+63)>>6]...)
}

func (t *Table) checkMerge(src *Table, ids []uint32) error {
	switch {
	case t.closed || src == nil || src.closed:
		return fmt.Errorf("agg: Merge with a released Table")
	case t == src:
		return fmt.Errorf("agg: Merge of a table into itself")
	case t.err != nil:
		return t.err
	case src.err != nil:
		return src.err
	case ids != nil && len(ids) < src.n:
		return fmt.Errorf("agg: MergeIDs: ids has room for %d groups, want %d", len(ids), src.n)
	case len(t.keyTypes) != len(src.keyTypes) || len(t.specs) != len(src.specs):
		return fmt.Errorf("agg: Merge of a table with %d keys and %d aggregates into one with %d and %d",
			len(src.keyTypes), len(src.specs), len(t.keyTypes), len(t.specs))
	}
	for i, dt := range t.keyTypes {
		if !arrow.TypeEqual(dt, src.keyTypes[i]) {
			return fmt.Errorf("agg: Merge: key %d has type %s, want %s", i, src.keyTypes[i], dt)
		}
	}
	for j, s := range t.specs {
		o := src.specs[j]
		if canonical(s.Func) != canonical(o.Func) || s.Distinct != o.Distinct ||
			(s.Input == nil) != (o.Input == nil) || s.Input != nil && !arrow.TypeEqual(s.Input, o.Input) {
			return fmt.Errorf("agg: Merge: aggregate %d differs (%s%s, want %s%s)", j, o.Func, typeSuffix(o.Input), s.Func, typeSuffix(s.Input))
		}
	}
	return nil
}

func typeSuffix(dt arrow.DataType) string {
	if dt == nil {
		return ""
	}
	return "(" + dt.String() + ")"
}

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		a.Release()
	}
}

// FirstSeenOrder returns the live groups in first-seen order: ascending
// sequence number of each group's first row (see SetSeq), which for a
// table built by Merge is the order in which one table fed all the rows
// would have created them. It returns nil when that is the id order
// Emit(nil) uses (always the case for a table only fed by Update), else
// a new slice.
func (t *Table) FirstSeenOrder() []uint32 {
	ordered := t.dead == nil
	for g := 1; ordered && g < t.n; g++ {
		ordered = t.first[g-1] < t.first[g]
	}
	if ordered {
		return nil
	}
	var out []uint32
	for g := 0; g < t.n; g++ {
		if t.dead == nil || !t.dead.get(uint32(g)) {
			out = append(out, uint32(g))
		}
	}
	t.SortFirstSeen(out)
	return out
}

// SortFirstSeen sorts groups (ids below Len) in place into first-seen
// order (see FirstSeenOrder); groups already in that order cost one pass.
func (t *Table) SortFirstSeen(groups []uint32) {
	sorted := true
	for i := 1; sorted && i < len(groups); i++ {
		sorted = t.first[groups[i-1]] < t.first[groups[i]]
	}
	if sorted {
		return
	}
	slices.SortFunc(groups, func(x, y uint32) int {
		a, b := t.first[x], t.first[y]
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return int(x) - int(y)
	})
}

// ---- per-aggregate merges ----

func (a *countAgg) merge(src aggregator, m *mergeArgs) error {
	c, s := a.n, src.(*countAgg).n
	from := m.from[:len(m.into)]
	for k, g := range m.into {
		c[g] += s[from[k]]
	}
	return nil
}

func (a *sumInt[T]) merge(src aggregator, m *mergeArgs) error {
	o := src.(*sumInt[T])
	sums, nn := a.sums, a.nn
	from := m.from[:len(m.into)]
	var ovf int64
	for k, g := range m.into {
		f := from[k]
		x, v := sums[g], o.sums[f]
		s := x + v
		ovf |= (s ^ x) & (s ^ v)
		sums[g] = s
		nn[g>>6] |= o.nn[f>>6] >> (f & 63) & 1 << (g & 63)
	}
	if ovf < 0 {
		return overflow("SUM", "BIGINT")
	}
	return nil
}

func (a *sumFloat) merge(src aggregator, m *mergeArgs) error {
	o := src.(*sumFloat)
	sums, cnt := a.sums, a.n
	from := m.from[:len(m.into)]
	for k, g := range m.into {
		f := from[k]
		sums[g] += o.sums[f]
		cnt[g] += o.n[f]
	}
	return nil
}

func (a *sumWide) merge(src aggregator, m *mergeArgs) error {
	o := src.(*sumWide)
	sums, cnt := a.sums, a.n
	from := m.from[:len(m.into)]
	var ovf int64
	for k, g := range m.into {
		f := from[k]
		x, v := sums[g], o.sums[f]
		lo, c := bits.Add64(x.lo, v.lo, 0)
		hi := x.hi + v.hi + int64(c)
		ovf |= (hi ^ x.hi) & (hi ^ v.hi)
		sums[g] = i128{lo, hi}
		cnt[g] += o.n[f]
	}
	if ovf < 0 {
		return overflow(a.name(), "128-bit sum")
	}
	return nil
}

func (a *mmOrd[T]) merge(src aggregator, m *mergeArgs) error {
	o := src.(*mmOrd[T])
	vals, nn := a.vals, a.nn
	from := m.from[:len(m.into)]
	// Unset source states hold the identity (fill), so they need no test.
	if a.max {
		for k, g := range m.into {
			f := from[k]
			v, c := o.vals[f], vals[g]
			if v > c || (v != v && c == c) {
				vals[g] = v
			}
			nn[g>>6] |= o.nn[f>>6] >> (f & 63) & 1 << (g & 63)
		}
		return nil
	}
	for k, g := range m.into {
		f := from[k]
		v, c := o.vals[f], vals[g]
		if v < c || (c != c && v == v) {
			vals[g] = v
		}
		nn[g>>6] |= o.nn[f>>6] >> (f & 63) & 1 << (g & 63)
	}
	return nil
}

func (a *mmDec) merge(src aggregator, m *mergeArgs) error {
	o := src.(*mmDec)
	vals, nn := a.vals, a.nn
	from := m.from[:len(m.into)]
	// Unset source states hold the identity (fill), so they need no test.
	if a.max {
		for k, g := range m.into {
			f := from[k]
			if v := o.vals[f]; decLess(vals[g], v) {
				vals[g] = v
			}
			nn[g>>6] |= o.nn[f>>6] >> (f & 63) & 1 << (g & 63)
		}
		return nil
	}
	for k, g := range m.into {
		f := from[k]
		if v := o.vals[f]; decLess(v, vals[g]) {
			vals[g] = v
		}
		nn[g>>6] |= o.nn[f>>6] >> (f & 63) & 1 << (g & 63)
	}
	return nil
}

func (a *mmBool) merge(src aggregator, m *mergeArgs) error {
	o := src.(*mmBool)
	for k, g := range m.into {
		f := m.from[k]
		if !o.nn.get(f) {
			continue
		}
		b := o.vals.get(f)
		if a.max && b {
			a.vals.set(g)
		} else if !a.max && !b {
			a.vals.clr(g)
		}
		a.nn.set(g)
	}
	return nil
}

func (a *mmString) merge(src aggregator, m *mergeArgs) error {
	o := src.(*mmString)
	for k, g := range m.into {
		f := m.from[k]
		if !o.vals.valid.get(f) {
			continue
		}
		if v := o.vals.get(f); !a.vals.valid.get(g) || a.better(v, a.vals.get(g)) {
			if err := a.vals.set(g, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (nullAgg) merge(aggregator, *mergeArgs) error { return nil }

func (a *firstLast) merge(src aggregator, m *mergeArgs) error {
	o := src.(*firstLast)
	for k, g := range m.into {
		f := m.from[k]
		if !o.has.get(f) {
			continue
		}
		if a.has.get(g) && (a.last && o.seq[f] < a.seq[g] || !a.last && o.seq[f] > a.seq[g]) {
			continue
		}
		a.has.set(g)
		a.seq[g] = o.seq[f]
		if err := a.vals.copyFrom(g, o.vals, f); err != nil {
			return err
		}
	}
	return nil
}

func (a *stats) merge(src aggregator, m *mergeArgs) error {
	o := src.(*stats)
	w := a.w
	from := m.from[:len(m.into)]
	for k, g := range m.into {
		w[g].merge(o.w[from[k]])
	}
	return nil
}

func (a *hll) merge(src aggregator, m *mergeArgs) error {
	o := src.(*hll)
	for k, g := range m.into {
		d := a.regs[int(g)<<hllP:][:hllM]
		for i, r := range o.regs[int(m.from[k])<<hllP:][:hllM] {
			d[i] = max(d[i], r)
		}
	}
	return nil
}

// merge replays the (group, value) pairs of src's live groups into the
// destination groups, all in one batch: pairs new to the destination
// update its inner aggregate.
func (a *distinct) merge(src aggregator, m *mergeArgs) error {
	o := src.(*distinct)
	var pairs, ids []uint32
	for p := 0; p < o.s.set.n; p++ {
		g := o.s.set.prefix[p]
		if d := m.srcMap[g]; d != ^uint32(0) && o.has(uint32(p)) {
			pairs = append(pairs, uint32(p))
			ids = append(ids, d)
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	vals := o.s.set.cols[0].emit(m.alloc, pairs)
	defer vals.Release()
	return a.add(vals, ids, nil, 0, a.pick, m.scr)
}

// ---- value stores ----

func (s *fixedStore[T]) copyFrom(dst uint32, src store, g uint32) error {
	o := src.(*fixedStore[T])
	s.vals[dst] = o.vals[g]
	s.valid.put(dst, o.valid.get(g))
	return nil
}

func (s *boolStore) copyFrom(dst uint32, src store, g uint32) error {
	o := src.(*boolStore)
	s.vals.put(dst, o.vals.get(g))
	s.valid.put(dst, o.valid.get(g))
	return nil
}

func (s *stringStore) copyFrom(dst uint32, src store, g uint32) error {
	o := src.(*stringStore)
	if !o.valid.get(g) {
		s.setNull(dst)
		return nil
	}
	return s.set(dst, o.get(g))
}

func (nullStore) copyFrom(uint32, store, uint32) error { return nil }

// Reset empties the table (no groups, sequence number 0) but keeps its
// memory, so that a scratch table reused for one window after another
// stops allocating once it has reached the size of the largest. Arrays
// returned by earlier Emit calls are not affected.
func (t *Table) Reset() {
	if t.closed {
		return
	}
	t.n, t.seq, t.err = 0, 0, nil
	if t.groups != nil {
		t.groups.reset()
	}
	for _, a := range t.aggs {
		a.reset()
	}
	t.touched, t.pick, t.first = t.touched[:0], t.pick[:0], t.first[:0]
	t.dead, t.fwd = nil, nil
	t.account()
}

func (m *groupMap) reset() {
	clear(m.slots)
	m.n = 0
	m.prefix = m.prefix[:0]
	for _, c := range m.cols {
		c.truncate(0)
	}
}

func (a *countAgg) reset()      { a.n = a.n[:0] }
func (a *sumInt[T]) reset()     { a.sums, a.nn = a.sums[:0], a.nn[:0] }
func (a *sumFloat) reset()      { a.sums, a.n = a.sums[:0], a.n[:0] }
func (a *sumWide) reset()       { a.sums, a.n = a.sums[:0], a.n[:0] }
func (a *mmOrd[T]) reset()      { a.vals, a.nn = a.vals[:0], a.nn[:0] }
func (a *mmDec) reset()         { a.vals, a.nn = a.vals[:0], a.nn[:0] }
func (a *mmBool) reset()        { a.vals, a.nn, a.n = a.vals[:0], a.nn[:0], 0 }
func (a *mmString) reset()      { a.vals.reset() }
func (nullAgg) reset()          {}
func (a *stats) reset()         { a.w = a.w[:0] }
func (a *hll) reset()           { a.regs = a.regs[:0] }
func (a *firstLast) reset()     { a.vals.reset(); a.has, a.seq = a.has[:0], a.seq[:0] }
func (s *fixedStore[T]) reset() { s.vals, s.valid = s.vals[:0], s.valid[:0] }
func (s *boolStore) reset()     { s.vals, s.valid = s.vals[:0], s.valid[:0] }
func (nullStore) reset()        {}

func (s *stringStore) reset() {
	s.off, s.ln, s.data, s.valid, s.garbage = s.off[:0], s.ln[:0], s.data[:0], s.valid[:0], 0
}

func (a *distinct) reset() {
	a.inner.reset()
	a.pick = a.pick[:0]
	if a.owner {
		s := a.s
		s.set.reset()
		s.head, s.next, s.mask, s.loads, s.linked = s.head[:0], s.next[:0], s.mask[:0], nil, 0
	}
}

// findKeysOf looks up (creating as needed) the keys of src's groups in t,
// writing t's group id of src group groups[i] to ids[i].
func (t *Table) findKeysOf(src *Table, groups, ids []uint32, scr *scratch) error {
	keys := make([]arrow.Array, len(src.groups.cols))
	for c, col := range src.groups.cols {
		keys[c] = col.emit(t.alloc, groups)
	}
	t.groups.s = scr
	_, err := t.groups.find(keys, nil, nil, ids)
	t.groups.s = nil
	releaseAll(keys)
	if err != nil {
		return err
	}
	t.n = t.groups.n
	return nil
}
