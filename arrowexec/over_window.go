package arrowexec

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// overWindows is the state of a windowed OverOp: the input batches that
// have rows in open windows, and per window the rows it holds.
type overWindows struct {
	chunks map[int32]*winChunk
	nextID int32
	wins   map[int64]*overWin
	bytes  int64
}

type winChunk struct {
	batch  arrow.RecordBatch
	maxEnd int64 // end of the newest window holding one of its rows
	bytes  int64
	refs   int // rows of open windows pointing into it (not saved: recounted on load)
}

// overWin is one window: its rows, in arrival order, as (chunk, row).
type overWin struct {
	start, end int64
	src        []int32
	pos        []int32
	kept       int // rows left by the last pruneWindow (TopN only)
}

// unref drops win's references to its chunks and releases the chunks no
// open window points into any more.
func (w *overWindows) unref(win *overWin) {
	for _, id := range win.src {
		c := w.chunks[id]
		if c.refs--; c.refs == 0 {
			c.batch.Release()
			w.bytes -= c.bytes
			delete(w.chunks, id)
		}
	}
	w.bytes -= int64(len(win.src)) * 8
	win.src, win.pos = nil, nil
}

func newOverWindows() *overWindows {
	return &overWindows{chunks: map[int32]*winChunk{}, wins: map[int64]*overWin{}}
}

func (w *overWindows) release() {
	for id, c := range w.chunks {
		c.batch.Release()
		delete(w.chunks, id)
	}
	w.wins = map[int64]*overWin{}
	w.bytes = 0
}

// assignWindows adds the rows of batch to their open windows, handling
// the rows whose windows have all closed by the late-data strategy.
func (o *OverOp) assignWindows(ctx context.Context, batch arrow.RecordBatch) error {
	ws := o.win
	var ts, wms []int64
	if o.cfg.TimeCol >= 0 {
		ts = kernels.Values[int64](batch.Column(o.cfg.TimeCol))
		wms = kernels.Values[int64](batch.Column(o.cfg.WMCol))
	} else {
		now := time.Now().UnixMilli()
		ts = make([]int64, batch.NumRows())
		for i := range ts {
			ts[i] = now
		}
		wms = ts
	}
	size, adv := o.cfg.Window.Size, o.cfg.Window.Advance
	firstOpen := func(w int64) int64 { // oldest window start still open at w
		if w < math.MinInt64+size {
			return math.MinInt64
		}
		return kernels.FloorDiv(w-size, adv)*adv + adv
	}
	id := ws.nextID
	chunk := &winChunk{batch: batch, maxEnd: math.MinInt64}
	added := false
	var touched []*overWin                 // TopN: windows given rows, to prune
	put := func(i int, start, end int64) { // adds row i to window start
		win, ok := ws.wins[start]
		if !ok {
			win = &overWin{start: start, end: end}
			ws.wins[start] = win
		}
		if o.cfg.TopN > 0 && !slices.Contains(touched, win) {
			touched = append(touched, win)
		}
		chunk.refs++
		win.src = append(win.src, id)
		win.pos = append(win.pos, int32(i))
		ws.bytes += 8
		chunk.maxEnd = max(chunk.maxEnd, end)
		added = true
	}
	for i, t := range ts {
		if o.cfg.Window.Kind == Whole { // one window, whatever t: open until the input ends
			put(i, math.MinInt64, math.MaxInt64)
			continue
		}
		w := max(wms[i], o.wm)
		hi := kernels.FloorDiv(t, adv) * adv // newest window holding t
		lo := hi - size + adv                // oldest
		first := max(lo, firstOpen(w))
		if first > lo { // some of its windows have closed: late
			switch o.cfg.Late.Strategy {
			case "include_in_next_window":
				// it also counts in the windows open at its watermark
				o.stats.LateRedirected++
				hi = max(hi, kernels.FloorDiv(w, adv)*adv)
			case "dead_letter", "update_previous":
				o.stats.LateDeadLettered++
				why := ""
				if o.cfg.Late.Strategy == "update_previous" {
					why = "update_previous does not apply to window functions"
				}
				acfg := AggregateConfig{Query: o.cfg.Query, Source: o.cfg.Source, TimeCol: o.cfg.TimeCol, DeadLetter: o.cfg.DeadLetter}
				if err := deadLetterLate(ctx, &acfg, batch, i, t, w, "window", why); err != nil {
					return err
				}
			default:
				o.stats.LateDropped++
			}
		}
		for s := first; s <= hi; s += adv {
			put(i, s, s+size)
		}
	}
	if !added {
		return nil
	}
	batch.Retain()
	chunk.bytes = overBatchBytes(batch)
	ws.chunks[id] = chunk
	ws.nextID++
	ws.bytes += chunk.bytes
	for _, win := range touched {
		if len(win.src) >= 2*win.kept+o.pruneSlack {
			if err := o.pruneWindow(win); err != nil {
				return fmt.Errorf("window %s: %w", FormatWatermark(win.start), err)
			}
		}
	}
	return nil
}

// defaultPruneSlack is how many rows a window of a windowed top-N takes in
// beyond twice what it kept at its last pruning before it prunes again:
// pruning costs a sort of the window's rows, so it runs after the rows
// have at least doubled (amortised linear), and the batches of new rows
// are held until then.
const defaultPruneSlack = 1024

// pruneWindow (TopN only) keeps, per partition of win, the rows that rank
// 1..TopN so far, copied into a chunk of their own, and drops the others:
// they can never rank within TopN again, since rows only join a window.
// The kept rows are stored partition by partition in first-seen order of
// the partitions and in rank order within each, so ranking them again
// with later rows appended gives the same partition order and the same
// ranks (a later row tied with a kept one still comes after it) as
// ranking every row of the window.
func (o *OverOp) pruneWindow(win *overWin) error {
	wb, err := o.windowBatch(win)
	if err != nil {
		return err
	}
	defer wb.Release()
	st := o.specs[0]
	st.reset()
	if err := st.partition(o.evalContext(), wb); err != nil {
		return err
	}
	perm, _, err := o.sortWindow(st, wb)
	if err != nil {
		return err
	}
	pids := st.rows.pids
	keep := make([]int32, 0, min(len(perm), win.kept+int(o.cfg.TopN)))
	var rank int64
	for k, a := range perm {
		if k == 0 || pids[a] != pids[perm[k-1]] {
			rank = 0
		}
		if rank++; rank <= o.cfg.TopN {
			keep = append(keep, a)
		}
	}
	st.reset()
	cols := make([]arrow.Array, wb.NumCols())
	defer func() { overRelease(cols...) }()
	for c := range cols {
		if cols[c], err = kernels.Take(o.alloc, wb.Column(c), keep); err != nil {
			return err
		}
	}
	kb := array.NewRecordBatch(wb.Schema(), cols, int64(len(keep)))
	ws := o.win
	ws.unref(win)
	id := ws.nextID
	ws.nextID++
	c := &winChunk{batch: kb, maxEnd: win.end, bytes: overBatchBytes(kb), refs: len(keep)}
	ws.chunks[id] = c
	win.src, win.pos = make([]int32, len(keep)), make([]int32, len(keep))
	for j := range keep {
		win.src[j], win.pos[j] = id, int32(j)
	}
	win.kept = len(keep)
	ws.bytes += c.bytes + int64(len(keep))*8
	return nil
}

// closeWindows emits, by end then start, every window the watermark has
// closed, and drops the batches no open window needs.
func (o *OverOp) closeWindows() error {
	ws := o.win
	var closing []*overWin
	for _, win := range ws.wins {
		if win.end <= o.wm {
			closing = append(closing, win)
		}
	}
	slices.SortFunc(closing, func(x, y *overWin) int {
		if c := cmp.Compare(x.end, y.end); c != 0 {
			return c
		}
		return cmp.Compare(x.start, y.start)
	})
	for _, win := range closing {
		delete(ws.wins, win.start)
		err := error(nil)
		if o.cfg.TopN > 0 && len(win.src) > win.kept {
			err = o.pruneWindow(win)
		}
		if err == nil {
			err = o.emitWindow(win)
		}
		ws.unref(win)
		if err != nil {
			return fmt.Errorf("window %s: %w", FormatWatermark(win.start), err)
		}
	}
	return nil // unref released the batches no open window points into
}

// windowBatch returns the rows of win, in its order, as one batch (the
// caller's to release).
func (o *OverOp) windowBatch(win *overWin) (arrow.RecordBatch, error) {
	index := map[int32]int32{}
	var batches []arrow.RecordBatch
	src := make([]int32, len(win.src))
	for i, id := range win.src {
		j, ok := index[id]
		if !ok {
			j = int32(len(batches))
			index[id] = j
			batches = append(batches, o.win.chunks[id].batch)
		}
		src[i] = j
	}
	return overInterleave(o.alloc, batches, src, win.pos)
}

// emitWindow evaluates the calls over the rows of win and queues them.
func (o *OverOp) emitWindow(win *overWin) error {
	wb, err := o.windowBatch(win) // the window's rows, in arrival order
	if err != nil {
		return err
	}
	defer wb.Release()
	n := int(wb.NumRows())
	ec := o.evalContext()

	perms := make([][]int32, len(o.specs))
	rows := make([]*overRows, len(o.specs))
	for s, st := range o.specs {
		st.reset()
		if err := st.partition(ec, wb); err != nil {
			return err
		}
		perm, peers, err := o.sortWindow(st, wb)
		if err != nil {
			return err
		}
		perms[s] = perm
		r := &st.rows
		sorted := make([]uint32, n)
		for k, a := range perm {
			sorted[k] = r.pids[a]
		}
		copy(r.pids, sorted)
		rows[s] = st.positions(nil)
		r.newPeer = peers
	}
	// inverse permutations, for calls of other specifications
	inv := make([][]int32, len(o.specs))
	toOut := func(s int) []int32 {
		if s == 0 {
			return nil
		}
		if inv[s] == nil {
			in := make([]int32, n)
			for k, a := range perms[s] {
				in[a] = int32(k)
			}
			idx := make([]int32, n)
			for j, a := range perms[0] {
				idx[j] = in[a]
			}
			inv[s] = idx
		}
		return inv[s]
	}

	cols := make([]arrow.Array, 0, o.cfg.Schema.NumFields())
	defer func() { overRelease(cols...) }()
	for c := 0; c < o.nVis; c++ {
		a, err := kernels.Take(o.alloc, wb.Column(c), perms[0])
		if err != nil {
			return err
		}
		cols = append(cols, a)
	}
	cols = append(cols, constTimestamp(o.alloc, win.start, n), constTimestamp(o.alloc, win.end, n))
	for i := range o.cfg.Calls {
		c := &o.cfg.Calls[i]
		res, err := o.windowCall(ec, i, wb, perms[c.Spec], rows[c.Spec])
		if err != nil {
			return fmt.Errorf("%s: %w", strings.ToUpper(c.Func), err)
		}
		if idx := toOut(c.Spec); idx != nil {
			moved, err := kernels.Take(o.alloc, res, idx)
			res.Release()
			if err != nil {
				return err
			}
			res = moved
		}
		cols = append(cols, res)
	}
	o.emit(cols, n)
	return nil
}

// windowCall evaluates call i over the window batch wb, whose rows perm
// sorts by the call's specification (rows: partitions and positions in
// that order). The result is in perm's order.
func (o *OverOp) windowCall(ec *expr.Context, i int, wb arrow.RecordBatch, perm []int32, r *overRows) (arrow.Array, error) {
	c := &o.cfg.Calls[i]
	arg0, def0, err := o.evalCall(ec, i, wb)
	if err != nil {
		return nil, err
	}
	defer overRelease(arg0, def0)
	var arg, def arrow.Array
	if arg0 != nil {
		if arg, err = kernels.Take(o.alloc, arg0, perm); err != nil {
			return nil, err
		}
		defer arg.Release()
	}
	if def0 != nil {
		if def, err = kernels.Take(o.alloc, def0, perm); err != nil {
			return nil, err
		}
		defer def.Release()
	}
	n := r.n
	if c.Func == "lead" {
		// rows of a partition are contiguous in perm's order
		parts := []arrow.Array{arg}
		if def != nil {
			parts = append(parts, def)
		}
		src := make([]int32, n)
		pos := make([]int32, n)
		for k := 0; k < n; k++ {
			switch j := k + int(c.Offset); {
			case j < n && r.pids[j] == r.pids[k]:
				src[k], pos[k] = 0, int32(j)
			case def != nil:
				src[k], pos[k] = 1, int32(k)
			default:
				src[k], pos[k] = 0, -1
			}
		}
		return kernels.Interleave(o.alloc, c.Type, parts, src, pos)
	}
	e, err := newOverEval(c)
	if err != nil {
		return nil, err
	}
	res, err := e.eval(o.alloc, r, arg, def)
	if err != nil || !c.Frame.WholePartition {
		return res, err
	}
	// whole partition: every row gets the running result of its
	// partition's last row
	defer res.Release()
	idx := make([]int32, n)
	for k := n - 1; k >= 0; k-- {
		if k == n-1 || r.pids[k+1] != r.pids[k] {
			idx[k] = int32(k)
		} else {
			idx[k] = idx[k+1]
		}
	}
	return kernels.Take(o.alloc, res, idx)
}

// sortWindow returns the permutation sorting wb's rows by partition
// (first-seen order; st.rows.pids holds the ids), then ORDER BY, then
// arrival; and which sorted rows start a new peer group (nil without
// ORDER BY).
func (o *OverOp) sortWindow(st *overSpecState, wb arrow.RecordBatch) ([]int32, []bool, error) {
	n := int(wb.NumRows())
	pids := st.rows.pids[:n]
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	ec := o.evalContext()
	var cmps []func(a, b int32) int
	var keys []arrow.Array
	defer func() { overRelease(keys...) }()
	for _, ob := range st.spec.OrderBy {
		k, err := ob.Expr.Eval(ec, wb)
		if err != nil {
			return nil, nil, fmt.Errorf("ORDER BY %s: %w", ob.Expr, err)
		}
		keys = append(keys, k)
		f, err := orderCmp(k, ob.Desc, ob.NullsFirst)
		if err != nil {
			return nil, nil, fmt.Errorf("ORDER BY %s: %w", ob.Expr, err)
		}
		cmps = append(cmps, f)
	}
	byKeys := func(a, b int32) int {
		for _, f := range cmps {
			if c := f(a, b); c != 0 {
				return c
			}
		}
		return 0
	}
	slices.SortFunc(perm, func(a, b int32) int {
		if c := cmp.Compare(pids[a], pids[b]); c != 0 {
			return c
		}
		if c := byKeys(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(cmps) == 0 {
		return perm, nil, nil
	}
	peers := make([]bool, n)
	for k := 1; k < n; k++ {
		a, b := perm[k-1], perm[k]
		peers[k] = pids[a] == pids[b] && byKeys(a, b) != 0
	}
	return perm, peers, nil
}

// orderCmp compares rows of a for ORDER BY: ascending or descending, NULLs
// first or last, NULL equal to NULL.
func orderCmp(a arrow.Array, desc, nullsFirst bool) (func(x, y int32) int, error) {
	switch goTypeOf(a.DataType()) {
	case "int32":
		return typedCmp[int32](a, desc, nullsFirst), nil
	case "int64":
		return typedCmp[int64](a, desc, nullsFirst), nil
	case "float64":
		return typedCmp[float64](a, desc, nullsFirst), nil
	case "decimal":
		return typedCmp[decimal128.Num](a, desc, nullsFirst), nil
	case "bool":
		return typedCmp[bool](a, desc, nullsFirst), nil
	case "string":
		return typedCmp[string](a, desc, nullsFirst), nil
	}
	if a.DataType().ID() == arrow.NULL {
		return func(x, y int32) int { return 0 }, nil
	}
	return nil, fmt.Errorf("cannot order by %s", a.DataType())
}

func typedCmp[T overVal](a arrow.Array, desc, nullsFirst bool) func(x, y int32) int {
	var buf []T
	var vb []bool
	vals := overRead(a, &buf)
	valid := overValid(a, &vb)
	less := overLess[T]()
	return func(x, y int32) int {
		if valid != nil {
			vx, vy := valid[x], valid[y]
			switch {
			case !vx && !vy:
				return 0
			case !vx:
				if nullsFirst {
					return -1
				}
				return 1
			case !vy:
				if nullsFirst {
					return 1
				}
				return -1
			}
		}
		c := 0
		switch {
		case less(vals[x], vals[y]):
			c = -1
		case less(vals[y], vals[x]):
			c = 1
		}
		if desc {
			c = -c
		}
		return c
	}
}
