package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var tsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "ts", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "p", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
}, nil)

// tsSource emits the event times (nil = NULL) in batches of size.
type tsSource struct {
	alloc memory.Allocator
	ts    []*int64
	punct []bool
	size  int
	i     int
}

func (s *tsSource) Schema() *arrow.Schema      { return tsSchema }
func (s *tsSource) Open(context.Context) error { return nil }
func (s *tsSource) Close() error               { return nil }
func (s *tsSource) Next(context.Context) (Message, error) {
	if s.i >= len(s.ts) {
		return Message{}, io.EOF
	}
	b := array.NewRecordBuilder(s.alloc, tsSchema)
	defer b.Release()
	for j := 0; j < s.size && s.i < len(s.ts); j++ {
		if v := s.ts[s.i]; v != nil {
			b.Field(0).(*array.Int64Builder).Append(*v)
		} else {
			b.Field(0).(*array.Int64Builder).AppendNull()
		}
		b.Field(1).(*array.BooleanBuilder).Append(s.punct != nil && s.punct[s.i])
		s.i++
	}
	return Message{Batch: b.NewRecordBatch(), Watermark: NoWatermark}, nil
}

type recordingDL struct {
	mu   sync.Mutex
	recs []DeadLetterRecord
}

func (d *recordingDL) DeadLetter(_ context.Context, r DeadLetterRecord) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs = append(d.recs, r)
	return nil
}

func ptrs(vs ...int64) []*int64 {
	out := make([]*int64, len(vs))
	for i := range vs {
		out[i] = &vs[i]
	}
	return out
}

// drain runs the assigner to the end and returns each row's event time and
// row watermark, and the message watermarks.
func drain(t *testing.T, w *WatermarkAssigner) (ts, wm, msgs []int64) {
	t.Helper()
	ctx := context.Background()
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for {
		m, err := w.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Batch != nil {
			if !arrow.TypeEqual(m.Batch.Column(0).DataType(), timestampMS) {
				t.Fatalf("event time column is %s", m.Batch.Column(0).DataType())
			}
			tcol := m.Batch.Column(0).(*array.Timestamp)
			wcol := m.Batch.Column(2).(*array.Int64)
			for i := 0; i < tcol.Len(); i++ {
				ts = append(ts, int64(tcol.Value(i)))
				wm = append(wm, wcol.Value(i))
			}
		}
		msgs = append(msgs, m.Watermark)
		m.Release()
	}
}

func TestRowWatermarksDoNotDependOnBatching(t *testing.T) {
	in := []int64{1000, 9999, 10000, 12000, 8000, 25000, 3000, 19000}
	want := []int64{NoWatermark, -4000, 4999, 5000, 7000, 7000, 20000, 20000}
	for _, size := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			w := NewWatermarkAssigner(mem, &tsSource{alloc: mem, ts: ptrs(in...), size: size},
				EventTimeConfig{TimeColumn: 0, Delay: 5 * time.Second})
			ts, wm, msgs := drain(t, w)
			if !slices.Equal(ts, in) || !slices.Equal(wm, want) {
				t.Fatalf("ts %v\nwm %v\nwant %v", ts, wm, want)
			}
			if last := msgs[len(msgs)-1]; last != 20000 {
				t.Fatalf("final message watermark %d", last)
			}
			if !slices.IsSorted(msgs) {
				t.Fatalf("message watermarks went backwards: %v", msgs)
			}
		})
	}
}

func TestEpochSecondsAndPunctuation(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	src := &tsSource{alloc: mem, ts: ptrs(1, 5, 3, 9), punct: []bool{false, true, false, false}, size: 2}
	w := NewWatermarkAssigner(mem, src, EventTimeConfig{TimeColumn: 0, EpochFactor: 1000, Strategy: Punctuated, Punctuation: 1})
	ts, wm, _ := drain(t, w)
	if !slices.Equal(ts, []int64{1000, 5000, 3000, 9000}) {
		t.Fatalf("epoch seconds not converted: %v", ts)
	}
	// Only the punctuation row (5 s) advances the watermark.
	if !slices.Equal(wm, []int64{NoWatermark, NoWatermark, 5000, 5000}) {
		t.Fatalf("punctuated watermarks %v", wm)
	}
}

func TestNullEventTimesAreDeadLettered(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	v := ptrs(1000, 2000)
	dl := &recordingDL{}
	src := &tsSource{alloc: mem, ts: []*int64{v[0], nil, v[1]}, size: 3}
	w := NewWatermarkAssigner(mem, src, EventTimeConfig{Source: "s", TimeColumn: 0, DeadLetter: dl})
	ts, _, _ := drain(t, w)
	if !slices.Equal(ts, []int64{1000, 2000}) {
		t.Fatalf("rows %v", ts)
	}
	if len(dl.recs) != 1 || dl.recs[0].Field != "ts" || dl.recs[0].Raw != `{"ts":null,"p":false}` {
		t.Fatalf("dead letters %+v", dl.recs)
	}
}
