package arrowexec

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// leadState evaluates the LEAD calls of an un-windowed query. They share
// one window specification; m is their largest offset. A row is complete
// when m more rows of its partition have been processed: every LEAD(x, n)
// of it is then the value of x at its position + n. Until then it waits
// as a pending row (its other results already computed) in a retained
// chunk; per partition a ring of m+1 slots holds the pending rows'
// references and, per call, the values of x at the last m+1 positions.
// At the end of input the pending rows are completed with the defaults
// (NULL without one).
type leadState struct {
	o     *OverOp
	spec  int
	m     int64
	calls []int      // indexes of the LEAD calls
	evals []leadEval // per LEAD call
	// Stored columns of a pending chunk: every output column except the
	// LEAD calls', then each LEAD default. stored[c] is output column c's
	// index there (-1 for LEAD call leadOf[c]); defIdx[j] is call j's
	// default (-1 without).
	stored []int
	leadOf []int
	defIdx []int
	nStore int

	refs     [][]pendRef // per partition: refs of its last m+1 rows, by position % (m+1)
	chunks   map[int32]*pendChunk
	nextID   int32
	pending  int64 // rows waiting
	liveRows int64 // rows of the retained chunks
	holdPart int64 // partition holding the oldest pending row, -1: unknown
	flushed  bool
	chunkB   int64

	res  []leadRes // scratch
	rref []pendRef
}

// pendRef locates a pending row: its chunk and row, its processing
// sequence number and its hold key (event time or row watermark).
type pendRef struct {
	chunk, row int32
	seq        uint64
	key        int64
}

type pendChunk struct {
	cols  []arrow.Array
	live  int
	rows  int
	bytes int64
}

// leadRes is a row completed by a run: row k of the run completes the row
// at position rp of partition p.
type leadRes struct {
	k  int32
	p  uint32
	rp int64
}

// leadEval keeps one LEAD call's rings of values.
type leadEval interface {
	// run stores the values of a run's rows and returns, for each entry
	// of res (in order), the LEAD value of the row it completes.
	run(alloc memory.Allocator, r *overRows, arg arrow.Array, res []leadRes) arrow.Array
	// flush returns the LEAD values of the rows at (p, rp) when the
	// partitions end at last[p]: the value at rp+n if there is one, else
	// the row's default def[j] (NULL when def is nil).
	flush(alloc memory.Allocator, res []leadRes, last []int64, def arrow.Array) arrow.Array
	grow(parts int)
	bytes() int64
	// state lists the fields checkpoints save (see overEval).
	state() []any
}

func newLeadState(o *OverOp, spec int) (*leadState, error) {
	l := &leadState{o: o, spec: spec, chunks: map[int32]*pendChunk{}, holdPart: -1}
	for i, c := range o.cfg.Calls {
		if c.Func == "lead" {
			l.calls = append(l.calls, i)
			l.m = max(l.m, c.Offset)
		}
	}
	nOut := o.cfg.Schema.NumFields()
	l.stored = make([]int, nOut)
	l.leadOf = make([]int, nOut)
	for c := range nOut {
		l.stored[c], l.leadOf[c] = l.nStore, -1
		if call := c - o.first; call >= 0 && call < len(o.cfg.Calls) && o.cfg.Calls[call].Func == "lead" {
			l.stored[c] = -1
			l.leadOf[c] = slices.Index(l.calls, call)
			continue
		}
		l.nStore++
	}
	for _, ci := range l.calls {
		c := &o.cfg.Calls[ci]
		l.defIdx = append(l.defIdx, -1)
		if c.Default != nil {
			l.defIdx[len(l.defIdx)-1] = l.nStore
			l.nStore++
		}
		e, err := newLeadEval(c, l.m)
		if err != nil {
			return nil, err
		}
		l.evals = append(l.evals, e)
	}
	return l, nil
}

func newLeadEval(c *OverCall, m int64) (leadEval, error) {
	switch goTypeOf(c.Arg.Type()) {
	case "int32":
		return &leadVals[int32]{n: c.Offset, typ: c.Type, ring: overRing[int32]{size: m + 1}}, nil
	case "int64":
		return &leadVals[int64]{n: c.Offset, typ: c.Type, ring: overRing[int64]{size: m + 1}}, nil
	case "float64":
		return &leadVals[float64]{n: c.Offset, typ: c.Type, ring: overRing[float64]{size: m + 1}}, nil
	case "decimal":
		return &leadVals[decimal128.Num]{n: c.Offset, typ: c.Type, ring: overRing[decimal128.Num]{size: m + 1}}, nil
	case "bool":
		return &leadVals[bool]{n: c.Offset, typ: c.Type, ring: overRing[bool]{size: m + 1}}, nil
	case "string":
		return &leadVals[string]{n: c.Offset, typ: c.Type, ring: overRing[string]{size: m + 1}}, nil
	}
	return nil, fmt.Errorf("LEAD(%s) is not supported", typeNameOf(c.Arg))
}

func (l *leadState) release() {
	for id, c := range l.chunks {
		overRelease(c.cols...)
		delete(l.chunks, id)
	}
	l.liveRows, l.chunkB = 0, 0
}

func (l *leadState) bytes() int64 {
	n := l.chunkB + int64(len(l.refs))*24
	for _, r := range l.refs {
		n += int64(cap(r)) * 24
	}
	for _, e := range l.evals {
		n += e.bytes()
	}
	return n
}

// process takes a run just evaluated (results of the other calls in
// results): it retains the run as a chunk of pending rows and queues the
// rows the run completes.
func (l *leadState) process(ec *expr.Context, batch arrow.RecordBatch, r *overRows, results []arrow.Array, seq uint64) error {
	o := l.o
	// the run's stored columns
	cols := make([]arrow.Array, l.nStore)
	for c := range l.stored {
		i := l.stored[c]
		if i < 0 {
			continue
		}
		switch call := c - o.first; {
		case c < o.nVis:
			cols[i] = batch.Column(c)
		case call < len(o.cfg.Calls):
			cols[i] = results[call]
		default:
			cols[i] = batch.Column(o.cfg.WMCol)
		}
		cols[i].Retain()
	}
	args := make([]arrow.Array, len(l.calls))
	defer overRelease(args...)
	for j, ci := range l.calls {
		arg, def, err := o.evalCall(ec, ci, batch)
		if err != nil {
			overRelease(cols...)
			return err
		}
		args[j] = arg
		if def != nil {
			cols[l.defIdx[j]] = def
		}
	}
	id := l.nextID
	l.nextID++
	ch := &pendChunk{cols: cols, rows: r.n}
	for _, c := range cols {
		ch.bytes += overArrayBytes(c)
	}
	l.chunks[id] = ch
	l.chunkB += ch.bytes
	l.liveRows += int64(r.n)

	// Which rows does the run complete?
	keys := o.rowKeys(batch)
	size := l.m + 1
	for len(l.refs) < r.parts {
		l.refs = append(l.refs, nil)
	}
	l.res, l.rref = l.res[:0], l.rref[:0]
	for k := 0; k < r.n; k++ {
		p, c := r.pids[k], r.pos[k]
		ref := pendRef{chunk: id, row: int32(k), seq: seq + uint64(k)}
		if keys != nil {
			ref.key = keys[k]
		}
		if c >= l.m {
			rp := c - l.m
			l.res = append(l.res, leadRes{k: int32(k), p: p, rp: rp})
			if rp < c { // m > 0: the row was stored earlier
				l.rref = append(l.rref, l.refs[p][rp%size])
			} else {
				l.rref = append(l.rref, ref)
			}
			if int64(p) == l.holdPart {
				l.holdPart = -1
			}
		} else {
			l.pending++
			if l.pending == 1 {
				l.holdPart = -1
			}
		}
		if slot := c % size; slot == int64(len(l.refs[p])) {
			l.refs[p] = append(l.refs[p], ref)
		} else {
			l.refs[p][slot] = ref
		}
	}
	ch.live = r.n
	vals := make([]arrow.Array, len(l.calls))
	defer overRelease(vals...)
	for j, e := range l.evals {
		e.grow(r.parts)
		vals[j] = e.run(o.alloc, r, args[j], l.res)
	}
	if err := l.emit(l.rref, vals); err != nil {
		return err
	}
	return l.compact()
}

// overArrayBytes is the size of the buffers a references.
func overArrayBytes(a arrow.Array) int64 {
	var n int64
	for _, b := range a.Data().Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	return n
}

// emit queues the rows refs (completed, in order) with their LEAD
// values vals, and drops them from their chunks.
func (l *leadState) emit(refs []pendRef, vals []arrow.Array) error {
	if len(refs) == 0 {
		return nil
	}
	stored, err := l.gather(refs)
	if err != nil {
		return err
	}
	defer overRelease(stored...)
	if l.o.outWM {
		i := l.stored[len(l.stored)-1]
		held := l.heldWatermarks(stored[i], refs)
		stored[i].Release()
		stored[i] = held
	}
	out := make([]arrow.Array, len(l.stored))
	for c := range out {
		if i := l.stored[c]; i >= 0 {
			out[c] = stored[i]
		} else {
			out[c] = vals[l.leadOf[c]]
		}
	}
	l.o.emit(out, len(refs))
	for _, ref := range refs {
		ch := l.chunks[ref.chunk]
		if ch.live--; ch.live == 0 {
			l.dropChunk(ref.chunk)
		}
	}
	return nil
}

// heldWatermarks returns the row watermarks wm of the rows refs, about
// to be emitted in that order, each lowered to the hold keys of the rows
// emitted after it and of the rows still pending: a row completed early
// must not let a downstream window close before a row of another
// partition that waited longer.
func (l *leadState) heldWatermarks(wm arrow.Array, refs []pendRef) arrow.Array {
	in := kernels.Values[int64](wm)
	out := make([]int64, len(refs))
	bound := l.hold()
	for i := len(refs) - 1; i >= 0; i-- {
		bound = min(bound, refs[i].key)
		out[i] = min(in[i], bound)
	}
	return overBuild(l.o.alloc, wm.DataType(), out, overValid(wm, new([]bool)))
}

func (l *leadState) dropChunk(id int32) {
	ch := l.chunks[id]
	overRelease(ch.cols...)
	l.chunkB -= ch.bytes
	l.liveRows -= int64(ch.rows)
	delete(l.chunks, id)
}

// gather returns the stored columns of rows refs (owned by the caller).
func (l *leadState) gather(refs []pendRef) ([]arrow.Array, error) {
	index := map[int32]int32{}
	var ids []int32
	src := make([]int32, len(refs))
	pos := make([]int32, len(refs))
	for i, ref := range refs {
		j, ok := index[ref.chunk]
		if !ok {
			j = int32(len(ids))
			index[ref.chunk] = j
			ids = append(ids, ref.chunk)
		}
		src[i], pos[i] = j, ref.row
	}
	out := make([]arrow.Array, l.nStore)
	parts := make([]arrow.Array, len(ids))
	for c := range out {
		for i, id := range ids {
			parts[i] = l.chunks[id].cols[c]
		}
		a, err := kernels.Interleave(l.o.alloc, parts[0].DataType(), parts, src, pos)
		if err != nil {
			overRelease(out...)
			return nil, err
		}
		out[c] = a
	}
	return out, nil
}

// pendingRows lists every pending row as (partition, position) with its
// ref and the slot holding it, in processing order.
func (l *leadState) pendingRows() ([]leadRes, []pendRef) {
	cnt := l.o.specs[l.spec].cnt
	var res []leadRes
	var refs []pendRef
	size := l.m + 1
	for p := range l.refs {
		n := cnt[p]
		for c := max(0, n-l.m); c < n; c++ {
			res = append(res, leadRes{p: uint32(p), rp: c})
			refs = append(refs, l.refs[p][c%size])
		}
	}
	idx := make([]int, len(refs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch x, y := refs[a].seq, refs[b].seq; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	sr, sf := make([]leadRes, len(idx)), make([]pendRef, len(idx))
	for i, j := range idx {
		sr[i], sf[i] = res[j], refs[j]
	}
	return sr, sf
}

// compact copies the pending rows into one new chunk when the retained
// chunks hold mostly rows already emitted (a quiet partition's row pins
// its whole batch otherwise).
func (l *leadState) compact() error {
	if l.liveRows <= 2*l.pending+4096 {
		return nil
	}
	res, refs := l.pendingRows()
	cols, err := l.gather(refs)
	if err != nil {
		return err
	}
	for id := range l.chunks {
		l.dropChunk(id)
	}
	id := l.nextID
	l.nextID++
	ch := &pendChunk{cols: cols, rows: len(refs), live: len(refs)}
	for _, c := range cols {
		ch.bytes += overArrayBytes(c)
	}
	l.chunks[id] = ch
	l.chunkB += ch.bytes
	l.liveRows += int64(ch.rows)
	size := l.m + 1
	for i, r := range res {
		ref := &l.refs[r.p][r.rp%size]
		ref.chunk, ref.row = id, int32(i)
	}
	return nil
}

// hold is the key of the oldest pending row (FinalWatermark if none).
func (l *leadState) hold() Watermark {
	if l.pending == 0 || l.flushed {
		return FinalWatermark
	}
	cnt := l.o.specs[l.spec].cnt
	size := l.m + 1
	if l.holdPart < 0 {
		best := uint64(1<<64 - 1)
		for p := range l.refs {
			if n := cnt[p]; n > 0 {
				head := max(0, n-l.m)
				if s := l.refs[p][head%size].seq; s < best {
					best, l.holdPart = s, int64(p)
				}
			}
		}
	}
	if l.holdPart < 0 {
		return FinalWatermark
	}
	p := l.holdPart
	n := cnt[p]
	return l.refs[p][max(0, n-l.m)%size].key
}

// flush completes every pending row (end of input), in processing order.
func (l *leadState) flush() error {
	if l.flushed {
		return nil
	}
	l.flushed = true
	res, refs := l.pendingRows()
	if len(refs) == 0 {
		return nil
	}
	cnt := l.o.specs[l.spec].cnt
	last := make([]int64, len(cnt))
	for p, n := range cnt {
		last[p] = n - 1
	}
	var defs []arrow.Array
	if slices.ContainsFunc(l.defIdx, func(i int) bool { return i >= 0 }) {
		stored, err := l.gather(refs)
		if err != nil {
			return err
		}
		defs = stored
	}
	defer overRelease(defs...)
	vals := make([]arrow.Array, len(l.calls))
	defer overRelease(vals...)
	for j, e := range l.evals {
		var def arrow.Array
		if l.defIdx[j] >= 0 {
			def = defs[l.defIdx[j]]
		}
		vals[j] = e.flush(l.o.alloc, res, last, def)
	}
	l.pending = 0
	return l.emit(refs, vals)
}

// leadVals is the typed ring of one LEAD call.
type leadVals[T overVal] struct {
	n    int64
	typ  arrow.DataType
	ring overRing[T]
	vbuf []T
	dbuf []T
	out  []T
	ok   []bool
	vok  []bool
	dok  []bool
}

func (e *leadVals[T]) grow(parts int) { e.ring.grow(parts) }
func (e *leadVals[T]) bytes() int64   { return e.ring.bytes() }

func (e *leadVals[T]) run(alloc memory.Allocator, r *overRows, arg arrow.Array, res []leadRes) arrow.Array {
	vals := overRead(arg, &e.vbuf)
	valid := overValid(arg, &e.vok)
	e.out = overResize(e.out, len(res))
	e.ok = overResize(e.ok, len(res))
	j := 0
	for k := 0; k < r.n; k++ {
		p := r.pids[k]
		e.ring.put(p, r.pos[k], vals[k], valid == nil || valid[k])
		for j < len(res) && int(res[j].k) == k {
			e.out[j], e.ok[j] = e.ring.get(res[j].p, res[j].rp+e.n)
			j++
		}
	}
	return overBuild(alloc, e.typ, e.out, e.ok)
}

func (e *leadVals[T]) flush(alloc memory.Allocator, res []leadRes, last []int64, def arrow.Array) arrow.Array {
	var defs []T
	var dvalid []bool
	if def != nil {
		defs = overRead(def, &e.dbuf)
		dvalid = overValid(def, &e.dok)
	}
	e.out = overResize(e.out, len(res))
	e.ok = overResize(e.ok, len(res))
	for j, r := range res {
		switch {
		case r.rp+e.n <= last[r.p]:
			e.out[j], e.ok[j] = e.ring.get(r.p, r.rp+e.n)
		case defs != nil:
			e.out[j], e.ok[j] = defs[j], dvalid == nil || dvalid[j]
		default:
			var z T
			e.out[j], e.ok[j] = z, false
		}
	}
	return overBuild(alloc, e.typ, e.out, e.ok)
}
