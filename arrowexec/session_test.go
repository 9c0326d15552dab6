package arrowexec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

// sessRow is one input row of the session tests.
type sessRow struct{ key, val, ts, wm int64 }

var sessInSchema = arrow.NewSchema([]arrow.Field{
	{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "ts", Type: timestampMS},
	{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64},
}, nil)

// sessSource emits rows in batches of size, each message carrying the
// watermark after its last row; NULL keys and values where val < 0.
type sessSource struct {
	alloc memory.Allocator
	rows  []sessRow
	next  func(i int) int64 // watermark after row i
	size  int
	i     int
}

func (s *sessSource) Schema() *arrow.Schema      { return sessInSchema }
func (s *sessSource) Open(context.Context) error { return nil }
func (s *sessSource) Close() error               { return nil }
func (s *sessSource) Next(context.Context) (Message, error) {
	if s.i >= len(s.rows) {
		return Message{}, io.EOF
	}
	b := array.NewRecordBuilder(s.alloc, sessInSchema)
	defer b.Release()
	for j := 0; j < s.size && s.i < len(s.rows); j++ {
		r := s.rows[s.i]
		if r.val < 0 {
			b.Field(0).(*array.Int64Builder).AppendNull()
			b.Field(1).(*array.Int64Builder).AppendNull()
		} else {
			b.Field(0).(*array.Int64Builder).Append(r.key)
			b.Field(1).(*array.Int64Builder).Append(r.val)
		}
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts))
		b.Field(3).(*array.Int64Builder).Append(r.wm)
		s.i++
	}
	return Message{Batch: b.NewRecordBatch(), Watermark: s.next(s.i - 1)}, nil
}

// genSessionRows makes n rows over keys keys with bounded out-of-orderness
// delay and some rows far behind (late); wm is the running maximum before
// the row minus delay.
func genSessionRows(r *rand.Rand, n, keys int, delay int64) []sessRow {
	rows := make([]sessRow, n)
	maxTs := int64(-1 << 62)
	clock := int64(1000)
	for i := range rows {
		clock += r.Int64N(4)
		ts := clock - r.Int64N(delay+1)
		if r.IntN(10) == 0 {
			ts = clock - r.Int64N(60) // often late
		}
		wm := NoWatermark
		if maxTs > -1<<62 {
			wm = maxTs - delay
		}
		val := r.Int64N(100)
		if r.IntN(20) == 0 {
			val = -1 // NULL key and value
		}
		rows[i] = sessRow{key: r.Int64N(int64(keys)), val: val, ts: ts, wm: wm}
		maxTs = max(maxTs, ts)
	}
	return rows
}

// refSession is the reference's session.
type refSession struct {
	key, start, end, seq, rev int64
	n, sum                    int64
	emitted                   bool
}

// referenceSessions computes the output of a session aggregation row at a
// time, straight from the documented semantics (COUNT(*), SUM(v) per
// session), as lines "key start end rev n sum".
func referenceSessions(rows []sessRow, gap int64, late LateDataSpec) []string {
	keep := int64(-1)
	if late.Strategy == "update_previous" {
		keep = late.AllowedLateness
	}
	var open, kept []*refSession
	var out []string
	var seq int64
	wm := NoWatermark
	line := func(s *refSession) string {
		return fmt.Sprintf("%d %d %d %d %d %d", s.key, s.start, s.end, s.rev, s.n, s.sum)
	}
	emit := func(ss []*refSession) {
		slices.SortFunc(ss, func(a, b *refSession) int {
			return cmp.Or(cmp.Compare(a.end, b.end), cmp.Compare(a.start, b.start), cmp.Compare(a.seq, b.seq))
		})
		for _, s := range ss {
			if s.emitted {
				s.rev++
			}
			s.emitted = true
			out = append(out, line(s))
		}
	}
	advance := func(w int64) {
		wm = max(wm, w)
		var closing, still []*refSession
		for _, s := range open {
			if s.end <= wm {
				closing = append(closing, s)
			} else {
				still = append(still, s)
			}
		}
		open = still
		emit(closing)
		if keep >= 0 && wm != FinalWatermark {
			kept = append(kept, closing...)
		}
		still = nil
		for _, s := range kept {
			if s.end+keep > wm && wm != FinalWatermark {
				still = append(still, s)
			}
		}
		kept = still
	}
	key := func(r sessRow) int64 {
		if r.val < 0 {
			return -1
		}
		return r.key
	}
	overl := func(s *refSession, k, t int64) bool { return s.key == k && s.start < t+gap && t < s.end }
	for _, r := range rows {
		advance(r.wm)
		w := wm
		k, t := key(r), r.ts
		var hits []*refSession
		for _, s := range open {
			if overl(s, k, t) {
				hits = append(hits, s)
			}
		}
		if len(hits) == 0 && t+gap <= w {
			switch late.Strategy {
			case "include_in_next_window":
				t = w
				for _, s := range open {
					if overl(s, k, t) {
						hits = append(hits, s)
					}
				}
			case "update_previous":
				var hit *refSession
				for _, s := range kept {
					if overl(s, k, t) && (hit == nil || s.start < hit.start) {
						hit = s
					}
				}
				if hit == nil && t+gap+keep > w {
					hit = &refSession{key: k, start: t, end: t + gap, seq: seq}
					seq++
					kept = append(kept, hit)
				}
				if hit != nil {
					hit.start, hit.end = min(hit.start, t), max(hit.end, t+gap)
					hit.n++
					hit.sum += max(r.val, 0)
					emit([]*refSession{hit})
				}
				continue
			default:
				continue
			}
		}
		var s *refSession
		switch len(hits) {
		case 0:
			s = &refSession{key: k, start: t, end: t + gap, seq: seq}
			seq++
			open = append(open, s)
		default:
			s = hits[0]
			for _, h := range hits[1:] {
				if h.seq < s.seq {
					s = h
				}
			}
			for _, h := range hits {
				if h != s {
					s.start, s.end = min(s.start, h.start), max(s.end, h.end)
					s.n += h.n
					s.sum += h.sum
					open = slices.DeleteFunc(open, func(x *refSession) bool { return x == h })
				}
			}
		}
		s.start, s.end = min(s.start, t), max(s.end, t+gap)
		s.n++
		s.sum += max(r.val, 0)
	}
	advance(FinalWatermark)
	return out
}

// runSessions runs a SessionOp over rows at the given batch size and
// returns its output lines (as referenceSessions renders them). A
// positive minCompact, and a listMax >= 0, replace the operator's.
func runSessions(t *testing.T, rows []sessRow, size int, gap int64, late LateDataSpec, minCompact, listMax int) []string {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	next := func(i int) int64 {
		if i+1 < len(rows) {
			return rows[i+1].wm
		}
		return max(rows[i].wm, rows[i].ts-5)
	}
	src := &sessSource{alloc: mem, rows: rows, next: next, size: size}
	op, err := NewSessionAggregate(mem, src, sessTestConfig(gap, late))
	if err != nil {
		t.Fatal(err)
	}
	if minCompact > 0 {
		op.minCompact = minCompact
	}
	if listMax >= 0 {
		op.listMax = listMax
	}
	defer op.Close()
	ctx := context.Background()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var out []string
	lastWM := NoWatermark
	for {
		m, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Watermark < lastWM {
			t.Fatalf("watermark went back from %d to %d", lastWM, m.Watermark)
		}
		lastWM = m.Watermark
		if b := m.Batch; b != nil {
			ncol := int(b.NumCols())
			for i := 0; i < int(b.NumRows()); i++ {
				key := int64(-1)
				if k := b.Column(0).(*array.Int64); k.IsValid(i) {
					key = k.Value(i)
				}
				rev := int64(0)
				if late.Strategy == "update_previous" {
					rev = b.Column(3).(*array.Int64).Value(i)
				}
				sum := int64(0)
				if s := b.Column(ncol - 1).(*array.Int64); s.IsValid(i) {
					sum = s.Value(i)
				}
				out = append(out, fmt.Sprintf("%d %d %d %d %d %d", key,
					b.Column(1).(*array.Timestamp).Value(i), b.Column(2).(*array.Timestamp).Value(i),
					rev, b.Column(ncol-2).(*array.Int64).Value(i), sum))
			}
		}
		m.Release()
	}
	if lastWM != FinalWatermark {
		t.Fatalf("last watermark %d, want FinalWatermark", lastWM)
	}
	return out
}

// sessTestConfig is the session aggregation of the tests: COUNT(*) and
// SUM(v) per key k over SESSION(gap).
func sessTestConfig(gap int64, late LateDataSpec) AggregateConfig {
	fields := []arrow.Field{
		{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "window_start", Type: timestampMS},
		{Name: "window_end", Type: timestampMS},
	}
	if late.Strategy == "update_previous" {
		fields = append(fields, arrow.Field{Name: "revision", Type: arrow.PrimitiveTypes.Int64})
	}
	fields = append(fields,
		arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: "s", Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	return AggregateConfig{
		Query: "q", Source: "s",
		Keys:   []expr.Expr{expr.Col(0, "k", arrow.PrimitiveTypes.Int64)},
		Specs:  []agg.Spec{{Func: "count_star"}, {Func: "sum", Input: arrow.PrimitiveTypes.Int64}},
		Args:   []expr.Expr{nil, expr.Col(1, "v", arrow.PrimitiveTypes.Int64)},
		Window: &WindowSpec{Kind: Session, Gap: gap}, TimeCol: 2, WMCol: 3,
		Late: late, Schema: arrow.NewSchema(fields, nil),
	}
}

// TestSessionsMatchReference compares SessionOp with the row-at-a-time
// reference for every late-data strategy at batch sizes 1, 3 and 4096,
// with NULL keys and values, merges and late rows, and with generations
// small enough that session tables rotate and the key dictionary is
// rebuilt, and with lists of sessions becoming sets at once (listMax 0)
// or early (2).
func TestSessionsMatchReference(t *testing.T) {
	lates := []LateDataSpec{
		{Strategy: "drop"}, {Strategy: "dead_letter"}, {Strategy: "include_in_next_window"},
		{Strategy: "update_previous", AllowedLateness: 15}, {Strategy: "update_previous"},
	}
	seeds := uint64(4)
	if testing.Short() {
		seeds = 1
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		rows := genSessionRows(r, 3000, 1+int(seed)*7, 8)
		for _, late := range lates {
			want := referenceSessions(rows, 10, late)
			if len(want) < 50 {
				t.Fatalf("seed %d: reference made only %d sessions", seed, len(want))
			}
			for _, size := range []int{1, 3, 4096} {
				for _, c := range []struct{ mc, lm int }{{0, -1}, {16, 0}, {0, 2}} {
					mc := c.mc
					got := runSessions(t, rows, size, 10, late, mc, c.lm)
					if !slices.Equal(got, want) {
						for i := range min(len(got), len(want)) {
							if got[i] != want[i] {
								t.Fatalf("seed %d %s/%d batch %d minCompact %d listMax %d: row %d is %q, want %q (of %d and %d rows)",
									seed, late.Strategy, late.AllowedLateness, size, mc, c.lm, i, got[i], want[i], len(got), len(want))
							}
						}
						t.Fatalf("seed %d %s batch %d minCompact %d: %d rows, want %d", seed, late.Strategy, size, mc, len(got), len(want))
					}
				}
			}
		}
	}
}

// TestSessionStateIsReclaimed runs many short sessions over many keys and
// checks that closed sessions' tables and keys are released.
func TestSessionStateIsReclaimed(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var rows []sessRow
	for i := range 300_000 {
		ts := int64(i) // one row per ms, key i%100000: every row opens a session
		rows = append(rows, sessRow{key: int64(i % 100_000), val: 1, ts: ts, wm: ts - 1})
	}
	src := &sessSource{alloc: mem, rows: rows, next: func(i int) int64 { return rows[i].ts }, size: 4096}
	cfg := AggregateConfig{
		Keys:   []expr.Expr{expr.Col(0, "k", arrow.PrimitiveTypes.Int64)},
		Specs:  []agg.Spec{{Func: "count_star"}},
		Args:   []expr.Expr{nil},
		Window: &WindowSpec{Kind: Session, Gap: 10}, TimeCol: 2, WMCol: 3,
		Schema: arrow.NewSchema([]arrow.Field{
			{Name: "k", Type: arrow.PrimitiveTypes.Int64}, {Name: "window_start", Type: timestampMS},
			{Name: "window_end", Type: timestampMS}, {Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil),
	}
	op, err := NewSessionAggregate(mem, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	ctx := context.Background()
	emitted := 0
	maxTabs, maxKeys := 0, 0
	for {
		m, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		emitted += int(m.Rows())
		m.Release()
		maxTabs = max(maxTabs, len(op.tabs))
		maxKeys = max(maxKeys, op.dict.Len())
	}
	if emitted != len(rows) {
		t.Fatalf("emitted %d sessions, want %d", emitted, len(rows))
	}
	if maxTabs < 2 || maxKeys >= 100_000 {
		t.Fatalf("no rotation or rebuild happened (%d tables, %d keys)", maxTabs, maxKeys)
	}
	if maxTabs > 3 || maxKeys > 2*defaultMinCompact {
		t.Fatalf("state not reclaimed: up to %d session tables and %d keys", maxTabs, maxKeys)
	}
	// closed sessions free their slots after their batch: open sessions
	// (about 10) plus one batch (4096) of closed ones
	if len(op.sess) > 2*4096 {
		t.Fatalf("session slab grew to %d slots for at most ~10 open sessions", len(op.sess))
	}
}

// TestSessionsTimerWheel repeats the reference comparison with gaps that
// give the closing queue (a timer wheel) buckets wider than a millisecond,
// with jumps in event time that leave the wheel empty or skip it, and with
// allowed lateness beyond the wheel's reach (its far heap).
func TestSessionsTimerWheel(t *testing.T) {
	for _, c := range []struct{ scale, gap, jump int64 }{
		{1, 1, 0}, {1, 10, 5000}, {70, 700, 0}, {500, 5000, 3_000_000}, {1000, 1 << 40, 1 << 50},
	} {
		r := rand.New(rand.NewPCG(uint64(c.gap), 9))
		rows := genSessionRows(r, 3000, 11, 8)
		for i := range rows {
			rows[i].ts = rows[i].ts*c.scale + r.Int64N(c.scale)
			if rows[i].wm != NoWatermark {
				rows[i].wm *= c.scale
			}
			for _, at := range []int{1000, 2000} {
				if c.jump > 0 && i >= at {
					rows[i].ts += c.jump
					if rows[i].wm != NoWatermark {
						rows[i].wm += c.jump
					}
				}
			}
		}
		lates := []LateDataSpec{{Strategy: "drop"}, {Strategy: "include_in_next_window"},
			{Strategy: "update_previous", AllowedLateness: 10 * c.gap}}
		for _, late := range lates {
			want := referenceSessions(rows, c.gap, late)
			for _, size := range []int{1, 3, 4096} {
				got := runSessions(t, rows, size, c.gap, late, 16, size%2) // sets at batch size 3
				if !slices.Equal(got, want) {
					for i := range min(len(got), len(want)) {
						if got[i] != want[i] {
							t.Fatalf("gap %d %s batch %d: row %d is %q, want %q (of %d and %d rows)",
								c.gap, late.Strategy, size, i, got[i], want[i], len(got), len(want))
						}
					}
					t.Fatalf("gap %d %s batch %d: %d rows, want %d", c.gap, late.Strategy, size, len(got), len(want))
				}
			}
		}
	}
}

// TestSessionsPartitioned compares SessionOp with the reference over input
// read chunk by chunk from several partitions, the watermark the minimum
// over them (genPartitionedRows): hundreds of sessions per key stay open
// and kept, so their lists become sets (and sets lists again as they
// drain), with merges of sessions opened by different partitions, NULL
// keys and late rows, for every late-data strategy, at batch sizes 1, 3
// and 4096, with the default listMax and with sets from the start.
func TestSessionsPartitioned(t *testing.T) {
	lates := []LateDataSpec{
		{Strategy: "drop"}, {Strategy: "dead_letter"}, {Strategy: "include_in_next_window"},
		{Strategy: "update_previous", AllowedLateness: 40}, {Strategy: "update_previous", AllowedLateness: 3000},
	}
	n, chunk := 12_000, 1000
	if testing.Short() {
		n, chunk = 6000, 500
	}
	if lightTests() {
		n, chunk = 2000, 200
	}
	for seed := uint64(1); seed <= 2; seed++ {
		r := rand.New(rand.NewPCG(seed, 3))
		rows := genPartitionedRows(r, n, 3+int(seed)*4, 3, chunk, int64(seed-1)*20, 20, 15, 10)
		for _, late := range lates {
			want := referenceSessions(rows, 10, late)
			for _, size := range []int{1, 3, 4096} {
				for _, lm := range []int{-1, 0} {
					got := runSessions(t, rows, size, 10, late, 0, lm)
					if !slices.Equal(got, want) {
						for i := range min(len(got), len(want)) {
							if got[i] != want[i] {
								t.Fatalf("seed %d %s/%d batch %d listMax %d: row %d is %q, want %q (of %d and %d rows)",
									seed, late.Strategy, late.AllowedLateness, size, lm, i, got[i], want[i], len(got), len(want))
							}
						}
						t.Fatalf("seed %d %s batch %d listMax %d: %d rows, want %d", seed, late.Strategy, size, lm, len(got), len(want))
					}
				}
			}
		}
	}
}

// TestSessionKeptTie pins which of two kept sessions starting together a
// late row updates (update_previous): the one kept last, whether the
// key's kept sessions are a list or a set (listMax 0, the set made before
// the second session is kept). The reference picks the one kept first
// instead (ties are not specified by the semantics); this is the output
// SessionOp gave before sets existed, which they must not change.
func TestSessionKeptTie(t *testing.T) {
	rows := []sessRow{
		{key: 1, val: 1, ts: 10, wm: NoWatermark}, // A [10, 20)
		{key: 1, val: 2, ts: 25, wm: 20},          // A kept; B [25, 35)
		{key: 1, val: 3, ts: 16, wm: 20},          // B [16, 35)
		{key: 1, val: 4, ts: 10, wm: 20},          // B [10, 35), not late: it overlaps B
		{key: 1, val: 8, ts: 0, wm: 20},           // late, a kept session of its own (the kept list is scanned)
		{key: 2, val: 5, ts: 50, wm: 40},          // B kept: A and B start at 10
		{key: 1, val: 6, ts: 12, wm: 40},          // late, overlaps A and B: updates B
		{key: 1, val: 7, ts: 13, wm: 40},
	}
	want := []string{"1 10 20 0 1 1", "1 0 10 0 1 8", "1 10 35 0 3 9", "1 10 35 1 4 15", "1 10 35 2 5 22", "2 50 60 0 1 5"}
	late := LateDataSpec{Strategy: "update_previous", AllowedLateness: 100}
	for _, lm := range []int{-1, 0} {
		if got := runSessions(t, rows, 1, 10, late, 0, lm); !slices.Equal(got, want) {
			t.Fatalf("listMax %d: got %q, want %q", lm, got, want)
		}
	}
}
