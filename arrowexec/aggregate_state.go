package arrowexec

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/kernels"
)

// This file is AggregateOp's checkpoint state (see Stateful).
//
// Values: "watermark", "seq" (rows consumed), "flushed", the late-row
// counters "late.*", and for windows "epoch" (key dictionary generation)
// and "stack.*" (the stacks' block). Tables, each one agg.Table state
// (agg.Table.SaveState) unless said otherwise:
//   - un-windowed: "table";
//   - windowed: "windows" (start, end, emitted, revision, dirty per window
//     with rows, by start) with "late.<start>" for a window's late rows
//     (update_previous); "subpanes" (pane start, lo, dictionary epoch and
//     the ids mapped in the dictionary, by pane and lo) with "pane.<p>.<lo>"
//     for each sub-pane's rows; "dict", the key dictionary;
//     "stack.front.<i>" and "stack.back", the stacks.
//
// The dictionary and stacks are derived from the panes, but they are saved
// rather than rebuilt: how windows were folded decides the rounding of
// DOUBLE sums, and a restored operator must emit exactly what the saved
// one would have. Pure caches (firstOpen, paneOf, have, free tables,
// scratch) are rebuilt.

var _ Stateful = (*AggregateOp)(nil)

var (
	windowsSchema = arrow.NewSchema([]arrow.Field{
		{Name: "start", Type: arrow.PrimitiveTypes.Int64}, {Name: "end", Type: arrow.PrimitiveTypes.Int64},
		{Name: "emitted", Type: arrow.FixedWidthTypes.Boolean}, {Name: "revision", Type: arrow.PrimitiveTypes.Int64},
		{Name: "dirty", Type: arrow.FixedWidthTypes.Boolean}, {Name: "late", Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	subpanesSchema = arrow.NewSchema([]arrow.Field{
		{Name: "pane", Type: arrow.PrimitiveTypes.Int64}, {Name: "lo", Type: arrow.PrimitiveTypes.Int64},
		{Name: "epoch", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Uint32)},
	}, nil)
)

// SaveState implements Stateful. It is called between messages, with no
// output queued; it fails if the operator has failed.
func (a *AggregateOp) SaveState(w *StateWriter) error {
	if a.err != nil {
		return fmt.Errorf("aggregate: %w", a.err)
	}
	if len(a.queue) > 0 {
		return fmt.Errorf("aggregate: saving state with %d messages queued", len(a.queue))
	}
	w.SetInt("watermark", a.wm)
	w.SetValue("seq", strconv.FormatUint(a.seq, 10))
	w.SetBool("flushed", a.flushed)
	w.SetInt("late.dropped", a.stats.LateDropped)
	w.SetInt("late.dead_lettered", a.stats.LateDeadLettered)
	w.SetInt("late.redirected", a.stats.LateRedirected)
	w.SetInt("late.updated", a.stats.LateUpdated)
	if a.table != nil {
		return a.putTable(w, "table", a.table)
	}
	if err := a.saveWindows(w); err != nil {
		return err
	}
	if err := a.saveSubPanes(w); err != nil {
		return err
	}
	w.SetValue("epoch", strconv.FormatUint(a.epoch, 10))
	if a.dict != nil {
		if err := a.putTable(w, "dict", a.dict); err != nil {
			return err
		}
	}
	st := &a.stk
	w.SetBool("stack.built", st.built)
	w.SetValue("stack.epoch", strconv.FormatUint(st.epoch, 10))
	w.SetInt("stack.lo", st.lo)
	w.SetInt("stack.next", int64(st.next))
	w.SetInt("stack.hi", st.hi)
	w.SetInt("stack.fronts", int64(len(st.front)))
	for i, t := range st.front {
		if t != nil {
			if err := a.putTable(w, "stack.front."+strconv.Itoa(i), t); err != nil {
				return err
			}
		}
	}
	if st.back != nil {
		return a.putTable(w, "stack.back", st.back)
	}
	return nil
}

// putTable saves t as the state table name.
func (a *AggregateOp) putTable(w *StateWriter, name string, t *agg.Table) error {
	rec, err := t.SaveState(a.alloc)
	if err != nil {
		return fmt.Errorf("aggregate: %s: %w", name, err)
	}
	return w.Put(name, rec)
}

func (a *AggregateOp) saveWindows(w *StateWriter) error {
	starts := make([]int64, 0, len(a.windows))
	for s := range a.windows {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	b := array.NewRecordBuilder(a.alloc, windowsSchema)
	defer b.Release()
	for _, s := range starts {
		win := a.windows[s]
		b.Field(0).(*array.Int64Builder).Append(win.start)
		b.Field(1).(*array.Int64Builder).Append(win.end)
		b.Field(2).(*array.BooleanBuilder).Append(win.emitted)
		b.Field(3).(*array.Int64Builder).Append(win.revision)
		b.Field(4).(*array.BooleanBuilder).Append(win.dirty)
		b.Field(5).(*array.BooleanBuilder).Append(win.late != nil)
		if win.late != nil {
			if err := a.putTable(w, "late."+strconv.FormatInt(s, 10), win.late); err != nil {
				return err
			}
		}
	}
	return w.Put("windows", b.NewRecordBatch())
}

func (a *AggregateOp) saveSubPanes(w *StateWriter) error {
	starts := make([]int64, 0, len(a.panes))
	for p := range a.panes {
		starts = append(starts, p)
	}
	slices.Sort(starts)
	b := array.NewRecordBuilder(a.alloc, subpanesSchema)
	defer b.Release()
	ids := b.Field(3).(*array.ListBuilder)
	for _, p := range starts {
		for _, sp := range a.panes[p].subs {
			b.Field(0).(*array.Int64Builder).Append(p)
			b.Field(1).(*array.Int64Builder).Append(sp.lo)
			b.Field(2).(*array.Uint64Builder).Append(sp.epoch)
			ids.Append(true)
			ids.ValueBuilder().(*array.Uint32Builder).AppendValues(sp.ids[:sp.mapped], nil)
			if err := a.putTable(w, paneName(p, sp.lo), sp.table); err != nil {
				return err
			}
		}
	}
	return w.Put("subpanes", b.NewRecordBatch())
}

func paneName(p, lo int64) string {
	return "pane." + strconv.FormatInt(p, 10) + "." + strconv.FormatInt(lo, 10)
}

// LoadState implements Stateful: it restores what SaveState wrote into an
// operator built by NewAggregate from the same configuration, before
// Open.
func (a *AggregateOp) LoadState(r *StateReader) error {
	if err := a.loadState(r); err != nil {
		return fmt.Errorf("aggregate: loading state: %w", err)
	}
	return a.account()
}

func (a *AggregateOp) loadState(r *StateReader) error {
	var err error
	ints := map[string]*int64{"watermark": &a.wm, "late.dropped": &a.stats.LateDropped,
		"late.dead_lettered": &a.stats.LateDeadLettered, "late.redirected": &a.stats.LateRedirected,
		"late.updated": &a.stats.LateUpdated}
	for name, p := range ints {
		if *p, err = r.Int(name); err != nil {
			return err
		}
	}
	if a.seq, err = r.Uint("seq"); err != nil {
		return err
	}
	if a.flushed, err = r.Bool("flushed"); err != nil {
		return err
	}
	if a.table != nil {
		return loadTable(r, "table", a.table)
	}
	if err := a.loadWindows(r); err != nil {
		return err
	}
	if err := a.loadSubPanes(r); err != nil {
		return err
	}
	if a.epoch, err = r.Uint("epoch"); err != nil {
		return err
	}
	if r.Table("dict") != nil {
		if a.dict, err = a.newLoadedTable(r, "dict"); err != nil {
			return err
		}
	}
	return a.loadStacks(r)
}

func (a *AggregateOp) loadWindows(r *StateReader) error {
	for _, rec := range r.Table("windows") {
		if !rec.Schema().Equal(windowsSchema) {
			return fmt.Errorf("windows: schema %s", rec.Schema())
		}
		start, end := kernels.Values[int64](rec.Column(0)), kernels.Values[int64](rec.Column(1))
		emitted, rev := rec.Column(2).(*array.Boolean), kernels.Values[int64](rec.Column(3))
		dirty, late := rec.Column(4).(*array.Boolean), rec.Column(5).(*array.Boolean)
		for i := range start {
			win := &windowState{start: start[i], end: end[i], emitted: emitted.Value(i), revision: rev[i], dirty: dirty.Value(i)}
			a.windows[win.start] = win
			if late.Value(i) {
				var err error
				if win.late, err = a.newLoadedTable(r, "late."+strconv.FormatInt(win.start, 10)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (a *AggregateOp) loadSubPanes(r *StateReader) error {
	adv := a.cfg.Window.Advance
	for _, rec := range r.Table("subpanes") {
		if !rec.Schema().Equal(subpanesSchema) {
			return fmt.Errorf("subpanes: schema %s", rec.Schema())
		}
		ps, los := kernels.Values[int64](rec.Column(0)), kernels.Values[int64](rec.Column(1))
		epochs := kernels.Values[uint64](rec.Column(2))
		lists := rec.Column(3).(*array.List)
		ids, offs := kernels.Values[uint32](lists.ListValues()), lists.Offsets()
		for i, p := range ps {
			t, err := a.newLoadedTable(r, paneName(p, los[i]))
			if err != nil {
				return err
			}
			pn, ok := a.panes[p]
			if !ok {
				pn = &pane{start: p}
				a.panes[p] = pn
			}
			sp := subPane{lo: los[i], table: t, epoch: epochs[i], full: los[i] == p-(a.k-1)*adv,
				ids: slices.Clone(ids[offs[i]:offs[i+1]])}
			sp.mapped = len(sp.ids)
			pn.subs = append(pn.subs, sp)
		}
	}
	for _, pn := range a.panes {
		if !slices.IsSortedFunc(pn.subs, func(x, y subPane) int { return cmp.Compare(x.lo, y.lo) }) {
			return fmt.Errorf("sub-panes of pane %d out of order", pn.start)
		}
	}
	return nil
}

func (a *AggregateOp) loadStacks(r *StateReader) error {
	st := &a.stk
	var err error
	if st.built, err = r.Bool("stack.built"); err != nil {
		return err
	}
	if st.epoch, err = r.Uint("stack.epoch"); err != nil {
		return err
	}
	if st.lo, err = r.Int("stack.lo"); err != nil {
		return err
	}
	if st.hi, err = r.Int("stack.hi"); err != nil {
		return err
	}
	next, err := r.Int("stack.next")
	if err != nil {
		return err
	}
	st.next = int(next)
	fronts, err := r.Int("stack.fronts")
	if err != nil {
		return err
	}
	st.front = make([]*agg.Table, fronts)
	for i := range st.front {
		if name := "stack.front." + strconv.Itoa(i); r.Table(name) != nil {
			if st.front[i], err = a.newLoadedTable(r, name); err != nil {
				return err
			}
		}
	}
	if r.Table("stack.back") != nil {
		st.back, err = a.newLoadedTable(r, "stack.back")
	}
	return err
}

// newLoadedTable returns a new table with the state saved as name.
func (a *AggregateOp) newLoadedTable(r *StateReader, name string) (*agg.Table, error) {
	t, err := agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs)
	if err != nil {
		return nil, err
	}
	if err := loadTable(r, name, t); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// loadTable loads the table state name (one batch) into the empty t.
func loadTable(r *StateReader, name string, t *agg.Table) error {
	recs := r.Table(name)
	if len(recs) != 1 {
		return fmt.Errorf("state table %q has %d batches, want 1", name, len(recs))
	}
	if err := t.LoadState(recs[0]); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
