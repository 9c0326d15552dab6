package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestJoinAlignsFastInput: the left input is ready at once, the right one
// is slow (each message waits until the left input has been read to its
// end, or 2ms). Without watermark alignment the join reads the whole left
// input first and holds all of it; with it, the left input is read at
// most Align (plus a batch) ahead of the right one, so the join's state
// stays at a few batches. The rows are those of the reference either way.
func TestJoinAlignsFastInput(t *testing.T) {
	const n, batch, step, delay = 8000, 100, 10, 500 // 80 s of event time, 1 s per batch
	var keys []*int64
	var ts []int64
	for i := range n {
		keys = append(keys, kp(int64(i%13)))
		ts = append(ts, int64(i*step))
	}
	L := jrows(delay, keys, ts)
	R := jrows(delay, keys, ts)
	c := joinCase{kind: LeftJoin, bound: &JoinBound{Lo: -1000, Hi: 1000}}
	want := refJoin(c, L, R)
	for _, align := range []int64{0, 2000} {
		t.Run(fmt.Sprint("align", align), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			leftDone := make(chan struct{})
			left := &msgSource{alloc: mem, rows: L, delay: delay, maxBatch: batch, done: leftDone}
			right := &msgSource{alloc: mem, rows: R, delay: delay, maxBatch: batch, wait: func(ctx context.Context) {
				select {
				case <-leftDone:
				case <-time.After(2 * time.Millisecond):
				case <-ctx.Done():
				}
			}}
			cfg := c.config(t)
			cfg.Align = align
			cfg.AlignWait = time.Minute // never give up on the slow input here
			op, err := NewJoin(mem, left, right, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer op.Close()
			got, peak := drainJoinPeak(t, op)
			if d := diffRows(got, want); d != "" {
				t.Fatalf("rows differ from the reference:\n%s", d)
			}
			// A batch holds 1 s of one input; all of the left input is 80
			// batches. Aligned to 2 s with a 1 s reach, the join holds a
			// few batches of each input.
			one := batchStateBytes(t, mem, L[:batch])
			t.Logf("align %d: peak state %d bytes (%.1f batches), waits %d, stalls %d",
				align, peak, float64(peak)/float64(one), op.Stats().AlignWaits, op.Stats().AlignStalls)
			if align > 0 && peak > 12*one {
				t.Fatalf("peak state %d bytes, %.1f batches: the fast input ran ahead", peak, float64(peak)/float64(one))
			}
		})
	}
}

// batchStateBytes is what the join reserves to hold one batch of rows:
// measured by a join that holds exactly that batch.
func batchStateBytes(t *testing.T, mem memory.Allocator, rows []jrow) int64 {
	t.Helper()
	in0, in1 := NewInlet(joinTestSchema, 2), NewInlet(joinTestSchema, 2)
	op, err := NewJoin(mem, in0, in1, joinCase{kind: InnerJoin, bound: &JoinBound{Lo: -1000, Hi: 1000}}.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	pushMsg(t, in0, mem, rows, rows[0].ts)
	pushMsg(t, in1, mem, nil, rows[0].ts-2000) // expires none of them
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := op.Next(ctx) // the output watermark, once both are in
	if err != nil {
		t.Fatal(err)
	}
	msg.Release()
	return op.StateBytes()
}

// drainJoinPeak runs op to the end and returns its rows as refJoin formats
// them, sorted, and the largest StateBytes seen after a Next.
func drainJoinPeak(t *testing.T, op *JoinOp) ([]string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var out []string
	var peak int64
	for {
		msg, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, op.StateBytes())
		if b := msg.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				var parts []string
				for c := 0; c < 6; c++ {
					parts = append(parts, cell(b.Column(c), i))
				}
				out = append(out, strings.Join(parts[:3], ",")+"|"+strings.Join(parts[3:], ","))
			}
		}
		msg.Release()
	}
	slices.Sort(out)
	return out, peak
}

// lagWatermark passes its input on with every message's watermark held
// back by lag (final stays final): an operator between a shared source
// and one side of a join that holds the watermark back, as a join or a
// window does.
type lagWatermark struct {
	unary
	lag int64
}

func (l *lagWatermark) Schema() *arrow.Schema { return l.input.Schema() }

func (l *lagWatermark) Next(ctx context.Context) (Message, error) {
	msg, err := l.input.Next(ctx)
	if err == nil && msg.Watermark != FinalWatermark && msg.Watermark != NoWatermark {
		msg.Watermark -= l.lag
	}
	return msg, err
}

// TestJoinAlignmentSharedUpstreamDoesNotDeadlock: one source feeds both
// inputs of a join through Inlets of depth 1, and one side holds the
// watermark back by 10 s, more than the alignment (1 s): the side ahead
// stays ahead however much the join reads of the other, and pausing it
// blocks the shared source, so the other side starves. The join must
// notice the stall (AlignWait) and read on instead of deadlocking.
func TestJoinAlignmentSharedUpstreamDoesNotDeadlock(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const n = 2000
	var keys []*int64
	var ts []int64
	for i := range n {
		keys = append(keys, kp(int64(i%7)))
		ts = append(ts, int64(i*10))
	}
	src := &msgSource{alloc: mem, rows: jrows(0, keys, ts), maxBatch: 20}
	inA, inB := NewInlet(joinTestSchema, 1), NewInlet(joinTestSchema, 1)
	cfg := joinCase{kind: InnerJoin, bound: &JoinBound{Lo: 0, Hi: 0}}.config(t)
	cfg.Align, cfg.AlignWait = 1000, 5*time.Millisecond
	op, err := NewJoin(mem, inA, &lagWatermark{unary: unary{input: inB}, lag: 10_000}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &countingSink{}
	runSelfJoin(t, src, op, inA, inB, sink)
	if sink.rows != n { // each row matches itself (same key, same time)
		t.Fatalf("got %d rows, want %d", sink.rows, n)
	}
	if op.Stats().AlignStalls == 0 {
		t.Fatalf("the join never paused the side ahead (stats %+v): the test tests nothing", op.Stats())
	}
	t.Logf("stats %+v", op.Stats())
}

// heartbeats is an idle input: until done is closed it sends, every
// millisecond, a watermark-only message that does not advance (as a Kafka
// source with idle partitions does), then the final watermark.
type heartbeats struct {
	wm    Watermark
	done  <-chan struct{}
	ended bool
}

func (h *heartbeats) Schema() *arrow.Schema      { return joinTestSchema }
func (h *heartbeats) Open(context.Context) error { return nil }
func (h *heartbeats) Close() error               { return nil }
func (h *heartbeats) Next(ctx context.Context) (Message, error) {
	if h.ended {
		return Message{}, io.EOF
	}
	select {
	case <-h.done:
		h.ended = true
		return Message{Watermark: FinalWatermark}, nil
	case <-time.After(time.Millisecond):
		return Message{Watermark: h.wm}, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// TestJoinAlignmentIdleInput: an input that keeps sending heartbeats but
// never advances its watermark must not pause the other input for good:
// after AlignWait the join reads on.
func TestJoinAlignmentIdleInput(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var keys []*int64
	var ts []int64
	for i := range 1000 {
		keys = append(keys, kp(int64(i%7)))
		ts = append(ts, int64(i*100))
	}
	done := make(chan struct{})
	left := &msgSource{alloc: mem, rows: jrows(0, keys, ts), maxBatch: 10, done: done}
	cfg := joinCase{kind: LeftJoin, bound: &JoinBound{Lo: 0, Hi: 0}}.config(t)
	cfg.Align, cfg.AlignWait = 1000, 200*time.Millisecond
	op, err := NewJoin(mem, left, &heartbeats{wm: 0, done: done}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	got, _ := drainJoinPeak(t, op)
	if len(got) != 1000 { // every left row, unmatched
		t.Fatalf("got %d rows, want 1000", len(got))
	}
	if op.Stats().AlignStalls == 0 {
		t.Fatalf("the join never paused the input ahead (stats %+v): the test tests nothing", op.Stats())
	}
}
