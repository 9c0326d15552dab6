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
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

// handoffSource hands over the messages it holds, in order, then io.EOF; it
// counts the messages pulled. Close releases those not pulled.
type handoffSource struct {
	msgs   []Message
	pulled int
}

func (s *handoffSource) Schema() *arrow.Schema      { return aggTestSchema }
func (s *handoffSource) Open(context.Context) error { return nil }
func (s *handoffSource) Close() error {
	for _, m := range s.msgs[s.pulled:] {
		m.Release()
	}
	s.msgs = s.msgs[:s.pulled]
	return nil
}

func (s *handoffSource) Next(context.Context) (Message, error) {
	if s.pulled >= len(s.msgs) {
		return Message{}, io.EOF
	}
	s.pulled++
	return s.msgs[s.pulled-1], nil
}

// retained returns msgs with each batch retained once more (a copy of the
// stream for another operator).
func retained(msgs []Message) []Message {
	for _, m := range msgs {
		if m.Batch != nil {
			m.Batch.Retain()
		}
	}
	return slices.Clone(msgs)
}

// stateTestConfig is aggTestConfig (un-windowed when win is nil) plus
// aggregates whose results depend on the order DOUBLEs are added in (so
// that how windows were folded before a checkpoint matters) and a
// DISTINCT sum.
func stateTestConfig(t *testing.T, win *WindowSpec, late LateDataSpec, changes bool, dl DeadLetter) AggregateConfig {
	cfg := aggTestConfig(t, win, late, changes, dl)
	v, x := expr.Col(1, "v", arrow.PrimitiveTypes.Int64), expr.Col(2, "x", arrow.PrimitiveTypes.Float64)
	extra := []agg.Spec{{Func: "sum", Input: arrow.PrimitiveTypes.Float64}, {Func: "avg", Input: arrow.PrimitiveTypes.Float64},
		{Func: "stddev_samp", Input: arrow.PrimitiveTypes.Float64}, {Func: "sum", Input: arrow.PrimitiveTypes.Int64, Distinct: true}}
	cfg.Specs = append(slices.Clone(cfg.Specs), extra...)
	cfg.Args = append(slices.Clone(cfg.Args), x, x, x, v)
	var fields []arrow.Field
	for _, f := range cfg.Schema.Fields() {
		if win != nil || f.Name != "window_start" && f.Name != "window_end" {
			fields = append(fields, f)
		}
	}
	for j, s := range extra {
		rt, err := agg.ResultType(s)
		if err != nil {
			t.Fatal(err)
		}
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("e%d", j), Type: rt, Nullable: true})
	}
	cfg.Schema = arrow.NewSchema(fields, nil)
	return cfg
}

// TestAggregateCheckpointRestore is the checkpoint property of
// AggregateOp: for random streams (in-order, out-of-order and late rows,
// watermark-only messages), un-windowed, tumbling and sliding windows (with
// the stacks and without), every late-data strategy, EMIT CHANGES or not,
// batch sizes 1 (not with EMIT CHANGES), 3 and 64, and a barrier inserted
// before message i (random ones, after the final watermark and, without
// -short, the first and the last):
//   - operator A, run to the end, returns the barrier exactly once, with
//     the stream's watermark at the barrier, and saves its state then,
//     having pulled exactly the messages up to the barrier; apart from the
//     barrier its output is that of operator D run on the stream without
//     a barrier, and its watermarks never go back;
//   - operator B, built from the same configuration, loads the state A
//     saved at the barrier (through RoundTrip: Arrow IPC with zstd) and is
//     fed only the messages after the barrier: its output (rows, order,
//     batches, watermarks), late counters and dead letters are exactly
//     A's from the barrier on.
func TestAggregateCheckpointRestore(t *testing.T) {
	windows := []*WindowSpec{nil, {Kind: Tumbling, Size: 10, Advance: 10}, {Kind: Sliding, Size: 10, Advance: 5},
		{Kind: Sliding, Size: 12, Advance: 3}, {Kind: Sliding, Size: 6, Advance: 1}}
	lates := []LateDataSpec{{Strategy: "drop"}, {Strategy: "dead_letter"}, {Strategy: "include_in_next_window"},
		{Strategy: "update_previous", AllowedLateness: 6}, {Strategy: "update_previous", AllowedLateness: 25}}
	seeds, sizes, nrows := uint64(2), []int{1, 3, 64}, 200
	if testing.Short() {
		seeds, sizes, nrows = 1, []int{3, 64}, 150
	}
	if lightTests() {
		sizes, nrows = []int{3}, 80
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 17))
		rows := genAggRows(rng, nrows, 8)
		for i := range rows {
			if rows[i].x != nil { // DOUBLE sums that round
				x := *rows[i].x/3 + 0.1
				rows[i].x = &x
			}
			if rng.IntN(6) == 0 { // more rows a little late: windows corrected repeatedly
				rows[i].ts -= 8 + rng.Int64N(15)
			}
		}
		for _, win := range windows {
			for _, late := range lates {
				if win == nil && late.Strategy != "drop" {
					continue
				}
				for _, changes := range []bool{false, true} {
					for _, bs := range sizes {
						for _, noStacks := range []bool{false, true} {
							if noStacks && (win == nil || win.Kind != Sliding || bs != 3 || changes) || bs == 1 && changes {
								continue
							}
							plan := planMessages(rand.New(rand.NewPCG(seed, uint64(bs))), rows, bs)
							n := len(plan)
							positions := []int{n, 1 + rng.IntN(n-1), 1 + rng.IntN(n-1)}
							if !testing.Short() {
								positions = append(positions, 0, n-1)
							}
							for _, pos := range positions {
								name := fmt.Sprintf("seed%d/%s/%s-%d/changes=%v/batch%d/nostacks=%v/barrier@%d",
									seed, win, late.Strategy, late.AllowedLateness, changes, bs, noStacks, pos)
								t.Run(name, func(t *testing.T) {
									checkCheckpointRestore(t, rows, plan, pos, noStacks,
										func(dl DeadLetter) AggregateConfig { return stateTestConfig(t, win, late, changes, dl) })
								})
							}
						}
					}
				}
			}
		}
	}
}

// msgPlan is one message of a test stream: rows[lo:hi] (none if lo ==
// hi) with watermark wm.
type msgPlan struct {
	lo, hi int
	wm     Watermark
}

// planMessages splits rows into batches of bs, each with the watermark
// after its last row, with watermark-only messages ahead of the row
// watermarks (a source's idle or heartbeat watermarks) in between, and a
// final watermark at the end; message watermarks never go back.
func planMessages(r *rand.Rand, rows []aggRow, bs int) []msgPlan {
	var plan []msgPlan
	wm := Watermark(NoWatermark)
	for lo := 0; lo < len(rows); lo += bs {
		hi := min(lo+bs, len(rows))
		wm = max(wm, rows[hi-1].wm)
		plan = append(plan, msgPlan{lo, hi, wm})
		if r.IntN(4) == 0 && wm != NoWatermark {
			wm += r.Int64N(6)
			plan = append(plan, msgPlan{hi, hi, wm})
		}
	}
	return append(plan, msgPlan{len(rows), len(rows), FinalWatermark})
}

// collectMessages builds the messages of plan.
func collectMessages(t *testing.T, alloc memory.Allocator, rows []aggRow, plan []msgPlan) []Message {
	var msgs []Message
	for _, p := range plan {
		m := Message{Watermark: p.wm}
		if p.hi > p.lo {
			src := &rowSource{alloc: alloc, rows: rows[p.lo:p.hi], size: p.hi - p.lo}
			b, err := src.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			m.Batch = b.Batch
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func checkCheckpointRestore(t *testing.T, rows []aggRow, plan []msgPlan, pos int, noStacks bool, config func(DeadLetter) AggregateConfig) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	msgs := collectMessages(t, alloc, rows, plan)
	tail := retained(msgs[pos:]) // for B

	newOp := func(msgs []Message, dl DeadLetter) (*AggregateOp, *handoffSource) {
		s := &handoffSource{msgs: msgs}
		op, err := NewAggregate(alloc, s, config(dl))
		if err != nil {
			t.Fatal(err)
		}
		op.noStacks = noStacks
		return op, s
	}

	// D: the stream without a barrier.
	var dlD recordingDL
	d, _ := newOp(retained(msgs), &dlD)
	want := drainAgg(t, d)

	// A: the stream with a barrier before message pos.
	var dlA recordingDL
	var saved *StateReader
	savedAt, dlAtSave := -1, 0
	var srcA *handoffSource
	barrier := NewBarrier(1, func(op Stateful, w *StateWriter) error {
		if saved != nil {
			return errors.New("state saved twice")
		}
		r, err := RoundTrip(alloc, w)
		if err != nil {
			return err
		}
		saved, savedAt, dlAtSave = r, srcA.pulled, len(dlA.recs)
		return nil
	})
	bwm := Watermark(NoWatermark) // the stream's watermark at the barrier
	for _, m := range msgs[:pos] {
		bwm = max(bwm, m.Watermark)
	}
	withBarrier := slices.Insert(msgs, pos, Message{Watermark: bwm, Barrier: barrier})
	a, s := newOp(withBarrier, &dlA)
	srcA = s
	got := drainAgg(t, a)
	if saved == nil {
		t.Fatal("operator A never saved its state")
	}
	defer saved.Release()
	if savedAt != pos+1 {
		t.Fatalf("state saved after pulling %d messages, want %d (those up to the barrier)", savedAt, pos+1)
	}
	var bi []int
	for i, m := range got {
		if strings.HasPrefix(m, "barrier=") {
			bi = append(bi, i)
		}
	}
	if len(bi) != 1 {
		t.Fatalf("barrier returned %d times, want once", len(bi))
	}
	at := bi[0]
	if without := slices.Delete(slices.Clone(got), at, at+1); !slices.Equal(without, want) {
		t.Fatalf("output with a barrier differs from the output without:\ngot  %q\nwant %q", without, want)
	}
	checkWatermarksAscend(t, got)
	if w := renderedWatermark(got[at]); w != bwm {
		t.Fatalf("barrier has watermark %d, want the stream's %d", w, bwm)
	}

	// B: restored from A's state, fed the messages after the barrier.
	var dlB recordingDL
	b, _ := newOp(tail, &dlB)
	if err := b.LoadState(saved); err != nil {
		b.Close()
		t.Fatal(err)
	}
	gotB := drainAgg(t, b)
	if wantB := got[at+1:]; !slices.Equal(gotB, wantB) {
		for i := 0; i < min(len(gotB), len(wantB)); i++ {
			if gotB[i] != wantB[i] {
				t.Fatalf("restored output, message %d:\ngot  %s\nwant %s", i, gotB[i], wantB[i])
			}
		}
		t.Fatalf("restored output has %d messages, want %d", len(gotB), len(wantB))
	}
	if b.Stats() != a.Stats() {
		t.Fatalf("restored stats %+v, want %+v", b.Stats(), a.Stats())
	}
	if len(dlB.recs) != len(dlA.recs)-dlAtSave {
		t.Fatalf("restored operator dead-lettered %d rows, want %d", len(dlB.recs), len(dlA.recs)-dlAtSave)
	}
	for i, r := range dlB.recs {
		if w := dlA.recs[dlAtSave+i]; r.Reason+r.Raw != w.Reason+w.Raw {
			t.Fatalf("dead letter %d: %s, want %s", i, r.Reason+r.Raw, w.Reason+w.Raw)
		}
	}
}

// renderedWatermark parses the watermark of a rendered message.
func renderedWatermark(m string) Watermark {
	var w Watermark
	_, _ = fmt.Sscanf(m[strings.Index(m, "wm="):], "wm=%d", &w)
	return w
}

func checkWatermarksAscend(t *testing.T, out []string) {
	t.Helper()
	for i := 1; i < len(out); i++ {
		if renderedWatermark(out[i]) < renderedWatermark(out[i-1]) {
			t.Fatalf("watermark goes back at message %d: %s after %s", i, out[i], out[i-1])
		}
	}
}
