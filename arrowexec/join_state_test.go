package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// Checkpoint tests of the two-input operators. Each case materialises the
// messages of both inputs, then
//   - C runs them uninterrupted, without a barrier;
//   - A runs them with one barrier inserted after message k[s] of input s
//     (none when k[s] is past the input's end), capturing its state at the
//     barrier through RoundTrip;
//   - B, a fresh operator, loads that state and runs only the messages
//     after the barrier.
//
// A's whole output must equal C's, A's output after its barrier must equal
// B's, A must return exactly one barrier, with its output watermark, no
// output before the barrier may come from an input row after it, and B,
// saving its state right after loading it, must save what A saved.

// materialize reads op to its end.
func materialize(t *testing.T, op Operator) []Message {
	t.Helper()
	var out []Message
	for {
		m, err := op.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

// withBarrier returns msgs with a barrier message after the first k (no
// barrier when k > len(msgs)), carrying the watermark before it.
func withBarrier(msgs []Message, k int, b *Barrier) []Message {
	if k > len(msgs) {
		return msgs
	}
	wm := NoWatermark
	for _, m := range msgs[:k] {
		wm = max(wm, m.Watermark)
	}
	out := append(slices.Clone(msgs[:k]), Message{Watermark: wm, Barrier: b})
	return append(out, msgs[k:]...)
}

// stateCase is one operator configuration over materialised inputs.
type stateCase struct {
	schema [2]*arrow.Schema
	in     [2][]Message
	build  func(alloc memory.Allocator, left, right Operator) (Stateful, error)
	// format renders output row i; origin gives the input row (its v, or
	// its index for a table row) each side contributed, -1 for none.
	format func(b arrow.RecordBatch, i int) string
	origin func(b arrow.RecordBatch, i int) [2]int64
	// ordered: the output order is deterministic and compared as is.
	ordered bool
}

// firstRow returns the v of the first row input s sends after message k
// (math.MaxInt64 when none).
func (c *stateCase) firstRow(s, k int) int64 {
	n := int64(0)
	for _, m := range c.in[s][:min(k, len(c.in[s]))] {
		n += m.Rows()
	}
	return n
}

// run is one operator's output: rows before and after its barrier.
type runOutput struct {
	before, after []string
	barriers      int
	barrierWM     Watermark
}

// runOp opens, drains and closes op, checking the watermark contract and
// that every row before the barrier comes from input rows before it
// (limit[s]: the first input row of s after the barrier).
func (c *stateCase) runOp(t *testing.T, op Operator, alloc *resource.Allocator, limit [2]int64) runOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	out := runOutput{barrierWM: NoWatermark}
	last := NoWatermark
	for {
		msg, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.Watermark < last {
			t.Fatalf("watermark went back from %d to %d", last, msg.Watermark)
		}
		last = msg.Watermark
		if msg.Barrier != nil {
			if msg.Batch != nil {
				t.Fatal("a barrier message with a batch")
			}
			out.barriers++
			out.barrierWM = msg.Watermark
		}
		if b := msg.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				row := c.format(b, i)
				if out.barriers > 0 {
					out.after = append(out.after, row)
					continue
				}
				for s, v := range c.origin(b, i) {
					if v >= limit[s] {
						t.Fatalf("row %s before the barrier comes from row %d of input %d, after the barrier (at row %d)", row, v, s, limit[s])
					}
				}
				out.before = append(out.before, row)
			}
		}
		msg.Release()
	}
	if last != FinalWatermark {
		t.Fatalf("ended at watermark %d", last)
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	if alloc.Reserved() != 0 {
		t.Fatalf("%d bytes still reserved", alloc.Reserved())
	}
	if !c.ordered {
		slices.Sort(out.before)
		slices.Sort(out.after)
	}
	return out
}

// check runs C, A and B with the barrier after messages k of the inputs.
func (c *stateCase) check(t *testing.T, mem memory.Allocator, k [2]int) {
	t.Helper()
	rm := resource.NewManager(mem, 0)
	newOp := func(alloc memory.Allocator, in [2][]Message) Stateful {
		op, err := c.build(alloc, &replaySource{schema: c.schema[0], msgs: in[0]}, &replaySource{schema: c.schema[1], msgs: in[1]})
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	none := [2]int64{1 << 62, 1 << 62}

	allocC := rm.Query("c")
	plain := c.runOp(t, newOp(allocC, c.in), allocC, none)

	var saved *StateReader
	var savedBy Stateful
	b := NewBarrier(1, func(op Stateful, w *StateWriter) error {
		r, err := RoundTrip(mem, w)
		saved, savedBy = r, op
		return err
	})
	allocA := rm.Query("a")
	opA := newOp(allocA, [2][]Message{withBarrier(c.in[0], k[0], b), withBarrier(c.in[1], k[1], b)})
	limit := [2]int64{c.firstRow(0, k[0]), c.firstRow(1, k[1])}
	for s := range limit {
		if k[s] > len(c.in[s]) {
			limit[s] = 1 << 62 // no barrier on s: it ended before
		}
	}
	a := c.runOp(t, opA, allocA, limit)
	if a.barriers != 1 || saved == nil || savedBy != opA {
		t.Fatalf("%d barriers returned, state saved: %v", a.barriers, saved != nil)
	}
	defer saved.Release()
	all := append(slices.Clone(a.before), a.after...)
	if !c.ordered {
		slices.Sort(all)
	}
	if !slices.Equal(all, plain.before) {
		t.Fatalf("with a barrier: %d rows, without: %d\n%s", len(all), len(plain.before), diffRows(all, plain.before))
	}

	allocB := rm.Query("b")
	var rest [2][]Message
	for s := range rest {
		rest[s] = c.in[s][min(k[s], len(c.in[s])):]
	}
	opB := newOp(allocB, rest)
	if err := opB.LoadState(saved); err != nil {
		t.Fatal(err)
	}
	if w := watermarkOf(opB); w != a.barrierWM {
		t.Fatalf("restored output watermark %d, the barrier's %d", w, a.barrierWM)
	}
	w := &StateWriter{}
	if err := opB.SaveState(w); err != nil {
		t.Fatal(err)
	}
	again, err := RoundTrip(mem, w)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, saved, again)
	again.Release()
	got := c.runOp(t, opB, allocB, none)
	if !slices.Equal(got.before, a.after) {
		t.Fatalf("restored: %d rows, uninterrupted after the barrier: %d\n%s", len(got.before), len(a.after), diffRows(got.before, a.after))
	}
}

// sameState checks that two saved states are equal: values, and tables
// batch by batch.
func sameState(t *testing.T, want, got *StateReader) {
	t.Helper()
	if !maps.Equal(want.values, got.values) {
		t.Fatalf("state saved again after loading has values %v, want %v", got.values, want.values)
	}
	if len(want.tables) != len(got.tables) {
		t.Fatalf("state saved again after loading has %d tables, want %d", len(got.tables), len(want.tables))
	}
	for name, wb := range want.tables {
		gb := got.tables[name]
		if len(gb) != len(wb) {
			t.Fatalf("table %s saved again has %d batches, want %d", name, len(gb), len(wb))
		}
		for i := range wb {
			if !array.RecordEqual(wb[i], gb[i]) {
				t.Fatalf("table %s batch %d saved again differs:\n%v\nwant\n%v", name, i, gb[i], wb[i])
			}
		}
	}
}

// watermarkOf is a restored operator's output watermark.
func watermarkOf(op Stateful) Watermark {
	switch x := op.(type) {
	case *JoinOp:
		return x.out
	case *SubqueryJoinOp:
		return x.out
	}
	return NoWatermark
}

// barrierPoints picks where the barrier goes in each input: anywhere from
// before the first message to after the end (no barrier on that input),
// at least one input getting it.
func barrierPoints(r *rand.Rand, c *stateCase) [2]int {
	var k [2]int
	for s := range k {
		k[s] = r.IntN(len(c.in[s]) + 2)
	}
	if k[0] > len(c.in[0]) && k[1] > len(c.in[1]) {
		k[0] = r.IntN(len(c.in[0]) + 1)
	}
	return k
}

func releaseMessages(msgs []Message) {
	for _, m := range msgs {
		m.Release()
	}
}

func joinOrigin(b arrow.RecordBatch, i int) [2]int64 {
	o := [2]int64{-1, -1}
	for s, c := range []int{1, 4} {
		if !b.Column(c).IsNull(i) {
			o[s] = b.Column(c).(*array.Int64).Value(i)
		}
	}
	return o
}

// formatVisible renders the first n columns of row i.
func formatVisible(n int) func(b arrow.RecordBatch, i int) string {
	return func(b arrow.RecordBatch, i int) string {
		parts := make([]string, n)
		for c := range parts {
			parts[c] = cell(b.Column(c), i)
		}
		return strings.Join(parts, ",")
	}
}

// TestJoinStateRestore: interval (INNER, LEFT, FULL, with a residual),
// windowed and TTL joins at several seeds and batch sizes, the barrier at
// random points of both inputs. The row-watermark column is left out of
// the comparison: padded rows carry the output watermark at their
// emission, which depends on how the inputs interleave.
func TestJoinStateRestore(t *testing.T) {
	cases := []joinCase{
		{kind: InnerJoin, bound: &JoinBound{Lo: -50, Hi: 80}},
		{kind: LeftJoin, bound: &JoinBound{Lo: -50, Hi: 80}},
		{kind: FullJoin, bound: &JoinBound{Lo: 0, Hi: 100}, residual: true},
		{kind: FullJoin, window: 200},
		{kind: LeftJoin, ttl: 120},
	}
	for ci, jc := range cases {
		for _, maxBatch := range []int{1, 3, 16} {
			for seed := range uint64(3) {
				t.Run(fmt.Sprintf("%s_%d_b%d_s%d", jc.kind, ci, maxBatch, seed), func(t *testing.T) {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer mem.AssertSize(t, 0)
					r := rand.New(rand.NewPCG(seed, uint64(ci*10+maxBatch)))
					delay := int64(30)
					c := &stateCase{
						schema: [2]*arrow.Schema{joinTestSchema, joinTestSchema},
						build: func(alloc memory.Allocator, l, rt Operator) (Stateful, error) {
							return NewJoin(alloc, l, rt, jc.config(t))
						},
						format: formatVisible(joinSchemaFor(jc.window > 0, false).NumFields()),
						origin: joinOrigin,
					}
					for s := range c.in {
						rows := genJoinRows(r, 60+r.IntN(80), delay, true)
						c.in[s] = materialize(t, &msgSource{alloc: mem, rows: rows, delay: delay, r: rand.New(rand.NewPCG(seed, uint64(s))), maxBatch: maxBatch})
						defer releaseMessages(c.in[s])
					}
					c.check(t, mem, barrierPoints(r, c))
				})
			}
		}
	}
}

// TestStreamTableJoinStateRestore: a stream–table join whose bounded table
// is read first; the table rows are upserts (names "t<row>"), and a
// barrier before the table's end makes the join stash stream messages
// until the table has ended: they are saved with the state.
func TestStreamTableJoinStateRestore(t *testing.T) {
	for _, kind := range []JoinKind{InnerJoin, LeftJoin} {
		for _, maxBatch := range []int{1, 3, 16} {
			for seed := range uint64(4) {
				t.Run(fmt.Sprintf("%s_b%d_s%d", kind, maxBatch, seed), func(t *testing.T) {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer mem.AssertSize(t, 0)
					r := rand.New(rand.NewPCG(seed, uint64(maxBatch)))
					c := &stateCase{
						schema: [2]*arrow.Schema{joinTestSchema, joinTableSchema},
						build: func(alloc memory.Allocator, l, rt Operator) (Stateful, error) {
							return NewJoin(alloc, l, rt, streamTableConfig(kind, true))
						},
						format: formatVisible(5),
						origin: func(b arrow.RecordBatch, i int) [2]int64 {
							o := [2]int64{b.Column(1).(*array.Int64).Value(i), -1}
							if name := b.Column(4); !name.IsNull(i) {
								n, _ := strconv.ParseInt(strings.TrimPrefix(name.(*array.String).Value(i), "t"), 10, 64)
								o[1] = n
							}
							return o
						},
					}
					rows := genJoinRows(r, 60+r.IntN(60), 30, true)
					c.in[0] = materialize(t, &msgSource{alloc: mem, rows: rows, delay: 30, r: rand.New(rand.NewPCG(seed, 1)), maxBatch: maxBatch})
					defer releaseMessages(c.in[0])
					row := 0
					for range 1 + r.IntN(8) {
						var ids []int64
						var names []string
						for range 1 + r.IntN(maxBatch) {
							ids = append(ids, r.Int64N(8))
							names = append(names, fmt.Sprint("t", row))
							row++
						}
						c.in[1] = append(c.in[1], Message{Batch: tableBatch(mem, ids, names), Watermark: NoWatermark})
					}
					defer releaseMessages(c.in[1])
					c.check(t, mem, barrierPoints(r, c))
				})
			}
		}
	}
}

// TestSubqueryJoinStateRestore: semi, anti, mark and scalar subquery joins;
// the barrier may come during the build (probe messages kept so far are
// saved) or after it. The output order is the probe input's and is
// compared as is.
func TestSubqueryJoinStateRestore(t *testing.T) {
	cases := []sqCase{
		{mode: SemiJoin, correlated: true},
		{mode: AntiJoin, exists: true, correlated: true},
		{mode: MarkJoin, missing: true},
		{mode: ScalarJoin, correlated: true, missing: true},
	}
	for ci, sc := range cases {
		for _, maxBatch := range []int{1, 3, 16} {
			for seed := range uint64(3) {
				t.Run(fmt.Sprintf("%s_b%d_s%d", sc, maxBatch, seed), func(t *testing.T) {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer mem.AssertSize(t, 0)
					r := rand.New(rand.NewPCG(seed, uint64(ci*10+maxBatch)))
					cols := 4
					if sc.mode == MarkJoin || sc.mode == ScalarJoin {
						cols = 5
					}
					c := &stateCase{
						schema: [2]*arrow.Schema{joinTestSchema, joinTestSchema},
						build: func(alloc memory.Allocator, p, b Operator) (Stateful, error) {
							return NewSubqueryJoin(alloc, p, b, sc.config())
						},
						format: formatVisible(cols),
						origin: func(b arrow.RecordBatch, i int) [2]int64 {
							return [2]int64{b.Column(1).(*array.Int64).Value(i), -1}
						},
						ordered: true,
					}
					probe := genSubqueryRows(r, 60+r.IntN(60), 8, true)
					build := genSubqueryRows(r, 5+r.IntN(20), 10, true)
					if sc.mode == ScalarJoin {
						build = slices.DeleteFunc(build, func(x jrow) bool { return x.v%2 == 1 })
					}
					c.in[0] = materialize(t, &msgSource{alloc: mem, rows: probe, delay: 5, r: rand.New(rand.NewPCG(seed, 1)), maxBatch: maxBatch})
					c.in[1] = materialize(t, &msgSource{alloc: mem, rows: build, delay: 5, r: rand.New(rand.NewPCG(seed, 2)), maxBatch: maxBatch})
					defer releaseMessages(c.in[0])
					defer releaseMessages(c.in[1])
					c.check(t, mem, barrierPoints(r, c))
				})
			}
		}
	}
}

// TestJoinBarrierAlignment: after the barrier on the left input, the join
// reads no further left message until the right input's barrier: the left
// row after the barrier joins nothing before the barrier is returned, and
// the state saved holds only the left row before it.
func TestJoinBarrierAlignment(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	inL, inR := NewInlet(joinTestSchema, 4), NewInlet(joinTestSchema, 4)
	c := joinCase{kind: InnerJoin, bound: &JoinBound{Lo: -1000, Hi: 1000}}
	op, err := NewJoin(mem, inL, inR, c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	var saved *StateReader
	b := NewBarrier(7, func(_ Stateful, w *StateWriter) error {
		var err error
		saved, err = RoundTrip(mem, w)
		return err
	})
	pushMsg(t, inL, mem, []jrow{{k: kp(1), v: 0, ts: 100, wm: 0}}, 0)
	if err := inL.Push(context.Background(), Message{Watermark: 0, Barrier: b}); err != nil {
		t.Fatal(err)
	}
	pushMsg(t, inL, mem, []jrow{{k: kp(1), v: 1, ts: 101, wm: 0}}, 0)
	pushMsg(t, inR, mem, []jrow{{k: kp(1), v: 0, ts: 100, wm: 0}}, 0)

	// events: "l_v:r_v" per row, "barrier"
	events := make(chan string, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		defer close(events)
		for {
			msg, err := op.Next(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					events <- err.Error()
				}
				return
			}
			if msg.Barrier != nil {
				events <- "barrier"
			}
			if bt := msg.Batch; bt != nil {
				for i := 0; i < int(bt.NumRows()); i++ {
					events <- cell(bt.Column(1), i) + ":" + cell(bt.Column(4), i)
				}
			}
			msg.Release()
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %q", want)
		}
	}
	expect("0:0")
	select {
	case e := <-events:
		t.Fatalf("%q before the right input's barrier", e)
	case <-time.After(100 * time.Millisecond):
	}
	if err := inR.Push(context.Background(), Message{Watermark: 0, Barrier: b}); err != nil {
		t.Fatal(err)
	}
	expect("barrier")
	expect("1:0")
	inL.Finish()
	inR.Finish()
	for e := range events {
		t.Fatalf("unexpected %q", e)
	}
	if saved == nil {
		t.Fatal("no state saved")
	}
	defer saved.Release()
	for s, want := range []int64{1, 1} {
		var n int64
		for _, rec := range saved.Table(fmt.Sprintf("side%d.rows", s)) {
			n += rec.NumRows()
		}
		if n != want {
			t.Fatalf("side %d saved with %d rows, want %d", s, n, want)
		}
	}
}

// barrierSink counts the rows and barriers a query delivers.
type barrierSink struct{ rows, barriers int64 }

func (s *barrierSink) Open(context.Context) error { return nil }
func (s *barrierSink) Write(_ context.Context, m Message) error {
	s.rows += m.Rows()
	if m.Barrier != nil {
		s.barriers++
	}
	m.Release()
	return nil
}
func (s *barrierSink) Flush(context.Context) error { return nil }
func (s *barrierSink) Close() error                { return nil }

// TestSelfJoinBarrierDoesNotDeadlock: one source with a barrier feeds both
// inputs of a join (and of a subquery join) through Inlets of depth 0 and
// 1: both inputs get the same barrier; the operator aligns it without
// blocking the shared producer and returns it once.
func TestSelfJoinBarrierDoesNotDeadlock(t *testing.T) {
	for _, semi := range []bool{false, true} {
		for _, depth := range []int{0, 1} {
			for _, k := range []int{0, 1, 40, 200} {
				t.Run(fmt.Sprintf("semi%v_depth%d_k%d", semi, depth, k), func(t *testing.T) {
					selfJoinBarrier(t, semi, depth, k)
				})
			}
		}
	}
}

func selfJoinBarrier(t *testing.T, semi bool, depth, k int) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var keys []*int64
	var ts []int64
	for i := range 1000 {
		keys = append(keys, kp(int64(i%7)))
		ts = append(ts, int64(i))
	}
	msgs := materialize(t, &msgSource{alloc: mem, rows: jrows(0, keys, ts), r: rand.New(rand.NewPCG(3, 3)), maxBatch: 5})
	defer releaseMessages(msgs)
	saves := 0
	b := NewBarrier(1, func(_ Stateful, w *StateWriter) error {
		saves++
		r, err := RoundTrip(mem, w)
		if err == nil {
			r.Release()
		}
		return err
	})
	src := &replaySource{schema: joinTestSchema, msgs: withBarrier(msgs, min(k, len(msgs)), b)}
	inA, inB := NewInlet(joinTestSchema, depth), NewInlet(joinTestSchema, depth)
	var op Operator
	var err error
	want := int64(1000) // each row matches itself (same key, same time)
	if semi {
		// k IN (SELECT 3 FROM s)
		cfg := sqCase{mode: SemiJoin}.config()
		cfg.BuildValue = expr.Lit(int64(3), sqltypes.BigInt)
		op, err = NewSubqueryJoin(mem, inA, inB, cfg)
		want = 143 // i%7 == 3 for i < 1000
	} else {
		c := joinCase{kind: InnerJoin, bound: &JoinBound{Lo: 0, Hi: 0}}
		op, err = NewJoin(mem, inA, inB, c.config(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	sink := &barrierSink{}
	runSelfJoin(t, src, op, inA, inB, sink)
	// the query driver takes the barrier: sinks never see one
	if sink.rows != want || sink.barriers != 0 || saves != 1 {
		t.Fatalf("%d rows, %d barriers, %d saves", sink.rows, sink.barriers, saves)
	}
}
