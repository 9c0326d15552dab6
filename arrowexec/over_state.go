package arrowexec

import (
	"fmt"
	"maps"
	"slices"
)

var _ Stateful = (*OverOp)(nil)

// OverOp's checkpoint state (see Stateful). Rows the operator holds are
// Arrow and saved as tables: the partition keys of each specification,
// the batches waiting for the watermark (ordered) or for their windows to
// close (windowed), and the rows waiting for a LEAD, gathered into one
// batch. The running state of the calls (counters, sums, rings of recent
// values, monotonic deques, exact DECIMAL sums) is saved with the state
// codec (state_codec.go); each evaluator lists its state fields in its
// state method below. Scratch buffers are not state.
//
// Tables and blobs: "over" (watermarks, counters), "over.spec.N.keys" and
// "over.spec.N" (partition dictionary and per-partition counters),
// "over.evals", "over.lead.rows" and "over.lead", "over.sort" and
// "over.sort.meta", "over.win" and "over.win.meta".

// scalarState lists the operator's scalar state fields.
func (o *OverOp) scalarState() []any { return []any{&o.wm, &o.outWm, &o.seq, &o.stats} }

// SaveState implements Stateful. It does not change the operator.
func (o *OverOp) SaveState(w *StateWriter) error {
	if err := putBlob(o.alloc, w, "over", o.scalarState()...); err != nil {
		return err
	}
	for i, sp := range o.specs {
		if err := sp.save(o, w, i); err != nil {
			return err
		}
	}
	if err := putBlob(o.alloc, w, "over.evals", o.evalState()...); err != nil {
		return err
	}
	if o.lead != nil {
		if err := o.lead.save(w); err != nil {
			return err
		}
	}
	if o.sort != nil {
		if err := o.sort.save(o, w); err != nil {
			return err
		}
	}
	if o.win != nil {
		return o.win.save(o, w)
	}
	return nil
}

// LoadState implements Stateful: it is called once, before Open, on an
// operator just built from the same configuration.
func (o *OverOp) LoadState(r *StateReader) error {
	if err := o.loadState(r); err != nil {
		return fmt.Errorf("window functions: loading state: %w", err)
	}
	return o.account()
}

func (o *OverOp) loadState(r *StateReader) error {
	if err := loadBlob(r, "over", o.scalarState()...); err != nil {
		return err
	}
	for i, sp := range o.specs {
		if err := sp.load(r, i); err != nil {
			return err
		}
	}
	if err := loadBlob(r, "over.evals", o.evalState()...); err != nil {
		return err
	}
	if o.lead != nil {
		if err := o.lead.load(r); err != nil {
			return err
		}
	}
	if o.sort != nil {
		if err := o.sort.load(r); err != nil {
			return err
		}
	}
	if o.win != nil {
		return o.win.load(r)
	}
	return nil
}

func (o *OverOp) evalState() []any {
	var ptrs []any
	for _, e := range o.evals {
		if e != nil {
			ptrs = append(ptrs, e.state()...)
		}
	}
	return ptrs
}

// save writes the partition dictionary (keys in partition id order) and
// the per-partition counters of specification i.
func (s *overSpecState) save(o *OverOp, w *StateWriter, i int) error {
	if s.table != nil && s.parts > 0 {
		keys, _, err := s.table.Emit(overIota(s.parts))
		if err != nil {
			return fmt.Errorf("PARTITION BY: %w", err)
		}
		if err := w.Put(fmt.Sprintf("over.spec.%d.keys", i), stateBatch(keys, s.parts)); err != nil {
			return err
		}
	}
	return putBlob(o.alloc, w, fmt.Sprintf("over.spec.%d", i), &s.parts, &s.cnt, &s.lastT)
}

func (s *overSpecState) load(r *StateReader, i int) error {
	if err := loadBlob(r, fmt.Sprintf("over.spec.%d", i), &s.parts, &s.cnt, &s.lastT); err != nil {
		return err
	}
	if s.table == nil || s.parts == 0 {
		return nil
	}
	name := fmt.Sprintf("over.spec.%d.keys", i)
	t := r.Table(name)
	if len(t) != 1 || int(t[0].NumRows()) != s.parts {
		return fmt.Errorf("state %q missing or malformed", name)
	}
	ids := make([]uint32, s.parts)
	if err := s.table.Update(t[0].Columns(), nil, nil, ids); err != nil {
		return fmt.Errorf("state %q: %w", name, err)
	}
	for k, id := range ids {
		if id != uint32(k) {
			return fmt.Errorf("state %q: partition %d restored as %d", name, k, id)
		}
	}
	return nil
}

// overIota returns 0, 1, ..., n-1.
func overIota(n int) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i)
	}
	return ids
}

// ---- LEAD ----

// save writes the pending rows as one batch (in processing order) and the
// rings, with the pending rows' refs pointing into that batch, as
// compact would leave them.
func (l *leadState) save(w *StateWriter) error {
	refs := make([][]pendRef, len(l.refs))
	for p := range l.refs {
		refs[p] = slices.Clone(l.refs[p])
	}
	if !l.flushed && l.pending > 0 {
		res, pend := l.pendingRows()
		cols, err := l.gather(pend)
		if err != nil {
			return err
		}
		if err := w.Put("over.lead.rows", stateBatch(cols, len(pend))); err != nil {
			return err
		}
		size := l.m + 1
		for i, r := range res {
			ref := &refs[r.p][r.rp%size]
			ref.chunk, ref.row = 0, int32(i)
		}
	}
	return putBlob(l.o.alloc, w, "over.lead", l.fields(&refs)...)
}

func (l *leadState) fields(refs *[][]pendRef) []any {
	ptrs := []any{refs, &l.pending, &l.flushed}
	for _, e := range l.evals {
		ptrs = append(ptrs, e.state()...)
	}
	return ptrs
}

func (l *leadState) load(r *StateReader) error {
	if err := loadBlob(r, "over.lead", l.fields(&l.refs)...); err != nil {
		return err
	}
	l.holdPart = -1
	t := r.Table("over.lead.rows")
	if len(t) == 0 {
		return nil
	}
	if len(t) != 1 || int(t[0].NumCols()) != l.nStore {
		return fmt.Errorf("state %q malformed", "over.lead.rows")
	}
	cols := slices.Clone(t[0].Columns())
	ch := &pendChunk{cols: cols, rows: int(t[0].NumRows()), live: int(t[0].NumRows())}
	for _, c := range cols {
		c.Retain()
		ch.bytes += overArrayBytes(c)
	}
	l.chunks[0], l.nextID = ch, 1
	l.chunkB, l.liveRows = ch.bytes, int64(ch.rows)
	return nil
}

// ---- ordered release ----

func (c *sortChunk) fields() []any { return []any{&c.keys, &c.rows, &c.next, &c.contiguous, &c.bytes} }

// save writes the buffered input batches as they are (the rows of a chunk
// already released included: next says where it stands) and their sort
// order.
func (b *sortBuffer) save(o *OverOp, w *StateWriter) error {
	var ptrs []any
	for _, c := range b.chunks {
		c.batch.Retain()
		if err := w.Put("over.sort", c.batch); err != nil {
			return err
		}
		ptrs = append(ptrs, c.fields()...)
	}
	return putBlob(o.alloc, w, "over.sort.meta", ptrs...)
}

func (b *sortBuffer) load(r *StateReader) error {
	batches := r.Table("over.sort")
	var ptrs []any
	for _, batch := range batches {
		c := &sortChunk{batch: batch}
		b.chunks = append(b.chunks, c)
		ptrs = append(ptrs, c.fields()...)
	}
	err := loadBlob(r, "over.sort.meta", ptrs...)
	for _, c := range b.chunks {
		c.batch.Retain()
		b.bytes += c.bytes
	}
	return err
}

// ---- windows ----

// overWinMeta is the saved form of overWindows besides the batches.
type overWinMeta struct {
	ids     []int32 // chunk ids, in the order of the saved batches
	maxEnds []int64
	nextID  int32
	wins    []overWin // by start
	bytes   int64
}

func (w *overWindows) save(o *OverOp, sw *StateWriter) error {
	m := overWinMeta{ids: slices.Sorted(maps.Keys(w.chunks)), nextID: w.nextID, bytes: w.bytes}
	for _, id := range m.ids {
		c := w.chunks[id]
		c.batch.Retain()
		if err := sw.Put("over.win", c.batch); err != nil {
			return err
		}
		m.maxEnds = append(m.maxEnds, c.maxEnd)
	}
	for _, s := range slices.Sorted(maps.Keys(w.wins)) {
		m.wins = append(m.wins, *w.wins[s])
	}
	return putBlob(o.alloc, sw, "over.win.meta", &m)
}

func (w *overWindows) load(r *StateReader) error {
	var m overWinMeta
	if err := loadBlob(r, "over.win.meta", &m); err != nil {
		return err
	}
	batches := r.Table("over.win")
	if len(batches) != len(m.ids) || len(m.maxEnds) != len(m.ids) {
		return fmt.Errorf("state %q: %d batches for %d chunks", "over.win", len(batches), len(m.ids))
	}
	for i, id := range m.ids {
		batches[i].Retain()
		w.chunks[id] = &winChunk{batch: batches[i], maxEnd: m.maxEnds[i], bytes: overBatchBytes(batches[i])}
	}
	for i := range m.wins {
		win := m.wins[i]
		w.wins[win.start] = &win
		for _, id := range win.src {
			c, ok := w.chunks[id]
			if !ok {
				return fmt.Errorf("state %q: window %d points into missing chunk %d", "over.win.meta", win.start, id)
			}
			c.refs++
		}
	}
	w.nextID, w.bytes = m.nextID, m.bytes
	return nil
}

// ---- the evaluators' state fields ----

func (e *rowNumberEval) state() []any { return nil }
func (e *rankEval) state() []any      { return []any{&e.rank} }
func (e *countEval) state() []any     { return []any{&e.cnt, &e.ring} }
func (e *sumIntEval[T]) state() []any { return []any{&e.sums, &e.cnt, &e.ring} }
func (e *sumDecEval) state() []any    { return []any{&e.sums, &e.cnt, &e.ring} }
func (e *varEval) state() []any {
	return []any{&e.n, &e.mean, &e.m2, &e.shift, &e.bad, &e.ring, &e.since, &e.run, &e.last}
}
func (e *minMaxEval[T]) state() []any     { return []any{&e.best, &e.has, &e.dq, &e.dqN} }
func (e *firstValueEval[T]) state() []any { return []any{&e.first, &e.fok, &e.ring} }
func (e *lastValueEval) state() []any     { return nil }
func (e *lagEval[T]) state() []any        { return []any{&e.ring} }
func (e *leadVals[T]) state() []any       { return []any{&e.ring} }
func (e *sumFloatEval) state() []any {
	return []any{&e.sum, &e.comp, &e.cnt, &e.pinf, &e.ninf, &e.nan, &e.ring, &e.hasNonFinite}
}
