package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

// ---- checkpoint harness, shared by the Stateful operator tests ----

// replaySource replays messages; each batch is retained for the reader, so
// the messages can be replayed again. After the last message it returns
// io.EOF, or errReplayPaused when paused (the input has no more yet).
type replaySource struct {
	schema *arrow.Schema
	msgs   []Message
	i      int
	paused bool
}

var errReplayPaused = errors.New("replay paused")

func (s *replaySource) Schema() *arrow.Schema      { return s.schema }
func (s *replaySource) Open(context.Context) error { return nil }
func (s *replaySource) Close() error               { return nil }
func (s *replaySource) Next(ctx context.Context) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	if s.i >= len(s.msgs) {
		if s.paused {
			return Message{}, errReplayPaused
		}
		return Message{}, io.EOF
	}
	m := s.msgs[s.i]
	s.i++
	if m.Batch != nil {
		m.Batch.Retain()
	}
	return m, nil
}

func releaseReplay(msgs []Message) {
	for _, m := range msgs {
		m.Release()
	}
}

// renderStateMsg renders a message exactly: its watermark and every cell
// of every row (DOUBLE to the last bit).
func renderStateMsg(m Message) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "wm=%d", m.Watermark)
	if b := m.Batch; b != nil {
		for i := 0; i < int(b.NumRows()); i++ {
			sb.WriteString("\n ")
			for _, c := range b.Columns() {
				if f, ok := c.(*array.Float64); ok && f.IsValid(i) {
					sb.WriteString(" " + strconv.FormatFloat(f.Value(i), 'g', -1, 64))
				} else {
					sb.WriteString(" " + renderCell(c, i))
				}
			}
		}
	}
	return sb.String()
}

// barrierCheck is what checkStatefulBarrier saw.
type barrierCheck struct {
	// stateMatters is set when a fresh operator fed the input after the
	// barrier, without the saved state, produces other output.
	stateMatters bool
}

// checkStatefulBarrier checks the Stateful contract of the operators build makes
// over the input msgs with a barrier inserted before msgs[at]:
// operator A runs over the whole input and returns the barrier exactly
// once, with a watermark that does not go back, right after all the
// output msgs[:at] alone gives (an operator fed msgs[:at] that then waits
// for more input returns exactly what A returns before the barrier); its
// state at the barrier is encoded and decoded (RoundTrip) and
// loaded into a fresh operator B, fed msgs[at:]; B's output must equal
// A's output after the barrier, message by message (rows, order,
// watermarks), and so must their late-row counters at the end, when the
// operators have them.
func checkStatefulBarrier(t *testing.T, alloc memory.Allocator, schema *arrow.Schema, msgs []Message, at int,
	build func(in Operator) (Stateful, error)) barrierCheck {
	t.Helper()
	ctx := context.Background()
	wm := NoWatermark
	if at > 0 {
		wm = msgs[at-1].Watermark
	}
	var saved *StateReader
	barrier := NewBarrier(1, func(op Stateful, w *StateWriter) error {
		if saved != nil {
			w.Release()
			return errors.New("barrier saved twice")
		}
		r, err := RoundTrip(alloc, w)
		saved = r
		return err
	})
	input := slices.Concat(msgs[:at], []Message{{Watermark: wm, Barrier: barrier}}, msgs[at:])
	run := func(op Stateful) []string {
		t.Helper()
		if err := op.Open(ctx); err != nil {
			t.Fatal(err)
		}
		defer op.Close()
		var out []string
		last := NoWatermark
		for {
			m, err := op.Next(ctx)
			if errors.Is(err, io.EOF) || errors.Is(err, errReplayPaused) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Watermark < last {
				t.Fatalf("watermark went back from %d to %d", last, m.Watermark)
			}
			last = m.Watermark
			s := renderStateMsg(m)
			if m.Barrier != nil {
				if m.Barrier != barrier || m.Batch != nil {
					t.Fatalf("bad barrier message %v", m)
				}
				s = "BARRIER " + s
			}
			out = append(out, s)
			m.Release()
		}
	}
	a, err := build(&replaySource{schema: schema, msgs: input})
	if err != nil {
		t.Fatal(err)
	}
	outA := run(a)
	cut := -1
	for i, s := range outA {
		if strings.HasPrefix(s, "BARRIER ") {
			if cut >= 0 {
				t.Fatalf("barrier returned twice, at %d and %d", cut, i)
			}
			cut = i
		}
	}
	if cut < 0 || saved == nil {
		t.Fatalf("barrier not returned (%d) or state not saved", cut)
	}
	defer saved.Release()
	// before the barrier: all that the input before it gives, no more
	early, err := build(&replaySource{schema: schema, msgs: msgs[:at], paused: true})
	if err != nil {
		t.Fatal(err)
	}
	diffOut(t, fmt.Sprintf("before a barrier at message %d vs the input before it alone", at), outA[:cut], run(early))
	b, err := build(&replaySource{schema: schema, msgs: msgs[at:]})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.LoadState(saved); err != nil {
		b.Close()
		t.Fatal(err)
	}
	want := outA[cut+1:]
	diffOut(t, fmt.Sprintf("restored at message %d vs uninterrupted", at), run(b), want)
	type withStats interface{ Stats() AggregateStats }
	if sa, ok := a.(withStats); ok {
		if x, y := sa.Stats(), b.(withStats).Stats(); x != y {
			t.Fatalf("restored at message %d: stats %+v, uninterrupted %+v", at, y, x)
		}
	}

	fresh, err := build(&replaySource{schema: schema, msgs: msgs[at:]})
	if err != nil {
		t.Fatal(err)
	}
	return barrierCheck{stateMatters: !slices.Equal(run(fresh), want)}
}

// checkBarriers runs checkStatefulBarrier with the barrier at the start,
// at two positions drawn from r and at the end of msgs, and returns at how
// many of them the saved state changed the output.
func checkBarriers(t *testing.T, alloc memory.Allocator, schema *arrow.Schema, msgs []Message, r *rand.Rand,
	build func(in Operator) (Stateful, error)) int {
	t.Helper()
	n := 0
	for _, at := range []int{0, r.IntN(len(msgs) + 1), r.IntN(len(msgs) + 1), len(msgs)} {
		if checkStatefulBarrier(t, alloc, schema, msgs, at, build).stateMatters {
			n++
		}
	}
	return n
}

// ---- OverOp ----

// TestOverCheckpoint checks OverOp's SaveState/LoadState with checkStatefulBarrier
// in every mode (arrival order, ordered by event time, tumbling and
// sliding windows, with and without LEAD) over random input with late
// rows, NULLs and sliced batches, at several batch sizes and barrier
// positions, under every late-data strategy that keeps rows.
func TestOverCheckpoint(t *testing.T) {
	byK := []expr.Expr{overCol(oK)}
	byS := []expr.Expr{overCol(oS)}
	ordTS := []OverOrder{{Expr: overCol(oTS)}}
	winOrd := []OverOrder{{Expr: overCol(oV), Desc: true, NullsFirst: true}, {Expr: overCol(oX)}}
	type mode struct {
		name    string
		win     *WindowSpec
		ordered bool
		lead    bool
		late    string
	}
	modes := []mode{
		{name: "arrival"},
		{name: "arrival-lead", lead: true},
		{name: "ordered", ordered: true},
		{name: "ordered-lead", ordered: true, lead: true, late: "include_in_next_window"},
		{name: "tumbling", win: &WindowSpec{Kind: Tumbling, Size: 10, Advance: 10}, lead: true},
		{name: "sliding", win: &WindowSpec{Kind: Sliding, Size: 20, Advance: 5}, lead: true, late: "include_in_next_window"},
	}
	seeds, n := uint64(3), 150
	if testing.Short() {
		seeds, n = 1, 80
	}
	if lightTests() {
		n = 40
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var specs []OverSpec
			switch {
			case m.win != nil:
				specs = []OverSpec{{PartitionBy: byK, OrderBy: winOrd}, {PartitionBy: byS}, {OrderBy: []OverOrder{{Expr: overCol(oS), Desc: true}}}}
			case m.ordered:
				specs = []OverSpec{{PartitionBy: byK, OrderBy: ordTS}, {PartitionBy: byS, OrderBy: ordTS}, {PartitionBy: append(byK, byS...)}}
			default:
				specs = []OverSpec{{PartitionBy: byK}, {PartitionBy: byS}, {PartitionBy: append(byK, byS...)}}
			}
			cfg := overTestConfig(specs, overTestCalls(m.lead, m.win != nil), m.win, m.ordered)
			if m.late != "" {
				cfg.Late.Strategy = m.late
			}
			mattered := 0
			for seed := uint64(1); seed <= seeds; seed++ {
				r := rand.New(rand.NewPCG(seed, 7))
				rows := genOverRows(r, n+r.IntN(n), 6)
				for _, size := range []int{1, 3, 1 + r.IntN(40)} {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					msgs := materialize(t, &overSource{alloc: mem, rows: rows, size: func() int { return size }})
					mattered += checkBarriers(t, mem, overInSchema, msgs, r, func(in Operator) (Stateful, error) {
						return NewOver(mem, in, cfg)
					})
					releaseReplay(msgs)
					mem.AssertSize(t, 0)
				}
			}
			if mattered == 0 {
				t.Fatal("no barrier position where the saved state changes the output: the test checks nothing")
			}
		})
	}
}
