package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/kernels"
)

// Join test streams: k BIGINT (nullable), v BIGINT, ts TIMESTAMP, _wm.
var joinTestSchema = arrow.NewSchema([]arrow.Field{
	{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "ts", Type: timestampMS},
	{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64},
}, nil)

type jrow struct {
	k      *int64
	v      int64
	ts, wm int64
}

func kp(v int64) *int64 { return &v }

// jrows gives rows times ts with row watermarks max(ts before) - delay,
// as WatermarkAssigner does.
func jrows(delay int64, keys []*int64, ts []int64) []jrow {
	out := make([]jrow, len(ts))
	run := int64(-1 << 62)
	for i, t := range ts {
		w := NoWatermark
		if run > -1<<62 {
			w = run - delay
		}
		if i > 0 {
			w = max(w, out[i-1].wm)
		}
		out[i] = jrow{k: keys[i], v: int64(i), ts: t, wm: w}
		run = max(run, t)
	}
	return out
}

func jrowBatch(alloc memory.Allocator, rows []jrow) arrow.RecordBatch {
	b := array.NewRecordBuilder(alloc, joinTestSchema)
	defer b.Release()
	for _, r := range rows {
		if r.k != nil {
			b.Field(0).(*array.Int64Builder).Append(*r.k)
		} else {
			b.Field(0).(*array.Int64Builder).AppendNull()
		}
		b.Field(1).(*array.Int64Builder).Append(r.v)
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts))
		b.Field(3).(*array.Int64Builder).Append(r.wm)
	}
	return b.NewRecordBatch()
}

// msgSource replays rows in batches of random sizes (1..maxBatch); each
// message's watermark is the watermark after its last row (the next row's
// row watermark, or final after the last). Sometimes it sends a
// watermark-only message in between. Without r, every batch has maxBatch
// rows and there are no watermark-only messages.
type msgSource struct {
	alloc    memory.Allocator
	rows     []jrow
	delay    int64
	r        *rand.Rand
	maxBatch int
	i        int
	ended    bool
	// done, when set, is closed as the final watermark is sent.
	done chan struct{}
	// wait, when set, is called before every message (a slow input).
	wait func(ctx context.Context)
}

func (s *msgSource) Schema() *arrow.Schema      { return joinTestSchema }
func (s *msgSource) Open(context.Context) error { return nil }
func (s *msgSource) Close() error               { return nil }
func (s *msgSource) Next(ctx context.Context) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	if s.wait != nil {
		s.wait(ctx)
	}
	if s.i >= len(s.rows) {
		if !s.ended {
			s.ended = true
			if s.done != nil {
				close(s.done)
			}
			return Message{Watermark: FinalWatermark}, nil
		}
		return Message{}, io.EOF
	}
	n := s.maxBatch
	if s.r != nil {
		if s.r.IntN(5) == 0 {
			// a watermark-only message: the watermark as of the rows so far
			return Message{Watermark: s.rows[s.i].wm}, nil
		}
		n = 1 + s.r.IntN(s.maxBatch)
	}
	end := min(s.i+n, len(s.rows))
	rows := s.rows[s.i:end]
	s.i = end
	var wm Watermark
	if end < len(s.rows) {
		wm = s.rows[end].wm
	} else {
		run := int64(-1 << 62)
		for _, r := range s.rows {
			run = max(run, r.ts)
		}
		wm = max(rows[len(rows)-1].wm, run-s.delay)
	}
	return Message{Batch: jrowBatch(s.alloc, rows), Watermark: wm}, nil
}

// cell renders one value as the tests compare it: integers and timestamps
// as numbers, NULL as NULL.
func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	switch x := a.(type) {
	case *array.Timestamp:
		return fmt.Sprint(int64(x.Value(i)))
	}
	return kernels.Text(a, i)
}

func col(i int, name string, t arrow.DataType) expr.Expr { return expr.Col(i, name, t) }

// joinSchemaFor is the output schema of a join of two joinTestSchema
// inputs.
func joinSchemaFor(window, eventTime bool) *arrow.Schema {
	var f []arrow.Field
	for _, p := range []string{"l_", "r_"} {
		for _, x := range joinTestSchema.Fields()[:3] {
			f = append(f, arrow.Field{Name: p + x.Name, Type: x.Type, Nullable: true})
		}
	}
	if window {
		f = append(f, arrow.Field{Name: "window_start", Type: timestampMS}, arrow.Field{Name: "window_end", Type: timestampMS})
	}
	if eventTime {
		f = append(f, arrow.Field{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	}
	return arrow.NewSchema(f, nil)
}

type joinCase struct {
	kind     JoinKind
	bound    *JoinBound
	window   int64
	ttl      int64
	residual bool // l.v + r.v is even
}

func (c joinCase) config(t *testing.T) JoinConfig {
	cfg := JoinConfig{
		Kind:  c.kind,
		Keys:  [2][]expr.Expr{{col(0, "k", arrow.PrimitiveTypes.Int64)}, {col(0, "k", arrow.PrimitiveTypes.Int64)}},
		Time:  [2]int{2, 2},
		WM:    [2]int{3, 3},
		Bound: c.bound, Window: c.window, TTL: c.ttl,
		Table: -1, EventTime: true,
		Schema: joinSchemaFor(c.window > 0, true),
	}
	if c.residual {
		sum, err := expr.Binary("+", col(1, "l_v", arrow.PrimitiveTypes.Int64), col(4, "r_v", arrow.PrimitiveTypes.Int64))
		if err != nil {
			t.Fatal(err)
		}
		mod, err := expr.Binary("%", sum, expr.Lit(int64(2), arrow.PrimitiveTypes.Int64))
		if err != nil {
			t.Fatal(err)
		}
		eq, err := expr.Binary("=", mod, expr.Lit(int64(0), arrow.PrimitiveTypes.Int64))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Residual = eq
	}
	return cfg
}

func fmtRow(r *jrow) string {
	if r == nil {
		return "NULL,NULL,NULL"
	}
	k := "NULL"
	if r.k != nil {
		k = fmt.Sprint(*r.k)
	}
	return fmt.Sprintf("%s,%d,%d", k, r.v, r.ts)
}

// refJoin is the nested-loop reference of the join semantics.
func refJoin(c joinCase, L, R []jrow) []string {
	size := c.window
	expiry := func(side int, t int64) int64 {
		switch {
		case c.bound != nil:
			e := t + c.bound.Hi
			if side == 1 {
				e = t - c.bound.Lo
			}
			if size > 0 {
				e = min(e, kernels.FloorDiv(t, size)*size+size-1)
			}
			return e
		case size > 0:
			return kernels.FloorDiv(t, size)*size + size - 1
		}
		return t + c.ttl
	}
	var out []string
	lm := make([]bool, len(L))
	rm := make([]bool, len(R))
	for i := range L {
		for k := range R {
			l, r := &L[i], &R[k]
			if l.k == nil || r.k == nil || *l.k != *r.k {
				continue
			}
			if c.bound != nil && (r.ts-l.ts < c.bound.Lo || r.ts-l.ts > c.bound.Hi) {
				continue
			}
			if size > 0 && kernels.FloorDiv(l.ts, size) != kernels.FloorDiv(r.ts, size) {
				continue
			}
			if r.wm > expiry(0, l.ts) || l.wm > expiry(1, r.ts) {
				continue
			}
			if c.residual && (l.v+r.v)%2 != 0 {
				continue
			}
			lm[i], rm[k] = true, true
			out = append(out, fmtRow(l)+"|"+fmtRow(r))
		}
	}
	if c.kind.Preserves(0) {
		for i := range L {
			if !lm[i] {
				out = append(out, fmtRow(&L[i])+"|"+fmtRow(nil))
			}
		}
	}
	if c.kind.Preserves(1) {
		for k := range R {
			if !rm[k] {
				out = append(out, fmtRow(nil)+"|"+fmtRow(&R[k]))
			}
		}
	}
	slices.Sort(out)
	return out
}

// drainJoin runs op to the end, checking the watermark contract, and
// returns its rows formatted as refJoin does, sorted.
func drainJoin(t *testing.T, op Operator, window bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var out []string
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
		if b := msg.Batch; b != nil {
			wmCol := int(b.NumCols()) - 1
			for i := 0; i < int(b.NumRows()); i++ {
				var parts []string
				for c := 0; c < 6; c++ {
					parts = append(parts, cell(b.Column(c), i))
				}
				out = append(out, strings.Join(parts[:3], ",")+"|"+strings.Join(parts[3:], ","))
				rw := b.Column(wmCol).(*array.Int64).Value(i)
				if rw > msg.Watermark {
					t.Fatalf("row watermark %d above its message's %d", rw, msg.Watermark)
				}
				if window {
					ws := b.Column(6).(*array.Timestamp).Value(i)
					we := b.Column(7).(*array.Timestamp).Value(i)
					if int64(we)-int64(ws) <= 0 {
						t.Fatalf("bad window %d..%d", ws, we)
					}
				}
			}
		}
		msg.Release()
	}
	if last != FinalWatermark {
		t.Fatalf("ended at watermark %d", last)
	}
	slices.Sort(out)
	return out
}

func genJoinRows(r *rand.Rand, n int, delay int64, nullKeys bool) []jrow {
	keys := make([]*int64, n)
	ts := make([]int64, n)
	base := int64(1_000_000)
	for i := range ts {
		if !nullKeys || r.IntN(10) > 0 {
			keys[i] = kp(r.Int64N(6))
		}
		base += r.Int64N(40)
		t := base - r.Int64N(delay+1) // within the out-of-orderness mostly
		if r.IntN(15) == 0 {
			t -= r.Int64N(5 * delay) // late
		}
		ts[i] = t
	}
	return jrows(delay, keys, ts)
}

// TestJoinMatchesNestedLoopReference runs random inputs at random batch
// sizes through every join type, bound kind and residual, against the
// nested-loop reference, with a checked allocator.
func TestJoinMatchesNestedLoopReference(t *testing.T) {
	cases := []joinCase{}
	for _, kind := range []JoinKind{InnerJoin, LeftJoin, RightJoin, FullJoin} {
		cases = append(cases,
			joinCase{kind: kind, bound: &JoinBound{Lo: -50, Hi: 80}},
			joinCase{kind: kind, bound: &JoinBound{Lo: 0, Hi: 100}, residual: true},
			joinCase{kind: kind, window: 200},
			joinCase{kind: kind, ttl: 120, residual: true},
		)
	}
	var rebuilds int64
	defer func() {
		if rebuilds == 0 {
			t.Error("the state was never rebuilt")
		}
	}()
	for ci, c := range cases {
		for _, maxBatch := range []int{1, 3, 64} {
			rebuild := maxBatch == 3 // rebuild the state at every chance
			name := fmt.Sprintf("%d_%s_b%d", ci, c.kind, maxBatch)
			t.Run(name, func(t *testing.T) {
				seed := uint64(ci*100 + maxBatch)
				r := rand.New(rand.NewPCG(seed, 7))
				delay := int64(30)
				L := genJoinRows(r, 150+r.IntN(100), delay, true)
				R := genJoinRows(r, 150+r.IntN(100), delay, true)
				want := refJoin(c, L, R)
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				rm := resource.NewManager(mem, 0)
				alloc := rm.Query("q")
				left := &msgSource{alloc: mem, rows: L, delay: delay, r: rand.New(rand.NewPCG(seed, 1)), maxBatch: maxBatch}
				right := &msgSource{alloc: mem, rows: R, delay: delay, r: rand.New(rand.NewPCG(seed, 2)), maxBatch: maxBatch}
				op, err := NewJoin(alloc, left, right, c.config(t))
				if err != nil {
					t.Fatal(err)
				}
				if rebuild {
					op.slack = 0
				}
				got := drainJoin(t, op, c.window > 0)
				if err := op.Close(); err != nil {
					t.Fatal(err)
				}
				if alloc.Reserved() != 0 {
					t.Fatalf("%d bytes still reserved", alloc.Reserved())
				}
				if !slices.Equal(got, want) {
					t.Fatalf("got %d rows, want %d\n%s", len(got), len(want), diffRows(got, want))
				}
				rebuilds += op.Stats().Rebuilds
			})
		}
	}
}

func diffRows(got, want []string) string {
	var b strings.Builder
	g := map[string]int{}
	for _, x := range got {
		g[x]++
	}
	for _, x := range want {
		g[x]--
	}
	for k, v := range g {
		if v > 0 {
			fmt.Fprintf(&b, "extra %dx %s\n", v, k)
		} else if v < 0 {
			fmt.Fprintf(&b, "missing %dx %s\n", -v, k)
		}
	}
	return b.String()
}

// pushMsg pushes rows (or a watermark) into an Inlet.
func pushMsg(t *testing.T, in *Inlet, alloc memory.Allocator, rows []jrow, wm Watermark) {
	t.Helper()
	msg := Message{Watermark: wm}
	if rows != nil {
		msg.Batch = jrowBatch(alloc, rows)
	}
	if err := in.Push(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// nextUntil reads messages until the watermark reaches w, returning the
// data rows' (l_v, r_v) pairs.
func nextUntil(t *testing.T, op Operator, w Watermark) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for {
		msg, err := op.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for watermark %d: %v", w, err)
		}
		if b := msg.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				out = append(out, cell(b.Column(1), i)+"/"+cell(b.Column(4), i))
			}
		}
		reached := msg.Watermark >= w
		msg.Release()
		if reached {
			slices.Sort(out)
			return out
		}
	}
}

// TestJoinEvictsState checks that held rows are dropped, their memory
// unreserved and outer rows emitted once the other input's watermark
// passes their bound, without the input ending.
func TestJoinEvictsState(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rm := resource.NewManager(mem, 0)
	alloc := rm.Query("q")
	inL, inR := NewInlet(joinTestSchema, 4), NewInlet(joinTestSchema, 4)
	c := joinCase{kind: LeftJoin, bound: &JoinBound{Lo: 0, Hi: 100}}
	op, err := NewJoin(alloc, inL, inR, c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := op.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	var keys []*int64
	var ts []int64
	for i := range 1000 {
		keys = append(keys, kp(int64(i%50)))
		ts = append(ts, 1000+int64(i))
	}
	L := jrows(0, keys, ts)
	R := jrows(0, keys[:10], ts[:10]) // right rows for the first 10 left rows only
	pushMsg(t, inL, mem, L, 2000)
	pushMsg(t, inR, mem, R, 1010)
	// holdback 100: the output watermark is min(2000, 1010) - 100
	got := nextUntil(t, op, 910)
	if len(got) == 0 {
		t.Fatal("no matches")
	}
	if op.StateBytes() == 0 || alloc.Reserved() == 0 {
		t.Fatal("no state held")
	}
	// The right watermark passes every left row's bound (ts + 100).
	pushMsg(t, inR, mem, nil, 3000)
	outer := nextUntil(t, op, 1900)
	nulls := 0
	for _, r := range outer {
		if strings.HasSuffix(r, "/NULL") {
			nulls++
		}
	}
	if nulls == 0 {
		t.Fatalf("no NULL-padded left rows emitted: %v", outer)
	}
	// the left watermark passes every right row's bound
	pushMsg(t, inL, mem, nil, 5000)
	nextUntil(t, op, 2900)
	if n := op.StateBytes(); n != 0 {
		t.Fatalf("state still %d bytes after the watermarks passed", n)
	}
	if n := alloc.Reserved(); n != 0 {
		t.Fatalf("%d bytes still reserved", n)
	}
	st := op.Stats()
	if st.Expired < 1000 || st.OuterEmitted+st.Matched < 1000 {
		t.Fatalf("stats %+v", st)
	}
}

// TestJoinOuterRowEmittedAtBound: an unmatched left row comes out exactly
// when the right watermark passes its bound, not before.
func TestJoinOuterRowEmittedAtBound(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	inL, inR := NewInlet(joinTestSchema, 4), NewInlet(joinTestSchema, 4)
	c := joinCase{kind: LeftJoin, bound: &JoinBound{Lo: 0, Hi: 100}}
	op, err := NewJoin(mem, inL, inR, c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	pushMsg(t, inL, mem, jrows(0, []*int64{kp(1)}, []int64{1000}), 5000)
	// right watermark 1100 = bound: row at 1100 could still match
	pushMsg(t, inR, mem, nil, 1100)
	if got := nextUntil(t, op, 1000); len(got) != 0 {
		t.Fatalf("emitted early: %v", got)
	}
	pushMsg(t, inR, mem, nil, 1101)
	if got := nextUntil(t, op, 1001); !slices.Equal(got, []string{"0/NULL"}) {
		t.Fatalf("got %v", got)
	}
	pushMsg(t, inR, mem, nil, 9000)
	if got := nextUntil(t, op, 4900); len(got) != 0 {
		t.Fatalf("emitted twice: %v", got)
	}
}

// TestJoinMemoryLimit: state beyond the limit fails with ErrMemoryLimit.
func TestJoinMemoryLimit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rm := resource.NewManager(mem, 256<<10)
	var keys []*int64
	var ts []int64
	for i := range 50_000 {
		keys = append(keys, kp(int64(i)))
		ts = append(ts, int64(i))
	}
	L := jrows(0, keys, ts)
	left := &msgSource{alloc: mem, rows: L, r: rand.New(rand.NewPCG(1, 1)), maxBatch: 1000}
	right := NewInlet(joinTestSchema, 1) // no rows, no watermark: every left row is held
	c := joinCase{kind: InnerJoin, bound: &JoinBound{Lo: -1e9, Hi: 1e9}}
	op, err := NewJoin(rm.Query("q"), left, right, c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	ctx := context.Background()
	for {
		msg, err := op.Next(ctx)
		if err != nil {
			if !errors.Is(err, resource.ErrMemoryLimit) {
				t.Fatalf("want ErrMemoryLimit, got %v", err)
			}
			return
		}
		msg.Release()
	}
}

// TestJoinNullKeysNeverMatch: NULL = NULL is not a match; outer rows with
// NULL keys come out at once.
func TestJoinNullKeysNeverMatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	L := jrows(0, []*int64{nil, kp(1)}, []int64{10, 11})
	R := jrows(0, []*int64{nil, kp(1)}, []int64{10, 11})
	c := joinCase{kind: FullJoin, bound: &JoinBound{Lo: -5, Hi: 5}}
	left := &msgSource{alloc: mem, rows: L, r: rand.New(rand.NewPCG(1, 1)), maxBatch: 2}
	right := &msgSource{alloc: mem, rows: R, r: rand.New(rand.NewPCG(1, 2)), maxBatch: 2}
	op, err := NewJoin(mem, left, right, c.config(t))
	if err != nil {
		t.Fatal(err)
	}
	got := drainJoin(t, op, false)
	op.Close()
	want := []string{"1,1,11|1,1,11", "NULL,0,10|NULL,NULL,NULL", "NULL,NULL,NULL|NULL,0,10"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
}

// tableSchema: id BIGINT (primary key), name VARCHAR.
var joinTableSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func tableBatch(alloc memory.Allocator, ids []int64, names []string) arrow.RecordBatch {
	b := array.NewRecordBuilder(alloc, joinTableSchema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(ids, nil)
	b.Field(1).(*array.StringBuilder).AppendValues(names, nil)
	return b.NewRecordBatch()
}

func streamTableConfig(kind JoinKind, first bool) JoinConfig {
	var f []arrow.Field
	for _, x := range joinTestSchema.Fields()[:3] {
		f = append(f, arrow.Field{Name: x.Name, Type: x.Type, Nullable: true})
	}
	f = append(f, arrow.Field{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	return JoinConfig{
		Kind:       kind,
		Keys:       [2][]expr.Expr{{col(0, "k", arrow.PrimitiveTypes.Int64)}, {col(0, "id", arrow.PrimitiveTypes.Int64)}},
		Time:       [2]int{2, -1},
		WM:         [2]int{3, -1},
		Table:      1,
		TableKey:   []int{0},
		TableFirst: first, EventTime: true,
		Schema: arrow.NewSchema(f, nil),
	}
}

func streamTableRows(t *testing.T, op Operator, w Watermark) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for {
		msg, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if b := msg.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				out = append(out, cell(b.Column(1), i)+":"+cell(b.Column(4), i))
			}
		}
		done := msg.Watermark >= w
		msg.Release()
		if done {
			return out
		}
	}
}

// TestStreamTableJoinUpdates: with an unbounded table, an update applies
// to stream rows that arrive after it; the latest row per key wins; LEFT
// keeps stream rows without a table row.
func TestStreamTableJoinUpdates(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	inS, inT := NewInlet(joinTestSchema, 4), NewInlet(joinTableSchema, 4)
	op, err := NewJoin(mem, inS, inT, streamTableConfig(LeftJoin, false))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	op.start(context.Background())
	// waitQueued waits until input s's message is queued for the join
	waitQueued := func(s int) {
		for range 2000 {
			if len(op.ch[s]) > 0 {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("input message not queued")
	}
	if err := inT.Push(context.Background(), Message{Batch: tableBatch(mem, []int64{1, 2, 1}, []string{"a", "b", "A"}), Watermark: NoWatermark}); err != nil {
		t.Fatal(err)
	}
	waitQueued(1)
	pushMsg(t, inS, mem, []jrow{{k: kp(1), v: 10, ts: 100, wm: 0}, {k: kp(3), v: 11, ts: 101, wm: 0}, {k: kp(2), v: 12, ts: 102, wm: 0}}, 100)
	waitQueued(0)
	got := streamTableRows(t, op, 100)
	if want := []string{"10:A", "11:NULL", "12:b"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if err := inT.Push(context.Background(), Message{Batch: tableBatch(mem, []int64{3, 1}, []string{"c", "z"}), Watermark: NoWatermark}); err != nil {
		t.Fatal(err)
	}
	waitQueued(1)
	pushMsg(t, inS, mem, []jrow{{k: kp(1), v: 13, ts: 200, wm: 100}, {k: kp(3), v: 14, ts: 201, wm: 100}}, 200)
	waitQueued(0)
	got = streamTableRows(t, op, 200)
	if want := []string{"13:z", "14:c"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	inS.Finish()
	inT.Finish()
	streamTableRows(t, op, FinalWatermark)
}

// TestStreamTableJoinLoadsTableFirst: a bounded table is read completely
// before any stream row, whatever order the inputs deliver in.
func TestStreamTableJoinLoadsTableFirst(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	inS, inT := NewInlet(joinTestSchema, 4), NewInlet(joinTableSchema, 4)
	op, err := NewJoin(mem, inS, inT, streamTableConfig(InnerJoin, true))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	pushMsg(t, inS, mem, []jrow{{k: kp(1), v: 1, ts: 100, wm: 0}}, 100)
	inS.Finish()
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = inT.Push(context.Background(), Message{Batch: tableBatch(mem, []int64{1}, []string{"late-loaded"})})
		inT.Finish()
	}()
	got := streamTableRows(t, op, FinalWatermark)
	if want := []string{"1:late-loaded"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

// TestSelfJoinDoesNotDeadlock: one source feeds both inputs of a join
// through Inlets of depth 0 and 1; the join must keep both drained.
func TestSelfJoinDoesNotDeadlock(t *testing.T) {
	for _, depth := range []int{0, 1} {
		t.Run(fmt.Sprint("depth", depth), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			var keys []*int64
			var ts []int64
			for i := range 3000 {
				keys = append(keys, kp(int64(i%7)))
				ts = append(ts, int64(i))
			}
			rows := jrows(0, keys, ts)
			src := &msgSource{alloc: mem, rows: rows, r: rand.New(rand.NewPCG(3, 3)), maxBatch: 5}
			inA, inB := NewInlet(joinTestSchema, depth), NewInlet(joinTestSchema, depth)
			c := joinCase{kind: InnerJoin, bound: &JoinBound{Lo: 0, Hi: 0}}
			op, err := NewJoin(mem, inA, inB, c.config(t))
			if err != nil {
				t.Fatal(err)
			}
			sink := &countingSink{}
			runSelfJoin(t, src, op, inA, inB, sink)
			if sink.rows != 3000 { // each row matches itself (same key, same time)
				t.Fatalf("got %d rows", sink.rows)
			}
		})
	}
}

type countingSink struct{ rows int64 }

func (s *countingSink) Open(context.Context) error { return nil }
func (s *countingSink) Write(_ context.Context, m Message) error {
	s.rows += m.Rows()
	return nil
}
func (s *countingSink) Flush(context.Context) error { return nil }
func (s *countingSink) Close() error                { return nil }

// TestJoinRefusesUnbounded: a stream–stream join needs a bound.
func TestJoinRefusesUnbounded(t *testing.T) {
	c := joinCase{kind: InnerJoin}
	_, err := NewJoin(memory.DefaultAllocator, NewInlet(joinTestSchema, 1), NewInlet(joinTestSchema, 1), c.config(t))
	if !errors.Is(err, ErrUnboundedJoin) {
		t.Fatalf("got %v", err)
	}
}

// runSelfJoin runs op, whose inputs inA and inB both read the one source
// src, into sink, and fails t on an error or after 20 s (a deadlock).
func runSelfJoin(t *testing.T, src, op Operator, inA, inB *Inlet, sink Sink) {
	t.Helper()
	topo := &Topology{
		Sources: []*SourceNode{{Stream: "s", Op: src}},
		Queries: []*QueryNode{{Name: "self", Root: op, Inputs: []Subscription{{"s", inA}, {"s", inB}}, Sinks: []Sink{sink}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := topo.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
