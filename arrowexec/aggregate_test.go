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

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

var aggTestSchema = arrow.NewSchema([]arrow.Field{
	{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ts", Type: timestampMS},
	{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64},
}, nil)

type aggRow struct {
	k, v   *int64
	x      *float64
	ts, wm int64
}

// rowSource replays rows (with their row watermarks) in batches of size;
// every message carries the watermark after its last row.
type rowSource struct {
	alloc memory.Allocator
	rows  []aggRow
	size  int
	i     int
}

func (s *rowSource) Schema() *arrow.Schema      { return aggTestSchema }
func (s *rowSource) Open(context.Context) error { return nil }
func (s *rowSource) Close() error               { return nil }
func (s *rowSource) Next(context.Context) (Message, error) {
	if s.i >= len(s.rows) {
		return Message{}, io.EOF
	}
	b := array.NewRecordBuilder(s.alloc, aggTestSchema)
	defer b.Release()
	var wm int64
	for j := 0; j < s.size && s.i < len(s.rows); j++ {
		r := s.rows[s.i]
		for c, p := range []*int64{r.k, r.v} {
			if p != nil {
				b.Field(c).(*array.Int64Builder).Append(*p)
			} else {
				b.Field(c).(*array.Int64Builder).AppendNull()
			}
		}
		if r.x != nil {
			b.Field(2).(*array.Float64Builder).Append(*r.x)
		} else {
			b.Field(2).(*array.Float64Builder).AppendNull()
		}
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts))
		b.Field(4).(*array.Int64Builder).Append(r.wm)
		wm = r.wm
		s.i++
	}
	return Message{Batch: b.NewRecordBatch(), Watermark: wm}, nil
}

// genAggRows makes n rows: event times mostly increasing with jitter
// inside the out-of-orderness bound, some late by up to several windows,
// runs with equal times; row watermarks are the running maximum minus
// delay (as WatermarkAssigner computes them).
func genAggRows(r *rand.Rand, n int, delay int64) []aggRow {
	var rows []aggRow
	t, run := int64(1000), int64(NoWatermark)
	ptr := func(v int64) *int64 { return &v }
	for i := 0; i < n; i++ {
		switch x := r.IntN(20); {
		case x < 12:
			t += r.Int64N(4)
		case x < 13:
			t += 15 + r.Int64N(20) // a jump: windows close
		}
		ts := t
		switch x := r.IntN(10); {
		case x < 2:
			ts -= r.Int64N(delay + 1) // out of order, inside the bound
		case x < 3:
			ts -= delay + r.Int64N(40) // late
		}
		wm := int64(NoWatermark)
		if run != NoWatermark {
			wm = run - delay
		}
		row := aggRow{ts: ts, wm: wm}
		if r.IntN(12) > 0 {
			row.k = ptr(r.Int64N(4))
		}
		if r.IntN(8) > 0 {
			row.v = ptr(r.Int64N(100) - 30)
		}
		if r.IntN(8) > 0 {
			x := float64(r.IntN(50)) / 4
			row.x = &x
		}
		rows = append(rows, row)
		run = max(run, ts)
	}
	return rows
}

func aggTestConfig(t *testing.T, win *WindowSpec, late LateDataSpec, changes bool, dl DeadLetter) AggregateConfig {
	specs := []agg.Spec{{Func: "count_star"}, {Func: "sum", Input: arrow.PrimitiveTypes.Int64},
		{Func: "min", Input: arrow.PrimitiveTypes.Float64}, {Func: "max", Input: arrow.PrimitiveTypes.Int64},
		{Func: "first_value", Input: arrow.PrimitiveTypes.Int64}, {Func: "last_value", Input: arrow.PrimitiveTypes.Float64},
		{Func: "count", Input: arrow.PrimitiveTypes.Int64, Distinct: true}, {Func: "avg", Input: arrow.PrimitiveTypes.Int64}}
	args := []expr.Expr{nil, expr.Col(1, "v", arrow.PrimitiveTypes.Int64), expr.Col(2, "x", arrow.PrimitiveTypes.Float64),
		expr.Col(1, "v", arrow.PrimitiveTypes.Int64), expr.Col(1, "v", arrow.PrimitiveTypes.Int64),
		expr.Col(2, "x", arrow.PrimitiveTypes.Float64), expr.Col(1, "v", arrow.PrimitiveTypes.Int64),
		expr.Col(1, "v", arrow.PrimitiveTypes.Int64)}
	fields := []arrow.Field{{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "window_start", Type: timestampMS}, {Name: "window_end", Type: timestampMS}}
	if late.Strategy == "update_previous" {
		fields = append(fields, arrow.Field{Name: "revision", Type: arrow.PrimitiveTypes.Int64})
	}
	for j, s := range specs {
		rt, err := agg.ResultType(s)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("a%d", j), Type: rt, Nullable: true})
	}
	return AggregateConfig{Query: "q", Source: "s", Keys: []expr.Expr{expr.Col(0, "k", arrow.PrimitiveTypes.Int64)},
		Specs: specs, Args: args, Window: win, TimeCol: 3, WMCol: 4, EmitChanges: changes, Late: late,
		DeadLetter: dl, Schema: arrow.NewSchema(fields, nil)}
}

// drainAgg runs op to the end and renders every message (renderMessage).
func drainAgg(t *testing.T, op Operator) []string {
	t.Helper()
	var out []string
	eachMessage(t, op, func(m Message) { out = append(out, renderMessage(m)) })
	return out
}

// eachMessage opens op, passes every message to f (which must not keep
// it) until the end, and closes op.
func eachMessage(t *testing.T, op Operator, f func(Message)) {
	t.Helper()
	ctx := context.Background()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for {
		m, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		f(m)
		m.Release()
	}
}

// renderMessage renders a message: its barrier (if any), watermark and
// rows.
func renderMessage(m Message) string {
	var sb strings.Builder
	if m.Barrier != nil {
		fmt.Fprintf(&sb, "barrier=%d ", m.Barrier.ID)
	}
	fmt.Fprintf(&sb, "wm=%d", m.Watermark)
	if m.Batch != nil {
		for i := 0; i < int(m.Batch.NumRows()); i++ {
			sb.WriteString("\n ")
			for c := 0; c < int(m.Batch.NumCols()); c++ {
				fmt.Fprintf(&sb, " %s", m.Batch.Column(c).ValueStr(i))
			}
		}
	}
	return sb.String()
}

// TestPanesMatchPerWindowReference runs random streams with in-order,
// out-of-order and late rows through the pane implementation and through
// the per-window reference (aggregate_ref_test.go): tumbling and sliding
// windows, every late-data strategy, EMIT CHANGES, batch sizes 1, 3 and
// 64. The messages (watermarks, rows, their order and batching), the late
// counters and the dead letters must be identical.
func TestPanesMatchPerWindowReference(t *testing.T) {
	windows := []*WindowSpec{{Kind: Tumbling, Size: 10, Advance: 10}, {Kind: Sliding, Size: 10, Advance: 5},
		{Kind: Sliding, Size: 12, Advance: 3}, {Kind: Sliding, Size: 6, Advance: 1}}
	lates := []LateDataSpec{{Strategy: "drop"}, {Strategy: "dead_letter"}, {Strategy: "include_in_next_window"},
		{Strategy: "update_previous", AllowedLateness: 6}, {Strategy: "update_previous", AllowedLateness: 25}}
	seeds := uint64(3)
	if testing.Short() {
		seeds = 1
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		rows := genAggRows(rand.New(rand.NewPCG(seed, 9)), 400, 8)
		for _, win := range windows {
			for _, late := range lates {
				for _, changes := range []bool{false, true} {
					for _, bs := range []int{1, 3, 64} {
						name := fmt.Sprintf("seed%d/%s/%s-%d/changes=%v/batch%d", seed, win, late.Strategy, late.AllowedLateness, changes, bs)
						t.Run(name, func(t *testing.T) {
							alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
							defer alloc.AssertSize(t, 0)
							var dlGot, dlWant recordingDL
							op, err := NewAggregate(alloc, &rowSource{alloc: alloc, rows: rows, size: bs},
								aggTestConfig(t, win, late, changes, &dlGot))
							if err != nil {
								t.Fatal(err)
							}
							ref, err := newRefAggregate(alloc, &rowSource{alloc: alloc, rows: rows, size: bs},
								aggTestConfig(t, win, late, changes, &dlWant))
							if err != nil {
								t.Fatal(err)
							}
							got, want := drainAgg(t, op), drainAgg(t, ref)
							for i := 0; i < min(len(got), len(want)); i++ {
								if got[i] != want[i] {
									t.Fatalf("message %d:\ngot  %s\nwant %s", i, got[i], want[i])
								}
							}
							if len(got) != len(want) {
								t.Fatalf("%d messages, want %d", len(got), len(want))
							}
							if op.Stats() != ref.Stats() {
								t.Fatalf("stats %+v, want %+v", op.Stats(), ref.Stats())
							}
							if len(dlGot.recs) != len(dlWant.recs) {
								t.Fatalf("%d dead letters, want %d", len(dlGot.recs), len(dlWant.recs))
							}
							for i := range dlGot.recs {
								if g, w := dlGot.recs[i].Reason+dlGot.recs[i].Raw, dlWant.recs[i].Reason+dlWant.recs[i].Raw; g != w {
									t.Fatalf("dead letter %d: %s, want %s", i, g, w)
								}
							}
						})
					}
				}
			}
		}
	}
}

// TestPanesWithoutStacksMatchReference is TestPanesMatchPerWindowReference
// for sliding windows folded pane by pane into the key dictionary, the
// fallback used when the stacks would outgrow the panes.
func TestPanesWithoutStacksMatchReference(t *testing.T) {
	rows := genAggRows(rand.New(rand.NewPCG(2, 9)), 400, 8)
	for _, win := range []*WindowSpec{{Kind: Sliding, Size: 12, Advance: 3}, {Kind: Sliding, Size: 6, Advance: 1}} {
		for _, late := range []LateDataSpec{{Strategy: "drop"}, {Strategy: "include_in_next_window"}, {Strategy: "update_previous", AllowedLateness: 6}} {
			for _, bs := range []int{1, 64} {
				t.Run(fmt.Sprintf("%s/%s/batch%d", win, late.Strategy, bs), func(t *testing.T) {
					alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer alloc.AssertSize(t, 0)
					var dlGot, dlWant recordingDL
					op, err := NewAggregate(alloc, &rowSource{alloc: alloc, rows: rows, size: bs}, aggTestConfig(t, win, late, false, &dlGot))
					if err != nil {
						t.Fatal(err)
					}
					op.noStacks = true
					ref, err := newRefAggregate(alloc, &rowSource{alloc: alloc, rows: rows, size: bs}, aggTestConfig(t, win, late, false, &dlWant))
					if err != nil {
						t.Fatal(err)
					}
					got, want := drainAgg(t, op), drainAgg(t, ref)
					if !slices.Equal(got, want) {
						t.Fatalf("messages differ:\ngot  %q\nwant %q", got, want)
					}
					if op.Stats() != ref.Stats() || len(dlGot.recs) != len(dlWant.recs) {
						t.Fatalf("stats %+v (%d dead letters), want %+v (%d)", op.Stats(), len(dlGot.recs), ref.Stats(), len(dlWant.recs))
					}
				})
			}
		}
	}
}

// TestEmitChangesEndsAtFinalValues checks what EMIT CHANGES promises
// whatever the batching: the last row emitted for each group and window is
// the one EMIT FINAL emits for it (revision aside: EMIT CHANGES corrects in
// place), also for windows that open and close inside one input batch. In
// both modes no batch follows a message with FinalWatermark, since a
// reader flushes at it.
func TestEmitChangesEndsAtFinalValues(t *testing.T) {
	rows := genAggRows(rand.New(rand.NewPCG(4, 9)), 400, 8)
	for _, win := range []*WindowSpec{{Kind: Tumbling, Size: 10, Advance: 10}, {Kind: Sliding, Size: 12, Advance: 3}} {
		for _, late := range []LateDataSpec{{Strategy: "drop"}, {Strategy: "include_in_next_window"}, {Strategy: "update_previous", AllowedLateness: 6}} {
			for _, bs := range []int{1, 3, 64, len(rows)} {
				t.Run(fmt.Sprintf("%s/%s/batch%d", win, late.Strategy, bs), func(t *testing.T) {
					alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
					defer alloc.AssertSize(t, 0)
					last := func(changes bool) map[string]string {
						op, err := NewAggregate(alloc, &rowSource{alloc: alloc, rows: rows, size: bs}, aggTestConfig(t, win, late, changes, nil))
						if err != nil {
							t.Fatal(err)
						}
						return lastPerWindow(t, op, late.Strategy == "update_previous")
					}
					final, changes := last(false), last(true)
					if len(final) < 20 {
						t.Fatalf("only %d group windows: the data closes too few windows", len(final))
					}
					for k, want := range final {
						if got, ok := changes[k]; !ok {
							t.Errorf("EMIT CHANGES never emitted group/window %s (final %s)", k, want)
						} else if got != want {
							t.Errorf("group/window %s: last change %s, final %s", k, got, want)
						}
					}
					if len(changes) != len(final) {
						t.Errorf("EMIT CHANGES emitted %d group windows, EMIT FINAL %d", len(changes), len(final))
					}
				})
			}
		}
	}
}

// lastPerWindow drains a windowed aggregate of aggTestConfig's schema and
// returns the last row emitted for each (key, window_start), without the
// revision column. It fails the test when a batch follows a message with
// FinalWatermark or a watermark goes back.
func lastPerWindow(t *testing.T, op Operator, revision bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	wm := NoWatermark
	eachMessage(t, op, func(m Message) {
		if m.Batch != nil && wm == FinalWatermark {
			t.Fatalf("a batch of %d rows after the final watermark", m.Batch.NumRows())
		}
		if m.Watermark < wm {
			t.Fatalf("watermark goes back from %d to %d", wm, m.Watermark)
		}
		wm = m.Watermark
		for i := 0; m.Batch != nil && i < int(m.Batch.NumRows()); i++ {
			var row strings.Builder
			for c := 2; c < int(m.Batch.NumCols()); c++ {
				if c != 3 || !revision {
					fmt.Fprintf(&row, " %s", m.Batch.Column(c).ValueStr(i))
				}
			}
			out[m.Batch.Column(0).ValueStr(i)+"@"+m.Batch.Column(1).ValueStr(i)] = row.String()
		}
	})
	return out
}
