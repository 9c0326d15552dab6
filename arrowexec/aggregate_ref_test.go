package arrowexec

// This file is the per-window implementation of AggregateOp that panes
// replaced (every window its own table, a row updated in each of its
// windows), kept as the reference the pane implementation is checked
// against: same rows, late-data handling and emission, message by message.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/kernels"
)

// refAggregateOp is the reference aggregation (see the file comment).
//
// Windowed (tumbling or sliding): rows are assigned to windows by event
// time; each window keeps its own group table. A window closes, and its
// rows are emitted in one batch in first-seen group order, when the
// watermark passes its end. Lateness is judged per row against the row's
// own watermark (RowWatermarkColumn), and windows close at those per-row
// watermark points, so results are the same for any batching of the input.
// A row is late when a window it belongs to has closed; what happens to it
// is Late.Strategy: drop, dead_letter, include_in_next_window (it counts in
// the window open at its watermark) or update_previous (a closed window is
// kept for Late.AllowedLateness; a late row updates it and its row is
// emitted again with revision+1, or, for a closed window no row opened,
// makes its first result with revision 0; later still, it is
// dead-lettered).
//
// Un-windowed: one group table; with EmitChanges the updated groups are
// emitted after every input batch, otherwise every group is emitted at the
// end of input.
type refAggregateOp struct {
	unary
	cfg      AggregateConfig
	keyTypes []arrow.DataType

	table       *agg.Table                // un-windowed
	windows     map[int64]*refWindowState // windowed, by window start
	wm          Watermark                 // operator watermark
	out         Watermark                 // watermark of the batches emitTable queues
	queue       []Message                 // output ready to return
	eof         bool
	flushed     bool // EMIT FINAL groups were emitted
	rowsScratch []int32
	stats       AggregateStats
	reserve     int64
	sel         refWindowRows // scratch: rows per window of the current segment
}

type refWindowState struct {
	start, end int64
	table      *agg.Table
	emitted    bool
	revision   int64
	dirty      bool // updated after being emitted
}

var _ Operator = (*refAggregateOp)(nil)

// newRefAggregate returns an aggregation over input.
func newRefAggregate(alloc memory.Allocator, input Operator, cfg AggregateConfig) (*refAggregateOp, error) {
	if cfg.Window != nil && cfg.Window.Kind == Session {
		return nil, fmt.Errorf("SESSION windows are %s", "not supported yet")
	}
	a := &refAggregateOp{unary: unary{input: input, alloc: alloc}, cfg: cfg, wm: NoWatermark, out: NoWatermark,
		windows: map[int64]*refWindowState{}}
	for _, k := range cfg.Keys {
		a.keyTypes = append(a.keyTypes, k.Type())
	}
	if cfg.Window == nil {
		t, err := agg.NewTable(alloc, a.keyTypes, cfg.Specs)
		if err != nil {
			return nil, err
		}
		a.table = t
	}
	return a, nil
}

// Schema implements Operator.
func (a *refAggregateOp) Schema() *arrow.Schema { return a.cfg.Schema }

// Stats returns the late-row counters.
func (a *refAggregateOp) Stats() AggregateStats { return a.stats }

// Close implements Operator: it releases all state.
func (a *refAggregateOp) Close() error {
	for _, m := range a.queue {
		m.Release()
	}
	a.queue = nil
	if a.table != nil {
		a.table.Release()
	}
	for _, w := range a.windows {
		w.table.Release()
	}
	a.windows = map[int64]*refWindowState{}
	a.account()
	return a.unary.Close()
}

// Next implements Operator.
func (a *refAggregateOp) Next(ctx context.Context) (Message, error) {
	for len(a.queue) == 0 {
		if a.eof {
			return Message{}, io.EOF
		}
		msg, err := a.input.Next(ctx)
		if errors.Is(err, io.EOF) {
			a.eof = true
			a.advance(ctx, FinalWatermark)
			continue
		}
		if err != nil {
			return Message{}, err
		}
		if err := a.consume(ctx, msg); err != nil {
			return Message{}, fmt.Errorf("aggregate: %w", err)
		}
	}
	m := a.queue[0]
	a.queue = a.queue[1:]
	return m, nil
}

// consume processes one input message (and releases it).
func (a *refAggregateOp) consume(ctx context.Context, msg Message) error {
	defer msg.Release()
	if msg.Batch != nil && msg.Batch.NumRows() > 0 {
		var err error
		if a.cfg.Window == nil {
			err = a.consumeGrouped(msg.Batch)
		} else {
			err = a.consumeWindowed(ctx, msg.Batch)
		}
		if err != nil {
			return err
		}
		if err := a.account(); err != nil {
			return err
		}
	}
	last := a.wm
	a.advance(ctx, msg.Watermark)
	if a.cfg.EmitChanges {
		a.emitChanges()
	}
	if n := len(a.queue); n > 0 {
		last = a.queue[n-1].Watermark
	}
	if a.wm > last && a.wm != NoWatermark {
		a.queue = append(a.queue, Message{Watermark: a.wm})
	}
	return nil
}

func (a *refAggregateOp) consumeGrouped(batch arrow.RecordBatch) error {
	keys, args, release, err := evalAggregateInputs(a.evalContext(), &a.cfg, batch)
	if err != nil {
		return err
	}
	defer release()
	var sel []int32
	if len(keys) == 0 && allNil(args) { // only COUNT(*): the table needs the row count
		sel = a.allRows(int(batch.NumRows()))
	}
	return a.table.Update(keys, args, sel, nil)
}

// allRows returns the selection 0..n-1 (reused scratch).
func (a *refAggregateOp) allRows(n int) []int32 {
	for len(a.rowsScratch) < n {
		a.rowsScratch = append(a.rowsScratch, int32(len(a.rowsScratch)))
	}
	return a.rowsScratch[:n]
}

// times returns the event times and row watermarks of batch; for
// processing time, the wall clock for every row.
func (a *refAggregateOp) times(batch arrow.RecordBatch) (ts, wm []int64) {
	if a.cfg.TimeCol >= 0 {
		return kernels.Values[int64](batch.Column(a.cfg.TimeCol)), kernels.Values[int64](batch.Column(a.cfg.WMCol))
	}
	now := time.Now().UnixMilli()
	n := int(batch.NumRows())
	ts = make([]int64, n)
	for i := range ts {
		ts[i] = now
	}
	return ts, ts
}

// windowsOf returns the first window start of a row at time t and how many
// windows it belongs to (starts step by Advance).
func (a *refAggregateOp) windowsOf(t int64) (first int64, n int) {
	w := a.cfg.Window
	last := kernels.FloorDiv(t, w.Advance) * w.Advance
	n = int(w.Size / w.Advance)
	return last - int64(n-1)*w.Advance, n
}

func (a *refAggregateOp) consumeWindowed(ctx context.Context, batch arrow.RecordBatch) error {
	keys, args, release, err := evalAggregateInputs(a.evalContext(), &a.cfg, batch)
	if err != nil {
		return err
	}
	defer release()
	ts, wms := a.times(batch)
	size, adv := a.cfg.Window.Size, a.cfg.Window.Advance
	n := len(ts)
	for i := 0; i < n; {
		a.advance(ctx, wms[i])
		threshold := a.nextClose()
		a.sel.reset(adv)
		j := i
		for ; j < n; j++ {
			w := max(wms[j], a.wm)
			if j > i && w >= threshold {
				break // a window closes before row j: end the segment here
			}
			first, k := a.windowsOf(ts[j])
			late := false
			for s := first; s < first+int64(k)*adv; s += adv {
				if s+size > w {
					a.sel.add(s, int32(j))
					threshold = min(threshold, s+size)
				} else {
					late = true
				}
			}
			if late {
				again, err := a.late(ctx, batch, j, ts[j], w)
				if err != nil {
					return err
				}
				if again {
					j++
					break // the row re-opened a closed window: emit it now
				}
			}
		}
		if err := a.update(keys, args); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// update adds the selected rows to their windows' tables.
func (a *refAggregateOp) update(keys, args []arrow.Array) error {
	for k, rows := range a.sel.rows {
		if len(rows) == 0 {
			continue
		}
		w, err := a.window(a.sel.first + int64(k)*a.sel.step)
		if err != nil {
			return err
		}
		if err := w.table.Update(keys, args, rows, nil); err != nil {
			return err
		}
		if w.emitted {
			w.dirty = true
		}
	}
	a.sel.reset(a.sel.step)
	return nil
}

// refWindowRows collects, for one segment of a batch, the rows of each window.
// Window starts are multiples of step, so rows[k] holds the rows of the
// window starting at first + k*step; the slices are reused across segments.
type refWindowRows struct {
	first, step int64
	rows        [][]int32
	spare       [][]int32
}

func (w *refWindowRows) reset(step int64) {
	for _, r := range w.rows {
		w.spare = append(w.spare, r[:0])
	}
	w.rows = w.rows[:0]
	w.step = step
}

func (w *refWindowRows) slice() []int32 {
	if n := len(w.spare); n > 0 {
		s := w.spare[n-1]
		w.spare = w.spare[:n-1]
		return s
	}
	return nil
}

// add records row under the window starting at start.
func (w *refWindowRows) add(start int64, row int32) {
	if len(w.rows) == 0 {
		w.first = start
		w.rows = append(w.rows, w.slice())
	}
	for start < w.first { // an earlier window: prepend slots
		w.rows = append([][]int32{w.slice()}, w.rows...)
		w.first -= w.step
	}
	k := int((start - w.first) / w.step)
	for k >= len(w.rows) {
		w.rows = append(w.rows, w.slice())
	}
	w.rows[k] = append(w.rows[k], row)
}

func (a *refAggregateOp) window(start int64) (*refWindowState, error) {
	if w, ok := a.windows[start]; ok {
		return w, nil
	}
	t, err := agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs)
	if err != nil {
		return nil, err
	}
	w := &refWindowState{start: start, end: start + a.cfg.Window.Size, table: t}
	a.windows[start] = w
	return w, nil
}

// nextClose is the smallest end among windows not yet emitted.
func (a *refAggregateOp) nextClose() int64 {
	next := int64(FinalWatermark)
	for _, w := range a.windows {
		if !w.emitted {
			next = min(next, w.end)
		}
	}
	return next
}

// late handles row i, whose window(s) closed before watermark w. It
// reports whether a closed window was updated (to be re-emitted at once).
func (a *refAggregateOp) late(ctx context.Context, batch arrow.RecordBatch, i int, t, w int64) (bool, error) {
	switch a.cfg.Late.Strategy {
	case "include_in_next_window":
		first, k := a.windowsOf(max(t, w))
		for s := first; s < first+int64(k)*a.cfg.Window.Advance; s += a.cfg.Window.Advance {
			if s+a.cfg.Window.Size > w {
				a.sel.add(s, int32(i))
			}
		}
		a.stats.LateRedirected++
		return false, nil
	case "update_previous":
		first, k := a.windowsOf(t)
		updated := false
		for s := first; s < first+int64(k)*a.cfg.Window.Advance; s += a.cfg.Window.Advance {
			end := s + a.cfg.Window.Size
			if end > w || end+a.cfg.Late.AllowedLateness <= w {
				continue // open, or beyond allowed lateness
			}
			win, ok := a.windows[s]
			if !ok { // closed with no row: this late row makes its first result, revision 0
				var err error
				if win, err = a.window(s); err != nil {
					return false, err
				}
				win.emitted, win.revision = true, -1
			}
			if win.emitted {
				a.sel.add(s, int32(i))
				updated = true
			}
		}
		if updated {
			a.stats.LateUpdated++
			return true, nil
		}
		return false, a.deadLetter(ctx, batch, i, t, w, "beyond allowed_lateness")
	case "dead_letter":
		return false, a.deadLetter(ctx, batch, i, t, w, "")
	}
	a.stats.LateDropped++
	return false, nil
}

func (a *refAggregateOp) deadLetter(ctx context.Context, batch arrow.RecordBatch, i int, t, w int64, why string) error {
	a.stats.LateDeadLettered++
	if a.cfg.DeadLetter == nil {
		return nil
	}
	reason := fmt.Sprintf("late row: event time %s is behind watermark %s and its window has closed", FormatWatermark(t), FormatWatermark(w))
	if why != "" {
		reason += " (" + why + ")"
	}
	return a.cfg.DeadLetter.DeadLetter(ctx, DeadLetterRecord{
		Time: time.Now().UTC(), Query: a.cfg.Query, Source: a.cfg.Source,
		Field: batch.Schema().Field(max(a.cfg.TimeCol, 0)).Name, Reason: reason, Raw: RowJSON(batch, i),
	})
}

// advance moves the operator watermark to w (never back) and emits, in
// window-end order, every window it closes (with EmitChanges: the changes
// of every window, before any closes); windows are dropped once they can
// no longer be updated. Its batches carry the watermark before w, the
// last one w.
func (a *refAggregateOp) advance(ctx context.Context, w Watermark) {
	queued := len(a.queue)
	a.out = a.wm
	if w > a.wm {
		a.wm = w
	}
	defer func() {
		if len(a.queue) > queued {
			a.queue[len(a.queue)-1].Watermark = a.wm
		}
		a.out = a.wm
	}()
	if a.cfg.Window == nil {
		if a.wm == FinalWatermark && !a.cfg.EmitChanges && !a.flushed {
			a.flushed = true
			a.emitTable(a.table, nil, nil)
		}
		return
	}
	var closing []*refWindowState
	for _, win := range a.windows {
		if win.end <= a.wm && (!win.emitted || win.dirty) {
			closing = append(closing, win)
		}
	}
	slices.SortFunc(closing, func(x, y *refWindowState) int {
		if x.end != y.end {
			return int(x.end - y.end)
		}
		return int(x.start - y.start)
	})
	if len(closing) > 0 && a.cfg.EmitChanges {
		a.emitChanges()
	}
	for _, win := range closing {
		if !a.cfg.EmitChanges {
			if win.emitted { // a late row updated it: re-emit the corrected groups
				win.revision++
				a.emitTable(win.table, win.table.Touched(), win)
			} else {
				a.emitTable(win.table, nil, win)
			}
			win.table.ClearTouched()
		}
		win.emitted, win.dirty = true, false
	}
	for s, win := range a.windows {
		keep := int64(0)
		if a.cfg.Late.Strategy == "update_previous" {
			keep = a.cfg.Late.AllowedLateness
		}
		if win.emitted && (win.end+keep <= a.wm || a.wm == FinalWatermark) {
			win.table.Release()
			delete(a.windows, s)
		}
	}
}

// emitChanges emits the groups updated since the last call.
func (a *refAggregateOp) emitChanges() {
	if a.table != nil {
		if touched := a.table.Touched(); len(touched) > 0 {
			a.emitTable(a.table, touched, nil)
		}
		a.table.ClearTouched()
		return
	}
	starts := make([]int64, 0, len(a.windows))
	for s := range a.windows {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		w := a.windows[s]
		if touched := w.table.Touched(); len(touched) > 0 {
			a.emitTable(w.table, touched, w)
		}
		w.table.ClearTouched()
	}
}

// emitTable queues one batch with the groups of t (all when groups is nil).
func (a *refAggregateOp) emitTable(t *agg.Table, groups []uint32, win *refWindowState) {
	if t.Len() == 0 {
		return
	}
	keys, results, err := t.Emit(groups)
	if err != nil {
		panic(err) // Emit fails only on programming errors
	}
	rows := len(groups)
	if groups == nil {
		rows = t.Len()
	}
	if rows == 0 {
		releaseAll(keys)
		releaseAll(results)
		return
	}
	cols := append([]arrow.Array(nil), keys...)
	if win != nil {
		cols = append(cols, constTimestamp(a.alloc, win.start, rows), constTimestamp(a.alloc, win.end, rows))
		if a.cfg.Late.Strategy == "update_previous" {
			b := array.NewInt64Builder(a.alloc)
			for range rows {
				b.Append(win.revision)
			}
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	cols = append(cols, results...)
	a.queue = append(a.queue, Message{Batch: array.NewRecordBatch(a.cfg.Schema, cols, int64(rows)), Watermark: a.out})
	releaseAll(cols)
}

// account reserves (or returns) the memory held by the group tables.
func (a *refAggregateOp) account() error {
	r, ok := a.alloc.(Reserver)
	if !ok {
		return nil
	}
	var bytes int64
	if a.table != nil {
		bytes += a.table.StateBytes()
	}
	for _, w := range a.windows {
		bytes += w.table.StateBytes()
	}
	delta := bytes - a.reserve
	switch {
	case delta > 0:
		if err := r.Reserve(delta); err != nil {
			return fmt.Errorf("aggregate state of %d bytes: %w", bytes, err)
		}
	case delta < 0:
		r.Unreserve(-delta)
	}
	a.reserve = bytes
	return nil
}
