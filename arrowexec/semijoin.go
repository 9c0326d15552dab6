package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// SubqueryMode is what a SubqueryJoinOp makes of the subquery's rows for
// each row of the outer (probe) input.
type SubqueryMode int

const (
	// SemiJoin keeps the probe rows whose predicate (IN or EXISTS) is TRUE.
	SemiJoin SubqueryMode = iota
	// AntiJoin keeps the probe rows whose predicate is FALSE: NOT IN and
	// NOT EXISTS, whose predicate is the negation, keep exactly the rows
	// for which it is TRUE.
	AntiJoin
	// MarkJoin appends the predicate as a BOOLEAN column (TRUE, FALSE or
	// NULL) for conditions that use it inside OR, NOT, CASE or the select
	// list.
	MarkJoin
	// ScalarJoin appends the value of the subquery's one row (a lookup):
	// NULL when it has none, an error when it has several.
	ScalarJoin
)

func (m SubqueryMode) String() string {
	return [...]string{"SEMI", "ANTI", "MARK", "SCALAR"}[m]
}

// SubqueryJoinConfig configures a SubqueryJoinOp. Input 0 is the probe
// (outer) input, input 1 the build input: the subquery's rows.
type SubqueryJoinConfig struct {
	Query string
	// Subquery names the subquery in errors, e.g. `scalar subquery (SELECT
	// ...) at line 2, column 7`.
	Subquery string
	Mode     SubqueryMode
	// ProbeKeys[i] = BuildKeys[i] are the correlation equalities (none for
	// an uncorrelated subquery); paired keys have the same type. A row with
	// a NULL key on either side has no partner: for a probe row the
	// subquery then has no rows.
	ProbeKeys, BuildKeys []expr.Expr
	// KeyText names the probe keys in errors (default: the expressions).
	KeyText []string
	// For IN (SemiJoin, AntiJoin, MarkJoin): the predicate is ProbeValue IN
	// (BuildValue of the probe row's subquery rows), both of one type; both
	// nil for EXISTS. For ScalarJoin, BuildValue is the looked-up value and
	// ProbeValue is nil.
	ProbeValue, BuildValue expr.Expr
	// Missing, when set, gives the result for probe rows whose subquery
	// has no rows, evaluated over the probe batch: the predicate (BOOLEAN)
	// for IN and EXISTS, the value (BuildValue's type) for ScalarJoin.
	// Without it IN and EXISTS are FALSE and the value is NULL. The planner
	// sets it for an aggregate without GROUP BY, which yields one row even
	// over no input (COUNT(*) is 0).
	Missing expr.Expr
	// WM is the probe input's row-watermark column (last), -1 without one;
	// it stays last in the output.
	WM int
	// Schema is the output: the probe input's schema for SemiJoin and
	// AntiJoin; for MarkJoin and ScalarJoin its visible columns, the
	// appended column, then the row-watermark column when WM >= 0.
	Schema *arrow.Schema
}

// SubqueryJoinOp evaluates IN, EXISTS and scalar subqueries over a bounded
// build input as a hash semi-, anti-, mark- or lookup join instead of
// running the subquery once per row.
//
// The build input (the subquery) is read to its end first: its rows are
// grouped by correlation key in a hash table (agg.Table group ids), with,
// per group, its row count and NULL-value count and, for IN, the distinct
// (key, value) pairs in a second table; for a scalar subquery, the value
// of the group's first row. Meanwhile the probe input is read too and its
// messages are kept, reserved against the memory budget, so a subquery
// over the same stream as the outer query cannot deadlock the source that
// feeds both. Once the build is complete, probe batches are answered
// vectorised (keys hashed column at a time, looked up without inserting),
// in order, with their watermarks: output keeps the probe input's event
// time, row watermarks and watermarks.
//
// SQL's NULL rules: x IN (S) is TRUE when x equals a value of S, else NULL
// when x is NULL or S holds a NULL (and S is not empty), else FALSE; an
// empty S gives FALSE, even for a NULL x. NOT IN is its negation, so an
// AntiJoin keeps a row only when IN is FALSE. EXISTS is never NULL.
//
// Checkpoints (Stateful): a barrier is aligned over the two inputs (see
// inputReaders). Its state is the build so far, the probe messages kept
// during the build (returned after the barrier) and the output watermark.
//
// End of stream: after the probe input's end (its FinalWatermark passed
// on), Next returns io.EOF. A build input that never ends holds back every
// row; the planner accepts only bounded build inputs.
type SubqueryJoinOp struct {
	alloc        memory.Allocator
	inputReaders // inputs and their reader goroutines
	cfg          SubqueryJoinConfig
	nvis         int
	keyTypes     []arrow.DataType
	isIn         bool

	built    bool
	probeEOF bool
	eof      bool
	closed   bool
	pending  []Message // probe messages read while the build ran
	out      Watermark // watermark of the last message returned

	groups      *agg.Table // correlation key -> group; nil without keys
	nGroups     int
	pairs       *agg.Table // (correlation key, value) of IN
	rows, nulls []int64    // per group: rows, and rows with a NULL value
	firstPart   []int32    // scalar, per group: part and row of its first row
	firstRow    []int32
	parts       []arrow.Array // scalar: value arrays holding first rows (build)
	values      arrow.Array   // scalar: per group, the first row's value
	resv        int64
	pendingResv int64
	stats       SubqueryStats
}

// SubqueryStats counts what a SubqueryJoinOp did.
type SubqueryStats struct {
	BuildRows, Groups, ProbeRows, Emitted int64
}

var _ Operator = (*SubqueryJoinOp)(nil)

// NewSubqueryJoin returns a subquery join of probe with build. It takes
// ownership of both inputs (Close closes them).
func NewSubqueryJoin(alloc memory.Allocator, probe, build Operator, cfg SubqueryJoinConfig) (*SubqueryJoinOp, error) {
	j := &SubqueryJoinOp{alloc: alloc, inputReaders: inputReaders{inputs: [2]Operator{probe, build}}, cfg: cfg, out: NoWatermark}
	if len(cfg.ProbeKeys) != len(cfg.BuildKeys) {
		return nil, fmt.Errorf("subquery join: %d probe keys and %d build keys", len(cfg.ProbeKeys), len(cfg.BuildKeys))
	}
	for i, k := range cfg.ProbeKeys {
		if !arrow.TypeEqual(k.Type(), cfg.BuildKeys[i].Type()) {
			return nil, fmt.Errorf("subquery join: key %d has types %s and %s", i, k.Type(), cfg.BuildKeys[i].Type())
		}
		j.keyTypes = append(j.keyTypes, k.Type())
	}
	switch cfg.Mode {
	case SemiJoin, AntiJoin, MarkJoin:
		if (cfg.ProbeValue == nil) != (cfg.BuildValue == nil) {
			return nil, fmt.Errorf("subquery join: IN needs a probe and a build value")
		}
		j.isIn = cfg.ProbeValue != nil
		if j.isIn && !arrow.TypeEqual(cfg.ProbeValue.Type(), cfg.BuildValue.Type()) {
			return nil, fmt.Errorf("subquery join: IN compares %s with %s", cfg.ProbeValue.Type(), cfg.BuildValue.Type())
		}
		if cfg.Missing != nil && cfg.Missing.Type().ID() != arrow.BOOL {
			return nil, fmt.Errorf("subquery join: the predicate for no rows is %s, not BOOLEAN", cfg.Missing.Type())
		}
	case ScalarJoin:
		if cfg.BuildValue == nil || cfg.ProbeValue != nil {
			return nil, fmt.Errorf("subquery join: a scalar subquery needs a build value only")
		}
		if cfg.Missing != nil && !arrow.TypeEqual(cfg.Missing.Type(), cfg.BuildValue.Type()) {
			return nil, fmt.Errorf("subquery join: the value for no rows is %s, not %s", cfg.Missing.Type(), cfg.BuildValue.Type())
		}
	default:
		return nil, fmt.Errorf("subquery join: bad mode %d", cfg.Mode)
	}
	ps := probe.Schema()
	j.nvis = ps.NumFields()
	if cfg.WM >= 0 {
		if cfg.WM != ps.NumFields()-1 {
			return nil, fmt.Errorf("subquery join: the row-watermark column must be last")
		}
		j.nvis--
	}
	want := ps.NumFields()
	if cfg.Mode == MarkJoin || cfg.Mode == ScalarJoin {
		want++
	}
	if cfg.Schema == nil || cfg.Schema.NumFields() != want {
		return nil, fmt.Errorf("subquery join: output schema must have %d columns", want)
	}
	if cfg.Mode == MarkJoin || cfg.Mode == ScalarJoin {
		t := cfg.Schema.Field(j.nvis).Type
		if cfg.Mode == MarkJoin && t.ID() != arrow.BOOL || cfg.Mode == ScalarJoin && !arrow.TypeEqual(t, cfg.BuildValue.Type()) {
			return nil, fmt.Errorf("subquery join: appended column has type %s", t)
		}
	}
	return j, nil
}

// Schema implements Operator.
func (j *SubqueryJoinOp) Schema() *arrow.Schema { return j.cfg.Schema }

// Stats returns the operator's counters. Not safe for concurrent use with
// Next.
func (j *SubqueryJoinOp) Stats() SubqueryStats { return j.stats }

// StateBytes is the memory the built subquery and the probe messages kept
// during the build hold (and have reserved).
func (j *SubqueryJoinOp) StateBytes() int64 { return j.resv + j.pendingResv }

// String describes the operator for explain output.
func (j *SubqueryJoinOp) String() string {
	return fmt.Sprintf("SubqueryJoin %s %s", j.cfg.Mode, j.cfg.Subquery)
}

// Open implements Operator: it opens both inputs.
func (j *SubqueryJoinOp) Open(ctx context.Context) error {
	return j.openInputs(ctx)
}

// Close implements Operator: it stops the input readers, releases the
// built state and kept messages, returns the reservation and closes both
// inputs. It is idempotent.
func (j *SubqueryJoinOp) Close() error {
	if j.closed {
		return nil
	}
	j.closed = true
	j.stopReaders()
	for _, m := range j.pending {
		m.Release()
	}
	j.pending = nil
	j.releaseState()
	if r, ok := j.alloc.(Reserver); ok && j.resv+j.pendingResv > 0 {
		r.Unreserve(j.resv + j.pendingResv)
	}
	j.resv, j.pendingResv = 0, 0
	return j.closeInputs()
}

func (j *SubqueryJoinOp) releaseState() {
	if j.groups != nil {
		j.groups.Release()
		j.groups = nil
	}
	if j.pairs != nil {
		j.pairs.Release()
		j.pairs = nil
	}
	releaseJoinArrays(j.parts)
	j.parts = nil
	if j.values != nil {
		j.values.Release()
		j.values = nil
	}
}

// Next implements Operator. A checkpoint barrier is aligned over both
// inputs (see Stateful and inputReaders): during the build, probe messages
// read before the barrier are kept (pending) and saved with the state, and
// are returned after the barrier; once the build is complete the barrier
// is returned as it comes, in order with the probe messages.
func (j *SubqueryJoinOp) Next(ctx context.Context) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	if j.eof {
		return Message{}, io.EOF
	}
	if j.cancel == nil {
		j.start(ctx)
	}
	for !j.built {
		b, err := j.buildStep(ctx)
		if err != nil {
			return Message{}, err
		}
		if b != nil {
			return j.checkpoint(b)
		}
	}
	var msg Message
	switch {
	case len(j.pending) > 0:
		msg = j.pending[0]
		j.pending[0] = Message{}
		j.pending = j.pending[1:]
		if msg.Batch != nil {
			j.unreservePending(recordBytes(msg.Batch))
		}
	case j.probeEOF:
		j.eof = true
		return Message{}, io.EOF
	default:
		select {
		case it := <-j.ch[0]:
			if it.err != nil {
				if errors.Is(it.err, io.EOF) {
					j.eof = true
				}
				return Message{}, it.err
			}
			msg = it.msg
			b, err := j.note(0, it)
			if err != nil {
				return Message{}, fmt.Errorf("subquery join: %w", err)
			}
			if b != nil { // the build has ended: nothing to align with
				j.out = max(j.out, msg.Watermark)
				return j.checkpoint(b)
			}
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
	j.out = max(j.out, msg.Watermark)
	if msg.Batch == nil || msg.Batch.NumRows() == 0 {
		msg.Release()
		return Message{Watermark: msg.Watermark, Partition: msg.Partition}, nil
	}
	defer msg.Release()
	out, err := j.probe(msg.Batch)
	if err != nil {
		return Message{}, err
	}
	return Message{Batch: out, Watermark: msg.Watermark, Partition: msg.Partition}, nil
}

// checkpoint saves the state for barrier b and returns the barrier message.
func (j *SubqueryJoinOp) checkpoint(b *Barrier) (Message, error) {
	if err := b.Save(j); err != nil {
		return Message{}, fmt.Errorf("subquery join: %w", err)
	}
	return Message{Watermark: j.out, Barrier: b}, nil
}

// buildStep takes one item of a readable input: of the build input
// preferably, else of the probe input, whose messages are kept until the
// build is complete. It returns the barrier the item completed, if any.
func (j *SubqueryJoinOp) buildStep(ctx context.Context) (*Barrier, error) {
	var probeCh, buildCh chan joinItem
	if !j.probeEOF && j.readable(0) {
		probeCh = j.ch[0]
	}
	if j.readable(1) {
		buildCh = j.ch[1]
	}
	var it joinItem
	s := 1
	select {
	case it = <-buildCh:
	default:
		select {
		case it = <-buildCh:
		case it = <-probeCh:
			s = 0
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := j.buildTake(s, it); err != nil {
		return nil, err
	}
	b, err := j.note(s, it)
	if err != nil {
		return nil, fmt.Errorf("subquery join: %w", err)
	}
	return b, nil
}

// buildTake processes an item read during the build: a probe message is
// kept (a barrier as its watermark only), a build batch is added, the
// build input's end completes the build.
func (j *SubqueryJoinOp) buildTake(s int, it joinItem) error {
	if s == 0 {
		switch {
		case errors.Is(it.err, io.EOF):
			j.probeEOF = true
		case it.err != nil:
			return it.err
		default:
			if it.msg.Batch != nil {
				if err := j.reservePending(recordBytes(it.msg.Batch)); err != nil {
					it.msg.Release()
					return err
				}
			}
			it.msg.Barrier = nil
			j.pending = append(j.pending, it.msg)
		}
		return nil
	}
	switch {
	case errors.Is(it.err, io.EOF):
		return j.finishBuild()
	case it.err != nil:
		return fmt.Errorf("%s: %w", j.cfg.Subquery, it.err)
	}
	defer it.msg.Release()
	if it.msg.Batch == nil || it.msg.Batch.NumRows() == 0 {
		return nil
	}
	if err := j.add(it.msg.Batch); err != nil {
		return fmt.Errorf("%s: %w", j.cfg.Subquery, err)
	}
	return j.account()
}

func (j *SubqueryJoinOp) reservePending(n int64) error {
	if r, ok := j.alloc.(Reserver); ok {
		if err := r.Reserve(n); err != nil {
			return fmt.Errorf("rows of the outer query waiting for %s (%d bytes): %w", j.cfg.Subquery, j.pendingResv+n, err)
		}
	}
	j.pendingResv += n
	return nil
}

func (j *SubqueryJoinOp) unreservePending(n int64) {
	if r, ok := j.alloc.(Reserver); ok {
		r.Unreserve(n)
	}
	j.pendingResv -= n
}

func (j *SubqueryJoinOp) evalContext() *expr.Context {
	return &expr.Context{Alloc: j.alloc, Now: time.Now()}
}

func (j *SubqueryJoinOp) evalKeys(keys []expr.Expr, batch arrow.RecordBatch) ([]arrow.Array, error) {
	ec := j.evalContext()
	out := make([]arrow.Array, 0, len(keys))
	for _, k := range keys {
		a, err := k.Eval(ec, batch)
		if err != nil {
			releaseJoinArrays(out)
			return nil, fmt.Errorf("correlation key %s: %w", k, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// add adds a batch of the build input.
func (j *SubqueryJoinOp) add(batch arrow.RecordBatch) error {
	n := int(batch.NumRows())
	keys, err := j.evalKeys(j.cfg.BuildKeys, batch)
	if err != nil {
		return err
	}
	defer releaseJoinArrays(keys)
	sel, all := validRows(keys, n)
	if len(sel) == 0 {
		return nil
	}
	ids := make([]uint32, len(sel))
	if len(keys) > 0 {
		if j.groups == nil {
			if j.groups, err = agg.NewTable(j.alloc, j.keyTypes, nil); err != nil {
				return err
			}
		}
		s := sel
		if all {
			s = nil
		}
		if err := j.groups.Update(keys, nil, s, ids); err != nil {
			return err
		}
		j.nGroups = j.groups.Len()
	} else {
		j.nGroups = 1
	}
	for len(j.rows) < j.nGroups {
		j.rows = append(j.rows, 0)
		j.nulls = append(j.nulls, 0)
	}
	j.stats.BuildRows += int64(len(sel))
	j.stats.Groups = int64(j.nGroups)
	if j.cfg.BuildValue == nil { // EXISTS
		for _, g := range ids {
			j.rows[g]++
		}
		return nil
	}
	val, err := j.cfg.BuildValue.Eval(j.evalContext(), batch)
	if err != nil {
		return fmt.Errorf("%s: %w", j.cfg.BuildValue, err)
	}
	defer val.Release()
	if j.cfg.Mode == ScalarJoin {
		for len(j.firstPart) < j.nGroups {
			j.firstPart = append(j.firstPart, -1)
			j.firstRow = append(j.firstRow, -1)
		}
		used := false
		for k, r := range sel {
			g := ids[k]
			if j.rows[g] == 0 {
				j.firstPart[g], j.firstRow[g] = int32(len(j.parts)), r
				used = true
			}
			j.rows[g]++
		}
		if used {
			val.Retain()
			j.parts = append(j.parts, val)
		}
		return nil
	}
	var pairSel []int32
	for k, r := range sel {
		g := ids[k]
		j.rows[g]++
		if val.IsNull(int(r)) {
			j.nulls[g]++
		} else {
			pairSel = append(pairSel, r)
		}
	}
	if len(pairSel) == 0 {
		return nil
	}
	if j.pairs == nil {
		types := append(append([]arrow.DataType(nil), j.keyTypes...), val.DataType())
		if j.pairs, err = agg.NewTable(j.alloc, types, nil); err != nil {
			return err
		}
	}
	return j.pairs.Update(append(append([]arrow.Array(nil), keys...), val), nil, pairSel, nil)
}

// finishBuild compacts a scalar subquery's values to one per group.
func (j *SubqueryJoinOp) finishBuild() error {
	j.built = true
	if j.cfg.Mode == ScalarJoin {
		dt := j.cfg.BuildValue.Type()
		if j.nGroups == 0 {
			j.values = array.MakeArrayOfNull(j.alloc, dt, 0)
		} else {
			var err error
			if j.values, err = kernels.Interleave(j.alloc, dt, j.parts, j.firstPart[:j.nGroups], j.firstRow[:j.nGroups]); err != nil {
				return fmt.Errorf("%s: %w", j.cfg.Subquery, err)
			}
		}
		releaseJoinArrays(j.parts)
		j.parts = nil
	}
	return j.account()
}

// stateBytes is the memory the built subquery holds.
func (j *SubqueryJoinOp) stateBytes() int64 {
	n := int64(cap(j.rows)+cap(j.nulls))*8 + int64(cap(j.firstPart)+cap(j.firstRow))*4
	if j.groups != nil {
		n += j.groups.StateBytes()
	}
	if j.pairs != nil {
		n += j.pairs.StateBytes()
	}
	for _, p := range j.parts {
		n += dataBytes(p.Data())
	}
	if j.values != nil {
		n += dataBytes(j.values.Data())
	}
	return n
}

// account reserves or returns the difference between the state's size and
// the reservation.
func (j *SubqueryJoinOp) account() error {
	r, ok := j.alloc.(Reserver)
	if !ok {
		return nil
	}
	bytes := j.stateBytes()
	switch delta := bytes - j.resv; {
	case delta > 0:
		if err := r.Reserve(delta); err != nil {
			return fmt.Errorf("%s: state of %d bytes: %w", j.cfg.Subquery, bytes, err)
		}
	case delta < 0:
		r.Unreserve(-delta)
	}
	j.resv = bytes
	return nil
}

// lookup returns the group of every probe row (agg.NoGroup when the
// subquery has no rows for it) and the evaluated probe keys (the caller
// releases them).
func (j *SubqueryJoinOp) lookup(batch arrow.RecordBatch) ([]uint32, []arrow.Array, error) {
	n := int(batch.NumRows())
	gids := make([]uint32, n)
	for i := range gids {
		gids[i] = agg.NoGroup
	}
	keys, err := j.evalKeys(j.cfg.ProbeKeys, batch)
	if err != nil {
		return nil, nil, err
	}
	if j.nGroups == 0 {
		return gids, keys, nil
	}
	if len(keys) == 0 {
		clear(gids)
		return gids, keys, nil
	}
	sel, all := validRows(keys, n)
	if all {
		err = j.groups.Find(keys, nil, gids)
	} else if len(sel) > 0 {
		found := make([]uint32, len(sel))
		if err = j.groups.Find(keys, sel, found); err == nil {
			for k, r := range sel {
				gids[r] = found[k]
			}
		}
	}
	if err != nil {
		releaseJoinArrays(keys)
		return nil, nil, err
	}
	return gids, keys, nil
}

// probe answers one probe batch; the result belongs to the caller (nil
// when a semi or anti join keeps no row).
func (j *SubqueryJoinOp) probe(batch arrow.RecordBatch) (arrow.RecordBatch, error) {
	n := int(batch.NumRows())
	j.stats.ProbeRows += int64(n)
	gids, keys, err := j.lookup(batch)
	if err != nil {
		return nil, err
	}
	defer releaseJoinArrays(keys)
	var missing arrow.Array
	if j.cfg.Missing != nil {
		for _, g := range gids {
			if g == agg.NoGroup {
				if missing, err = j.cfg.Missing.Eval(j.evalContext(), batch); err != nil {
					return nil, fmt.Errorf("%s: %w", j.cfg.Subquery, err)
				}
				defer missing.Release()
				break
			}
		}
	}
	if j.cfg.Mode == ScalarJoin {
		return j.scalar(batch, gids, keys, missing)
	}
	marks, err := j.marks(batch, gids, keys, missing)
	if err != nil {
		return nil, err
	}
	switch j.cfg.Mode {
	case SemiJoin, AntiJoin:
		want := markTrue
		if j.cfg.Mode == AntiJoin {
			want = markFalse
		}
		sel := make([]int32, 0, n)
		for r, m := range marks {
			if m == want {
				sel = append(sel, int32(r))
			}
		}
		j.stats.Emitted += int64(len(sel))
		switch len(sel) {
		case 0:
			return nil, nil
		case n:
			batch.Retain()
			return batch, nil
		}
		return kernels.TakeBatch(j.alloc, batch, sel)
	}
	b := array.NewBooleanBuilder(j.alloc)
	defer b.Release()
	b.Reserve(n)
	for _, m := range marks {
		if m == markNull {
			b.UnsafeAppendBoolToBitmap(false)
		} else {
			b.UnsafeAppend(m == markTrue)
		}
	}
	col := b.NewArray()
	defer col.Release()
	j.stats.Emitted += int64(n)
	return j.appendColumn(batch, col), nil
}

const (
	markFalse uint8 = iota
	markTrue
	markNull
)

// marks computes the IN or EXISTS predicate of every probe row.
func (j *SubqueryJoinOp) marks(batch arrow.RecordBatch, gids []uint32, keys []arrow.Array, missing arrow.Array) ([]uint8, error) {
	n := len(gids)
	marks := make([]uint8, n)
	var x arrow.Array
	if j.isIn {
		var err error
		if x, err = j.cfg.ProbeValue.Eval(j.evalContext(), batch); err != nil {
			return nil, fmt.Errorf("%s: %w", j.cfg.ProbeValue, err)
		}
		defer x.Release()
	}
	var cand []int32
	for r, g := range gids {
		switch {
		case g == agg.NoGroup:
			switch {
			case missing == nil:
				marks[r] = markFalse
			case missing.IsNull(r):
				marks[r] = markNull
			case missing.(*array.Boolean).Value(r):
				marks[r] = markTrue
			}
		case !j.isIn:
			marks[r] = markTrue
		case x.IsNull(r):
			marks[r] = markNull
		default:
			cand = append(cand, int32(r))
		}
	}
	if len(cand) == 0 {
		return marks, nil
	}
	found := make([]uint32, len(cand))
	if j.pairs == nil {
		for k := range found {
			found[k] = agg.NoGroup
		}
	} else if err := j.pairs.Find(append(append([]arrow.Array(nil), keys...), x), cand, found); err != nil {
		return nil, err
	}
	for k, r := range cand {
		switch {
		case found[k] != agg.NoGroup:
			marks[r] = markTrue
		case j.nulls[gids[r]] > 0:
			marks[r] = markNull
		default:
			marks[r] = markFalse
		}
	}
	return marks, nil
}

// scalar appends the value of each probe row's subquery row.
func (j *SubqueryJoinOp) scalar(batch arrow.RecordBatch, gids []uint32, keys []arrow.Array, missing arrow.Array) (arrow.RecordBatch, error) {
	n := len(gids)
	src := make([]int32, n)
	pos := make([]int32, n)
	for r, g := range gids {
		switch {
		case g != agg.NoGroup && j.rows[g] > 1:
			return nil, j.tooManyRows(keys, r, j.rows[g])
		case g != agg.NoGroup:
			src[r], pos[r] = 0, int32(g)
		case missing != nil:
			src[r], pos[r] = 1, int32(r)
		default:
			src[r], pos[r] = -1, -1
		}
	}
	parts := []arrow.Array{j.values}
	if missing != nil {
		parts = append(parts, missing)
	}
	col, err := kernels.Interleave(j.alloc, j.cfg.BuildValue.Type(), parts, src, pos)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", j.cfg.Subquery, err)
	}
	defer col.Release()
	j.stats.Emitted += int64(n)
	return j.appendColumn(batch, col), nil
}

// tooManyRows is the error for a scalar subquery that returned several
// rows for probe row r.
func (j *SubqueryJoinOp) tooManyRows(keys []arrow.Array, r int, rows int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s returned %d rows", j.cfg.Subquery, rows)
	if len(keys) > 0 {
		b.WriteString(" for ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			name := j.cfg.ProbeKeys[i].String()
			if i < len(j.cfg.KeyText) {
				name = j.cfg.KeyText[i]
			}
			fmt.Fprintf(&b, "%s = %s", name, kernels.Text(k, r))
		}
	}
	b.WriteString("; a scalar subquery must return at most one row (use an aggregate such as MAX, or LIMIT 1)")
	return errors.New(b.String())
}

// appendColumn returns batch's visible columns, col, and the row-watermark
// column.
func (j *SubqueryJoinOp) appendColumn(batch arrow.RecordBatch, col arrow.Array) arrow.RecordBatch {
	cols := make([]arrow.Array, 0, j.cfg.Schema.NumFields())
	for i := 0; i < j.nvis; i++ {
		cols = append(cols, batch.Column(i))
	}
	cols = append(cols, col)
	if j.cfg.WM >= 0 {
		cols = append(cols, batch.Column(j.cfg.WM))
	}
	return array.NewRecordBatch(j.cfg.Schema, cols, batch.NumRows())
}

// ---- checkpoints ----

var _ Stateful = (*SubqueryJoinOp)(nil)

// SaveState implements Stateful. It saves the build so far: per group
// (correlation key, in group-id order) its row and NULL-value counts and,
// for a scalar subquery, its first row's value (table "groups": key
// columns, rows, nulls[, value]), and the distinct (key, value) pairs of
// IN (table "pairs"); whether the build and the probe input have ended;
// the probe messages kept during the build; and the output watermark.
func (j *SubqueryJoinOp) SaveState(w *StateWriter) error {
	w.SetBool("built", j.built)
	w.SetBool("probeEOF", j.probeEOF)
	w.SetInt("out", j.out)
	if err := saveMessages(w, "pending", j.pending); err != nil {
		return err
	}
	if j.nGroups > 0 {
		var cols []arrow.Array
		if j.groups != nil {
			keys, _, err := j.groups.Emit(nil)
			if err != nil {
				return err
			}
			cols = keys
		}
		for _, counts := range [][]int64{j.rows[:j.nGroups], j.nulls[:j.nGroups]} {
			b := array.NewInt64Builder(j.alloc)
			b.AppendValues(counts, nil)
			cols = append(cols, b.NewArray())
			b.Release()
		}
		if j.cfg.Mode == ScalarJoin {
			v, err := j.firstValues()
			if err != nil {
				releaseJoinArrays(cols)
				return err
			}
			cols = append(cols, v)
		}
		if err := w.Put("groups", stateBatch(cols, cols[0].Len())); err != nil {
			return err
		}
	}
	if j.pairs != nil && j.pairs.Len() > 0 {
		keys, _, err := j.pairs.Emit(nil)
		if err != nil {
			return err
		}
		if err := w.Put("pairs", stateBatch(keys, j.pairs.Len())); err != nil {
			return err
		}
	}
	return nil
}

// firstValues returns a scalar subquery's value of every group (its first
// row's), owned by the caller.
func (j *SubqueryJoinOp) firstValues() (arrow.Array, error) {
	if j.values != nil {
		j.values.Retain()
		return j.values, nil
	}
	return kernels.Interleave(j.alloc, j.cfg.BuildValue.Type(), j.parts, j.firstPart[:j.nGroups], j.firstRow[:j.nGroups])
}

// LoadState implements Stateful: it restores what SaveState saved into an
// operator that has not been opened, rebuilding the hash tables and
// reserving the state's memory.
func (j *SubqueryJoinOp) LoadState(r *StateReader) error {
	if err := j.loadState(r); err != nil {
		return fmt.Errorf("subquery join: loading state: %w", err)
	}
	return nil
}

func (j *SubqueryJoinOp) loadState(r *StateReader) error {
	built, err := r.Bool("built")
	if err != nil {
		return err
	}
	if j.probeEOF, err = r.Bool("probeEOF"); err != nil {
		return err
	}
	if j.out, err = r.Int("out"); err != nil {
		return err
	}
	j.ended = [2]bool{j.probeEOF, built}
	if j.pending, err = loadMessages(r, "pending"); err != nil {
		return err
	}
	for _, m := range j.pending {
		if m.Batch != nil {
			if err := j.reservePending(recordBytes(m.Batch)); err != nil {
				return err
			}
		}
	}
	nk := len(j.keyTypes)
	for _, rec := range r.Table("groups") {
		if err := j.loadGroups(rec, nk); err != nil {
			return err
		}
	}
	for _, rec := range r.Table("pairs") {
		types := append(append([]arrow.DataType(nil), j.keyTypes...), j.cfg.BuildValue.Type())
		if err := checkStateTypes(rec, types); err != nil {
			return fmt.Errorf("pairs: %w", err)
		}
		if j.pairs == nil {
			if j.pairs, err = agg.NewTable(j.alloc, types, nil); err != nil {
				return err
			}
		}
		if err := j.pairs.Update(rec.Columns(), nil, nil, nil); err != nil {
			return err
		}
	}
	j.stats.Groups = int64(j.nGroups)
	if built {
		return j.finishBuild()
	}
	return j.account()
}

// loadGroups adds the saved groups of rec (keys, rows, nulls[, value]) as
// groups nGroups, nGroups+1, ...
func (j *SubqueryJoinOp) loadGroups(rec arrow.RecordBatch, nk int) error {
	types := append(append([]arrow.DataType(nil), j.keyTypes...), arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int64)
	if j.cfg.Mode == ScalarJoin {
		types = append(types, j.cfg.BuildValue.Type())
	}
	if err := checkStateTypes(rec, types); err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil
	}
	if nk > 0 {
		if j.groups == nil {
			var err error
			if j.groups, err = agg.NewTable(j.alloc, j.keyTypes, nil); err != nil {
				return err
			}
		}
		ids := make([]uint32, n)
		if err := j.groups.Update(rec.Columns()[:nk], nil, nil, ids); err != nil {
			return err
		}
		for i, id := range ids {
			if int(id) != j.nGroups+i {
				return fmt.Errorf("groups: saved group %d has a duplicate key", j.nGroups+i)
			}
		}
	} else if j.nGroups+n > 1 {
		return fmt.Errorf("groups: %d groups without a correlation key", j.nGroups+n)
	}
	j.nGroups += n
	j.rows = append(j.rows, kernels.Values[int64](rec.Column(nk))...)
	j.nulls = append(j.nulls, kernels.Values[int64](rec.Column(nk+1))...)
	if j.cfg.Mode == ScalarJoin {
		v := rec.Column(nk + 2)
		v.Retain()
		part := int32(len(j.parts))
		j.parts = append(j.parts, v)
		for i := range n {
			j.firstPart = append(j.firstPart, part)
			j.firstRow = append(j.firstRow, int32(i))
		}
	}
	return nil
}

// checkStateTypes checks that a saved batch has columns of types.
func checkStateTypes(rec arrow.RecordBatch, types []arrow.DataType) error {
	if int(rec.NumCols()) != len(types) {
		return fmt.Errorf("%d columns saved, want %d", rec.NumCols(), len(types))
	}
	for i, t := range types {
		if !arrow.TypeEqual(rec.Column(i).DataType(), t) {
			return fmt.Errorf("column %d saved as %s, want %s", i, rec.Column(i).DataType(), t)
		}
	}
	return nil
}
