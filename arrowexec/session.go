package arrowexec

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// SessionOp is a vectorised aggregation over SESSION windows.
//
// # Semantics
//
// Per GROUP BY key, a session covers [first event time, last event time +
// Gap). A row at event time t stands for the interval [t, t+Gap); it joins
// every open session of its key that interval overlaps (half-open: an event
// exactly Gap after a session's last event starts a new session), extending
// it to start = min, end = max(end, t+Gap); a row that overlaps two open
// sessions of its key merges them into one. A row that overlaps no open
// session opens a new one. window_start is the session's first event time
// and window_end its last event time + Gap.
//
// Sessions close when the row watermark (RowWatermarkColumn; the watermark
// as of the rows before each row) reaches their end: before each row, every
// session whose end is at or below the row's watermark is closed. All
// sessions closing at the same watermark point are emitted in one batch,
// ordered by window_end, then window_start, then the order in which the
// sessions began (the row that opened them; a merged session keeps the
// earlier). Because closing happens at per-row watermark points, the
// output does not depend on how the input is cut into batches. The end of
// input (FinalWatermark) closes every session.
//
// A row is late when it overlaps no open session of its key and the
// session it would open has already closed: t + Gap <= its watermark. A
// late row never joins or merges closed sessions except under
// update_previous, as below. Late.Strategy decides:
//   - drop: the row is counted (Stats) and discarded;
//   - dead_letter: the row goes to DeadLetter with the watermark it missed;
//   - include_in_next_window: the row is handled as if its event time were
//     its watermark w: it joins the open session overlapping [w, w+Gap) or
//     opens one starting at w (its own column values are unchanged);
//   - update_previous: a closed session is kept until the watermark reaches
//     its end + Late.AllowedLateness. A late row that overlaps a kept
//     session of its key updates it (the earliest-starting one it overlaps;
//     kept sessions never merge with each other or with open sessions), its
//     bounds are widened as for an on-time row, and its corrected row is
//     emitted again at once with revision one higher. A late row that
//     overlaps no kept session but is within allowed lateness (t + Gap +
//     AllowedLateness > w) forms a new closed session of its own, emitted at
//     once with revision 0. Later rows are dead-lettered.
//
// Processing-time input (TimeCol < 0) uses the wall clock when a batch is
// consumed as both event time and watermark for its rows, and every message
// (a source's heartbeat too) advances the watermark to the wall clock, so
// sessions close on time while input is quiet.
//
// # Design
//
// Per batch the key and argument expressions are evaluated once; a key
// dictionary (an agg.Table without aggregates) gives every row a dense key
// id in one vectorised Update. A scalar pass over the rows then maintains,
// per key id, the open and the kept sessions (in a slab of plain structs),
// and appends each row, with its session's group id, to its session
// table's segment; the aggregate states are then updated by one
// agg.Table.UpdateIDs per table, which takes the group ids as given (no
// second hash pass). The row pass touches each chunk of rows' list heads
// and sessions ahead of time (warm), so that their cache misses overlap
// instead of queueing one behind the other.
//
// A key's sessions are a singly linked list while there are few (in-order
// input keeps one or two open per key); a list scanned past listMax
// sessions becomes a set ordered by start (keyLists), where a row finds
// the sessions it overlaps by binary search. That is what input whose
// watermark lags its rows needs: a source reading partitions chunk by
// chunk, its watermark the minimum over them, keeps hundreds or thousands of
// sessions per key open, and a scan per row made it forty times
// slower than in-order input (BenchmarkSessionPartitioned).
//
// Closing times are kept in a timer wheel (sessTimers): buckets about
// gap/256 wide, ordered only within the current bucket, with a heap for
// times beyond the wheel. An entry is not moved when its session grows;
// when it comes up it goes to the session's current bucket in O(1). Before
// each row the sessions due at its watermark are closed: they leave their
// keys' lists at once (no later row can reach them), and are emitted once
// the pending rows are applied, so closing does not cut the batch. The
// pending rows are applied early only before a merge (agg.Table.Combine
// needs both sessions' rows applied) and around a late row that updates a
// closed session (its earlier state is emitted first, its corrected state
// right after).
//
// # State
//
// Closed sessions are freed at once (or when their allowed lateness ends).
// agg.Table cannot drop or move groups, so sessions live in generations of
// tables: when most sessions of the current table are dead, new sessions
// go to a fresh table, and a table is released when none of its sessions
// is live. All open sessions of a key stay in one table so they can be
// merged; a key that never has a moment without an open session therefore
// keeps adding sessions to its table, which bounds the reclaim but not the
// growth in that (rare) pattern. The key dictionary is rebuilt when most of
// its keys hold no session. State memory is reserved through Reserver.
// Checkpoints save the live sessions and, exactly, the tables they live
// in (session_state.go).
//
// EMIT CHANGES is not supported for sessions. SessionOp is not safe for
// concurrent use.
type SessionOp struct {
	unary
	cfg      AggregateConfig
	keyTypes []arrow.DataType
	gap      int64
	keep     int64 // how long a closed session is kept (update_previous), else -1
	// minCompact is the generation size (defaultMinCompact; tests lower it).
	minCompact int

	dict     *agg.Table // key dictionary: GROUP BY tuple -> key id
	keys     []keyLists // per key id: its sessions
	keyLive  int        // keys with at least one session
	sets     []sessSet  // long lists of sessions (see keyLists)
	freeSets []int32    // unused entries of sets
	// listMax is the longest list of sessions kept as a list
	// (defaultListMax; tests lower it).
	listMax int

	sess  []session
	free  []int32
	timer sessTimers   // when sessions close (open) or expire (kept)
	tabs  []*sessTable // the last one receives new sessions
	seq   int64        // sessions begun so far
	dirty []int32      // kept sessions updated by late rows, to re-emit

	wm Watermark
	outQueue
	stats   AggregateStats
	reserve int64

	// per-batch scratch
	kids     []uint32
	warmSink int64 // keeps warm's loads
	closing  []int32
	sortKeys []sortKey
	toFree   []int32
}

// keyLists holds one key's sessions: its open ones and its kept closed
// ones (update_previous), both in one struct so a row finds them in one
// cache line. Each is either a singly linked list through session.next
// (its head's slab index, -1 for none), in the order the sessions were
// added, last first, or, when it has been scanned past listMax sessions,
// a set (setRef of its index in SessionOp.sets), which finds the sessions
// a row overlaps by binary search.
type keyLists struct {
	open   int32 // open sessions
	closed int32 // kept closed sessions (update_previous)
}

// sessSet is one of a key's lists of sessions when it is long: slab
// indexes ordered by start (open sessions are disjoint, so by end too);
// among kept sessions starting together, the one added last first, as in
// a list. Inserting and removing move the indexes after (or before) the
// position: O(n), but a memmove of 4-byte entries, cheap next to the
// cache misses of a scan. session.next is unused in a set.
type sessSet struct {
	xs []int32
	// maxLen bounds end - start of the set's sessions (it is not lowered
	// when sessions leave): a kept session starting at or before t-maxLen
	// cannot reach t.
	maxLen int64
}

// defaultListMax is the longest list of a key's sessions scanned row by
// row before it becomes a set: in-order input keeps one or two open
// sessions per key, where a list is fastest.
const defaultListMax = 16

// session is one session window of one key.
type session struct {
	start, end int64 // [first event, last event + gap)
	seq        int64 // order the session began in
	revision   int64
	tab        *sessTable
	key        uint32
	gid        uint32 // group id (== session id) in tab
	next       int32  // next session in its key's list
	ver        uint32 // bumped when the slot is freed
	open       bool
	emitted    bool
	pending    bool // queued for (re-)emission
}

// sessTable is one generation of session aggregate states: a keyless
// agg.Table whose group ids are the sessions' gids, updated through
// UpdateIDs (no hashing).
type sessTable struct {
	t    *agg.Table
	n    int      // sessions created (== t.Len())
	live int      // sessions not yet freed
	rows []int32  // rows of the current segment
	ids  []uint32 // their sessions' gids
	used bool     // rows were added in the current segment
}

// defaultMinCompact is the generation size: a session table (or the key
// dictionary) is replaced once it has at least this many entries and under
// a quarter of them are live.
const defaultMinCompact = 1 << 16

var _ Operator = (*SessionOp)(nil)

// NewSessionAggregate returns a session-window aggregation over input;
// cfg.Window must be a Session window. The output is cfg.Schema: keys,
// window_start, window_end, [revision], aggregates. It fails for
// unsupported key or aggregate types and for EmitChanges.
func NewSessionAggregate(alloc memory.Allocator, input Operator, cfg AggregateConfig) (*SessionOp, error) {
	if cfg.Window == nil || cfg.Window.Kind != Session || cfg.Window.Gap <= 0 {
		return nil, fmt.Errorf("session aggregate: needs a SESSION window with a positive gap")
	}
	if cfg.EmitChanges {
		return nil, fmt.Errorf("session aggregate: EMIT CHANGES is not supported for SESSION windows")
	}
	s := &SessionOp{unary: unary{input: input, alloc: alloc}, cfg: cfg, gap: cfg.Window.Gap, keep: -1, wm: NoWatermark,
		minCompact: defaultMinCompact, listMax: defaultListMax, timer: newSessTimers(cfg.Window.Gap)}
	if cfg.Late.Strategy == "update_previous" {
		s.keep = max(cfg.Late.AllowedLateness, 0)
	}
	for _, k := range cfg.Keys {
		s.keyTypes = append(s.keyTypes, k.Type())
	}
	var err error
	if s.dict, err = agg.NewTable(alloc, s.keyTypes, nil); err != nil {
		return nil, err
	}
	if err := s.newTable(); err != nil {
		s.dict.Release()
		return nil, err
	}
	return s, nil
}

func (s *SessionOp) newTable() error {
	t, err := agg.NewTable(s.alloc, nil, s.cfg.Specs)
	if err != nil {
		return err
	}
	s.tabs = append(s.tabs, &sessTable{t: t})
	return nil
}

// Schema implements Operator.
func (s *SessionOp) Schema() *arrow.Schema { return s.cfg.Schema }

// Stats returns the late-row counters.
func (s *SessionOp) Stats() AggregateStats { return s.stats }

// String describes the operator for explain output.
func (s *SessionOp) String() string { return "SessionAggregate " + s.cfg.Window.String() }

// Close implements Operator: it releases all state and queued output.
func (s *SessionOp) Close() error {
	s.outQueue.release()
	for _, t := range s.tabs {
		t.t.Release()
	}
	s.tabs = nil
	if s.dict != nil {
		s.dict.Release()
	}
	s.sess, s.free, s.keys, s.sets, s.freeSets = nil, nil, nil, nil, nil
	s.timer = sessTimers{}
	if r, ok := s.alloc.(Reserver); ok && s.reserve > 0 {
		r.Unreserve(s.reserve)
	}
	s.reserve = 0
	return s.unary.Close()
}

// Next implements Operator. Sessions are emitted when the watermark closes
// them; after the input's end every remaining session is emitted, then
// io.EOF is returned. A checkpoint barrier is returned after the sessions
// the input before it closed, with the operator's watermark (see
// Stateful).
func (s *SessionOp) Next(ctx context.Context) (Message, error) {
	return s.outQueue.next(ctx, s.input, queueStep{op: s, what: "session aggregate", consume: s.consume,
		end:       func(context.Context) error { return s.advance(FinalWatermark) },
		watermark: func() Watermark { return s.wm }})
}

// consume processes one input message and releases it.
func (s *SessionOp) consume(ctx context.Context, msg Message) error {
	defer msg.Release()
	before := s.wm
	if msg.Batch != nil && msg.Batch.NumRows() > 0 {
		if err := s.consumeBatch(ctx, msg.Batch); err != nil {
			return err
		}
	}
	if err := s.advance(processingWatermark(&s.cfg, msg.Watermark)); err != nil {
		return err
	}
	if err := s.compact(); err != nil {
		return err
	}
	if err := s.account(); err != nil {
		return err
	}
	if len(s.queue) == 0 && s.wm > before && s.wm != NoWatermark {
		s.queue = append(s.queue, Message{Watermark: s.wm})
	}
	return nil
}

// rowAction is what the row loop does after a row.
type rowAction int

const (
	rowDone   rowAction = iota // the row was handled; continue the segment
	rowFlush                   // end the segment before this row (a merge needs applied state)
	rowReemit                  // end the segment after this row (a closed session was updated)
)

func (s *SessionOp) consumeBatch(ctx context.Context, batch arrow.RecordBatch) error {
	keys, args, release, err := evalAggregateInputs(&expr.Context{Alloc: s.alloc, Now: time.Now()}, &s.cfg, batch)
	if err != nil {
		return err
	}
	defer release()
	n := int(batch.NumRows())
	ts, wms := rowTimes(&s.cfg, batch)

	// key ids, vectorised
	s.kids = slices.Grow(s.kids[:0], n)[:n]
	if err := s.dict.Update(keys, nil, nil, s.kids); err != nil {
		return err
	}
	for len(s.keys) < s.dict.Len() {
		s.keys = append(s.keys, keyLists{open: -1, closed: -1})
	}
	for i := 0; i < n; {
		j := i
	rows:
		for ; j < n; j++ {
			if j%warmRows == 0 {
				s.warm(j, min(j+warmRows, n))
			}
			s.wm = max(s.wm, wms[j])
			w := s.wm
			if w >= s.timer.next {
				s.closeDue(w)
			}
			act, err := s.row(ctx, batch, j, ts[j], w, j == i)
			if err != nil {
				return err
			}
			switch act {
			case rowFlush:
				break rows
			case rowReemit:
				j++
				break rows
			}
		}
		if err := s.flush(args); err != nil {
			return err
		}
		if err := s.emitClosed(); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// warmRows is how many rows warm touches at a time: enough to keep many
// cache misses in flight, few enough that what it loads stays in cache
// until the row loop gets there.
const warmRows = 256

// warm touches the open-session list heads and head sessions of the keys
// of rows [from, to). The row loop reaches them through a chain of
// dependent loads (key id, list head, session) with a branch after each
// row, so it waits for one cache miss after another; this loop's
// iterations are independent, so the processor overlaps their misses. It
// is only a hint: the lists may change before the rows are handled.
func (s *SessionOp) warm(from, to int) {
	var sum int64
	for _, k := range s.kids[from:to] {
		if h := s.keys[k].open; h >= 0 {
			sum += s.sess[h].end
		}
	}
	s.warmSink = sum
}

// flush applies the rows of the current segment to their session tables.
func (s *SessionOp) flush(args []arrow.Array) error {
	for _, t := range s.tabs {
		if !t.used {
			continue
		}
		t.used = false
		if len(t.rows) > 0 {
			if err := t.t.UpdateIDs(args, t.rows, t.ids); err != nil {
				return err
			}
		}
		t.rows, t.ids = t.rows[:0], t.ids[:0]
		if t.t.Len() != t.n {
			return fmt.Errorf("internal error: session table has %d groups for %d sessions", t.t.Len(), t.n)
		}
	}
	return nil
}

// add routes row j to session idx.
func (s *SessionOp) add(j int, idx int32) {
	ss := &s.sess[idx]
	t := ss.tab
	t.rows = append(t.rows, int32(j))
	t.ids = append(t.ids, ss.gid)
	t.used = true
}

// overlaps reports whether [t, t+gap) overlaps ss.
func (s *SessionOp) overlaps(ss *session, t int64) bool {
	return ss.start < t+s.gap && t < ss.end
}

// row handles row j (key kids[j], event time t, watermark w). first says
// the row starts a segment (nothing of the segment is pending).
func (s *SessionOp) row(ctx context.Context, batch arrow.RecordBatch, j int, t, w int64, first bool) (rowAction, error) {
	kid := s.kids[j]
	redirected := false
	// openOverlaps, with the common case (a short list) inline
	var hit, second int32 = -1, -1
	h := s.keys[kid].open
	n := 0
	for x := h; x >= 0; x = s.sess[x].next {
		if s.overlaps(&s.sess[x], t) {
			if hit < 0 {
				hit = x
			} else if second < 0 {
				second = x
			}
		}
		n++
	}
	if n > s.listMax || isSet(h) {
		if isSet(h) {
			hit, second = s.openOverlaps(kid, t)
		} else {
			s.toSet(&s.keys[kid].open)
		}
	}
	if hit < 0 && t+s.gap <= w { // late
		switch s.cfg.Late.Strategy {
		case "include_in_next_window":
			redirected = true
			t = w
			hit, second = s.openOverlaps(kid, t)
		case "update_previous":
			return s.lateUpdate(ctx, batch, j, kid, t, w, first)
		case "dead_letter":
			return rowDone, s.deadLetter(ctx, batch, j, t, w, "")
		default:
			s.stats.LateDropped++
			return rowDone, nil
		}
	}
	switch {
	case hit < 0:
		tab := s.tabs[len(s.tabs)-1]
		if h := s.anyOpen(kid); h >= 0 {
			tab = s.sess[h].tab // open sessions of a key share a table
		}
		idx := s.open(kid, tab, t, t+s.gap, true)
		s.add(j, idx)
	case second < 0:
		ss := &s.sess[hit]
		ss.start, ss.end = min(ss.start, t), max(ss.end, t+s.gap)
		s.add(j, hit)
	default:
		if !first {
			return rowFlush, nil // combine needs both sessions' rows applied
		}
		if s.sess[second].seq < s.sess[hit].seq {
			hit, second = second, hit
		}
		s.merge(kid, hit, second) // into hit, the earlier-begun
		ss := &s.sess[hit]
		ss.start, ss.end = min(ss.start, t), max(ss.end, t+s.gap)
		s.add(j, hit)
	}
	if redirected {
		s.stats.LateRedirected++
	}
	return rowDone, nil
}

// openOverlaps returns the open sessions of key kid that [t, t+gap)
// overlaps, -1 for none. There are at most two: a key's open sessions are
// disjoint (a row that overlaps two merges them) and each is at least gap
// long, so a third would have to lie inside the row's interval. A list
// scanned longer than listMax becomes a set.
func (s *SessionOp) openOverlaps(kid uint32, t int64) (hit, second int32) {
	hit, second = -1, -1
	h := s.keys[kid].open
	if isSet(h) {
		// disjoint and ordered by start, so ordered by end too: the
		// candidates are the last two starting before t+gap
		xs := s.sets[setIndex(h)].xs
		i := s.lowerBound(xs, t+s.gap)
		if i > 0 && s.sess[xs[i-1]].end > t {
			hit = xs[i-1]
			if i > 1 && s.sess[xs[i-2]].end > t {
				second = xs[i-2]
			}
		}
		return hit, second
	}
	n := 0
	for x := h; x >= 0; x = s.sess[x].next {
		if s.overlaps(&s.sess[x], t) {
			if hit < 0 {
				hit = x
			} else if second < 0 {
				second = x
			}
		}
		n++
	}
	if n > s.listMax {
		s.toSet(&s.keys[kid].open)
	}
	return hit, second
}

// anyOpen returns one open session of key kid, -1 for none.
func (s *SessionOp) anyOpen(kid uint32) int32 {
	h := s.keys[kid].open
	if isSet(h) {
		return s.sets[setIndex(h)].xs[0]
	}
	return h
}

// merge combines the open session b of key kid into a, which began
// earlier (both overlap the row that merges them). All their rows must
// have been applied.
func (s *SessionOp) merge(kid uint32, a, b int32) {
	x, y := &s.sess[a], &s.sess[b]
	x.start, x.end = min(x.start, y.start), max(x.end, y.end)
	x.tab.t.Combine(x.gid, y.gid)
	s.remove(&s.keys[kid].open, b)
	s.release(b)
}

// open starts a session of key kid in tab and returns its slab index.
func (s *SessionOp) open(kid uint32, tab *sessTable, start, end int64, isOpen bool) int32 {
	var idx int32
	if n := len(s.free); n > 0 {
		idx = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.sess = append(s.sess, session{})
		idx = int32(len(s.sess) - 1)
	}
	if s.keys[kid].empty() {
		s.keyLive++
	}
	ss := &s.sess[idx]
	*ss = session{start: start, end: end, seq: s.seq, tab: tab, key: kid, gid: uint32(tab.n), next: -1, ver: ss.ver, open: isOpen}
	s.seq++
	tab.n++
	tab.live++
	at := end
	if h := s.keys[kid].open; isOpen && !isSet(h) {
		ss.next, s.keys[kid].open = h, idx // push, inline
	} else if isOpen {
		s.push(&s.keys[kid].open, idx)
	} else {
		s.push(&s.keys[kid].closed, idx)
		at = s.expiry(ss)
		ss.pending = true
		s.dirty = append(s.dirty, idx)
	}
	s.timer.insert(sessEvent{at: at, idx: idx, ver: ss.ver})
	return idx
}

// lateUpdate handles a late row under update_previous.
func (s *SessionOp) lateUpdate(ctx context.Context, batch arrow.RecordBatch, j int, kid uint32, t, w int64, first bool) (rowAction, error) {
	head := &s.keys[kid].closed
	var hit int32 = -1
	if isSet(*head) {
		// the earliest-starting overlapping session: kept sessions may
		// overlap each other, but none starting at or before t-maxLen
		// reaches t; among equal starts the set, like a list, puts the
		// session added last first
		st := &s.sets[setIndex(*head)]
		xs := st.xs
		for p := s.lowerBound(xs, t-st.maxLen+1); p < len(xs) && s.sess[xs[p]].start < t+s.gap; p++ {
			if s.sess[xs[p]].end > t {
				hit = xs[p]
				break
			}
		}
	} else {
		n := 0
		for x := *head; x >= 0; x = s.sess[x].next {
			if s.overlaps(&s.sess[x], t) && (hit < 0 || s.sess[x].start < s.sess[hit].start) {
				hit = x
			}
			n++
		}
		if n > s.listMax {
			s.toSet(head)
		}
	}
	switch {
	case hit >= 0 && s.sess[hit].pending && !first:
		return rowFlush, nil // emit its closing state before the late row changes it
	case hit >= 0:
		ss := &s.sess[hit]
		// a set is ordered by start: an earlier start moves the session
		// (it then starts before every other kept session it overlaps, so
		// it ties with none)
		moved := isSet(*head) && t < ss.start
		if moved {
			s.remove(head, hit)
		}
		ss.start, ss.end = min(ss.start, t), max(ss.end, t+s.gap)
		if moved {
			s.push(head, hit)
		} else if isSet(*head) {
			st := &s.sets[setIndex(*head)]
			st.maxLen = max(st.maxLen, ss.end-ss.start)
		}
		s.add(j, hit)
		if !ss.pending {
			ss.pending = true
			s.dirty = append(s.dirty, hit)
		}
	case t+s.gap+s.keep > w:
		idx := s.open(kid, s.tabs[len(s.tabs)-1], t, t+s.gap, false)
		s.add(j, idx)
	default:
		return rowDone, s.deadLetter(ctx, batch, j, t, w, "beyond allowed_lateness")
	}
	s.stats.LateUpdated++
	return rowReemit, nil
}

func (s *SessionOp) deadLetter(ctx context.Context, batch arrow.RecordBatch, i int, t, w int64, why string) error {
	s.stats.LateDeadLettered++
	return deadLetterLate(ctx, &s.cfg, batch, i, t, w, "session", why)
}

// expiry is when a kept closed session is dropped.
func (s *SessionOp) expiry(ss *session) int64 {
	if ss.end > FinalWatermark-s.keep {
		return FinalWatermark
	}
	return ss.end + s.keep
}

// due is the current heap time of session ss.
func (s *SessionOp) due(ss *session) int64 {
	if ss.open {
		return ss.end
	}
	return s.expiry(ss)
}

// advance moves the operator watermark to w (never back), closes the
// sessions it reaches and queues them; it is called between batches, when
// no rows are pending.
func (s *SessionOp) advance(w Watermark) error {
	s.wm = max(s.wm, w)
	s.closeDue(s.wm)
	return s.emitClosed()
}

// closeDue closes the open sessions whose end is at or below w, and
// expires the kept sessions whose allowed lateness ends at or below w. They
// leave their keys' lists at once; closed sessions are emitted, and slots
// freed, by emitClosed after the pending rows are applied.
func (s *SessionOp) closeDue(w int64) {
	q := &s.timer
	for {
		for len(q.near) > 0 && q.near[0].at <= w {
			s.fire(heapPop(&q.near), w)
		}
		if !q.passed(w) || !s.nextBucket(w) {
			break
		}
	}
	q.setNext()
}

// fire handles a timer entry due at or below w: a stale one (freed slot)
// is dropped, one of a session that has grown since is put back at its
// current time, and otherwise the session closes (open) or goes (kept).
func (s *SessionOp) fire(e sessEvent, w int64) {
	ss := &s.sess[e.idx]
	if ss.ver != e.ver {
		return
	}
	if d := s.due(ss); d > e.at {
		e.at = d
		s.timer.insert(e)
		return
	}
	if !ss.open { // a kept session's allowed lateness is over
		s.remove(&s.keys[ss.key].closed, e.idx)
		s.toFree = append(s.toFree, e.idx)
		return
	}
	ss.open = false
	if h := &s.keys[ss.key].open; !isSet(*h) {
		s.unlink(h, e.idx)
	} else {
		s.remove(h, e.idx)
	}
	if !ss.pending {
		ss.pending = true
		s.closing = append(s.closing, e.idx)
	}
	if s.keep >= 0 && w != FinalWatermark {
		s.push(&s.keys[ss.key].closed, e.idx)
		s.timer.insert(sessEvent{at: s.expiry(ss), idx: e.idx, ver: ss.ver})
	} else {
		s.toFree = append(s.toFree, e.idx)
	}
}

// nextBucket moves the timer queue, whose near heap is empty and whose
// current bucket w has passed, to the next bucket holding entries (at most
// the one holding w), pulling far entries into the ring as it comes within
// reach, and loads that bucket into the near heap: stale entries are
// dropped and those of sessions that have grown go to their current
// bucket. It reports false when the queue is empty.
func (s *SessionOp) nextBucket(w int64) bool {
	q := &s.timer
	var c int64
	switch {
	case q.ringN > 0:
		c = q.cur + 1
	case len(q.far) > 0:
		c = min(w>>q.shift, q.far[0].at>>q.shift)
	default:
		q.cur = w >> q.shift
		return false
	}
	q.cur = c
	for len(q.far) > 0 && uint64(q.far[0].at>>q.shift-c) < timerRing {
		q.insert(heapPop(&q.far))
	}
	slot := c & (timerRing - 1)
	list := q.ring[slot]
	q.ringN -= len(list)
	var sum uint32
	for _, e := range list { // overlap the cache misses (see warm)
		sum += s.sess[e.idx].ver
	}
	s.warmSink += int64(sum)
	for _, e := range list { // insert never appends to slot: its bucket c is now near
		ss := &s.sess[e.idx]
		if ss.ver != e.ver {
			continue
		}
		if d := s.due(ss); d > e.at {
			e.at = d
			q.insert(e)
			continue
		}
		heapPush(&q.near, e)
	}
	q.ring[slot] = list[:0]
	return true
}

// emitClosed queues one batch with the sessions closed since the last call
// (by end, start, begin order), followed by the kept sessions late rows
// updated, then frees the slots of sessions that are gone.
func (s *SessionOp) emitClosed() error {
	if len(s.closing)+len(s.dirty) > 0 {
		s.sortKeys = sortSessions(s.sess, s.closing, s.sortKeys)
		s.sortKeys = sortSessions(s.sess, s.dirty, s.sortKeys)
		s.closing = append(s.closing, s.dirty...)
		s.dirty = s.dirty[:0]
		if err := s.emit(s.closing); err != nil {
			return err
		}
		s.closing = s.closing[:0]
	}
	for _, x := range s.toFree {
		s.release(x)
	}
	s.toFree = s.toFree[:0]
	return nil
}

func sortSessions(sess []session, xs []int32, keys []sortKey) []sortKey {
	// sort copies of the keys: comparing through xs would miss the cache
	keys = keys[:0]
	for _, x := range xs {
		ss := &sess[x]
		keys = append(keys, sortKey{end: ss.end, start: ss.start, seq: ss.seq, idx: x})
	}
	// closeDue closes sessions in order of end, so an insertion sort
	// (fixing ties) usually finishes in linear time; it gives up for a
	// general sort after a few moves per element.
	budget := 4 * len(keys)
	for i := 1; i < len(keys) && budget >= 0; i++ {
		k := keys[i]
		j := i
		for ; j > 0 && k.less(keys[j-1]); j-- {
			keys[j] = keys[j-1]
			budget--
		}
		keys[j] = k
	}
	if budget < 0 {
		slices.SortFunc(keys, func(x, y sortKey) int {
			return cmp.Or(cmp.Compare(x.end, y.end), cmp.Compare(x.start, y.start), cmp.Compare(x.seq, y.seq))
		})
	}
	for k := range keys {
		xs[k] = keys[k].idx
	}
	return keys
}

// sortKey is what sortSessions orders sessions by.
type sortKey struct {
	end, start, seq int64
	idx             int32
}

func (x sortKey) less(y sortKey) bool {
	if x.end != y.end {
		return x.end < y.end
	}
	if x.start != y.start {
		return x.start < y.start
	}
	return x.seq < y.seq
}

// emit queues one batch with the sessions xs, in that order.
func (s *SessionOp) emit(xs []int32) error {
	n := len(xs)
	kids := make([]uint32, n)
	starts := make([]int64, n)
	ends := make([]int64, n)
	revs := make([]int64, n)
	// sessions by table, and where each row comes from
	var parts []*sessTable
	var groups [][]uint32
	src := make([]int32, n)
	pos := make([]int32, n)
	for k, x := range xs {
		ss := &s.sess[x]
		if ss.emitted {
			ss.revision++
		}
		ss.emitted, ss.pending = true, false
		kids[k], starts[k], ends[k], revs[k] = ss.key, ss.start, ss.end, ss.revision
		p := slices.Index(parts, ss.tab)
		if p < 0 {
			p = len(parts)
			parts = append(parts, ss.tab)
			groups = append(groups, nil)
		}
		src[k], pos[k] = int32(p), int32(len(groups[p]))
		groups[p] = append(groups[p], ss.gid)
	}
	keyCols, _, err := s.dict.Emit(kids)
	if err != nil {
		return err
	}
	cols := keyCols
	defer func() { releaseArrays(cols) }()
	cols = append(cols, timestampsOf(s.alloc, starts), timestampsOf(s.alloc, ends))
	if s.keep >= 0 {
		cols = append(cols, int64sOf(s.alloc, revs))
	}
	results := make([][]arrow.Array, len(parts))
	defer func() {
		for _, r := range results {
			releaseArrays(r)
		}
	}()
	for p, t := range parts {
		sid, r, err := t.t.Emit(groups[p])
		if err != nil {
			return err
		}
		releaseArrays(sid)
		results[p] = r
	}
	for a := range s.cfg.Specs {
		if len(parts) == 1 {
			r := results[0][a]
			r.Retain()
			cols = append(cols, r)
			continue
		}
		in := make([]arrow.Array, len(parts))
		for p := range parts {
			in[p] = results[p][a]
		}
		out, err := kernels.Interleave(s.alloc, in[0].DataType(), in, src, pos)
		if err != nil {
			return err
		}
		cols = append(cols, out)
	}
	s.queue = append(s.queue, Message{Batch: array.NewRecordBatch(s.cfg.Schema, cols, int64(n)), Watermark: s.wm})
	return nil
}

func timestampsOf(alloc memory.Allocator, vals []int64) arrow.Array {
	b := array.NewTimestampBuilder(alloc, timestampMS)
	defer b.Release()
	b.Reserve(len(vals))
	for _, v := range vals {
		b.UnsafeAppend(arrow.Timestamp(v))
	}
	return b.NewArray()
}

func int64sOf(alloc memory.Allocator, vals []int64) arrow.Array {
	b := array.NewInt64Builder(alloc)
	defer b.Release()
	b.AppendValues(vals, nil)
	return b.NewArray()
}

func releaseArrays(arrs []arrow.Array) {
	for _, x := range arrs {
		x.Release()
	}
}

// unlink removes x from the list starting at *head; a list scanned
// further than listMax becomes a set. The common case, x first, is inlined.
func (s *SessionOp) unlink(head *int32, x int32) {
	if *head == x { // x.next is stale until x is pushed or released
		*head = s.sess[x].next
		return
	}
	s.unlinkScan(head, x)
}

func (s *SessionOp) unlinkScan(head *int32, x int32) {
	n := 0
	for p := head; *p >= 0; p = &s.sess[*p].next {
		if *p == x {
			*p = s.sess[x].next
			s.sess[x].next = -1
			if n > s.listMax {
				s.toSet(head)
			}
			return
		}
		n++
	}
}

// isSet reports whether the keyLists entry h refers to a set (see
// keyLists); setIndex is that set's index in SessionOp.sets, and setRef
// the entry for set i.
func isSet(h int32) bool       { return h < -1 }
func setIndex(h int32) int32   { return -2 - h }
func setRef(i int32) int32     { return -2 - i }
func (k keyLists) empty() bool { return k.open == -1 && k.closed == -1 }

// push adds session x, whose bounds are set, to the list or set *head:
// first in a list, first among its equal starts in a set.
func (s *SessionOp) push(head *int32, x int32) {
	ss := &s.sess[x]
	if !isSet(*head) {
		ss.next, *head = *head, x
		return
	}
	st := &s.sets[setIndex(*head)]
	st.xs = slices.Insert(st.xs, s.lowerBound(st.xs, ss.start), x)
	st.maxLen = max(st.maxLen, ss.end-ss.start)
}

// remove takes session x out of the list or set *head. A set left with
// at most listMax/4 sessions becomes a list again (so an empty one is -1).
func (s *SessionOp) remove(head *int32, x int32) {
	if !isSet(*head) {
		s.unlink(head, x)
		return
	}
	st := &s.sets[setIndex(*head)]
	xs := st.xs
	p := s.lowerBound(xs, s.sess[x].start)
	for xs[p] != x { // kept sessions may share a start
		p++
	}
	// move the shorter side: sessions close oldest first, so removals
	// are mostly near the front
	if p < len(xs)/2 {
		copy(xs[1:p+1], xs[:p])
		st.xs = xs[1:]
	} else {
		st.xs = slices.Delete(xs, p, p+1)
	}
	if len(st.xs) <= s.listMax/4 {
		s.toList(head)
	}
}

// lowerBound returns the first position in xs (slab indexes ordered by
// start) of a session starting at or after t.
func (s *SessionOp) lowerBound(xs []int32, t int64) int {
	lo, hi := 0, len(xs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.sess[xs[m]].start < t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// toSet turns the list *head into a set: ordered by start, stably, so
// that sessions starting together keep their list order (the one added
// last first).
func (s *SessionOp) toSet(head *int32) {
	var i int32
	if n := len(s.freeSets); n > 0 {
		i = s.freeSets[n-1]
		s.freeSets = s.freeSets[:n-1]
	} else {
		i = int32(len(s.sets))
		s.sets = append(s.sets, sessSet{})
	}
	st := &s.sets[i]
	xs, maxLen := st.xs[:0], int64(0)
	for x := *head; x >= 0; x = s.sess[x].next {
		xs = append(xs, x)
		maxLen = max(maxLen, s.sess[x].end-s.sess[x].start)
	}
	slices.SortStableFunc(xs, func(a, b int32) int { return cmp.Compare(s.sess[a].start, s.sess[b].start) })
	st.xs, st.maxLen = xs, maxLen
	*head = setRef(i)
}

// toList turns the set *head back into a list, in the set's order.
func (s *SessionOp) toList(head *int32) {
	i := setIndex(*head)
	st := &s.sets[i]
	h := int32(-1)
	for k := len(st.xs) - 1; k >= 0; k-- {
		x := st.xs[k]
		s.sess[x].next, h = h, x
	}
	*head = h
	if cap(st.xs) > 1024 {
		st.xs = nil // do not keep a large buffer for the next set
	}
	st.xs, st.maxLen = st.xs[:0], 0
	s.freeSets = append(s.freeSets, i)
}

// members appends the sessions of the list or set head to dst, in order.
func (s *SessionOp) members(head int32, dst []int32) []int32 {
	if isSet(head) {
		return append(dst, s.sets[setIndex(head)].xs...)
	}
	for x := head; x >= 0; x = s.sess[x].next {
		dst = append(dst, x)
	}
	return dst
}

// release frees session slot x (already unlinked from its key's lists).
func (s *SessionOp) release(x int32) {
	ss := &s.sess[x]
	ss.tab.live--
	kid := ss.key
	*ss = session{ver: ss.ver + 1, next: -1}
	s.free = append(s.free, x)
	if s.keys[kid].empty() {
		s.keyLive--
	}
}

// compact releases tables without live sessions, starts a new table when
// the current one is mostly dead, and rebuilds the key dictionary when
// most of its keys hold no session.
func (s *SessionOp) compact() error {
	cur := s.tabs[len(s.tabs)-1]
	kept := s.tabs[:0]
	for _, t := range s.tabs[:len(s.tabs)-1] {
		if t.live == 0 {
			t.t.Release()
			continue
		}
		kept = append(kept, t)
	}
	s.tabs = append(kept, cur)
	clear(s.tabs[len(s.tabs):cap(s.tabs)])
	if cur.n >= s.minCompact && cur.live*4 < cur.n {
		if cur.live == 0 {
			cur.t.Release()
			s.tabs = s.tabs[:len(s.tabs)-1]
		}
		if err := s.newTable(); err != nil {
			return err
		}
	}
	if n := s.dict.Len(); n >= s.minCompact && s.keyLive*4 < n {
		return s.rebuildDict()
	}
	return nil
}

// rebuildDict replaces the key dictionary with one holding only the keys
// that have sessions, renumbering them.
func (s *SessionOp) rebuildDict() error {
	var live []uint32
	for k := range s.keys {
		if !s.keys[k].empty() {
			live = append(live, uint32(k))
		}
	}
	d, err := agg.NewTable(s.alloc, s.keyTypes, nil)
	if err != nil {
		return err
	}
	if len(live) > 0 {
		keys, _, err := s.dict.Emit(live)
		if err != nil {
			d.Release()
			return err
		}
		ids := make([]uint32, len(live))
		err = d.Update(keys, nil, nil, ids)
		releaseArrays(keys)
		if err != nil {
			d.Release()
			return err
		}
	}
	keys := make([]keyLists, len(live))
	var xs []int32
	for nk, ok := range live {
		keys[nk] = s.keys[ok]
		for _, head := range []int32{keys[nk].open, keys[nk].closed} {
			xs = s.members(head, xs[:0])
			for _, x := range xs {
				s.sess[x].key = uint32(nk)
			}
		}
	}
	s.dict.Release()
	s.dict, s.keys = d, keys
	return nil
}

// sessEvent is a timer entry: at the time at, session idx closes (if
// open) or expires (if kept). Entries are lazy: at may be below the
// session's current time (it grew since), and ver tells a freed slot.
type sessEvent struct {
	at  int64
	idx int32
	ver uint32
}

// timerRing is the number of buckets of the timer wheel (a power of two).
const timerRing = 1024

// sessTimers is the closing queue of the sessions: a timer wheel of
// timerRing buckets 2^shift ms wide, sized from the gap so that the wheel
// spans a few gaps. Only the current bucket is ordered (the near heap);
// later buckets within reach of the wheel are unordered lists, and entries
// beyond its reach wait in the far heap. A session that grows keeps its
// old entry; when the entry comes up it moves to the session's current
// bucket in O(1), where a heap would pay a sift per growth. Every live
// session has exactly one entry.
//
// Invariants: near holds the entries of buckets up to cur, ring[b%
// timerRing] those of bucket b for cur < b < cur+timerRing, far the rest;
// no entry is due before next.
type sessTimers struct {
	shift uint
	cur   int64         // current bucket
	near  []sessEvent   // 4-ary min-heap
	ring  [][]sessEvent // per bucket, unordered
	ringN int           // entries in ring
	far   []sessEvent   // 4-ary min-heap
	next  int64
}

func newSessTimers(gap int64) sessTimers {
	var shift uint
	for shift < 62 && gap>>shift > timerRing/4 {
		shift++
	}
	return sessTimers{shift: shift, ring: make([][]sessEvent, timerRing), next: math.MaxInt64}
}

func (q *sessTimers) empty() bool { return len(q.near)+q.ringN+len(q.far) == 0 }

// passed reports whether w is beyond the current bucket.
func (q *sessTimers) passed(w int64) bool {
	return q.cur < math.MaxInt64>>q.shift && w >= (q.cur+1)<<q.shift
}

// insert adds e to the bucket of e.at.
func (q *sessTimers) insert(e sessEvent) {
	b := e.at >> q.shift
	if q.empty() {
		q.cur = b
	}
	switch {
	case b <= q.cur:
		heapPush(&q.near, e)
		q.next = min(q.next, e.at)
	case uint64(b-q.cur) < timerRing:
		slot := b & (timerRing - 1)
		q.ring[slot] = append(q.ring[slot], e)
		q.ringN++
	default:
		heapPush(&q.far, e)
	}
}

// setNext recomputes next: the top of the near heap or the start of the
// next bucket, whichever is first (the largest time when empty).
func (q *sessTimers) setNext() {
	q.next = math.MaxInt64
	if q.empty() {
		return
	}
	if q.cur < math.MaxInt64>>q.shift {
		q.next = (q.cur + 1) << q.shift
	}
	if len(q.near) > 0 {
		q.next = min(q.next, q.near[0].at)
	}
}

func (q *sessTimers) bytes() int64 {
	n := cap(q.near) + cap(q.far)
	for _, b := range q.ring {
		n += cap(b)
	}
	return int64(n)*int64(unsafe.Sizeof(sessEvent{})) + int64(cap(q.ring))*int64(unsafe.Sizeof([]sessEvent{}))
}

// The heaps are 4-ary: a node's children share a cache line, halving the
// levels a pop walks compared with a binary heap.
func heapPush(hp *[]sessEvent, e sessEvent) {
	h := append(*hp, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if h[p].at <= e.at {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = e
	*hp = h
}

func heapPop(hp *[]sessEvent) sessEvent {
	h := *hp
	top := h[0]
	n := len(h) - 1
	last := h[n]
	h = h[:n]
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if h[k].at < h[m].at {
				m = k
			}
		}
		if last.at <= h[m].at {
			break
		}
		h[i] = h[m]
		i = m
	}
	if n > 0 {
		h[i] = last
	}
	*hp = h
	return top
}

// account reserves (or returns) the memory held by the operator's state.
func (s *SessionOp) account() error {
	r, ok := s.alloc.(Reserver)
	if !ok {
		return nil
	}
	bytes := s.dict.StateBytes() +
		int64(cap(s.sess))*int64(unsafe.Sizeof(session{})) +
		s.timer.bytes() +
		int64(cap(s.keys))*8 + int64(cap(s.free))*4 +
		int64(cap(s.sets))*int64(unsafe.Sizeof(sessSet{})) + int64(cap(s.freeSets))*4
	for _, st := range s.sets {
		bytes += int64(cap(st.xs)) * 4
	}
	for _, t := range s.tabs {
		bytes += t.t.StateBytes()
	}
	delta := bytes - s.reserve
	switch {
	case delta > 0:
		if err := r.Reserve(delta); err != nil {
			return fmt.Errorf("query %s: session state of %d bytes: %w", s.cfg.Query, bytes, err)
		}
	case delta < 0:
		r.Unreserve(-delta)
	}
	s.reserve = bytes
	return nil
}
