package arrowexec

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferrisstreams/ferris/kernels"
)

// joinRow names a held row: the sequence number of its batch (high 32
// bits) and its row in that batch.
type joinRow = uint64

// noRow is "no row": NULLs in the output.
const noRow = ^joinRow(0)

const (
	rowLive    uint8 = 1 << iota // held and joinable
	rowMatched                   // matched at least one row
)

// rowMetaBytes is the per-row metadata of a held batch: time, watermark,
// expiry, state, expiry order and a list entry.
const rowMetaBytes = 8 + 8 + 8 + 1 + 4 + listEntryBytes

// listEntry is a held row in the list of its key, with its time and
// expiry inline so that probing skips expired rows and rows outside the
// time bound without touching their batch.
type listEntry struct {
	ref    joinRow
	t, exp int64
}

const listEntryBytes = 24

// storedBatch is a batch one side holds rows of.
type storedBatch struct {
	rec        arrow.RecordBatch
	seq        uint32
	t, wm, exp []int64
	state      []uint8
	live       int
	// order holds the rows not yet expired: rows order[next:], in
	// arrival order until sorted (by expiry) is set. minExp and maxExp
	// bound their expiries; scans counts partial expiry passes.
	order          []int32
	next           int
	sorted         bool
	scans          int
	minExp, maxExp int64
	bytes          int64
}

func (b *storedBatch) ref(r int32) joinRow { return joinRow(b.seq)<<32 | joinRow(uint32(r)) }

// bounds computes minExp and maxExp of the unexpired rows, and whether
// they are already in expiry order.
func (b *storedBatch) bounds() {
	rest := b.order[b.next:]
	b.minExp, b.maxExp = math.MaxInt64, math.MinInt64
	inOrder := true
	prev := int64(math.MinInt64)
	for _, r := range rest {
		e := b.exp[r]
		b.minExp, b.maxExp = min(b.minExp, e), max(b.maxExp, e)
		inOrder = inOrder && e >= prev
		prev = e
	}
	b.sorted = b.sorted || inOrder
}

// sortOrder sorts the unexpired rows by expiry, then arrival order.
func (b *storedBatch) sortOrder() {
	exp := b.exp
	slices.SortFunc(b.order[b.next:], func(x, y int32) int {
		if c := cmp.Compare(exp[x], exp[y]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	b.sorted = true
}

// expireTo removes from order the rows with expiry below c (all of them
// when c is final), calling f for each. Rows expire by a cursor once the
// order is sorted; before that, by a pass that keeps the others in
// arrival order, and after a few partial passes the rest is sorted, so a
// batch costs O(n) when it expires in a few steps and O(n log n) at worst.
func (b *storedBatch) expireTo(c int64, final bool, f func(r int32)) {
	switch {
	case final || b.maxExp < c:
		for _, r := range b.order[b.next:] {
			f(r)
		}
		b.next = len(b.order)
		return
	case !b.sorted && b.scans >= 3:
		b.sortOrder()
	}
	if b.sorted {
		for b.next < len(b.order) && b.exp[b.order[b.next]] < c {
			f(b.order[b.next])
			b.next++
		}
		if b.next < len(b.order) {
			b.minExp = b.exp[b.order[b.next]]
		}
		return
	}
	b.scans++
	rest := b.order[b.next:]
	w := 0
	b.minExp = math.MaxInt64
	for _, r := range rest {
		if e := b.exp[r]; e < c {
			f(r)
		} else {
			rest[w] = r
			w++
			b.minExp = min(b.minExp, e)
		}
	}
	b.order = b.order[:b.next+w]
}

func (b *storedBatch) head() int64 { return b.minExp }

// joinSide is the state of one input: the batches it holds rows of, the
// rows of each key (by key id of the join's dictionary), the expiry heap
// and, for a table, the current row of each primary key.
type joinSide struct {
	expiring bool
	first    uint32         // sequence number of batches[0]
	nextSeq  uint32         // sequence number of the next batch
	batches  []*storedBatch // by seq - first; nil once released
	lists    [][]listEntry  // held rows by key id, in arrival order (may hold dead rows)
	refs     int            // entries in lists
	live     int            // live rows
	deadHeld int            // dead rows in held batches
	bytes    int64          // bytes of held batches and their metadata
	heap     []*storedBatch // min-heap of batches with unexpired rows, by next expiry
	cur      []joinRow      // table: current row of each primary key id
}

func (sd *joinSide) held() bool { return len(sd.batches) > 0 }

func (sd *joinSide) indexBytes() int64 {
	return int64(sd.refs)*listEntryBytes + int64(cap(sd.lists))*24 + int64(cap(sd.cur))*8 + int64(cap(sd.batches)+cap(sd.heap))*8
}

// add appends a new batch (its rows not yet live).
func (sd *joinSide) add(b *storedBatch) {
	if len(sd.batches) == 0 {
		sd.first = sd.nextSeq
	}
	b.seq = sd.nextSeq
	sd.nextSeq++
	sd.batches = append(sd.batches, b)
	sd.bytes += b.bytes
}

func (sd *joinSide) lookup(ref joinRow) (*storedBatch, int32) {
	i := uint32(ref>>32) - sd.first
	if int(i) >= len(sd.batches) {
		return nil, 0
	}
	return sd.batches[i], int32(uint32(ref))
}

// link adds held row r of b to the list of key id.
func (sd *joinSide) link(id uint32, b *storedBatch, r int32) {
	for int(id) >= len(sd.lists) {
		sd.lists = append(sd.lists, nil)
	}
	sd.lists[id] = append(sd.lists[id], listEntry{ref: b.ref(r), t: b.t[r], exp: b.exp[r]})
	sd.refs++
}

// kill makes a held row dead (a replaced table row).
func (sd *joinSide) kill(ref joinRow) {
	b, r := sd.lookup(ref)
	if b == nil || b.state[r]&rowLive == 0 {
		return
	}
	b.state[r] &^= rowLive
	b.live--
	sd.live--
	sd.deadHeld++
}

// releaseDead releases the batches without live rows.
func (sd *joinSide) releaseDead() {
	for i, b := range sd.batches {
		if b != nil && b.live == 0 && (!sd.expiring || b.next == len(b.order)) {
			sd.release(b)
			sd.batches[i] = nil
		}
	}
	for len(sd.batches) > 0 && sd.batches[0] == nil {
		sd.batches = sd.batches[1:]
		sd.first++
	}
	if len(sd.batches) == 0 {
		sd.batches = nil
	}
}

func (sd *joinSide) release(b *storedBatch) {
	sd.deadHeld -= len(b.state) - b.live
	sd.live -= b.live
	sd.bytes -= b.bytes
	b.rec.Release()
	b.rec = nil
}

// releaseAll drops every batch and index entry.
func (sd *joinSide) releaseAll() {
	for _, b := range sd.batches {
		if b != nil {
			sd.release(b)
		}
	}
	sd.batches, sd.lists, sd.heap, sd.cur = nil, nil, nil, nil
	sd.refs, sd.live, sd.deadHeld, sd.bytes = 0, 0, 0, 0
}

// ---- expiry heap: batches by the expiry of their next unexpired row ----

func (sd *joinSide) push(b *storedBatch) {
	if !sd.expiring || len(b.order) == 0 {
		return
	}
	sd.heap = append(sd.heap, b)
	sd.up(len(sd.heap) - 1)
}

func (sd *joinSide) popHeap() {
	n := len(sd.heap) - 1
	sd.heap[0] = sd.heap[n]
	sd.heap[n] = nil
	sd.heap = sd.heap[:n]
	if n > 0 {
		sd.down(0)
	}
}

func (sd *joinSide) fixHeap() { sd.down(0) }

func (sd *joinSide) up(i int) {
	h := sd.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].head() <= h[i].head() {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (sd *joinSide) down(i int) {
	h := sd.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].head() < h[l].head() {
			m = r
		}
		if h[i].head() <= h[m].head() {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// ---- output ----

// outSpec describes output rows. For each input side, the columns come
// from rows idx of an in-flight batch (-1: NULL), from held rows refs
// (noRow: NULL), or, with neither, are all NULL. times are the rows'
// times (for window columns), wms their row watermarks.
type outSpec struct {
	batch [2]arrow.RecordBatch
	idx   [2][]int32
	refs  [2][]joinRow
	n     int
	times []int64
	wms   []int64
}

// gather returns the output columns cols (visible columns only) of spec.
// The caller releases them.
func (j *JoinOp) gather(spec outSpec, cols []int) ([]arrow.Array, error) {
	out := make([]arrow.Array, len(cols))
	var held [2]*gathered
	for i, c := range cols {
		s, ic := 0, c
		if c >= j.vis[0] {
			s, ic = 1, c-j.vis[0]
		}
		dt := j.inputs[s].Schema().Field(ic).Type
		var a arrow.Array
		var err error
		switch {
		case spec.batch[s] != nil:
			a, err = kernels.Take(j.alloc, spec.batch[s].Column(ic), spec.idx[s])
		case spec.refs[s] != nil:
			if held[s] == nil {
				held[s] = j.side[s].locate(spec.refs[s])
			}
			parts := make([]arrow.Array, len(held[s].parts))
			for p, b := range held[s].parts {
				parts[p] = b.rec.Column(ic)
			}
			a, err = kernels.Interleave(j.alloc, dt, parts, held[s].src, held[s].pos)
		default:
			a = array.MakeArrayOfNull(j.alloc, dt, spec.n)
		}
		if err != nil {
			releaseJoinArrays(out)
			return nil, fmt.Errorf("join output column %s: %w", j.cfg.Schema.Field(c).Name, err)
		}
		out[i] = a
	}
	return out, nil
}

// gathered locates held rows: row k is row pos[k] of parts[src[k]].
type gathered struct {
	parts    []*storedBatch
	src, pos []int32
}

func (sd *joinSide) locate(refs []joinRow) *gathered {
	g := &gathered{src: make([]int32, len(refs)), pos: make([]int32, len(refs))}
	index := map[uint32]int32{}
	for k, ref := range refs {
		if ref == noRow {
			g.src[k], g.pos[k] = -1, -1
			continue
		}
		seq := uint32(ref >> 32)
		p, ok := index[seq]
		if !ok {
			b, _ := sd.lookup(ref)
			p = int32(len(g.parts))
			g.parts = append(g.parts, b)
			index[seq] = p
		}
		g.src[k], g.pos[k] = p, int32(uint32(ref))
	}
	return g
}

// emit materialises spec and queues it as an output message.
func (j *JoinOp) emit(spec outSpec) error {
	nv := j.vis[0] + j.vis[1]
	cols := make([]int, nv)
	for i := range cols {
		cols[i] = i
	}
	arrs, err := j.gather(spec, cols)
	if err != nil {
		return err
	}
	if j.cfg.Window > 0 {
		ws := array.NewTimestampBuilder(j.alloc, j.cfg.Schema.Field(nv).Type.(*arrow.TimestampType))
		we := array.NewTimestampBuilder(j.alloc, j.cfg.Schema.Field(nv+1).Type.(*arrow.TimestampType))
		ws.Reserve(spec.n)
		we.Reserve(spec.n)
		for _, t := range spec.times {
			s := windowStart(t, j.cfg.Window)
			ws.UnsafeAppend(arrow.Timestamp(s))
			we.UnsafeAppend(arrow.Timestamp(s + j.cfg.Window))
		}
		arrs = append(arrs, ws.NewArray(), we.NewArray())
		ws.Release()
		we.Release()
	}
	if j.cfg.EventTime {
		b := array.NewInt64Builder(j.alloc)
		b.AppendValues(spec.wms, nil)
		arrs = append(arrs, b.NewArray())
		b.Release()
	}
	rec := array.NewRecordBatch(j.cfg.Schema, arrs, int64(spec.n))
	releaseJoinArrays(arrs)
	j.queue = append(j.queue, Message{Batch: rec, Watermark: j.out})
	return nil
}

// recordBytes is the size of the buffers a batch references.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}

// ---- rebuild ----

// rebuild compacts the state: each side's live rows are copied into one
// batch, and the key dictionary, lists, heaps and primary-key index are
// built afresh, so that dead rows and keys no longer take memory. It runs
// when garbage outweighs live state, so its cost is amortised over the
// rows that became garbage.
func (j *JoinOp) rebuild() error {
	j.stats.Rebuilds++
	if j.dict != nil {
		j.dict.Release()
		j.dict = nil
	}
	if j.pkDict != nil {
		j.pkDict.Release()
		j.pkDict = nil
	}
	for s, sd := range j.side {
		if err := j.rebuildSide(s, sd); err != nil {
			return err
		}
	}
	return nil
}

func (j *JoinOp) rebuildSide(s int, sd *joinSide) error {
	live := sd.liveRows()
	if len(live.refs) == 0 {
		sd.releaseAll()
		return nil
	}
	rec, err := j.copyRows(s, live.refs)
	if err != nil {
		return err
	}
	nextSeq := sd.nextSeq
	sd.releaseAll()
	sd.nextSeq = nextSeq
	return j.install(s, rec, live.t, live.wm, live.exp, live.state)
}

// liveSet is the live rows of a side with their metadata.
type liveSet struct {
	refs       []joinRow
	t, wm, exp []int64
	state      []uint8
}

// liveRows returns the side's live rows in arrival order.
func (sd *joinSide) liveRows() liveSet {
	var l liveSet
	for _, b := range sd.batches {
		if b == nil {
			continue
		}
		for r, st := range b.state {
			if st&rowLive != 0 {
				l.refs = append(l.refs, b.ref(int32(r)))
				l.t, l.wm, l.exp = append(l.t, b.t[r]), append(l.wm, b.wm[r]), append(l.exp, b.exp[r])
				l.state = append(l.state, st)
			}
		}
	}
	return l
}

// copyRows copies held rows of side s into one batch of the input's
// schema (row-watermark column included), owned by the caller.
func (j *JoinOp) copyRows(s int, refs []joinRow) (arrow.RecordBatch, error) {
	schema := j.inputs[s].Schema()
	all := make([]int, schema.NumFields())
	for i := range all {
		all[i] = i
	}
	cols, err := j.gatherInput(s, refs, all)
	if err != nil {
		return nil, err
	}
	rec := array.NewRecordBatch(schema, cols, int64(len(refs)))
	releaseJoinArrays(cols)
	return rec, nil
}

// install holds every row of rec as a new batch of side s, with the rows'
// times, row watermarks, expiries and states (rowLive set): it reserves
// the memory, indexes the rows by key (and a table's by primary key, the
// rows being its current ones) and queues them for expiry. It takes
// ownership of rec.
func (j *JoinOp) install(s int, rec arrow.RecordBatch, t, wm, exp []int64, state []uint8) error {
	sd := j.side[s]
	n := len(t)
	bytes := recordBytes(rec) + int64(n)*rowMetaBytes
	if err := j.reserve(bytes); err != nil {
		rec.Release()
		return err
	}
	b := &storedBatch{rec: rec, t: t, wm: wm, exp: exp, state: state, live: n, bytes: bytes}
	sd.add(b)
	sd.live += n

	keys, err := j.evalKeys(s, rec, t)
	if err != nil {
		return err
	}
	defer releaseJoinArrays(keys)
	sel, allValid := validRows(keys, n)
	ids, err := j.keyIDs(keys, sel, allValid)
	if err != nil {
		return err
	}
	for k, r := range sel {
		sd.link(ids[k], b, r)
	}
	if s == j.cfg.Table {
		pks, err := j.pkIDs(rec)
		if err != nil {
			return err
		}
		for r, pk := range pks {
			for int(pk) >= len(sd.cur) {
				sd.cur = append(sd.cur, noRow)
			}
			sd.cur[pk] = b.ref(int32(r))
		}
	}
	if sd.expiring {
		b.order = make([]int32, n)
		for i := range b.order {
			b.order[i] = int32(i)
		}
		b.bounds()
		sd.push(b)
	}
	return nil
}

// gatherInput copies held rows of side s, all columns of the input
// (row-watermark column included).
func (j *JoinOp) gatherInput(s int, refs []joinRow, cols []int) ([]arrow.Array, error) {
	g := j.side[s].locate(refs)
	out := make([]arrow.Array, len(cols))
	for i, c := range cols {
		parts := make([]arrow.Array, len(g.parts))
		for p, b := range g.parts {
			parts[p] = b.rec.Column(c)
		}
		a, err := kernels.Interleave(j.alloc, j.inputs[s].Schema().Field(c).Type, parts, g.src, g.pos)
		if err != nil {
			releaseJoinArrays(out)
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// ---- checkpoints ----

var _ Stateful = (*JoinOp)(nil)

// joinMetaSchema is the per-row metadata saved beside a side's held rows.
var joinMetaSchema = arrow.NewSchema([]arrow.Field{
	{Name: "t", Type: arrow.PrimitiveTypes.Int64},
	{Name: "wm", Type: arrow.PrimitiveTypes.Int64},
	{Name: "exp", Type: arrow.PrimitiveTypes.Int64},
	{Name: "state", Type: arrow.PrimitiveTypes.Uint8},
}, nil)

// SaveState implements Stateful. It saves each side's live held rows
// (table "sideN.rows", all input columns, and "sideN.meta": time, row
// watermark, expiry and matched flag), which for a table are its current
// row per primary key; each input's watermark, expiry clock and end; the
// output watermark; and the stream messages stashed while a table read
// first was loading. Key dictionaries and indexes are not saved: LoadState
// rebuilds them. Counters (Stats) are not saved.
func (j *JoinOp) SaveState(w *StateWriter) error {
	for s, sd := range j.side {
		w.SetInt(fmt.Sprintf("wm%d", s), j.wm[s])
		w.SetInt(fmt.Sprintf("clock%d", s), j.clock[s])
		w.SetBool(fmt.Sprintf("done%d", s), j.done[s])
		live := sd.liveRows()
		if len(live.refs) == 0 {
			continue
		}
		rec, err := j.copyRows(s, live.refs)
		if err != nil {
			return err
		}
		if err := w.Put(fmt.Sprintf("side%d.rows", s), rec); err != nil {
			return err
		}
		b := array.NewRecordBuilder(j.alloc, joinMetaSchema)
		b.Field(0).(*array.Int64Builder).AppendValues(live.t, nil)
		b.Field(1).(*array.Int64Builder).AppendValues(live.wm, nil)
		b.Field(2).(*array.Int64Builder).AppendValues(live.exp, nil)
		b.Field(3).(*array.Uint8Builder).AppendValues(live.state, nil)
		meta := b.NewRecordBatch()
		b.Release()
		if err := w.Put(fmt.Sprintf("side%d.meta", s), meta); err != nil {
			return err
		}
	}
	w.SetInt("out", j.out)
	w.SetBool("stashEnd", j.stashEnd)
	return saveMessages(w, "stash", j.stash)
}

// LoadState implements Stateful: it restores what SaveState saved into a
// join that has not been opened, rebuilding the key indexes and expiry
// heaps and reserving the state's memory.
func (j *JoinOp) LoadState(r *StateReader) error {
	if err := j.loadState(r); err != nil {
		return fmt.Errorf("join: loading state: %w", err)
	}
	return nil
}

func (j *JoinOp) loadState(r *StateReader) error {
	var err error
	for s := range j.side {
		ints := []struct {
			name string
			v    *int64
		}{{"wm", &j.wm[s]}, {"clock", &j.clock[s]}}
		for _, x := range ints {
			if *x.v, err = r.Int(fmt.Sprint(x.name, s)); err != nil {
				return err
			}
		}
		if j.done[s], err = r.Bool(fmt.Sprint("done", s)); err != nil {
			return err
		}
		j.ended[s] = j.done[s]
		rows, meta := r.Table(fmt.Sprintf("side%d.rows", s)), r.Table(fmt.Sprintf("side%d.meta", s))
		if len(rows) != len(meta) {
			return fmt.Errorf("side %d: %d row batches and %d metadata batches", s, len(rows), len(meta))
		}
		for i, rec := range rows {
			m := meta[i]
			if !m.Schema().Equal(joinMetaSchema) || m.NumRows() != rec.NumRows() {
				return fmt.Errorf("side %d: metadata %s of %d rows for %d rows", s, m.Schema(), m.NumRows(), rec.NumRows())
			}
			if !rec.Schema().Equal(j.inputs[s].Schema()) {
				return fmt.Errorf("side %d: saved rows have schema %s, the input %s", s, rec.Schema(), j.inputs[s].Schema())
			}
			if rec.NumRows() == 0 {
				continue
			}
			rec.Retain()
			err := j.install(s, rec,
				slices.Clone(kernels.Values[int64](m.Column(0))),
				slices.Clone(kernels.Values[int64](m.Column(1))),
				slices.Clone(kernels.Values[int64](m.Column(2))),
				slices.Clone(m.Column(3).(*array.Uint8).Uint8Values()))
			if err != nil {
				return err
			}
		}
	}
	if j.out, err = r.Int("out"); err != nil {
		return err
	}
	if j.stashEnd, err = r.Bool("stashEnd"); err != nil {
		return err
	}
	if j.stash, err = loadMessages(r, "stash"); err != nil {
		return err
	}
	if j.cfg.Table >= 0 && j.stashEnd {
		j.ended[1-j.cfg.Table] = true
	}
	// as take: the join ends with both inputs, or with a table's stream
	j.eof = j.done[0] && j.done[1] || j.cfg.Table >= 0 && j.done[1-j.cfg.Table]
	return j.account()
}
