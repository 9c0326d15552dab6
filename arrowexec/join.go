package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// JoinKind is the type of a join.
type JoinKind int

const (
	InnerJoin JoinKind = iota
	LeftJoin
	RightJoin
	FullJoin
)

func (k JoinKind) String() string { return [...]string{"INNER", "LEFT", "RIGHT", "FULL"}[k] }

// Preserves reports whether rows of input side (0 left, 1 right) that match
// nothing are emitted, padded with NULLs.
func (k JoinKind) Preserves(side int) bool {
	if side == 0 {
		return k == LeftJoin || k == FullJoin
	}
	return k == RightJoin || k == FullJoin
}

// JoinBound is the interval bound of a stream–stream join: a pair of rows
// can match only when Lo <= t_right - t_left <= Hi (event times in
// milliseconds, both ends inclusive; exclusive SQL bounds are converted by
// the planner, timestamps being whole milliseconds).
type JoinBound struct{ Lo, Hi int64 }

func (b JoinBound) String() string {
	return fmt.Sprintf("t_right - t_left IN [%s, %s]", kernels.FormatInterval(b.Lo), kernels.FormatInterval(b.Hi))
}

// JoinConfig configures a JoinOp. Index 0 is the left input, 1 the right.
type JoinConfig struct {
	Query string
	Kind  JoinKind
	// Keys are the equi-join keys over each input: Keys[0][i] = Keys[1][i].
	// Paired keys have the same type. A row with a NULL key matches nothing.
	Keys [2][]expr.Expr
	// Residual is the rest of the ON condition, over the visible output
	// columns (the left input's then the right input's, without their
	// row-watermark columns); a pair matches only where it is TRUE. nil:
	// none.
	Residual expr.Expr
	// Time is each input's event-time column, -1 for processing time
	// (rows are stamped with their arrival time). WM is each input's
	// row-watermark column (last), -1 without one.
	Time, WM [2]int
	// Exactly one of Bound, Window and TTL bounds a stream–stream join's
	// state (Bound wins over Window and Window over TTL when several are
	// set; Window and Bound may be combined).
	Bound *JoinBound
	// Window is the size of the tumbling windows of a windowed join: rows
	// match only when both fall in the same window. The output then has
	// window_start and window_end after the input columns.
	Window int64
	// TTL keeps a row joinable until the other input's watermark passes
	// its time + TTL (milliseconds).
	TTL int64
	// Table is -1 for a stream–stream join, or the input (0 or 1) that is a
	// table: its rows are upserts keyed by TableKey (columns of that input;
	// empty: every row is kept), never expire, and produce no output
	// themselves; rows of the other input are looked up as they arrive.
	Table    int
	TableKey []int
	// TableFirst reads the table input to its end before any row of the
	// stream (a bounded table source), so results do not depend on timing.
	TableFirst bool
	// EventTime says the output carries RowWatermarkColumn last.
	EventTime bool
	// Align, when positive, is watermark alignment for a stream–stream
	// join of two event-time inputs: how far (milliseconds of event time)
	// one input's watermark may run ahead of the other's before the join
	// stops reading it (see JoinOp). 0: no alignment. Set it only when
	// the two inputs share no upstream source (see AlignWait).
	Align int64
	// AlignWait is the longest the join keeps the input ahead paused
	// while the input behind does not advance its watermark (wall clock);
	// after that it suspends alignment until the input behind advances,
	// so an idle input (one sending nothing, or only heartbeats) or a
	// stuck one never stops the join. 0: DefaultAlignWait.
	AlignWait time.Duration
	// Schema is the output: visible left columns, visible right columns,
	// [window_start, window_end], [RowWatermarkColumn].
	Schema *arrow.Schema
	// Now is the processing-time clock (nil: time.Now).
	Now func() time.Time
}

// DefaultJoinAlign is the alignment (JoinConfig.Align) the planner gives a
// stream–stream join of two independent event-time inputs: 5 s of event
// time. It does not grow with the join's reach: every millisecond one
// input runs ahead adds that input's rows of that millisecond to the state,
// on top of what the reach requires.
const DefaultJoinAlign int64 = 5000

// DefaultAlignWait is JoinConfig.AlignWait's default: long enough that
// an input behind that is merely slow (a loaded machine, a GC) is not
// taken for a stuck one, which would let the other input run ahead until
// it advances again. An idle input holds the other back at most that long
// each time it goes idle.
const DefaultAlignWait = time.Second

// ErrUnboundedJoin is returned for a stream–stream join configured with no
// time bound, window or TTL: its state would grow without limit.
var ErrUnboundedJoin = errors.New("stream–stream join has no time bound, window or state_ttl")

// JoinOp is a vectorised hash join of two inputs: two streams (interval,
// windowed or TTL join) or a stream and a table.
//
// Rows of both inputs are hashed column at a time into one key dictionary
// (agg.Table group ids); each side keeps, per key, the rows it holds. A
// batch of one side probes the other side's rows at once, producing (probe
// row, held row) pairs; the pairs are checked against the time bound and
// the residual condition (evaluated as one vectorised filter over the
// gathered candidate columns) and the output is materialised with take
// kernels. NULL keys never match.
//
// Stream–stream: a held row stays joinable while the other input's
// watermark has not passed its expiry E (t + Hi for a left row and t - Lo
// for a right row of an interval join, the end of its window minus 1ms for
// a windowed join, t + TTL with a TTL). A pair (l, r) matches when the
// condition holds and, in addition, r's row watermark is at most E(l) and
// l's at most E(r): this holds for every row that is not late and makes the
// result independent of how the two inputs interleave (a late row joins
// exactly the rows that were certainly still held). When the watermark
// passes E the row is dropped; a row of a preserved (outer) side that never
// matched is then emitted once, NULL-padded. Rows with a NULL key, or
// already expired on arrival, are emitted at once if unmatched.
//
// Watermarks: the output watermark is the minimum of the inputs'
// watermarks held back by the join's reach D (max(Hi, -Lo, 0) for an
// interval, size-1 for a window, the TTL): rows emitted later carry a left
// (or right) event time that is never below it, so windows downstream see
// no late rows. It never goes backwards; every output row's
// RowWatermarkColumn is the output watermark as of that row.
//
// Stream–table: table rows are upserts (latest row per primary key); the
// stream side keeps no state; output rows keep the stream row's event time
// and row watermark, and the output watermark is the stream's.
//
// Inputs are read by one goroutine each into one-message channels, and
// the operator takes whichever message is ready (preferring the input with
// the lower watermark when both are), so a self-join whose two inputs are
// fed by one producer through bounded Inlets cannot deadlock. A bounded
// table (TableFirst) is read to its end first.
//
// Watermark alignment (Align > 0, event-time stream–stream joins only):
// rows of the input that is ahead stay in the state until the other
// input's watermark reaches them, so an input that runs faster (a cheaper
// source) would fill the state with everything it read ahead. While input
// s's watermark is more than Align ahead of the other's, and the other has
// not ended and is not held at a barrier, the join reads only the other
// input; the reader of s then blocks, and so, through the bounded channels,
// does s's producer. An input whose watermark is final is never paused (it
// is flushing its end). Alignment never deadlocks the join: if the input
// behind does not advance its watermark for AlignWait, the join reads on
// and does not pause again until it does (it may be idle, or
// blocked behind the paused input when both share an upstream, which is
// why the planner aligns only independent inputs). Alignment changes only
// the interleaving of the two inputs, never the result.
//
// State (held batches and the index) is reserved through Reserver before
// it is retained and returned when rows expire; exceeding the memory limit
// fails the query with an error wrapping resource.ErrMemoryLimit.
//
// Checkpoints (Stateful): a barrier is aligned over the two inputs (see
// inputReaders); once every output derived from input before it has been
// returned, the join saves its state and returns the barrier, with its
// output watermark, before any output derived from later input. A join
// that reads its table first reads the stream before the table's end only
// to align a barrier; those stream messages wait, unprocessed, in a stash
// that is saved with the state and processed after the table's end.
type JoinOp struct {
	alloc        memory.Allocator
	inputReaders // inputs and their reader goroutines
	cfg          JoinConfig
	now          func() time.Time

	vis      [2]int // visible (output) columns of each input
	keyTypes []arrow.DataType
	hold     int64 // watermark holdback D
	resCols  []int // output columns the residual reads
	resExpr  expr.Expr
	resSch   *arrow.Schema
	// slack is how much garbage (dead rows and index entries, and keys of
	// the dictionary) the state may hold beyond twice its live rows before
	// it is rebuilt.
	slack int

	// reading
	done   [2]bool
	eof    bool
	closed bool

	// watermarks
	wm    [2]Watermark // message watermark of each input
	clock [2]int64     // what expires the other side's rows
	out   Watermark    // output watermark

	// state
	dict   *agg.Table // key dictionary shared by both sides
	pkDict *agg.Table // table primary keys
	side   [2]*joinSide
	queue  []Message
	// stash holds the stream's messages (and stashEnd its end) read before
	// the end of a table read first, to align a barrier (see stashing).
	stash    []Message
	stashEnd bool
	resv     int64
	stats    JoinStats

	// watermark alignment
	stalled   [2]bool      // input did not advance for AlignWait while the other was paused
	stalledAt [2]Watermark // its watermark then; alignment resumes when it advances
	waitFrom  time.Time    // since when the input behind has not advanced during a pause
	waitWM    Watermark    // its watermark then
	timer     *time.Timer
}

// JoinStats counts what a JoinOp did.
type JoinStats struct {
	Matched, OuterEmitted, Expired, Rebuilds int64
	// AlignWaits counts the reads that waited for the input behind while
	// the one ahead was paused (watermark alignment); AlignStalls the
	// times the input behind did not advance for AlignWait and alignment
	// was suspended.
	AlignWaits, AlignStalls int64
}

var _ Operator = (*JoinOp)(nil)

// NewJoin returns a join of left and right. It takes ownership of both
// inputs (Close closes them).
func NewJoin(alloc memory.Allocator, left, right Operator, cfg JoinConfig) (*JoinOp, error) {
	j := &JoinOp{alloc: alloc, inputReaders: inputReaders{inputs: [2]Operator{left, right}}, cfg: cfg, now: cfg.Now,
		wm: [2]Watermark{NoWatermark, NoWatermark}, clock: [2]int64{math.MinInt64, math.MinInt64}, out: NoWatermark,
		slack: 1 << 16}
	if j.now == nil {
		j.now = time.Now
	}
	if cfg.AlignWait <= 0 {
		j.cfg.AlignWait = DefaultAlignWait
	}
	if cfg.Table >= 0 || cfg.Time[0] < 0 || cfg.Time[1] < 0 {
		j.cfg.Align = 0 // a table has no watermark to align with; nor has processing time
	}
	if len(cfg.Keys[0]) != len(cfg.Keys[1]) {
		return nil, fmt.Errorf("join: %d left keys and %d right keys", len(cfg.Keys[0]), len(cfg.Keys[1]))
	}
	if len(cfg.Keys[0]) == 0 {
		return nil, fmt.Errorf("join: no equality condition between the two inputs (cross joins are not supported)")
	}
	for i, k := range cfg.Keys[0] {
		if !arrow.TypeEqual(k.Type(), cfg.Keys[1][i].Type()) {
			return nil, fmt.Errorf("join: key %d has types %s and %s", i, k.Type(), cfg.Keys[1][i].Type())
		}
		j.keyTypes = append(j.keyTypes, k.Type())
	}
	if cfg.Window > 0 {
		j.keyTypes = append(j.keyTypes, arrow.PrimitiveTypes.Int64)
	}
	switch {
	case cfg.Table >= 0:
		if cfg.Table > 1 {
			return nil, fmt.Errorf("join: bad table input %d", cfg.Table)
		}
		if cfg.Kind.Preserves(cfg.Table) {
			return nil, fmt.Errorf("join: %s JOIN cannot preserve the rows of a table", cfg.Kind)
		}
	case cfg.Bound != nil:
		if cfg.Bound.Lo > cfg.Bound.Hi {
			return nil, fmt.Errorf("join: empty time bound %s", cfg.Bound)
		}
		j.hold = max(cfg.Bound.Hi, -cfg.Bound.Lo, 0)
	case cfg.Window > 0:
		j.hold = cfg.Window - 1
	case cfg.TTL > 0:
		j.hold = cfg.TTL
	default:
		return nil, ErrUnboundedJoin
	}
	if cfg.Table < 0 && cfg.Bound != nil && cfg.Window > 0 {
		j.hold = min(j.hold, cfg.Window-1)
	}
	for s, in := range j.inputs {
		j.vis[s] = in.Schema().NumFields()
		if cfg.WM[s] >= 0 {
			if cfg.WM[s] != j.vis[s]-1 {
				return nil, fmt.Errorf("join: row-watermark column of input %d must be last", s)
			}
			j.vis[s]--
		}
	}
	want := j.vis[0] + j.vis[1]
	if cfg.Window > 0 {
		want += 2
	}
	if cfg.EventTime {
		want++
	}
	if cfg.Schema == nil || cfg.Schema.NumFields() != want {
		return nil, fmt.Errorf("join: output schema must have %d columns", want)
	}
	if cfg.Residual != nil {
		if cfg.Residual.Type().ID() != arrow.BOOL {
			return nil, fmt.Errorf("join: ON condition %s is not BOOLEAN", cfg.Residual)
		}
		j.resCols = expr.Columns(cfg.Residual)
		m := map[int]int{}
		fields := make([]arrow.Field, len(j.resCols))
		for i, c := range j.resCols {
			m[c] = i
			fields[i] = cfg.Schema.Field(c)
		}
		j.resExpr = expr.Remap(cfg.Residual, m)
		j.resSch = arrow.NewSchema(fields, nil)
	}
	for s := range j.side {
		j.side[s] = &joinSide{expiring: cfg.Table < 0}
	}
	return j, nil
}

// Schema implements Operator.
func (j *JoinOp) Schema() *arrow.Schema { return j.cfg.Schema }

// Stats returns the join's counters. Not safe for concurrent use with Next.
func (j *JoinOp) Stats() JoinStats { return j.stats }

// StateBytes is the memory the join's state holds (and has reserved).
func (j *JoinOp) StateBytes() int64 { return j.stateBytes() }

// Watermark returns the output watermark so far.
func (j *JoinOp) Watermark() Watermark { return j.out }

// String describes the join for explain output.
func (j *JoinOp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Join %s", j.cfg.Kind)
	if j.cfg.Bound != nil {
		fmt.Fprintf(&b, " %s", j.cfg.Bound)
	}
	if j.cfg.Window > 0 {
		fmt.Fprintf(&b, " window %s", kernels.FormatInterval(j.cfg.Window))
	}
	if j.cfg.TTL > 0 {
		fmt.Fprintf(&b, " state_ttl %s", kernels.FormatInterval(j.cfg.TTL))
	}
	return b.String()
}

// Open implements Operator: it opens both inputs. No goroutine starts
// before the first Next.
func (j *JoinOp) Open(ctx context.Context) error {
	return j.openInputs(ctx)
}

// Close implements Operator: it stops the input readers, releases every
// held batch and queued or stashed message, returns the reservation and closes both
// inputs. It is idempotent.
func (j *JoinOp) Close() error {
	if j.closed {
		return nil
	}
	j.closed = true
	j.stopReaders()
	if j.timer != nil {
		j.timer.Stop()
	}
	for _, m := range j.queue {
		m.Release()
	}
	j.queue = nil
	for _, m := range j.stash {
		m.Release()
	}
	j.stash = nil
	for _, sd := range j.side {
		sd.releaseAll()
	}
	if j.dict != nil {
		j.dict.Release()
		j.dict = nil
	}
	if j.pkDict != nil {
		j.pkDict.Release()
		j.pkDict = nil
	}
	if r, ok := j.alloc.(Reserver); ok && j.resv > 0 {
		r.Unreserve(j.resv)
	}
	j.resv = 0
	return j.closeInputs()
}

// receive returns the next item to process: a stashed item of the stream
// once the table it waited for has ended (fromStash), else the next item
// of whichever readable input has one ready, preferring the input that is
// further behind (or a table's updates).
func (j *JoinOp) receive(ctx context.Context) (s int, it joinItem, fromStash bool, err error) {
	if st := 1 - j.cfg.Table; j.cfg.Table >= 0 && !j.stashing(st) && (len(j.stash) > 0 || j.stashEnd) {
		if len(j.stash) == 0 {
			j.stashEnd = false
			return st, joinItem{err: io.EOF}, true, nil
		}
		it.msg = j.stash[0]
		j.stash[0] = Message{}
		j.stash = j.stash[1:]
		return st, it, true, nil
	}
	var ch [2]chan joinItem
	for x := range ch {
		if !j.ended[x] && j.readable(x) {
			ch[x] = j.ch[x]
		}
	}
	if t := j.cfg.Table; t >= 0 && j.cfg.TableFirst && ch[t] != nil {
		ch[1-t] = nil // the table first, unless it waits at a barrier
	}
	pref := 0
	switch {
	case j.cfg.Table >= 0:
		pref = j.cfg.Table
	case j.wm[1] < j.wm[0]:
		pref = 1
	}
	if a := 1 - pref; ch[a] != nil && j.paused(a) {
		j.stats.AlignWaits++
		if it, ok := j.awaitBehind(ctx, pref); ok {
			return pref, it, false, nil
		}
	} else {
		j.waitFrom = time.Time{} // no pause: the next one starts afresh
	}
	select {
	case it := <-ch[pref]:
		return pref, it, false, nil
	default:
	}
	select {
	case it := <-ch[0]:
		return 0, it, false, nil
	case it := <-ch[1]:
		return 1, it, false, nil
	case <-ctx.Done():
		return 0, joinItem{}, false, ctx.Err()
	}
}

// paused reports whether watermark alignment keeps the join from reading
// input s: its watermark is more than Align ahead of the other input's,
// which can still catch up (it has not ended, is not held at a barrier
// and has not stalled).
func (j *JoinOp) paused(s int) bool {
	o := 1 - s
	if j.cfg.Align <= 0 || j.ended[o] || !j.readable(o) || j.stalled[o] {
		return false
	}
	ws, wo := j.wm[s], j.wm[o]
	if ws == FinalWatermark || ws == NoWatermark {
		return false
	}
	return wo == NoWatermark || ws-wo > j.cfg.Align
}

// awaitBehind waits for the next item of input o, the one behind, while
// o's watermark has advanced within AlignWait. It reports false when o
// has not advanced for that long (or ctx ended): o is then stalled and
// alignment suspended until o's watermark advances.
func (j *JoinOp) awaitBehind(ctx context.Context, o int) (joinItem, bool) {
	select { // ready already: no clock
	case it := <-j.ch[o]:
		return it, true
	default:
	}
	now := time.Now()
	if j.waitFrom.IsZero() || j.wm[o] != j.waitWM {
		j.waitFrom, j.waitWM = now, j.wm[o]
	}
	left := j.cfg.AlignWait - now.Sub(j.waitFrom)
	if left <= 0 {
		j.stall(o)
		return joinItem{}, false
	}
	if j.timer == nil {
		j.timer = time.NewTimer(left)
	} else {
		j.timer.Reset(left)
	}
	defer j.timer.Stop()
	select {
	case it := <-j.ch[o]:
		return it, true
	case <-j.timer.C:
		j.stall(o)
		return joinItem{}, false
	case <-ctx.Done():
		return joinItem{}, false
	}
}

// stall suspends alignment with input o until its watermark advances.
func (j *JoinOp) stall(o int) {
	j.stats.AlignStalls++
	j.stalled[o], j.stalledAt[o] = true, j.wm[o]
	j.waitFrom = time.Time{}
}

// stashing reports whether items of input s wait in the stash: the stream
// of a join that reads its table first is read before the table's end
// only to align a checkpoint barrier, and what it reads then waits.
func (j *JoinOp) stashing(s int) bool {
	t := j.cfg.Table
	return t >= 0 && j.cfg.TableFirst && s != t && !j.done[t]
}

// stashItem keeps an item of the stream until the table has ended (a
// barrier as its watermark only). It takes ownership of the message.
func (j *JoinOp) stashItem(it joinItem) error {
	switch {
	case errors.Is(it.err, io.EOF):
		j.stashEnd = true
		return nil
	case it.err != nil:
		return it.err
	}
	it.msg.Barrier = nil
	j.stash = append(j.stash, it.msg)
	return j.account()
}

// Next implements Operator. A checkpoint barrier is aligned over both
// inputs (see Stateful and inputReaders); the join saves its state when
// the barrier message is returned, after every output derived from input
// before the barrier, and returns it with the output watermark.
func (j *JoinOp) Next(ctx context.Context) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	for len(j.queue) == 0 {
		if j.eof {
			return Message{}, io.EOF
		}
		if j.cancel == nil {
			j.start(ctx)
		}
		s, it, fromStash, err := j.receive(ctx)
		if err != nil {
			return Message{}, err
		}
		if fromStash {
			err = j.take(s, it)
		} else {
			if j.stashing(s) {
				err = j.stashItem(it)
			} else {
				err = j.take(s, it)
			}
			if err == nil {
				var b *Barrier
				if b, err = j.note(s, it); b != nil {
					j.queue = append(j.queue, Message{Barrier: b})
				}
			}
		}
		if err != nil {
			return Message{}, fmt.Errorf("join: %w", err)
		}
	}
	m := j.queue[0]
	j.queue[0] = Message{}
	j.queue = j.queue[1:]
	if m.Barrier != nil {
		if err := m.Barrier.Save(j); err != nil {
			return Message{}, fmt.Errorf("join: %w", err)
		}
		m.Watermark = j.out
	}
	return m, nil
}

// take processes one item of input s: a message (a barrier's watermark
// included), or the end of the input.
func (j *JoinOp) take(s int, it joinItem) error {
	if it.err == nil {
		return j.consume(s, it.msg)
	}
	if !errors.Is(it.err, io.EOF) {
		return it.err
	}
	j.done[s] = true
	if err := j.consume(s, Message{Watermark: FinalWatermark}); err != nil {
		return err
	}
	stream := 1 - j.cfg.Table
	if (j.done[0] && j.done[1]) || (j.cfg.Table >= 0 && s == stream) {
		j.eof = true
		if j.out != FinalWatermark {
			j.out = FinalWatermark
			j.queue = append(j.queue, Message{Watermark: FinalWatermark})
		}
	}
	return nil
}

// consume processes one message of input s and releases it.
func (j *JoinOp) consume(s int, msg Message) error {
	defer msg.Release()
	mark := len(j.queue)
	before := j.out
	if msg.Batch != nil && msg.Batch.NumRows() > 0 {
		var err error
		if s == j.cfg.Table {
			err = j.upsert(msg.Batch)
		} else {
			err = j.probe(s, msg.Batch)
		}
		if err != nil {
			return err
		}
	}
	if err := j.advance(s, msg.Watermark); err != nil {
		return err
	}
	if err := j.maintain(); err != nil {
		return err
	}
	j.updateOut()
	switch {
	case len(j.queue) > mark:
		j.queue[len(j.queue)-1].Watermark = j.out
	case j.out > before:
		j.queue = append(j.queue, Message{Watermark: j.out})
	}
	return nil
}

// updateOut moves the output watermark: the stream's for a stream–table
// join, else the inputs' minimum held back by the join's reach.
func (j *JoinOp) updateOut() {
	var w Watermark
	if j.cfg.Table >= 0 {
		w = j.wm[1-j.cfg.Table]
	} else {
		m := min(j.wm[0], j.wm[1])
		switch {
		case m == FinalWatermark || m == NoWatermark:
			w = m
		case m < math.MinInt64+j.hold+1:
			w = NoWatermark
		default:
			w = m - j.hold
		}
	}
	if w > j.out {
		j.out = w
	}
}

func (j *JoinOp) nowMS() int64 { return j.now().UnixMilli() }

// advance records input s's watermark and expires the other side's rows
// that can no longer match.
func (j *JoinOp) advance(s int, w Watermark) error {
	if w > j.wm[s] {
		j.wm[s] = w
	}
	if j.stalled[s] && j.wm[s] > j.stalledAt[s] {
		j.stalled[s] = false // it moves again: align with it
	}
	if j.cfg.Table >= 0 {
		return nil
	}
	now := int64(math.MinInt64)
	for x := range j.clock {
		c := j.wm[x]
		// A processing-time input's clock is the wall clock until the
		// input has ended: a final watermark on a message does not stop
		// it (a window aggregate flushing at the end sends several
		// batches with it), only the end of the input does.
		if j.cfg.Time[x] < 0 && !j.done[x] {
			if now == math.MinInt64 {
				now = j.nowMS()
			}
			c = now
			if j.wm[x] != FinalWatermark {
				c = max(j.wm[x], now)
			}
		}
		if c > j.clock[x] {
			j.clock[x] = c
			if err := j.expire(1-x, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowTimes returns each row's time and row watermark: the event-time and
// row-watermark columns, or, for processing time, the arrival time and the
// input's clock.
func (j *JoinOp) rowTimes(s int, batch arrow.RecordBatch) (t, wm []int64) {
	n := int(batch.NumRows())
	t = make([]int64, n)
	wm = make([]int64, n)
	if c := j.cfg.Time[s]; c >= 0 {
		copy(t, kernels.Values[int64](batch.Column(c)))
	} else {
		now := j.nowMS()
		for i := range t {
			t[i] = now
		}
	}
	if c := j.cfg.WM[s]; c >= 0 && j.cfg.Time[s] >= 0 {
		copy(wm, kernels.Values[int64](batch.Column(c)))
	} else {
		w := j.clock[s]
		if j.cfg.Time[s] >= 0 {
			w = j.wm[s]
		} else if len(t) > 0 {
			// Processing time: a row is never late. An input that sent
			// several batches with the final watermark (a window
			// aggregate flushing at the end) must not have its last rows
			// judged against +inf.
			w = min(w, t[0])
		}
		for i := range wm {
			wm[i] = w
		}
	}
	return t, wm
}

// expiry is the largest time of the other input a row of side s at time t
// can still match.
func (j *JoinOp) expiry(s int, t int64) int64 {
	switch {
	case j.cfg.Table >= 0:
		return math.MaxInt64
	case j.cfg.Bound != nil:
		e := satAdd(t, j.cfg.Bound.Hi)
		if s == 1 {
			e = satAdd(t, -j.cfg.Bound.Lo)
		}
		if j.cfg.Window > 0 {
			e = min(e, windowStart(t, j.cfg.Window)+j.cfg.Window-1)
		}
		return e
	case j.cfg.Window > 0:
		return windowStart(t, j.cfg.Window) + j.cfg.Window - 1
	}
	return satAdd(t, j.cfg.TTL)
}

func windowStart(t, size int64) int64 { return kernels.FloorDiv(t, size) * size }

func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// pairOK reports whether probe row p (of side s) and held row q (of the
// other side) may match by time: the interval bound and the rule that each
// row's watermark had not passed the other's expiry.
func (j *JoinOp) pairOK(s int, tp, wp, ep, tq, wq, eq int64) bool {
	if j.cfg.Table >= 0 {
		return true
	}
	tl, wl, el, tr, wr, er := tp, wp, ep, tq, wq, eq
	if s == 1 {
		tl, wl, el, tr, wr, er = tq, wq, eq, tp, wp, ep
	}
	if b := j.cfg.Bound; b != nil {
		if d := tr - tl; d < b.Lo || d > b.Hi {
			return false
		}
	}
	return wr <= el && wl <= er
}

// evalKeys evaluates input s's join keys over batch (and the window start
// of each row of a windowed join). The caller releases the arrays.
func (j *JoinOp) evalKeys(s int, batch arrow.RecordBatch, t []int64) ([]arrow.Array, error) {
	ec := &expr.Context{Alloc: j.alloc, Now: j.now()}
	keys := make([]arrow.Array, 0, len(j.keyTypes))
	for _, k := range j.cfg.Keys[s] {
		a, err := k.Eval(ec, batch)
		if err != nil {
			releaseJoinArrays(keys)
			return nil, fmt.Errorf("join key %s: %w", k, err)
		}
		keys = append(keys, a)
	}
	if j.cfg.Window > 0 && j.cfg.Table < 0 {
		b := array.NewInt64Builder(j.alloc)
		b.Reserve(len(t))
		for _, v := range t {
			b.UnsafeAppend(windowStart(v, j.cfg.Window))
		}
		keys = append(keys, b.NewArray())
		b.Release()
	}
	return keys, nil
}

func releaseJoinArrays(arrs []arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}

// validRows returns the rows whose keys are all non-NULL, and whether that
// is every row.
func validRows(keys []arrow.Array, n int) ([]int32, bool) {
	nulls := false
	for _, k := range keys {
		nulls = nulls || k.NullN() > 0
	}
	sel := make([]int32, 0, n)
	for i := 0; i < n; i++ {
		ok := true
		if nulls {
			for _, k := range keys {
				if k.IsNull(i) {
					ok = false
					break
				}
			}
		}
		if ok {
			sel = append(sel, int32(i))
		}
	}
	return sel, len(sel) == n
}

// keyIDs looks up (adding as needed) the key ids of rows sel of keys.
func (j *JoinOp) keyIDs(keys []arrow.Array, sel []int32, all bool) ([]uint32, error) {
	if j.dict == nil {
		d, err := agg.NewTable(j.alloc, j.keyTypes, nil)
		if err != nil {
			return nil, err
		}
		j.dict = d
	}
	ids := make([]uint32, len(sel))
	if len(sel) == 0 {
		return ids, nil
	}
	s := sel
	if all {
		s = nil
	}
	if err := j.dict.Update(keys, nil, s, ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// probe joins a batch of stream input s with the other side's rows,
// emits the matches (and unmatched preserved rows that will not be held)
// and holds the batch's rows that may still match later rows.
func (j *JoinOp) probe(s int, batch arrow.RecordBatch) error {
	o := 1 - s
	n := int(batch.NumRows())
	t, rw := j.rowTimes(s, batch)
	keys, err := j.evalKeys(s, batch, t)
	if err != nil {
		return err
	}
	defer releaseJoinArrays(keys)
	sel, all := validRows(keys, n)
	ids, err := j.keyIDs(keys, sel, all)
	if err != nil {
		return err
	}
	exp := make([]int64, n)
	for i, v := range t {
		exp[i] = j.expiry(s, v)
	}

	// candidate pairs
	od := j.side[o]
	var pi []int32
	var refs []joinRow
	for k, r := range sel {
		kid := ids[k]
		if int(kid) >= len(od.lists) {
			continue
		}
		lst := od.lists[kid]
		w := 0
		for _, e := range lst {
			if od.expiring {
				// a stream row is live until the clock passes its expiry
				if e.exp < j.clock[s] {
					od.refs--
					continue
				}
				lst[w] = e
				w++
				if bd := j.cfg.Bound; bd != nil {
					d := e.t - t[r]
					if s == 1 {
						d = -d
					}
					if d < bd.Lo || d > bd.Hi {
						continue
					}
				}
				b, row := od.lookup(e.ref)
				if j.pairOK(s, t[r], rw[r], exp[r], e.t, b.wm[row], e.exp) {
					pi = append(pi, r)
					refs = append(refs, e.ref)
				}
				continue
			}
			b, row := od.lookup(e.ref)
			if b == nil || b.state[row]&rowLive == 0 {
				od.refs--
				continue
			}
			lst[w] = e
			w++
			pi = append(pi, r)
			refs = append(refs, e.ref)
		}
		od.lists[kid] = lst[:w]
	}
	if len(pi) > 0 && j.resExpr != nil {
		if pi, refs, err = j.residual(s, batch, pi, refs); err != nil {
			return err
		}
	}
	matched := make([]bool, n)
	for k, r := range pi {
		matched[r] = true
		if j.cfg.Kind.Preserves(o) {
			b, row := od.lookup(refs[k])
			b.state[row] |= rowMatched
		}
	}
	j.stats.Matched += int64(len(pi))

	// rows to hold: valid keys, not expired for the other side
	hold := make([]bool, n)
	nh := 0
	if j.cfg.Table < 0 {
		for _, r := range sel {
			if exp[r] >= j.clock[o] {
				hold[r] = true
				nh++
			}
		}
	}

	// output in probe-row order: pairs, and unmatched preserved rows
	// that are not held (they can never match)
	var outI []int32
	var outR []joinRow
	if j.cfg.Kind.Preserves(s) {
		k := 0
		for r := 0; r < n; r++ {
			for ; k < len(pi) && int(pi[k]) == r; k++ {
				outI = append(outI, pi[k])
				outR = append(outR, refs[k])
			}
			if !matched[r] && !hold[r] {
				outI = append(outI, int32(r))
				outR = append(outR, noRow)
				j.stats.OuterEmitted++
			}
		}
	} else {
		outI, outR = pi, refs
	}
	if len(outI) > 0 {
		times := make([]int64, len(outI))
		wms := make([]int64, len(outI))
		for k, r := range outI {
			times[k] = t[r]
			wms[k] = j.out
			if j.cfg.Table >= 0 {
				wms[k] = rw[r]
			}
		}
		var spec outSpec
		spec.batch[s], spec.idx[s], spec.refs[o] = batch, outI, outR
		spec.n, spec.times, spec.wms = len(outI), times, wms
		if err := j.emit(spec); err != nil {
			return err
		}
	}
	if nh == 0 {
		return nil
	}

	// hold
	sd := j.side[s]
	bytes := recordBytes(batch) + int64(n)*rowMetaBytes
	if err := j.reserve(bytes); err != nil {
		return err
	}
	batch.Retain()
	b := &storedBatch{rec: batch, t: t, wm: rw, exp: exp, state: make([]uint8, n), bytes: bytes}
	sd.add(b)
	for k, r := range sel {
		if !hold[r] {
			continue
		}
		b.state[r] = rowLive
		if matched[r] {
			b.state[r] |= rowMatched
		}
		b.order = append(b.order, r)
		sd.link(ids[k], b, r)
	}
	b.live = nh
	sd.live += nh
	sd.deadHeld += n - nh
	b.bounds()
	sd.push(b)
	return nil
}

// residual keeps the candidate pairs for which the residual condition is
// TRUE.
func (j *JoinOp) residual(s int, batch arrow.RecordBatch, pi []int32, refs []joinRow) ([]int32, []joinRow, error) {
	var spec outSpec
	spec.batch[s], spec.idx[s], spec.refs[1-s] = batch, pi, refs
	spec.n = len(pi)
	cols, err := j.gather(spec, j.resCols)
	if err != nil {
		return nil, nil, err
	}
	rb := array.NewRecordBatch(j.resSch, cols, int64(len(pi)))
	releaseJoinArrays(cols)
	defer rb.Release()
	mask, err := j.resExpr.Eval(&expr.Context{Alloc: j.alloc, Now: j.now()}, rb)
	if err != nil {
		return nil, nil, fmt.Errorf("ON condition %s: %w", j.cfg.Residual, err)
	}
	defer mask.Release()
	keep := kernels.Selection(mask.(*array.Boolean), nil)
	if len(keep) == len(pi) {
		return pi, refs, nil
	}
	npi := make([]int32, len(keep))
	nrefs := make([]joinRow, len(keep))
	for i, k := range keep {
		npi[i], nrefs[i] = pi[k], refs[k]
	}
	return npi, nrefs, nil
}

// upsert adds a batch of the table input: each row replaces the row of
// its primary key.
func (j *JoinOp) upsert(batch arrow.RecordBatch) error {
	s := j.cfg.Table
	sd := j.side[s]
	n := int(batch.NumRows())
	keys, err := j.evalKeys(s, batch, nil)
	if err != nil {
		return err
	}
	defer releaseJoinArrays(keys)
	sel, all := validRows(keys, n)
	ids, err := j.keyIDs(keys, sel, all)
	if err != nil {
		return err
	}
	pks, err := j.pkIDs(batch)
	if err != nil {
		return err
	}
	bytes := recordBytes(batch) + int64(n)*rowMetaBytes
	if err := j.reserve(bytes); err != nil {
		return err
	}
	batch.Retain()
	b := &storedBatch{rec: batch, t: make([]int64, n), wm: make([]int64, n), exp: make([]int64, n), state: make([]uint8, n), bytes: bytes}
	sd.add(b)
	for r := range b.state {
		b.state[r] = rowLive
		b.exp[r] = math.MaxInt64
	}
	b.live = n
	sd.live += n
	for r, pk := range pks {
		for int(pk) >= len(sd.cur) {
			sd.cur = append(sd.cur, noRow)
		}
		if old := sd.cur[pk]; old != noRow {
			sd.kill(old)
		}
		sd.cur[pk] = b.ref(int32(r))
	}
	for k, r := range sel {
		if b.state[r]&rowLive != 0 {
			sd.link(ids[k], b, r)
		}
	}
	sd.releaseDead()
	return nil
}

// pkIDs returns the primary-key id of every row of a table batch (nil
// without a primary key).
func (j *JoinOp) pkIDs(batch arrow.RecordBatch) ([]uint32, error) {
	if len(j.cfg.TableKey) == 0 {
		return nil, nil
	}
	cols := make([]arrow.Array, len(j.cfg.TableKey))
	types := make([]arrow.DataType, len(j.cfg.TableKey))
	for i, c := range j.cfg.TableKey {
		cols[i] = batch.Column(c)
		types[i] = cols[i].DataType()
	}
	if j.pkDict == nil {
		d, err := agg.NewTable(j.alloc, types, nil)
		if err != nil {
			return nil, err
		}
		j.pkDict = d
	}
	ids := make([]uint32, batch.NumRows())
	if err := j.pkDict.Update(cols, nil, nil, ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// expire drops the rows of side o that the other input's clock c has
// passed, emitting the unmatched ones of a preserved side.
func (j *JoinOp) expire(o int, c int64) error {
	sd := j.side[o]
	var out []joinRow
	var times []int64
	preserved := j.cfg.Kind.Preserves(o)
	final := c == FinalWatermark
	for len(sd.heap) > 0 && (final || sd.heap[0].head() < c) {
		b := sd.heap[0]
		b.expireTo(c, final, func(r int32) {
			if b.state[r]&rowLive == 0 {
				return
			}
			b.state[r] &^= rowLive
			b.live--
			sd.live--
			sd.deadHeld++
			j.stats.Expired++
			if preserved && b.state[r]&rowMatched == 0 {
				out = append(out, b.ref(r))
				times = append(times, b.t[r])
			}
		})
		if b.next == len(b.order) {
			sd.popHeap()
		} else {
			sd.fixHeap()
		}
	}
	if len(out) > 0 {
		wms := make([]int64, len(out))
		for i := range wms {
			wms[i] = j.out
		}
		var spec outSpec
		spec.refs[o] = out
		spec.n, spec.times, spec.wms = len(out), times, wms
		j.stats.OuterEmitted += int64(len(out))
		if err := j.emit(spec); err != nil {
			return err
		}
	}
	sd.releaseDead()
	return nil
}

// reserve reserves n more bytes before state is retained.
func (j *JoinOp) reserve(n int64) error {
	r, ok := j.alloc.(Reserver)
	if !ok {
		return nil
	}
	if err := r.Reserve(n); err != nil {
		return fmt.Errorf("join state of %d bytes: %w", j.resv+n, err)
	}
	j.resv += n
	return nil
}

// stateBytes is the memory the state holds: held batches and their row
// metadata, the per-key row lists, the key dictionaries and the stash.
func (j *JoinOp) stateBytes() int64 {
	var n int64
	for _, sd := range j.side {
		n += sd.bytes + sd.indexBytes()
	}
	if j.dict != nil {
		n += j.dict.StateBytes()
	}
	if j.pkDict != nil {
		n += j.pkDict.StateBytes()
	}
	for _, m := range j.stash {
		if m.Batch != nil {
			n += recordBytes(m.Batch)
		}
	}
	return n
}

// maintain rebuilds the state when garbage dominates it, and settles the
// reservation with what the state holds.
func (j *JoinOp) maintain() error {
	live := j.side[0].live + j.side[1].live
	garbage := j.side[0].deadHeld + j.side[1].deadHeld + (j.side[0].refs + j.side[1].refs - live)
	dictLen := 0
	if j.dict != nil {
		dictLen = j.dict.Len()
	}
	switch {
	case live == 0 && (dictLen > 0 || j.side[0].held() || j.side[1].held() || j.pkDict != nil):
		j.reset()
	case garbage > 2*live+j.slack || dictLen > 2*live+j.slack:
		if err := j.rebuild(); err != nil {
			return err
		}
	}
	return j.account()
}

// account reserves or returns the difference between the state's size
// and the reservation.
func (j *JoinOp) account() error {
	r, ok := j.alloc.(Reserver)
	if !ok {
		return nil
	}
	bytes := j.stateBytes()
	switch delta := bytes - j.resv; {
	case delta > 0:
		if err := r.Reserve(delta); err != nil {
			return fmt.Errorf("join state of %d bytes: %w", bytes, err)
		}
	case delta < 0:
		r.Unreserve(-delta)
	}
	j.resv = bytes
	return nil
}

// reset drops all state of an empty join (no live rows).
func (j *JoinOp) reset() {
	for _, sd := range j.side {
		sd.releaseAll()
	}
	if j.dict != nil {
		j.dict.Release()
		j.dict = nil
	}
	if j.pkDict != nil {
		j.pkDict.Release()
		j.pkDict = nil
	}
}
