package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// TopNConfig configures a TopNOp.
type TopNConfig struct {
	Query       string
	PartitionBy []expr.Expr // none: one partition
	OrderBy     []OverOrder // at least one key
	// N is how many rows each partition keeps: the ranks 1..N.
	N int64
	// Schema is the output: the input's columns without the row watermark,
	// then the rank (BIGINT).
	Schema *arrow.Schema
}

// TopNOp is an updating top-N: ROW_NUMBER() OVER (PARTITION BY p ORDER BY
// k) filtered to rn <= N, over an unbounded stream.
//
// # Semantics
//
// The output is an upsert stream keyed by (partition keys, rank), in the
// EMIT CHANGES convention of un-windowed aggregates: after each input
// batch, for every partition whose top N changed, the rows now at the
// ranks that changed are emitted with their new rank, from the best
// changed rank down to the partition's last. Applying the rows in order to
// a map keyed by (partition, rank) gives, at every batch boundary, the top
// N rows of every partition over all input so far; nothing is ever
// deleted (a partition's top N only grows to N rows, then rows are
// replaced). A row that never enters its partition's top N produces no
// output; intermediate states within one batch are not emitted, so the
// output depends on the batch size, but the state at each boundary does
// not.
//
// Ties (equal ORDER BY values) are broken by arrival: the earlier row
// keeps the better rank, so a later row enters the top N only when it is
// strictly better than the N-th row. NULLs sort as OrderBy says (the
// planner's default, as for bounded OVER: NULLs sort as larger than every
// value, i.e. last ascending and first descending); NULL equals NULL.
// DOUBLE orders NaN above every value, as comparisons do.
//
// The output has no event time; its watermark is the input's. At the end
// of input nothing more is emitted (every change has been emitted with its
// batch). Checkpoint barriers are returned after the output of the input
// before them (Stateful).
//
// # Design
//
// Partition keys are hashed column at a time into dense partition ids
// (agg.Table without aggregates). Each partition keeps a list of at most N
// slots, best first; a slot is a row copied out of its batch into typed
// per-column slices (topnCol), strings cloned, so no input batch is
// retained. Most rows of a busy partition are refused by one comparison
// with its N-th row; the others are placed by binary search, the N-th row
// giving its slot to the newcomer. The bytes of the partition table, the
// slots and the lists are reserved through Reserver.
type TopNOp struct {
	unary
	cfg    TopNConfig
	nVis   int
	parts  *agg.Table // nil without PARTITION BY
	nParts int
	pids   []uint32
	top    [][]int32 // per partition: its slots, best first
	cols   []topnCol // nVis payload columns, then one per ORDER BY key
	keys   []topnCol // cols[nVis:]
	nslots int
	dirty  []int32  // per partition: best changed rank + 1 this batch (0: none)
	touch  []uint32 // partitions changed this batch, first change first

	wm Watermark
	outQueue
	reserve int64
}

var _ Stateful = (*TopNOp)(nil)

// NewTopN returns an updating top-N operator over input.
func NewTopN(alloc memory.Allocator, input Operator, cfg TopNConfig) (*TopNOp, error) {
	in := input.Schema()
	o := &TopNOp{unary: unary{input: input, alloc: alloc}, cfg: cfg, wm: NoWatermark}
	o.nVis = VisibleColumns(in)
	switch {
	case cfg.N < 1:
		return nil, fmt.Errorf("top-N: N must be at least 1, not %d", cfg.N)
	case len(cfg.OrderBy) == 0:
		return nil, errors.New("top-N: needs ORDER BY")
	case cfg.Schema == nil || cfg.Schema.NumFields() != o.nVis+1:
		return nil, fmt.Errorf("top-N: output schema must have %d columns", o.nVis+1)
	}
	if len(cfg.PartitionBy) > 0 {
		types := make([]arrow.DataType, len(cfg.PartitionBy))
		for i, e := range cfg.PartitionBy {
			types[i] = e.Type()
		}
		t, err := agg.NewTable(alloc, types, nil)
		if err != nil {
			return nil, fmt.Errorf("top-N: PARTITION BY: %w", err)
		}
		o.parts = t
	}
	for i := 0; i < o.nVis; i++ {
		c, err := newTopNCol(in.Field(i).Type, false, false)
		if err != nil {
			o.release()
			return nil, fmt.Errorf("top-N: column %s: %w", in.Field(i).Name, err)
		}
		o.cols = append(o.cols, c)
	}
	for _, ob := range cfg.OrderBy {
		c, err := newTopNCol(ob.Expr.Type(), ob.Desc, ob.NullsFirst)
		if err != nil {
			o.release()
			return nil, fmt.Errorf("top-N: ORDER BY %s: %w", ob.Expr, err)
		}
		o.cols = append(o.cols, c)
	}
	o.keys = o.cols[o.nVis:]
	return o, nil
}

// Schema implements Operator.
func (o *TopNOp) Schema() *arrow.Schema { return o.cfg.Schema }

func (o *TopNOp) release() {
	if o.parts != nil {
		o.parts.Release()
		o.parts = nil
	}
}

// Close implements Operator: it releases all state.
func (o *TopNOp) Close() error {
	o.outQueue.release()
	o.release()
	o.top, o.cols, o.keys = nil, nil, nil
	if r, ok := o.alloc.(Reserver); ok && o.reserve > 0 {
		r.Unreserve(o.reserve)
		o.reserve = 0
	}
	return o.unary.Close()
}

// Next implements Operator.
func (o *TopNOp) Next(ctx context.Context) (Message, error) {
	return o.outQueue.next(ctx, o.input, queueStep{op: o, what: "top-N",
		consume:   func(_ context.Context, msg Message) error { return o.consume(msg) },
		end:       func(context.Context) error { o.advance(FinalWatermark); return nil },
		watermark: func() Watermark { return o.wm }})
}

// consume processes one input message (and releases it).
func (o *TopNOp) consume(msg Message) error {
	defer msg.Release()
	if msg.Batch != nil && msg.Batch.NumRows() > 0 {
		if err := o.process(msg.Batch); err != nil {
			return err
		}
		if err := o.account(); err != nil {
			return err
		}
	}
	o.advance(msg.Watermark)
	return nil
}

// advance moves the watermark to w; the output of the batch just
// processed, if any, carries it.
func (o *TopNOp) advance(w Watermark) {
	if w <= o.wm {
		return
	}
	o.wm = w
	if n := len(o.queue); n > 0 && o.queue[n-1].Barrier == nil {
		o.queue[n-1].Watermark = w
		return
	}
	o.queue = append(o.queue, Message{Watermark: w})
}

// process places the rows of batch, in arrival order, and queues the
// changed ranks.
func (o *TopNOp) process(batch arrow.RecordBatch) error {
	n := int(batch.NumRows())
	ec := o.evalContext()
	o.pids = overResize(o.pids, n)
	if o.parts == nil {
		clear(o.pids)
		o.nParts = 1
	} else {
		keys := make([]arrow.Array, len(o.cfg.PartitionBy))
		defer overRelease(keys...)
		for i, e := range o.cfg.PartitionBy {
			k, err := e.Eval(ec, batch)
			if err != nil {
				return fmt.Errorf("PARTITION BY %s: %w", e, err)
			}
			keys[i] = k
		}
		if err := o.parts.Update(keys, nil, nil, o.pids); err != nil {
			return fmt.Errorf("PARTITION BY: %w", err)
		}
		o.nParts = o.parts.Len()
	}
	o.growParts()
	order := make([]arrow.Array, len(o.cfg.OrderBy))
	defer overRelease(order...)
	for i, ob := range o.cfg.OrderBy {
		k, err := ob.Expr.Eval(ec, batch)
		if err != nil {
			return fmt.Errorf("ORDER BY %s: %w", ob.Expr, err)
		}
		order[i] = k
	}
	for i := 0; i < o.nVis; i++ {
		o.cols[i].begin(batch.Column(i))
	}
	for i, k := range o.keys {
		k.begin(order[i])
	}
	defer func() {
		for _, c := range o.cols {
			c.end()
		}
	}()
	limit := int(o.cfg.N)
	for i, p := range o.pids[:n] {
		list := o.top[p]
		full := len(list) == limit
		if full && !o.better(i, list[limit-1]) {
			continue
		}
		j := sort.Search(len(list), func(j int) bool { return o.better(i, list[j]) })
		var slot int32
		if full {
			slot = list[limit-1]
			list = list[:limit-1]
		} else {
			slot = o.newSlot()
		}
		for _, c := range o.cols {
			c.put(slot, i)
		}
		o.top[p] = slices.Insert(list, j, slot)
		o.markDirty(p, j)
	}
	return o.emitChanges()
}

// better reports whether row i of the current batch sorts strictly before
// the row in slot.
func (o *TopNOp) better(i int, slot int32) bool {
	for _, k := range o.keys {
		if c := k.cmpRow(i, slot); c != 0 {
			return c < 0
		}
	}
	return false
}

func (o *TopNOp) growParts() {
	for len(o.top) < o.nParts {
		o.top = append(o.top, nil)
	}
	o.dirty = overGrow(o.dirty, o.nParts)
}

func (o *TopNOp) newSlot() int32 {
	for _, c := range o.cols {
		c.add()
	}
	o.nslots++
	return int32(o.nslots - 1)
}

func (o *TopNOp) markDirty(p uint32, rank int) {
	switch d := o.dirty[p]; {
	case d == 0:
		o.touch = append(o.touch, p)
		o.dirty[p] = int32(rank + 1)
	case int32(rank+1) < d:
		o.dirty[p] = int32(rank + 1)
	}
}

// emitChanges queues the rows at the changed ranks of the touched
// partitions, partitions in the order they first changed.
func (o *TopNOp) emitChanges() error {
	if len(o.touch) == 0 {
		return nil
	}
	var slots []int32
	var ranks []int64
	for _, p := range o.touch {
		list := o.top[p]
		for r := int(o.dirty[p] - 1); r < len(list); r++ {
			slots = append(slots, list[r])
			ranks = append(ranks, int64(r+1))
		}
		o.dirty[p] = 0
	}
	o.touch = o.touch[:0]
	out := make([]arrow.Array, 0, o.nVis+1)
	for _, c := range o.cols[:o.nVis] {
		out = append(out, c.build(o.alloc, slots))
	}
	out = append(out, overBuild(o.alloc, o.cfg.Schema.Field(o.nVis).Type, ranks, nil))
	o.queue = append(o.queue, Message{Batch: array.NewRecordBatch(o.cfg.Schema, out, int64(len(slots))), Watermark: o.wm})
	overRelease(out...)
	return nil
}

// bytes is the memory the state holds.
func (o *TopNOp) bytes() int64 {
	n := int64(len(o.top))*24 + int64(o.nslots)*4 + int64(cap(o.dirty))*4 + int64(cap(o.pids))*4
	if o.parts != nil {
		n += o.parts.StateBytes()
	}
	for _, c := range o.cols {
		n += c.bytes()
	}
	return n
}

// account reserves (or returns) the memory the operator holds.
func (o *TopNOp) account() error {
	r, ok := o.alloc.(Reserver)
	if !ok {
		return nil
	}
	b := o.bytes()
	delta := b - o.reserve
	switch {
	case delta > 0:
		if err := r.Reserve(delta); err != nil {
			return fmt.Errorf("top-N state of %d bytes: %w", b, err)
		}
	case delta < 0:
		r.Unreserve(-delta)
	}
	o.reserve = b
	return nil
}

// String describes the operator for explain output.
func (o *TopNOp) String() string {
	return fmt.Sprintf("TopN [row_number <= %d]", o.cfg.N)
}

// ---- typed slot columns ----

// topnCol holds one column of the kept rows, a value per slot, and reads
// the same column of the batch being processed.
type topnCol interface {
	begin(a arrow.Array) // the current batch's column (not retained past end)
	end()
	add()                    // appends a slot
	put(slot int32, row int) // copies row of the current batch into slot
	// cmpRow compares row of the current batch with slot in ORDER BY
	// order (direction and NULL placement applied).
	cmpRow(row int, slot int32) int
	build(alloc memory.Allocator, slots []int32) arrow.Array
	bytes() int64
}

func newTopNCol(dt arrow.DataType, desc, nullsFirst bool) (topnCol, error) {
	switch goTypeOf(dt) {
	case "int32":
		return newTopNVals[int32](dt, desc, nullsFirst), nil
	case "int64":
		return newTopNVals[int64](dt, desc, nullsFirst), nil
	case "float64":
		return newTopNVals[float64](dt, desc, nullsFirst), nil
	case "decimal":
		return newTopNVals[decimal128.Num](dt, desc, nullsFirst), nil
	case "bool":
		return newTopNVals[bool](dt, desc, nullsFirst), nil
	case "string":
		return newTopNVals[string](dt, desc, nullsFirst), nil
	}
	return nil, fmt.Errorf("type %s is not supported", dt)
}

type topnVals[T overVal] struct {
	dt               arrow.DataType
	desc, nullsFirst bool
	less             func(a, b T) bool
	// vals and valid hold slot s at [s>>topnPageBits][s&topnPageMask]:
	// pages, so that growing never copies what is kept.
	vals     [][]T
	valid    [][]bool
	n        int // slots
	str      bool
	strBytes int64

	cur   arrow.Array
	fixed []T             // the current column's values (fixed width)
	get   func(i int) T   // BOOLEAN and VARCHAR
	tmpV  []T             // build scratch
	tmpOK []bool          // build scratch
	size  uintptr         // bytes per value
	clone func(v T) T     // VARCHAR: strings.Clone
	slen  func(v T) int64 // VARCHAR: length
}

func newTopNVals[T overVal](dt arrow.DataType, desc, nullsFirst bool) *topnVals[T] {
	var z T
	c := &topnVals[T]{dt: dt, desc: desc, nullsFirst: nullsFirst, less: overLess[T](), size: unsafe.Sizeof(z)}
	if _, ok := any(z).(string); ok {
		c.str = true
		c.clone = any(strings.Clone).(func(T) T)
		c.slen = any(func(s string) int64 { return int64(len(s)) }).(func(T) int64)
	}
	return c
}

func (c *topnVals[T]) begin(a arrow.Array) {
	c.cur = a
	switch a := a.(type) {
	case *array.String:
		c.get = any(func(i int) string { return a.Value(i) }).(func(int) T)
	case *array.Boolean:
		c.get = any(func(i int) bool { return a.Value(i) }).(func(int) T)
	default:
		c.fixed = topnFixed[T](a)
	}
}

// topnFixed aliases the values of a fixed-width column.
func topnFixed[T overVal](a arrow.Array) []T {
	var out any
	var z T
	switch any(z).(type) {
	case int32:
		out = kernels.Values[int32](a)
	case int64:
		out = kernels.Values[int64](a)
	case float64:
		out = kernels.Values[float64](a)
	case decimal128.Num:
		out = kernels.Values[decimal128.Num](a)
	default:
		return nil
	}
	return out.([]T)
}

func (c *topnVals[T]) end() { c.cur, c.fixed, c.get = nil, nil, nil }

func (c *topnVals[T]) at(i int) T {
	if c.get != nil {
		return c.get(i)
	}
	return c.fixed[i]
}

// topnPageBits sizes the pages of kept values: 4096 slots.
const (
	topnPageBits = 12
	topnPageMask = 1<<topnPageBits - 1
)

func (c *topnVals[T]) add() {
	if c.n&topnPageMask == 0 {
		c.vals = append(c.vals, make([]T, 1<<topnPageBits))
		c.valid = append(c.valid, make([]bool, 1<<topnPageBits))
	}
	c.n++
}

func (c *topnVals[T]) put(slot int32, row int) {
	vals, valid := c.vals[slot>>topnPageBits], c.valid[slot>>topnPageBits]
	k := slot & topnPageMask
	if c.str {
		c.strBytes -= c.slen(vals[k])
	}
	if !c.cur.IsValid(row) {
		var z T
		vals[k], valid[k] = z, false
		return
	}
	v := c.at(row)
	if c.str {
		v = c.clone(v)
		c.strBytes += c.slen(v)
	}
	vals[k], valid[k] = v, true
}

func (c *topnVals[T]) cmpRow(row int, slot int32) int {
	k := slot & topnPageMask
	vr, vs := c.cur.IsValid(row), c.valid[slot>>topnPageBits][k]
	if !vr || !vs {
		switch {
		case vr == vs:
			return 0
		case !vr == c.nullsFirst:
			return -1
		}
		return 1
	}
	x, y := c.at(row), c.vals[slot>>topnPageBits][k]
	r := 0
	switch {
	case c.less(x, y):
		r = -1
	case c.less(y, x):
		r = 1
	}
	if c.desc {
		r = -r
	}
	return r
}

func (c *topnVals[T]) build(alloc memory.Allocator, slots []int32) arrow.Array {
	c.tmpV = overResize(c.tmpV, len(slots))
	c.tmpOK = overResize(c.tmpOK, len(slots))
	for k, s := range slots {
		c.tmpV[k], c.tmpOK[k] = c.vals[s>>topnPageBits][s&topnPageMask], c.valid[s>>topnPageBits][s&topnPageMask]
	}
	out := overBuild(alloc, c.dt, c.tmpV, c.tmpOK)
	if c.str {
		clear(c.tmpV) // drop references to the kept strings
	}
	return out
}

func (c *topnVals[T]) bytes() int64 {
	return int64(len(c.vals))<<topnPageBits*(int64(c.size)+1) + c.strBytes +
		int64(cap(c.tmpV))*int64(c.size) + int64(cap(c.tmpOK))
}

// ReservedBytes implements StateSizer.
func (o *TopNOp) ReservedBytes() int64 { return o.reserve }
