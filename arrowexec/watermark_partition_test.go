package arrowexec

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// scriptedPartitions replays a script of steps: a batch of event times from
// one partition, or a heartbeat (ts nil), each optionally changing the
// assigned partitions and advancing the fake clock first.
type scriptedPartitions struct {
	alloc    memory.Allocator
	steps    []partStep
	i        int
	assigned []int32
	clock    *time.Time
}

type partStep struct {
	advance  time.Duration
	assign   []int32 // when non-nil, the assignment from this step on
	part     int32
	ts       []int64 // nil: heartbeat
	wantRows []int64 // expected row watermarks
	wantWM   Watermark
}

func (s *scriptedPartitions) Schema() *arrow.Schema      { return tsSchema }
func (s *scriptedPartitions) Open(context.Context) error { return nil }
func (s *scriptedPartitions) Close() error               { return nil }
func (s *scriptedPartitions) Partitions() []int32        { return s.assigned }
func (s *scriptedPartitions) Next(context.Context) (Message, error) {
	st := s.steps[s.i]
	s.i++
	*s.clock = s.clock.Add(st.advance)
	if st.assign != nil {
		s.assigned = st.assign
	}
	if st.ts == nil {
		return Message{Watermark: NoWatermark}, nil
	}
	b := array.NewRecordBuilder(s.alloc, tsSchema)
	defer b.Release()
	for _, v := range st.ts {
		b.Field(0).(*array.Int64Builder).Append(v)
		b.Field(1).(*array.BooleanBuilder).Append(false)
	}
	return Message{Batch: b.NewRecordBatch(), Watermark: NoWatermark, Partition: st.part}, nil
}

func TestPartitionWatermarksTakeTheMinimumAndIdlePartitionsStopHoldingBack(t *testing.T) {
	const sec = 1000
	steps := []partStep{
		// Two partitions assigned; p0 runs ahead, p1 has no rows yet: the
		// stream has no watermark.
		{assign: []int32{0, 1}, part: 0, ts: []int64{10 * sec, 20 * sec}, wantRows: []int64{NoWatermark, NoWatermark}, wantWM: NoWatermark},
		// p1 arrives behind: rows see min(p0, p1's running watermark).
		{advance: time.Second, part: 1, ts: []int64{5 * sec, 8 * sec, 30 * sec}, wantRows: []int64{NoWatermark, 5 * sec, 8 * sec}, wantWM: 20 * sec},
		// p0 advances: bounded by p1 (30 s) now.
		{advance: time.Second, part: 0, ts: []int64{40 * sec}, wantRows: []int64{20 * sec}, wantWM: 30 * sec},
		// p1 falls silent; before the idle timeout it still holds at 30 s.
		{advance: 5 * time.Second, part: 0, ts: []int64{50 * sec}, wantRows: []int64{30 * sec}, wantWM: 30 * sec},
		// Past the idle timeout (10 s since p1's last row): a heartbeat
		// releases the watermark to p0's.
		{advance: 6 * time.Second, ts: nil, wantWM: 50 * sec},
		// p1 comes back behind: the watermark does not go backwards, and
		// p1 holds it again from now on.
		{advance: time.Second, part: 1, ts: []int64{35 * sec}, wantRows: []int64{50 * sec}, wantWM: 50 * sec},
		{advance: time.Second, part: 0, ts: []int64{70 * sec}, wantRows: []int64{50 * sec}, wantWM: 50 * sec},
		// p1 is revoked: it no longer counts.
		{advance: time.Second, assign: []int32{0}, ts: nil, wantWM: 70 * sec},
		// A new partition holds the watermark back until it is idle too;
		// when every partition is idle nothing is waited for.
		{advance: time.Second, assign: []int32{0, 2}, part: 0, ts: []int64{90 * sec}, wantRows: []int64{70 * sec}, wantWM: 70 * sec},
		{advance: 11 * time.Second, ts: nil, wantWM: 90 * sec},
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	clock := time.Unix(0, 0)
	src := &scriptedPartitions{alloc: mem, steps: steps, clock: &clock}
	w := NewWatermarkAssigner(mem, src, EventTimeConfig{
		TimeColumn: 0, Strategy: Ascending, IdleTimeout: 10 * time.Second,
		Now: func() time.Time { return clock },
	})
	ctx := context.Background()
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, st := range steps {
		m, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rows []int64
		if m.Batch != nil {
			rows = m.Batch.Column(2).(*array.Int64).Int64Values()
		}
		if !slices.Equal(rows, st.wantRows) || m.Watermark != st.wantWM {
			t.Errorf("step %d: row watermarks %v, message %s; want %v, %s",
				i, rows, FormatWatermark(m.Watermark), st.wantRows, FormatWatermark(st.wantWM))
		}
		m.Release()
	}
}
