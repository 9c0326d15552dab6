package arrowexec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// AggregateConfig configures an AggregateOp.
type AggregateConfig struct {
	Query  string
	Source string      // stream the rows come from, for dead-letter records
	Keys   []expr.Expr // GROUP BY expressions over the input
	Specs  []agg.Spec
	Args   []expr.Expr // one per spec; nil for COUNT(*)
	Window *WindowSpec // nil: un-windowed
	// TimeCol and WMCol are the input's event-time and row-watermark
	// columns; -1 for processing time (windows over wall-clock time).
	TimeCol, WMCol int
	EmitChanges    bool
	Late           LateDataSpec
	DeadLetter     DeadLetter
	// Schema is the output: keys, [window_start, window_end, [revision]], aggregates.
	Schema *arrow.Schema
}

// Reserver is implemented by allocators that account retained state
// (resource.Allocator). Operators holding state reserve through it.
type Reserver interface {
	Reserve(n int64) error
	Unreserve(n int64)
}

// AggregateOp is a vectorised hash aggregation, optionally windowed.
//
// Windowed (tumbling or sliding): rows are assigned to windows by event
// time. A window closes, and its rows are emitted in one batch in
// first-seen group order, when the watermark passes its end. Lateness is
// judged per (row, window) against the row's own watermark
// (RowWatermarkColumn), and windows close at those per-row watermark
// points, so results are the same for any batching of the input. A row is
// late when a window it belongs to has closed; it still counts in its
// windows that are open. What else happens to it is Late.Strategy: drop,
// dead_letter, include_in_next_window (it also counts in the windows open
// at its watermark) or update_previous (a closed window is kept for
// Late.AllowedLateness; a late row updates it and the window's corrected
// rows for the row's group are emitted again with revision+1; a closed
// window no on-time row opened is created by its first late row and
// emitted with revision 0; later still, the row is dead-lettered).
//
// State is kept in panes: a SLIDING(size, advance) window is k = size /
// advance consecutive panes [p, p+advance), and each row updates exactly
// one pane's group table, so a row costs one hash-table update whatever
// k is. A pane is split by the oldest window its rows count in (rows late
// for some of their windows count only in the newer ones), so a closed
// window never sees a row added after it closed. When a window closes,
// its panes are folded and the result emitted, through a key dictionary
// and prefix/suffix stacks (see stacks) that cost about four table folds
// per window whatever k is; panes are dropped once no window that can
// still be emitted (or, under update_previous, corrected) includes them.
// Tumbling
// windows are the case k = 1: the pane is the window and is emitted
// directly. Rows that correct a closed window (update_previous) go to a
// per-window table merged in when the window is rebuilt. FIRST_VALUE,
// LAST_VALUE and first-seen group order follow arrival order across panes
// (the tables are numbered from one row counter, agg.Table.SetSeq); SUM
// and AVG of DOUBLE add pane sums, so their rounding may differ from
// adding the rows one by one.
//
// Un-windowed: one group table; with EmitChanges the updated groups are
// emitted after every input batch, otherwise every group is emitted at the
// end of input.
//
// Checkpoints: AggregateOp is Stateful (aggregate_state.go). A barrier
// is returned after the output of the input before it, with the
// operator's watermark, and the state saved then restores the group
// tables, panes and windows exactly.
type AggregateOp struct {
	unary
	cfg      AggregateConfig
	keyTypes []arrow.DataType

	table       *agg.Table             // un-windowed
	windows     map[int64]*windowState // windowed: windows with rows, by start
	panes       map[int64]*pane        // windowed: by pane start
	k           int64                  // panes per window
	wm          Watermark              // operator watermark
	out         Watermark              // watermark emitTable gives the batches it queues
	queue       []Message              // output ready to return
	eof         bool
	flushed     bool  // EMIT FINAL groups were emitted
	lastPane    int64 // pane of the previous row (valid when paneSet)
	paneSet     bool
	seq         uint64 // rows consumed: sequence numbers of the tables' rows
	rowsScratch []int32
	stats       AggregateStats
	reserve     int64
	sel         paneRows // scratch: rows per sub-pane of the current segment

	// scratch
	openW, openS   int64 // firstOpen cache: window start open at watermark openW
	haveLo, haveHi int64 // windows haveLo..haveHi are known to exist
	srcs           []*agg.Table
	merged         *agg.Table // a window merged from its panes (reused)
	subs           []*subPane
	// dict is the key dictionary of the panes: each pane group's key is
	// looked up in it once (MapKeys), giving the ids that the stacks (or,
	// without them, dict's own states) fold windows by.
	dict        *agg.Table
	stk         stacks
	noStacks    bool   // tests: always fold windows pane by pane
	epoch       uint64 // generation of dict's groups
	present     []uint64
	free        []*agg.Table // reset tables of dropped panes, for new panes
	err         error        // sticky: building a window failed
	ids, groups []uint32
	one         [1]int32
}

// AggregateStats counts what an AggregateOp did with late rows.
type AggregateStats struct {
	LateDropped, LateDeadLettered, LateRedirected, LateUpdated int64
}

// windowState is a window that has (had) rows.
type windowState struct {
	start, end int64
	emitted    bool
	revision   int64
	dirty      bool       // corrected after being emitted
	late       *agg.Table // update_previous: rows added after it closed; nil if none
}

// pane holds the state of the rows with event time in [start,
// start+Advance), in sub-panes by the oldest window the rows count in.
type pane struct {
	start int64
	subs  []subPane // ascending lo
}

// subPane holds the rows of a pane that count in the windows starting at
// lo, lo+Advance, ..., the pane's start.
type subPane struct {
	lo    int64
	table *agg.Table
	// ids maps the table's groups 0..mapped-1 to groups of the operator's
	// key dictionary (AggregateOp.dict) of generation epoch.
	ids    []uint32
	mapped int
	epoch  uint64
	full   bool // lo is the pane's oldest window: it counts in all of them
}

var _ Operator = (*AggregateOp)(nil)

// NewAggregate returns an aggregation over input.
func NewAggregate(alloc memory.Allocator, input Operator, cfg AggregateConfig) (*AggregateOp, error) {
	if cfg.Window != nil && cfg.Window.Kind == Session {
		return nil, fmt.Errorf("SESSION windows are %s", "not supported yet")
	}
	a := &AggregateOp{unary: unary{input: input, alloc: alloc}, cfg: cfg, wm: NoWatermark, out: NoWatermark,
		windows: map[int64]*windowState{}, panes: map[int64]*pane{}, openW: NoWatermark, openS: math.MinInt64}
	a.resetHave()
	if w := cfg.Window; w != nil {
		if w.Advance <= 0 || w.Size < w.Advance || w.Size%w.Advance != 0 {
			return nil, fmt.Errorf("%s: size must be a positive multiple of the advance", w)
		}
		a.k = w.Size / w.Advance
	}
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
func (a *AggregateOp) Schema() *arrow.Schema { return a.cfg.Schema }

// Stats returns the late-row counters.
func (a *AggregateOp) Stats() AggregateStats { return a.stats }

// Close implements Operator: it releases all state.
func (a *AggregateOp) Close() error {
	for _, m := range a.queue {
		m.Release()
	}
	a.queue = nil
	if a.table != nil {
		a.table.Release()
	}
	if a.merged != nil {
		a.merged.Release()
		a.merged = nil
	}
	if a.dict != nil {
		a.dict.Release()
		a.dict = nil
	}
	a.stk.release()
	for _, w := range a.windows {
		w.release()
	}
	for _, p := range a.panes {
		p.release()
	}
	for _, t := range a.free {
		t.Release()
	}
	a.free = nil
	a.windows = map[int64]*windowState{}
	a.panes = map[int64]*pane{}
	a.account()
	return a.unary.Close()
}

// Next implements Operator.
func (a *AggregateOp) Next(ctx context.Context) (Message, error) {
	for len(a.queue) == 0 {
		if a.eof {
			return Message{}, io.EOF
		}
		msg, err := a.input.Next(ctx)
		if errors.Is(err, io.EOF) {
			a.eof = true
			a.advance(ctx, FinalWatermark)
			if a.err != nil {
				return Message{}, fmt.Errorf("aggregate: %w", a.err)
			}
			continue
		}
		if err != nil {
			return Message{}, err
		}
		if err := a.consume(ctx, msg); err != nil {
			return Message{}, fmt.Errorf("aggregate: %w", err)
		}
		if a.err != nil {
			return Message{}, fmt.Errorf("aggregate: %w", a.err)
		}
	}
	m := a.queue[0]
	a.queue = a.queue[1:]
	if m.Barrier != nil {
		// Every output of earlier input has been returned and no later
		// input consumed: the state is exactly that before the barrier.
		if err := m.Barrier.Save(a); err != nil {
			return Message{}, fmt.Errorf("aggregate: %w", err)
		}
	}
	return m, nil
}

// consume processes one input message (and releases it). A checkpoint
// barrier is processed as a watermark-only message and then queued itself,
// after the output it caused, with the operator's watermark; Next saves
// the state when it returns it (see Stateful).
func (a *AggregateOp) consume(ctx context.Context, msg Message) error {
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
	last := a.wm // the watermark of the output so far
	a.advance(ctx, processingWatermark(&a.cfg, msg.Watermark))
	if a.cfg.EmitChanges {
		if err := a.emitChanges(); err != nil {
			return err
		}
	}
	if n := len(a.queue); n > 0 {
		last = a.queue[n-1].Watermark
	}
	switch {
	case msg.Barrier != nil:
		b := msg
		b.Batch, b.Watermark = nil, a.wm
		a.queue = append(a.queue, b)
	case a.wm > last && a.wm != NoWatermark:
		a.queue = append(a.queue, Message{Watermark: a.wm})
	}
	return nil
}

func (a *AggregateOp) consumeGrouped(batch arrow.RecordBatch) error {
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
func (a *AggregateOp) allRows(n int) []int32 {
	for len(a.rowsScratch) < n {
		a.rowsScratch = append(a.rowsScratch, int32(len(a.rowsScratch)))
	}
	return a.rowsScratch[:n]
}

func allNil(arrs []arrow.Array) bool {
	for _, x := range arrs {
		if x != nil {
			return false
		}
	}
	return true
}

// firstOpen is the start of the oldest window still open at watermark w
// (the smallest aligned start s with s+Size > w).
func (a *AggregateOp) firstOpen(w int64) int64 {
	if w == a.openW {
		return a.openS
	}
	size, adv := a.cfg.Window.Size, a.cfg.Window.Advance
	s := int64(math.MinInt64)
	if w > math.MinInt64+size {
		s = kernels.FloorDiv(w-size, adv)*adv + adv
	}
	a.openW, a.openS = w, s
	return s
}

// paneOf returns the start of the pane of event time t and the oldest
// window that pane belongs to.
func (a *AggregateOp) paneOf(t int64) (p, oldest int64) {
	adv := a.cfg.Window.Advance
	if a.paneSet && t >= a.lastPane && t-a.lastPane < adv {
		p = a.lastPane // consecutive rows mostly share a pane: skip the division
	} else {
		p = kernels.FloorDiv(t, adv) * adv
		a.lastPane, a.paneSet = p, true
	}
	return p, p - (a.k-1)*adv
}

func (a *AggregateOp) consumeWindowed(ctx context.Context, batch arrow.RecordBatch) error {
	keys, args, release, err := evalAggregateInputs(a.evalContext(), &a.cfg, batch)
	if err != nil {
		return err
	}
	defer release()
	ts, wms := rowTimes(&a.cfg, batch)
	size := a.cfg.Window.Size
	n := len(ts)
	base := a.seq // sequence number of row 0 (agg.Table.SetSeq)
	a.seq += uint64(n)
	for i := 0; i < n; {
		a.advance(ctx, wms[i])
		threshold := a.nextClose()
		a.sel.reset()
		j := i
		for ; j < n; j++ {
			w := max(wms[j], a.wm)
			if j > i && w >= threshold {
				break // a window closes before row j: end the segment here
			}
			p, oldest := a.paneOf(ts[j])
			lo := max(oldest, a.firstOpen(w))
			if lo <= p { // windows lo..p are open: the row counts in them
				a.sel.add(p, lo, int32(j))
				a.have(lo, p)
				threshold = min(threshold, lo+size)
			}
			if lo > oldest {
				again, err := a.late(ctx, batch, keys, args, base, j, ts[j], w)
				if err != nil {
					return err
				}
				if again {
					j++
					break // the row corrected a closed window: emit it now
				}
			}
		}
		if err := a.update(keys, args, base); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// update adds the selected rows to their sub-panes' tables.
func (a *AggregateOp) update(keys, args []arrow.Array, base uint64) error {
	for _, e := range a.sel.entries {
		if len(e.rows) == 0 {
			continue
		}
		t, err := a.subPane(e.p, e.lo)
		if err != nil {
			return err
		}
		t.SetSeq(base)
		if err := t.Update(keys, args, e.rows, nil); err != nil {
			return err
		}
	}
	a.sel.reset()
	return nil
}

// paneRows collects, for one segment of a batch, the rows of each
// sub-pane (pane start p, oldest window lo); the slices are reused across
// segments.
type paneRows struct {
	entries []paneEntry
	spare   [][]int32
	last    int // entry of the previous add
}

type paneEntry struct {
	p, lo int64
	rows  []int32
}

func (r *paneRows) reset() {
	for _, e := range r.entries {
		r.spare = append(r.spare, e.rows[:0])
	}
	r.entries = r.entries[:0]
	r.last = 0
}

// add records row under sub-pane (p, lo).
func (r *paneRows) add(p, lo int64, row int32) {
	if r.last < len(r.entries) {
		if e := &r.entries[r.last]; e.p == p && e.lo == lo {
			e.rows = append(e.rows, row)
			return
		}
	}
	for i := range r.entries {
		if e := &r.entries[i]; e.p == p && e.lo == lo {
			e.rows = append(e.rows, row)
			r.last = i
			return
		}
	}
	var rows []int32
	if n := len(r.spare); n > 0 {
		rows = r.spare[n-1][:0]
		r.spare = r.spare[:n-1]
	}
	r.entries = append(r.entries, paneEntry{p: p, lo: lo, rows: append(rows, row)})
	r.last = len(r.entries) - 1
}

// subPane returns the table of sub-pane (p, lo), creating it if needed.
func (a *AggregateOp) subPane(p, lo int64) (*agg.Table, error) {
	pn, ok := a.panes[p]
	if !ok {
		pn = &pane{start: p}
		a.panes[p] = pn
	}
	i, found := slices.BinarySearchFunc(pn.subs, lo, func(s subPane, lo int64) int { return cmp.Compare(s.lo, lo) })
	if found {
		return pn.subs[i].table, nil
	}
	var t *agg.Table
	if n := len(a.free); n > 0 {
		t, a.free = a.free[n-1], a.free[:n-1]
	} else {
		var err error
		if t, err = agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs); err != nil {
			return nil, err
		}
	}
	pn.subs = slices.Insert(pn.subs, i, subPane{lo: lo, table: t, full: lo == p-(a.k-1)*a.cfg.Window.Advance})
	return t, nil
}

// recycle drops pn, keeping up to k+1 of its tables (reset) for new panes:
// a steady stream then stops allocating pane state.
func (a *AggregateOp) recycle(pn *pane) {
	for _, sp := range pn.subs {
		if a.wm != FinalWatermark && int64(len(a.free)) <= a.k {
			sp.table.Reset()
			a.free = append(a.free, sp.table)
		} else {
			sp.table.Release()
		}
	}
	pn.subs = nil
}

func (p *pane) release() {
	for _, s := range p.subs {
		s.table.Release()
	}
	p.subs = nil
}

func (w *windowState) release() {
	if w.late != nil {
		w.late.Release()
		w.late = nil
	}
}

// have records that windows lo..hi (starts) have rows.
func (a *AggregateOp) have(lo, hi int64) {
	if lo >= a.haveLo && hi <= a.haveHi {
		return
	}
	size := a.cfg.Window.Size
	for s := lo; s <= hi; s += a.cfg.Window.Advance {
		if _, ok := a.windows[s]; !ok {
			a.windows[s] = &windowState{start: s, end: s + size}
		}
	}
	a.haveLo, a.haveHi = lo, hi
}

// resetHave forgets the range cached by have (windows were dropped).
func (a *AggregateOp) resetHave() { a.haveLo, a.haveHi = math.MaxInt64, math.MinInt64 }

// nextClose is the smallest end among windows not yet emitted.
func (a *AggregateOp) nextClose() int64 {
	next := int64(FinalWatermark)
	for _, w := range a.windows {
		if !w.emitted {
			next = min(next, w.end)
		}
	}
	return next
}

// late handles row i (sequence number base+i), late for some of its
// windows at watermark w. It reports whether a closed window was
// corrected (to be re-emitted at once).
func (a *AggregateOp) late(ctx context.Context, batch arrow.RecordBatch, keys, args []arrow.Array, base uint64, i int, t, w int64) (bool, error) {
	switch a.cfg.Late.Strategy {
	case "include_in_next_window":
		// It also counts in the windows open at its watermark: those of
		// the pane of w (all of them open).
		p, oldest := a.paneOf(max(t, w))
		if lo := max(oldest, a.firstOpen(w)); lo <= p {
			a.sel.add(p, lo, int32(i))
			a.have(lo, p)
		}
		a.stats.LateRedirected++
		return false, nil
	case "update_previous":
		p, oldest := a.paneOf(t)
		updated := false
		size := a.cfg.Window.Size
		for s := oldest; s <= p && s < a.firstOpen(w); s += a.cfg.Window.Advance {
			if s+size+a.cfg.Late.AllowedLateness <= w {
				continue // beyond allowed lateness
			}
			win, ok := a.windows[s]
			if !ok { // no on-time row opened it: its first result is this late one, revision 0
				win = &windowState{start: s, end: s + size, emitted: true, revision: -1}
				a.windows[s] = win
			} else if !win.emitted {
				continue
			}
			if win.late == nil {
				lt, err := agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs)
				if err != nil {
					return false, err
				}
				win.late = lt
			}
			win.late.SetSeq(base)
			a.one[0] = int32(i)
			if err := win.late.Update(keys, args, a.one[:], nil); err != nil {
				return false, err
			}
			win.dirty = true
			updated = true
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

// sources returns the tables whose rows count in win: the sub-panes of
// its panes that include it, oldest pane first, then its late rows. The
// slice is scratch, valid until the next call.
func (a *AggregateOp) sources(win *windowState) []*agg.Table {
	a.srcs, a.subs = a.srcs[:0], a.subs[:0]
	for p := win.start; p < win.end; p += a.cfg.Window.Advance {
		pn, ok := a.panes[p]
		if !ok {
			continue
		}
		for i := range pn.subs {
			s := &pn.subs[i]
			if s.lo > win.start {
				break
			}
			a.srcs = append(a.srcs, s.table)
			a.subs = append(a.subs, s)
		}
	}
	if win.late != nil {
		a.srcs = append(a.srcs, win.late)
	}
	return a.srcs
}

// scratchTable returns the (reset) table windows are merged into.
func (a *AggregateOp) scratchTable() (*agg.Table, error) {
	if a.merged == nil {
		t, err := agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs)
		if err != nil {
			return nil, err
		}
		a.merged = t
	}
	a.merged.Reset()
	return a.merged, nil
}

// emitWindow queues the rows of win: all its groups (changed false), or
// those updated since the last call (changed true: the groups touched in
// its sources). Several sources are merged into a scratch table first.
func (a *AggregateOp) emitWindow(win *windowState, changed bool) error {
	srcs := a.sources(win)
	if len(srcs) == 1 && srcs[0] != win.late { // one pane (always for TUMBLING): emit it directly
		var groups []uint32
		if changed {
			if groups = srcs[0].Touched(); len(groups) == 0 {
				return nil
			}
		}
		a.emitTable(srcs[0], groups, win)
		return nil
	}
	if len(srcs) == 0 {
		return nil
	}
	if !changed && win.late == nil {
		return a.emitMapped(win)
	}
	r, err := a.scratchTable()
	if err != nil {
		return err
	}
	a.groups = a.groups[:0]
	for _, src := range srcs {
		var ids []uint32
		if changed {
			a.ids = slices.Grow(a.ids[:0], src.Len())[:src.Len()]
			ids = a.ids
		}
		if err := r.MergeIDs(src, ids); err != nil {
			return err
		}
		if changed {
			for _, g := range src.Touched() {
				a.groups = append(a.groups, ids[g])
			}
		}
	}
	if !changed {
		a.emitTable(r, r.FirstSeenOrder(), win)
		return nil
	}
	if len(a.groups) == 0 {
		return nil
	}
	slices.Sort(a.groups)
	a.groups = slices.Compact(a.groups)
	r.SortFirstSeen(a.groups)
	a.emitTable(r, a.groups, win)
	return nil
}

func (a *AggregateOp) deadLetter(ctx context.Context, batch arrow.RecordBatch, i int, t, w int64, why string) error {
	a.stats.LateDeadLettered++
	return deadLetterLate(ctx, &a.cfg, batch, i, t, w, "window", why)
}

// emitMapped queues all groups of win, folded from its sub-panes through
// the key dictionary: each pane group's key is looked up once in the
// dictionary's life, not once per window. The fold is done by the stacks
// (see stacks) when their tables are small enough beside the panes,
// otherwise by merging every sub-pane into the dictionary's states.
func (a *AggregateOp) emitMapped(win *windowState) error {
	if a.dict == nil {
		t, err := agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs)
		if err != nil {
			return err
		}
		a.dict = t
	}
	// Rebuild the dictionary when keys of dropped panes dominate it.
	live := 0
	for _, pn := range a.panes {
		for _, sp := range pn.subs {
			live += sp.table.Len()
		}
	}
	if a.dict.Len() > 2*live+1024 {
		a.dict.Reset()
		a.epoch++
	}
	d := a.dict
	for _, sp := range a.subs {
		if sp.epoch != a.epoch {
			sp.epoch, sp.mapped = a.epoch, 0
		}
		n := sp.table.Len()
		if n > sp.mapped {
			sp.ids = slices.Grow(sp.ids[:sp.mapped], n-sp.mapped)[:n]
			if err := d.MapKeys(sp.table, sp.mapped, sp.ids[sp.mapped:]); err != nil {
				return err
			}
			sp.mapped = n
		}
	}
	// The window's groups, in the order the panes (oldest first) first
	// saw them: that is first-seen order unless rows arrived out of pane
	// order (then SortFirstSeen below sorts).
	a.groups = a.groups[:0]
	a.present = slices.Grow(a.present[:0], d.Len()/64+1)[:d.Len()/64+1]
	clear(a.present)
	present := a.present
	for _, sp := range a.subs {
		for _, g := range sp.ids[:sp.table.Len()] {
			if present[g>>6]&(1<<(g&63)) == 0 {
				present[g>>6] |= 1 << (g & 63)
				a.groups = append(a.groups, g)
			}
		}
	}
	var r *agg.Table
	if !a.noStacks && int64(d.Len())*(a.k+1) <= 2*int64(live)+4096 {
		var err error
		if r, err = a.foldStacks(win); err != nil {
			return err
		}
	} else {
		a.stk.release() // the stacks would outgrow the panes: fold window by window
		d.ResetStates()
		for _, sp := range a.subs {
			if err := d.MergeMapped(sp.table, sp.ids); err != nil {
				return err
			}
		}
		r = d
	}
	r.SortFirstSeen(a.groups)
	a.emitTable(r, a.groups, win)
	return nil
}

// stacks folds the panes of consecutive sliding windows with the
// two-stacks technique, so that a window costs about four table folds
// whatever k is, instead of k: for windows starting at lo, lo+adv, ...,
// lo+size-adv (one block of k windows),
//
//   - front[i] holds the fold of the panes lo+i*adv .. lo+size-adv (a
//     suffix of the block's first window), built back to front when the
//     block starts: front[i] = a copy of front[i+1] + pane lo+i*adv;
//   - back holds the fold of the panes lo+size .. hi-adv, the panes of
//     the block's later windows that lie past its first window; each
//     pane is added once, when the first window that includes it closes.
//
// Window lo+i*adv is then front[i] + back: front[i] is consumed (back is
// merged into it in place, and it is emitted from). After the last
// window of the block the next window starts a new block. Every fold
// goes through the key dictionary: all the tables hold every
// dictionary key with the dictionary's ids (MapKeys on the dictionary
// keeps them aligned; groups without rows are skipped by MergeAligned
// and not emitted), so stack tables merge id to id.
//
// The stacks fold only the full sub-panes, those counting in every
// window of their pane (all of a pane's rows unless some were late): a
// full sub-pane can take rows only while its pane's oldest window is
// open, so it is final by the time any of its windows closes and may be
// folded once for all of them. Sub-panes of late rows, which count in
// fewer windows, are merged into each window's result on top. Since
// every merge keeps the smaller first-row number and FIRST_VALUE /
// LAST_VALUE compare row numbers, the fold order changes nothing but
// the rounding of DOUBLE sums.
//
// The tables are dropped when the dictionary is rebuilt (its ids
// change) and when k+1 dictionary-sized tables would hold more than
// twice the groups of the live panes (windows with many panes, each
// with few of the window's keys): windows are then folded from all
// their panes into the dictionary's states.
type stacks struct {
	built bool
	epoch uint64 // dictionary generation of the tables' ids
	lo    int64  // start of the block's first window
	next  int    // front[next] is the first suffix not consumed
	front []*agg.Table
	back  *agg.Table
	hi    int64 // back holds panes lo+size .. hi-adv
	ids   []uint32
}

// release frees the stacks' tables.
func (s *stacks) release() {
	for _, t := range s.front {
		t.Release()
	}
	if s.back != nil {
		s.back.Release()
	}
	*s = stacks{ids: s.ids[:0]}
}

func (s *stacks) stateBytes() int64 {
	var n int64
	for _, t := range s.front {
		n += t.StateBytes()
	}
	if s.back != nil {
		n += s.back.StateBytes()
	}
	return n
}

// align gives t (a stack table, or nil: a new one) every key of the
// dictionary, with the dictionary's ids.
func (a *AggregateOp) align(t *agg.Table) (*agg.Table, error) {
	if t == nil {
		var err error
		if t, err = agg.NewTable(a.alloc, a.keyTypes, a.cfg.Specs); err != nil {
			return nil, err
		}
	}
	n, m := t.Len(), a.dict.Len()
	if n >= m {
		return t, nil
	}
	a.stk.ids = slices.Grow(a.stk.ids[:0], m-n)[:m-n]
	if err := t.MapKeys(a.dict, n, a.stk.ids); err != nil {
		return t, err
	}
	for i, g := range a.stk.ids {
		if int(g) != n+i {
			return t, fmt.Errorf("stack table out of line with the key dictionary (group %d is %d)", n+i, g)
		}
	}
	return t, nil
}

// fullSub returns the full sub-pane of the pane starting at p, or nil.
func (a *AggregateOp) fullSub(p int64) *subPane {
	if pn, ok := a.panes[p]; ok && len(pn.subs) > 0 && pn.subs[0].full {
		return &pn.subs[0]
	}
	return nil
}

// foldStacks returns the table (a consumed front entry) holding win
// folded from its sub-panes (a.subs, mapped in the dictionary).
func (a *AggregateOp) foldStacks(win *windowState) (*agg.Table, error) {
	st := &a.stk
	adv, size := a.cfg.Window.Advance, a.cfg.Window.Size
	if st.epoch != a.epoch {
		a.stk.release()
		st.epoch = a.epoch
	}
	s := win.start
	if !st.built || s < st.lo+int64(st.next)*adv || s >= st.lo+size {
		if err := a.buildFront(s); err != nil {
			return nil, err
		}
	}
	var err error
	for ; st.hi < s+size; st.hi += adv {
		if sp := a.fullSub(st.hi); sp != nil {
			if st.back, err = a.align(st.back); err != nil {
				return nil, err
			}
			if err := st.back.MergeMapped(sp.table, sp.ids); err != nil {
				return nil, err
			}
		}
	}
	i := int((s - st.lo) / adv)
	st.next = i + 1
	r, err := a.align(st.front[i])
	if err != nil {
		return nil, err
	}
	if st.hi > st.lo+size && st.back != nil {
		if err := r.MergeAligned(st.back); err != nil {
			return nil, err
		}
	}
	for _, sp := range a.subs {
		if !sp.full {
			if err := r.MergeMapped(sp.table, sp.ids); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// buildFront starts a block with the window starting at s: front[i]
// becomes the fold of the full sub-panes of panes s+i*adv .. s+size-adv,
// back becomes empty.
func (a *AggregateOp) buildFront(s int64) error {
	st := &a.stk
	adv := a.cfg.Window.Advance
	st.built = false
	for int64(len(st.front)) < a.k {
		st.front = append(st.front, nil)
	}
	for i := int(a.k) - 1; i >= 0; i-- {
		t, err := a.align(st.front[i])
		if t != nil {
			st.front[i] = t
		}
		if err != nil {
			return err
		}
		if i+1 < int(a.k) {
			if err := t.CopyStates(st.front[i+1]); err != nil {
				return err
			}
		} else {
			t.ResetStates()
		}
		if sp := a.fullSub(s + int64(i)*adv); sp != nil {
			if err := t.MergeMapped(sp.table, sp.ids); err != nil {
				return err
			}
		}
	}
	if st.back != nil {
		st.back.ResetStates()
	}
	st.lo, st.next, st.hi, st.built = s, 0, s+a.cfg.Window.Size, true
	return nil
}

// advance moves the operator watermark to w (never back) and emits, in
// window-end order, every window it closes (with EMIT CHANGES: the
// changes of every window, before any closes, so that each window's last
// change is emitted whatever the batching); windows and panes are dropped
// once they can no longer be emitted or updated.
//
// The batches it queues carry the watermark before w, except the last,
// which carries w: a batch's watermark holds for everything after it, so
// a reader (an EMIT FINAL aggregate at FinalWatermark) must not see w
// before the last window that w closes.
func (a *AggregateOp) advance(ctx context.Context, w Watermark) {
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
	var closing []*windowState
	for _, win := range a.windows {
		if win.end <= a.wm && (!win.emitted || win.dirty) {
			closing = append(closing, win)
		}
	}
	if len(closing) > 0 && a.cfg.EmitChanges {
		if err := a.emitChanges(); err != nil && a.err == nil {
			a.err = err
		}
	}
	slices.SortFunc(closing, func(x, y *windowState) int {
		if x.end != y.end {
			return cmp.Compare(x.end, y.end)
		}
		return cmp.Compare(x.start, y.start)
	})
	for _, win := range closing {
		if !a.cfg.EmitChanges {
			var err error
			if win.emitted { // a late row corrected it: re-emit the corrected groups
				win.revision++
				err = a.emitCorrection(win)
			} else {
				err = a.emitWindow(win, false)
			}
			if err != nil && a.err == nil {
				// e.g. SUM overflow when panes are merged: the query fails
				a.err = fmt.Errorf("window %s: %w", FormatWatermark(win.start), err)
			}
		}
		win.emitted, win.dirty = true, false
	}
	keep := int64(0)
	if a.cfg.Late.Strategy == "update_previous" {
		keep = a.cfg.Late.AllowedLateness
	}
	dropped := false
	for s, win := range a.windows {
		if win.emitted && (win.end+keep <= a.wm || a.wm == FinalWatermark) {
			win.release()
			delete(a.windows, s)
			dropped = true
		}
	}
	// A pane is needed until its newest window, [p, p+Size), is dropped;
	// no row can reach it afterwards (that window is closed for every
	// later row).
	for p, pn := range a.panes {
		if p+a.cfg.Window.Size+keep <= a.wm || a.wm == FinalWatermark {
			a.recycle(pn)
			delete(a.panes, p)
		}
	}
	if dropped {
		a.resetHave()
	}
}

// emitCorrection re-emits the groups of win that late rows updated since
// its last emission.
func (a *AggregateOp) emitCorrection(win *windowState) error {
	if win.late == nil {
		return nil
	}
	srcs := a.sources(win)
	r, err := a.scratchTable()
	if err != nil {
		return err
	}
	for _, src := range srcs[:len(srcs)-1] {
		if err := r.Merge(src); err != nil {
			return err
		}
	}
	a.ids = slices.Grow(a.ids[:0], win.late.Len())[:win.late.Len()]
	if err := r.MergeIDs(win.late, a.ids); err != nil {
		return err
	}
	a.groups = a.groups[:0]
	for _, g := range win.late.Touched() {
		a.groups = append(a.groups, a.ids[g])
	}
	win.late.ClearTouched()
	if len(a.groups) == 0 {
		return nil
	}
	r.SortFirstSeen(a.groups)
	a.emitTable(r, a.groups, win)
	return nil
}

// emitChanges emits the groups updated since the last call.
func (a *AggregateOp) emitChanges() error {
	if a.table != nil {
		if touched := a.table.Touched(); len(touched) > 0 {
			a.emitTable(a.table, touched, nil)
		}
		a.table.ClearTouched()
		return nil
	}
	starts := make([]int64, 0, len(a.windows))
	for s := range a.windows {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		if err := a.emitWindow(a.windows[s], true); err != nil {
			return err
		}
	}
	for _, pn := range a.panes {
		for _, sp := range pn.subs {
			sp.table.ClearTouched()
		}
	}
	for _, w := range a.windows {
		if w.late != nil {
			w.late.ClearTouched()
		}
	}
	return nil
}

// emitTable queues one batch with the groups of t (all when groups is nil).
func (a *AggregateOp) emitTable(t *agg.Table, groups []uint32, win *windowState) {
	if t.Len() == 0 {
		return
	}
	keys, results, err := t.Emit(groups)
	if err != nil { // e.g. a DECIMAL SUM beyond 38 digits: fails the query
		if a.err == nil {
			a.err = fmt.Errorf("emitting results: %w", err)
		}
		return
	}
	// Counted from the groups, not the columns: a window without keys or
	// aggregates has a row per window all the same. AggregateOp never
	// combines groups, so every group of t is live.
	rows := len(groups)
	if groups == nil {
		rows = t.Len()
	}
	// Deferred: an allocation past the memory limit panics (see
	// resource.Allocator); the batch holds its own references.
	defer releaseAll(keys)
	defer releaseAll(results)
	var winCols []arrow.Array
	defer func() { releaseAll(winCols) }()
	if rows == 0 {
		return
	}
	if win != nil {
		winCols = append(winCols, constTimestamp(a.alloc, win.start, rows))
		winCols = append(winCols, constTimestamp(a.alloc, win.end, rows))
		if a.cfg.Late.Strategy == "update_previous" {
			b := array.NewInt64Builder(a.alloc)
			defer b.Release()
			for range rows {
				b.Append(win.revision)
			}
			winCols = append(winCols, b.NewArray())
		}
	}
	cols := slices.Concat(keys, winCols, results)
	a.queue = append(a.queue, Message{Batch: array.NewRecordBatch(a.cfg.Schema, cols, int64(rows)), Watermark: a.out})
}

// constTimestamp returns n copies of v as a TIMESTAMP(ms) array without
// nulls, owned by the caller.
func constTimestamp(alloc memory.Allocator, v int64, n int) arrow.Array {
	buf := memory.NewResizableBuffer(alloc)
	defer buf.Release()
	buf.Resize(n * arrow.TimestampSizeBytes)
	vals := arrow.TimestampTraits.CastFromBytes(buf.Bytes())
	for i := range vals {
		vals[i] = arrow.Timestamp(v)
	}
	d := array.NewData(timestampMS, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	defer d.Release()
	return array.MakeFromData(d)
}

func releaseAll(arrs []arrow.Array) {
	for _, x := range arrs {
		x.Release()
	}
}

// account reserves (or returns) the memory held by the group tables.
func (a *AggregateOp) account() error {
	r, ok := a.alloc.(Reserver)
	if !ok {
		return nil
	}
	var bytes int64
	if a.table != nil {
		bytes += a.table.StateBytes()
	}
	if a.merged != nil {
		bytes += a.merged.StateBytes()
	}
	if a.dict != nil {
		bytes += a.dict.StateBytes()
	}
	bytes += a.stk.stateBytes()
	for _, t := range a.free {
		bytes += t.StateBytes()
	}
	for _, p := range a.panes {
		for _, sp := range p.subs {
			bytes += sp.table.StateBytes()
		}
	}
	for _, w := range a.windows {
		if w.late != nil {
			bytes += w.late.StateBytes()
		}
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
