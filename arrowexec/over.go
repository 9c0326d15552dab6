package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// OverFrame is the frame of a window function call. Frames always end at
// the current row, in ROWS units: peers (rows with equal ORDER BY values)
// are not pulled into the frame.
type OverFrame struct {
	// Preceding is n for ROWS BETWEEN n PRECEDING AND CURRENT ROW (0 for
	// the current row alone) and -1 for UNBOUNDED PRECEDING.
	Preceding int64
	// WholePartition makes the frame the whole partition: the default of
	// a call without ORDER BY evaluated per window.
	WholePartition bool
}

func (f OverFrame) String() string {
	switch {
	case f.WholePartition:
		return "whole partition"
	case f.Preceding < 0:
		return "ROWS UNBOUNDED PRECEDING"
	}
	return fmt.Sprintf("ROWS %d PRECEDING", f.Preceding)
}

// OverOrder is one ORDER BY item of a window specification.
type OverOrder struct {
	Expr       expr.Expr
	Desc       bool
	NullsFirst bool
}

// OverSpec is a window specification: PARTITION BY and ORDER BY.
type OverSpec struct {
	PartitionBy []expr.Expr
	OrderBy     []OverOrder
}

// OverCall is one window function call. Func is row_number, rank,
// dense_rank, lag, lead, first_value, last_value, count_star, count, sum,
// avg, min, max, stddev_samp, stddev_pop, var_samp or var_pop. Arg is nil
// for the ranking functions and COUNT(*); Offset and Default (nil: NULL,
// else of Arg's type) are LAG's and LEAD's. Type is the result type.
type OverCall struct {
	Func    string
	Arg     expr.Expr
	Offset  int64
	Default expr.Expr
	Spec    int // index into OverConfig.Specs
	Frame   OverFrame
	Type    arrow.DataType
}

// OverConfig configures an OverOp.
type OverConfig struct {
	Query  string
	Source string // stream the rows come from, for dead-letter records
	Specs  []OverSpec
	Calls  []OverCall
	// Window, when set, evaluates the calls per window (TUMBLING or
	// SLIDING) when it closes; nil evaluates them as rows arrive.
	Window *WindowSpec
	// TimeCol and WMCol are the input's event-time and row-watermark
	// columns, -1 for processing time.
	TimeCol, WMCol int
	// Ordered (un-windowed only) releases rows in event-time order once
	// the watermark passes them: the specifications are ordered by the
	// event time (or not at all).
	Ordered    bool
	Late       LateDataSpec
	DeadLetter DeadLetter
	// TopN (windowed only; 0: off) keeps, per window and partition, only
	// the rows that can still rank 1..TopN, and emits only those: the
	// rank filter rn <= TopN of a reader, applied early. It needs exactly
	// one call, a ROW_NUMBER. See pruneWindow.
	TopN int64
	// Schema is the output: the input's columns without the row
	// watermark, then window_start and window_end (windowed), then one
	// column per call, then the row watermark (un-windowed input with
	// event time).
	Schema *arrow.Schema
}

// OverOp evaluates window functions (OVER) over a stream.
//
// # Semantics
//
// Un-windowed (Window nil), rows are evaluated incrementally, partition by
// partition, in processing order:
//   - without ORDER BY (Ordered false) processing order is arrival order
//     and no row is late;
//   - ordered by the event time, rows are buffered until the watermark
//     passes them (event time below the watermark) and then processed in
//     (event time, arrival) order, so that rows out of order within the
//     watermark bound get the right LAG, running sum, etc. A row is late
//     when its event time is below its row watermark (RowWatermarkColumn)
//     or below a watermark the operator has already released rows at;
//     Late.Strategy decides what happens: drop (counted in Stats),
//     dead_letter, include_in_next_window (processed as if its event time
//     were its watermark; its columns keep their values); update_previous
//     cannot correct rows already emitted and dead-letters.
//
// A row is emitted as soon as its results are known: at once, or for
// LEAD(x, n) once n more rows of its partition have been processed (at
// the end of input, with the default or NULL), in the order rows complete.
// While rows wait for their LEAD, the output watermark is held at the
// oldest waiting row's event time (ordered) or row watermark, so
// downstream operators do not see them as late. State is bounded by the
// frames: per partition the last n rows for ROWS n PRECEDING (and a
// monotonic overDeque for MIN/MAX), running values for UNBOUNDED PRECEDING,
// the last n rows for LAG n; plus the rows waiting for the watermark or
// for a LEAD.
//
// Windowed (TUMBLING or SLIDING), rows are assigned to windows by event
// time as windowed aggregates do (a row late for all its windows follows
// Late.Strategy, update_previous dead-letters), and when the watermark
// closes a window its rows are partitioned, sorted by ORDER BY (ties in
// arrival order; NULLs as OrderBy says) and evaluated; the window's rows
// are emitted in one batch, in the first specification's order
// (partitions in first-seen order). A call without ORDER BY has the whole
// partition as its default frame.
//
// With TopN set (windowed ROW_NUMBER filtered by rn <= TopN downstream),
// a window emits only the rows ranked 1..TopN of each partition, the
// same rows with the same ranks and in the same order as the unpruned
// ranking after the filter, and holds only those plus the rows that
// arrived since it last pruned (see pruneWindow).
//
// RANK and DENSE_RANK treat rows with equal ORDER BY values as peers;
// every frame counts rows (ROWS), so peers are not pulled into a frame.
//
// # Design
//
// Rows are processed a run (a batch, or a run of released rows) at a
// time: partition keys are hashed column at a time into dense partition
// ids by an agg.Table without aggregates, positions are counted per
// partition, and each call's evaluator (over_eval.go) runs one typed loop
// over the run. Moving SUM/AVG add the entering and subtract the leaving
// value (exact 128-bit integers for BIGINT and DECIMAL), MIN/MAX keep a
// monotonic overDeque. Memory held by state and retained batches is reserved
// through Reserver. Checkpoints save the retained rows as Arrow tables and
// the running state with the state codec (over_state.go).
type OverOp struct {
	unary
	cfg   OverConfig
	nVis  int  // visible input columns
	first int  // output column of the first call
	outWM bool // output carries the row watermark
	specs []*overSpecState
	evals []overEval // per call; nil for LEAD (streaming)
	lead  *leadState
	sort  *sortBuffer
	win   *overWindows
	// pruneSlack (TopN) is how many rows a window takes in beyond twice
	// what it kept before pruning again (tests lower it).
	pruneSlack int

	wm    Watermark // input watermark
	outWm Watermark // last output watermark
	outQueue
	seq     uint64 // rows processed (LEAD ordering)
	stats   AggregateStats
	reserve int64
}

var _ Operator = (*OverOp)(nil)

// NewOver returns a window-function operator over input.
func NewOver(alloc memory.Allocator, input Operator, cfg OverConfig) (*OverOp, error) {
	in := input.Schema()
	o := &OverOp{unary: unary{input: input, alloc: alloc}, cfg: cfg, wm: NoWatermark, outWm: NoWatermark}
	o.nVis = VisibleColumns(in)
	if w := cfg.Window; w != nil {
		if w.Kind == Session {
			return nil, errors.New("window functions over SESSION windows are not supported yet")
		}
		if w.Kind != Whole && (w.Advance <= 0 || w.Size < w.Advance || w.Size%w.Advance != 0) {
			return nil, fmt.Errorf("%s: size must be a positive multiple of the advance", w)
		}
		o.win = newOverWindows()
		o.pruneSlack = defaultPruneSlack
		if cfg.TopN < 0 || cfg.TopN > 0 && (len(cfg.Calls) != 1 || cfg.Calls[0].Func != "row_number") {
			return nil, fmt.Errorf("window functions: a windowed top-%d needs exactly one ROW_NUMBER call", cfg.TopN)
		}
	} else {
		if cfg.TopN != 0 {
			return nil, errors.New("window functions: TopN needs a window (an un-windowed top-N is a TopNOp)")
		}
		o.outWM = cfg.TimeCol >= 0
		if cfg.Ordered {
			if cfg.TimeCol < 0 {
				return nil, errors.New("window functions ordered by event time need an input with event time")
			}
			o.sort = &sortBuffer{}
		}
	}
	o.first = o.nVis
	if cfg.Window != nil {
		o.first += 2
	}
	want := o.first + len(cfg.Calls)
	if o.outWM {
		want++
	}
	if cfg.Schema == nil || cfg.Schema.NumFields() != want {
		return nil, fmt.Errorf("window functions: output schema has %d columns, want %d", cfg.Schema.NumFields(), want)
	}
	for i := range cfg.Specs {
		s, err := newOverSpecState(alloc, &cfg.Specs[i])
		if err != nil {
			return nil, err
		}
		o.specs = append(o.specs, s)
	}
	o.evals = make([]overEval, len(cfg.Calls))
	leadSpec := -1
	for i := range cfg.Calls {
		c := &cfg.Calls[i]
		if c.Spec < 0 || c.Spec >= len(cfg.Specs) {
			return nil, fmt.Errorf("window function %s: bad specification %d", c.Func, c.Spec)
		}
		if c.Func == "lead" {
			if cfg.Window == nil {
				if leadSpec >= 0 && leadSpec != c.Spec {
					return nil, errors.New("LEAD calls with different PARTITION BY or ORDER BY over an unbounded stream are not supported yet")
				}
				leadSpec = c.Spec
			}
			continue
		}
		e, err := newOverEval(c)
		if err != nil {
			return nil, err
		}
		o.evals[i] = e
	}
	if leadSpec >= 0 {
		l, err := newLeadState(o, leadSpec)
		if err != nil {
			return nil, err
		}
		o.lead = l
	}
	return o, nil
}

// Schema implements Operator.
func (o *OverOp) Schema() *arrow.Schema { return o.cfg.Schema }

// Stats returns the late-row counters.
func (o *OverOp) Stats() AggregateStats { return o.stats }

// Close implements Operator: it releases all state.
func (o *OverOp) Close() error {
	o.outQueue.release()
	for _, s := range o.specs {
		s.release()
	}
	if o.sort != nil {
		o.sort.release()
	}
	if o.lead != nil {
		o.lead.release()
	}
	if o.win != nil {
		o.win.release()
	}
	if r, ok := o.alloc.(Reserver); ok && o.reserve > 0 {
		r.Unreserve(o.reserve)
		o.reserve = 0
	}
	return o.unary.Close()
}

// Next implements Operator. A checkpoint barrier is returned after the
// output of the input before it, with the output watermark (see
// Stateful).
func (o *OverOp) Next(ctx context.Context) (Message, error) {
	return o.outQueue.next(ctx, o.input, queueStep{op: o, what: "window functions", consume: o.consume,
		end:       func(ctx context.Context) error { return o.advance(ctx, FinalWatermark) },
		watermark: func() Watermark { return o.outWm }})
}

// consume processes one input message (and releases it).
func (o *OverOp) consume(ctx context.Context, msg Message) error {
	defer msg.Release()
	if msg.Batch != nil && msg.Batch.NumRows() > 0 {
		var err error
		switch {
		case o.win != nil:
			err = o.assignWindows(ctx, msg.Batch)
		case o.sort != nil:
			err = o.buffer(ctx, msg.Batch)
		default:
			err = o.process(msg.Batch)
		}
		if err != nil {
			return err
		}
	}
	return o.advance(ctx, msg.Watermark)
}

// advance moves the input watermark to w and emits what it completes.
func (o *OverOp) advance(ctx context.Context, w Watermark) error {
	if w > o.wm {
		o.wm = w
	}
	switch {
	case o.win != nil:
		if err := o.closeWindows(); err != nil {
			return err
		}
	case o.sort != nil:
		if err := o.release(o.wm); err != nil {
			return err
		}
	}
	if o.lead != nil && o.wm == FinalWatermark {
		if err := o.lead.flush(); err != nil {
			return err
		}
	}
	if err := o.account(); err != nil {
		return err
	}
	out := o.wm
	if o.lead != nil && o.outWM {
		out = min(out, o.lead.hold())
	}
	if out > o.outWm {
		o.outWm = out
		if n := len(o.queue); n > 0 {
			o.queue[n-1].Watermark = out
		} else {
			o.queue = append(o.queue, Message{Watermark: out})
		}
	}
	return nil
}

// emit queues a batch of output rows.
func (o *OverOp) emit(cols []arrow.Array, n int) {
	o.queue = append(o.queue, Message{Batch: array.NewRecordBatch(o.cfg.Schema, cols, int64(n)), Watermark: o.outWm})
}

// evalCall evaluates the argument and default of call i over batch
// (nil when absent); release frees them.
func (o *OverOp) evalCall(ec *expr.Context, i int, batch arrow.RecordBatch) (arg, def arrow.Array, err error) {
	c := &o.cfg.Calls[i]
	if c.Arg != nil {
		if arg, err = c.Arg.Eval(ec, batch); err != nil {
			return nil, nil, fmt.Errorf("%s argument %s: %w", strings.ToUpper(c.Func), c.Arg, err)
		}
	}
	if c.Default != nil {
		if def, err = c.Default.Eval(ec, batch); err != nil {
			if arg != nil {
				arg.Release()
			}
			return nil, nil, fmt.Errorf("%s default %s: %w", strings.ToUpper(c.Func), c.Default, err)
		}
	}
	return arg, def, nil
}

func overRelease(arrs ...arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}

// process evaluates a run of rows, in processing order, against the
// running state, and queues the rows that are complete.
func (o *OverOp) process(batch arrow.RecordBatch) error {
	n := int(batch.NumRows())
	if n == 0 {
		return nil
	}
	ec := o.evalContext()
	var ts []int64
	if o.sort != nil {
		ts = kernels.Values[int64](batch.Column(o.cfg.TimeCol))
	}
	rows := make([]*overRows, len(o.specs))
	for s, sp := range o.specs {
		if err := sp.partition(ec, batch); err != nil {
			return err
		}
		if len(sp.spec.OrderBy) > 0 {
			rows[s] = sp.positions(ts)
		} else {
			rows[s] = sp.positions(nil) // all rows of a partition are peers
		}
	}
	results := make([]arrow.Array, len(o.cfg.Calls))
	defer overRelease(results...)
	for i := range o.cfg.Calls {
		if o.evals[i] == nil {
			continue // LEAD
		}
		arg, def, err := o.evalCall(ec, i, batch)
		if err != nil {
			return err
		}
		res, err := o.evals[i].eval(o.alloc, rows[o.cfg.Calls[i].Spec], arg, def)
		overRelease(arg, def)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.ToUpper(o.cfg.Calls[i].Func), err)
		}
		results[i] = res
	}
	base := o.seq
	o.seq += uint64(n)
	if o.lead != nil {
		return o.lead.process(ec, batch, rows[o.lead.spec], results, base)
	}
	cols := make([]arrow.Array, 0, o.cfg.Schema.NumFields())
	for c := 0; c < o.nVis; c++ {
		cols = append(cols, batch.Column(c))
	}
	cols = append(cols, results...)
	if o.outWM {
		cols = append(cols, batch.Column(o.cfg.WMCol))
	}
	o.emit(cols, n)
	return nil
}

// rowKeys returns the key each row of batch is held back by while it
// waits for a LEAD: its event time when ordered, else its row watermark
// (nil for processing time).
func (o *OverOp) rowKeys(batch arrow.RecordBatch) []int64 {
	switch {
	case !o.outWM:
		return nil
	case o.sort != nil:
		return kernels.Values[int64](batch.Column(o.cfg.TimeCol))
	}
	return kernels.Values[int64](batch.Column(o.cfg.WMCol))
}

// ---- partitions ----

// overSpecState gives rows their partition ids and positions for one
// window specification.
type overSpecState struct {
	spec  *OverSpec
	table *agg.Table // partition dictionary; nil without PARTITION BY
	parts int
	cnt   []int64 // per partition: rows processed
	lastT []int64 // per partition: event time of its last row (peers)
	rows  overRows
	sink  int64 // keeps warm loads
}

func newOverSpecState(alloc memory.Allocator, spec *OverSpec) (*overSpecState, error) {
	s := &overSpecState{spec: spec}
	if len(spec.PartitionBy) > 0 {
		types := make([]arrow.DataType, len(spec.PartitionBy))
		for i, e := range spec.PartitionBy {
			types[i] = e.Type()
		}
		t, err := agg.NewTable(alloc, types, nil)
		if err != nil {
			return nil, fmt.Errorf("PARTITION BY: %w", err)
		}
		s.table = t
	}
	return s, nil
}

func (s *overSpecState) release() {
	if s.table != nil {
		s.table.Release()
		s.table = nil
	}
}

// reset forgets every partition (a new window).
func (s *overSpecState) reset() {
	if s.table != nil {
		s.table.Reset()
	}
	s.parts = 0
	s.cnt = s.cnt[:0]
	s.lastT = s.lastT[:0]
}

func (s *overSpecState) bytes() int64 {
	n := int64(cap(s.cnt)+cap(s.lastT)) * 8
	if s.table != nil {
		n += s.table.StateBytes()
	}
	return n
}

// partition sets rows.pids to the partition ids of batch's rows (new
// partitions numbered in first-seen order).
func (s *overSpecState) partition(ec *expr.Context, batch arrow.RecordBatch) error {
	n := int(batch.NumRows())
	r := &s.rows
	r.n = n
	r.pids = overResize(r.pids, n)
	if s.table == nil {
		clear(r.pids)
		s.parts = 1
	} else {
		keys := make([]arrow.Array, len(s.spec.PartitionBy))
		defer overRelease(keys...)
		for i, e := range s.spec.PartitionBy {
			k, err := e.Eval(ec, batch)
			if err != nil {
				return fmt.Errorf("PARTITION BY %s: %w", e, err)
			}
			keys[i] = k
		}
		if err := s.table.Update(keys, nil, nil, r.pids); err != nil {
			return fmt.Errorf("PARTITION BY: %w", err)
		}
		s.parts = s.table.Len()
	}
	r.parts = s.parts
	s.cnt = overGrow(s.cnt, s.parts)
	return nil
}

// positions numbers the rows (rows.pids, in processing order) within
// their partitions; with ts (ordered by event time) a row whose event
// time differs from the previous row of its partition starts a new peer
// group. It returns rows.
func (s *overSpecState) positions(ts []int64) *overRows {
	r := &s.rows
	r.pos = overResize(r.pos, r.n)
	cnt := s.cnt
	for k, p := range r.pids[:r.n] {
		if k%overWarm == 0 {
			s.sink += overWarmState(cnt, r.pids[k:min(k+overWarm, r.n)])
		}
		r.pos[k] = cnt[p]
		cnt[p]++
	}
	r.newPeer = nil
	if ts != nil {
		s.lastT = overGrow(s.lastT, s.parts)
		r.newPeer = overResize(r.newPeer[:0], r.n)
		for k, p := range r.pids[:r.n] {
			r.newPeer[k] = r.pos[k] > 0 && ts[k] != s.lastT[p]
			s.lastT[p] = ts[k]
		}
	}
	return r
}

// ---- ordered release ----

// sortBuffer holds the rows of an ordered un-windowed query until the
// watermark passes them. Each input batch is a chunk whose kept rows are
// sorted by (key, row) once; releasing takes a prefix of every chunk.
type sortBuffer struct {
	chunks []*sortChunk
	bytes  int64
	ent    []sortEntry // scratch: merge
}

type sortChunk struct {
	batch arrow.RecordBatch
	// keys are the sort keys (event time, or the watermark of a
	// redirected late row), ascending; rows the row of each key (nil:
	// row i is key i, and keys alias the batch's event times).
	keys       []int64
	rows       []int32
	next       int  // first row not released
	contiguous bool // rows[i] == rows[0]+i
	bytes      int64
}

func (c *sortChunk) row(i int) int32 {
	if c.rows == nil {
		return int32(i)
	}
	return c.rows[i]
}

type sortEntry struct {
	key   int64
	chunk int32
	row   int32
}

func (b *sortBuffer) release() {
	for _, c := range b.chunks {
		c.batch.Release()
	}
	b.chunks = nil
	b.bytes = 0
}

// overBatchBytes is the size of the buffers batch references.
func overBatchBytes(b arrow.RecordBatch) int64 {
	var n int64
	for _, c := range b.Columns() {
		for _, buf := range c.Data().Buffers() {
			if buf != nil {
				n += int64(buf.Len())
			}
		}
	}
	return n
}

// buffer judges the rows of batch for lateness and keeps the others until
// the watermark passes them.
func (o *OverOp) buffer(ctx context.Context, batch arrow.RecordBatch) error {
	ts := kernels.Values[int64](batch.Column(o.cfg.TimeCol))
	wms := kernels.Values[int64](batch.Column(o.cfg.WMCol))
	c := &sortChunk{}
	// The common case: no late row, already in order: the chunk is the
	// batch as it is.
	fast := true
	for i, t := range ts {
		if t < max(wms[i], o.wm) || (i > 0 && t < ts[i-1]) {
			fast = false
			break
		}
	}
	if fast {
		batch.Retain()
		c.batch, c.keys, c.contiguous = batch, ts, true
		c.bytes = overBatchBytes(batch)
		o.sort.chunks = append(o.sort.chunks, c)
		o.sort.bytes += c.bytes
		return nil
	}
	c.keys = make([]int64, 0, len(ts))
	c.rows = make([]int32, 0, len(ts))
	sorted := true
	for i, t := range ts {
		w := max(wms[i], o.wm)
		key := t
		if t < w {
			switch o.cfg.Late.Strategy {
			case "include_in_next_window":
				o.stats.LateRedirected++
				key = w
			case "dead_letter", "update_previous":
				o.stats.LateDeadLettered++
				if err := o.deadLetterOrdered(ctx, batch, i, t, w); err != nil {
					return err
				}
				continue
			default:
				o.stats.LateDropped++
				continue
			}
		}
		if n := len(c.keys); n > 0 && key < c.keys[n-1] {
			sorted = false
		}
		c.keys = append(c.keys, key)
		c.rows = append(c.rows, int32(i))
	}
	if len(c.rows) == 0 {
		return nil
	}
	if !sorted {
		idx := make([]int, len(c.rows))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch ka, kb := c.keys[a], c.keys[b]; {
			case ka < kb:
				return -1
			case ka > kb:
				return 1
			}
			return 0
		})
		keys, rows := make([]int64, len(idx)), make([]int32, len(idx))
		for i, j := range idx {
			keys[i], rows[i] = c.keys[j], c.rows[j]
		}
		c.keys, c.rows = keys, rows
	}
	c.contiguous = sorted && int(c.rows[len(c.rows)-1]-c.rows[0]) == len(c.rows)-1
	if c.contiguous && c.rows[0] == 0 && len(c.rows) == len(ts) {
		c.rows = nil
	}
	batch.Retain()
	c.batch = batch
	c.bytes = overBatchBytes(batch) + int64(cap(c.keys))*8 + int64(cap(c.rows))*4
	o.sort.chunks = append(o.sort.chunks, c)
	o.sort.bytes += c.bytes
	return nil
}

func (o *OverOp) deadLetterOrdered(ctx context.Context, batch arrow.RecordBatch, i int, t, w int64) error {
	if o.cfg.DeadLetter == nil {
		return nil
	}
	reason := fmt.Sprintf("late row: event time %s is behind watermark %s; rows ordered by event time before it were already processed", FormatWatermark(t), FormatWatermark(w))
	if o.cfg.Late.Strategy == "update_previous" {
		reason += " (update_previous does not apply to window functions)"
	}
	return o.cfg.DeadLetter.DeadLetter(ctx, DeadLetterRecord{
		Time: time.Now().UTC(), Query: o.cfg.Query, Source: o.cfg.Source,
		Field: batch.Schema().Field(o.cfg.TimeCol).Name, Reason: reason, Raw: LateRaw(batch, i),
	})
}

// release processes, in (key, arrival) order, every buffered row whose key
// is below w.
func (o *OverOp) release(w Watermark) error {
	b := o.sort
	type part struct {
		c      *sortChunk
		ci     int
		lo, hi int
	}
	var parts []part
	for ci, c := range b.chunks {
		keys := c.keys[c.next:]
		hi := c.next
		if w == FinalWatermark {
			hi = len(c.keys)
		} else if n := len(keys); n > 0 && keys[n-1] < w {
			hi = len(c.keys)
		} else {
			i, _ := slices.BinarySearch(keys, w) // first key >= w
			hi += i
		}
		if hi > c.next {
			parts = append(parts, part{c, ci, c.next, hi})
		}
	}
	if len(parts) == 0 {
		return nil
	}
	ordered := true
	for i := 1; i < len(parts); i++ {
		if parts[i].c.keys[parts[i].lo] < parts[i-1].c.keys[parts[i-1].hi-1] {
			ordered = false
			break
		}
	}
	var err error
	if ordered {
		// Runs that follow each other: process each as it is (a
		// zero-copy slice when its rows are contiguous).
		for _, p := range parts {
			if err = o.processRun(p.c, p.lo, p.hi); err != nil {
				break
			}
		}
	} else {
		err = o.processMerged(func(yield func(*sortChunk, int, int)) {
			for _, p := range parts {
				yield(p.c, p.lo, p.hi)
			}
		})
	}
	for _, p := range parts {
		p.c.next = p.hi
	}
	kept := b.chunks[:0]
	for _, c := range b.chunks {
		if c.next == len(c.keys) {
			b.bytes -= c.bytes
			c.batch.Release()
			continue
		}
		kept = append(kept, c)
	}
	clear(b.chunks[len(kept):])
	b.chunks = kept
	return err
}

// processRun processes rows lo..hi-1 (sorted order) of chunk c.
func (o *OverOp) processRun(c *sortChunk, lo, hi int) error {
	var run arrow.RecordBatch
	if c.contiguous {
		run = c.batch.NewSlice(int64(c.row(lo)), int64(c.row(hi-1))+1)
	} else {
		var err error
		if run, err = kernels.TakeBatch(o.alloc, c.batch, c.rows[lo:hi]); err != nil {
			return err
		}
	}
	defer run.Release()
	return o.process(run)
}

// processMerged merges the released prefixes of several chunks by key
// (ties in chunk order, which is arrival order) and processes them as one
// run.
func (o *OverOp) processMerged(each func(yield func(*sortChunk, int, int))) error {
	b := o.sort
	b.ent = b.ent[:0]
	var batches []arrow.RecordBatch
	each(func(c *sortChunk, lo, hi int) {
		ci := int32(len(batches))
		batches = append(batches, c.batch)
		for i := lo; i < hi; i++ {
			b.ent = append(b.ent, sortEntry{key: c.keys[i], chunk: ci, row: c.row(i)})
		}
	})
	slices.SortStableFunc(b.ent, func(x, y sortEntry) int {
		switch {
		case x.key < y.key:
			return -1
		case x.key > y.key:
			return 1
		}
		return 0
	})
	src := make([]int32, len(b.ent))
	pos := make([]int32, len(b.ent))
	for i, e := range b.ent {
		src[i], pos[i] = e.chunk, e.row
	}
	run, err := overInterleave(o.alloc, batches, src, pos)
	if err != nil {
		return err
	}
	defer run.Release()
	return o.process(run)
}

// overInterleave returns a batch (of batches[0]'s schema) whose row j
// is row pos[j] of batches[src[j]].
func overInterleave(alloc memory.Allocator, batches []arrow.RecordBatch, src, pos []int32) (arrow.RecordBatch, error) {
	schema := batches[0].Schema()
	cols := make([]arrow.Array, schema.NumFields())
	defer overRelease(cols...)
	parts := make([]arrow.Array, len(batches))
	for c := range cols {
		for i, b := range batches {
			parts[i] = b.Column(c)
		}
		var err error
		if cols[c], err = kernels.Interleave(alloc, schema.Field(c).Type, parts, src, pos); err != nil {
			return nil, fmt.Errorf("column %s: %w", schema.Field(c).Name, err)
		}
	}
	return array.NewRecordBatch(schema, cols, int64(len(pos))), nil
}

// account reserves (or returns) the memory the operator holds.
func (o *OverOp) account() error {
	r, ok := o.alloc.(Reserver)
	if !ok {
		return nil
	}
	var bytes int64
	for _, s := range o.specs {
		bytes += s.bytes()
	}
	for _, e := range o.evals {
		if e != nil {
			bytes += e.bytes()
		}
	}
	if o.sort != nil {
		bytes += o.sort.bytes
	}
	if o.lead != nil {
		bytes += o.lead.bytes()
	}
	if o.win != nil {
		bytes += o.win.bytes
	}
	delta := bytes - o.reserve
	switch {
	case delta > 0:
		if err := r.Reserve(delta); err != nil {
			return fmt.Errorf("window function state of %d bytes: %w", bytes, err)
		}
	case delta < 0:
		r.Unreserve(-delta)
	}
	o.reserve = bytes
	return nil
}

// String describes the operator for explain output.
func (o *OverOp) String() string {
	names := make([]string, len(o.cfg.Calls))
	for i, c := range o.cfg.Calls {
		names[i] = c.Func
	}
	if o.cfg.TopN > 0 {
		return fmt.Sprintf("Over [%s] top %d per partition and window", strings.Join(names, ", "), o.cfg.TopN)
	}
	return "Over [" + strings.Join(names, ", ") + "]"
}
