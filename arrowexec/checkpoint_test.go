package arrowexec

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

// seekableSource is a countSource with a position, pausing a little per
// batch so that checkpoints happen in the middle of the stream.
type seekableSource struct {
	countSource
	pause time.Duration
}

func (s *seekableSource) Next(ctx context.Context) (Message, error) {
	if s.pause > 0 {
		time.Sleep(s.pause)
	}
	return s.countSource.Next(ctx)
}
func (s *seekableSource) Position() ([]byte, error) { return []byte(strconv.Itoa(s.i)), nil }
func (s *seekableSource) Seek(pos []byte) error {
	i, err := strconv.Atoi(string(pos))
	s.i = i
	return err
}

// runningSum is a Stateful operator: it appends to each row the sum of all
// values so far, so its output depends on its state.
type runningSum struct {
	unary
	sum    int64
	schema *arrow.Schema
}

func newRunningSum(alloc memory.Allocator, in Operator) *runningSum {
	fields := append(slices.Clone(in.Schema().Fields()), arrow.Field{Name: "sum", Type: arrow.PrimitiveTypes.Int64})
	return &runningSum{unary: unary{input: in, alloc: alloc}, schema: arrow.NewSchema(fields, nil)}
}

func (r *runningSum) Schema() *arrow.Schema { return r.schema }
func (r *runningSum) Next(ctx context.Context) (Message, error) {
	msg, err := r.input.Next(ctx)
	if err != nil {
		return msg, err
	}
	if msg.Barrier != nil {
		return msg, msg.Barrier.Save(r)
	}
	if msg.Batch == nil {
		return msg, nil
	}
	defer msg.Release()
	v := msg.Batch.Column(0).(*array.Int64)
	b := array.NewInt64Builder(r.alloc)
	defer b.Release()
	for i := range v.Len() {
		r.sum += v.Value(i)
		b.Append(r.sum)
	}
	sums := b.NewArray()
	defer sums.Release()
	cols := append(slices.Clone(msg.Batch.Columns()), sums)
	return Message{Batch: array.NewRecordBatch(r.schema, cols, msg.Batch.NumRows()), Watermark: msg.Watermark}, nil
}
func (r *runningSum) SaveState(w *StateWriter) error { w.SetInt("sum", r.sum); return nil }
func (r *runningSum) LoadState(st *StateReader) (err error) {
	r.sum, err = st.Int("sum")
	return err
}

// lineFile is a ResumableSink writing "v sum" lines to a shared slice: what
// a file holds. Lines after the last flush are "on disk" too (a crash may
// leave them), so a recovery must cut them.
type lineFile struct {
	mu      sync.Mutex
	lines   *[]string
	flushed int
	resume  int64
	onWrite func()
}

func (f *lineFile) Open(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resume >= 0 {
		*f.lines = (*f.lines)[:f.resume]
	} else {
		*f.lines = nil
	}
	return nil
}
func (f *lineFile) Write(_ context.Context, msg Message) error {
	if msg.Batch == nil {
		return nil
	}
	f.mu.Lock()
	v := msg.Batch.Column(0).(*array.Int64)
	s := msg.Batch.Column(1).(*array.Int64)
	for i := range v.Len() {
		*f.lines = append(*f.lines, strconv.FormatInt(v.Value(i), 10)+" "+strconv.FormatInt(s.Value(i), 10))
	}
	f.mu.Unlock()
	if f.onWrite != nil {
		f.onWrite()
	}
	return nil
}
func (f *lineFile) Flush(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushed = len(*f.lines)
	return nil
}
func (f *lineFile) Close() error { return nil }
func (f *lineFile) Committed() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(f.flushed), nil
}
func (f *lineFile) ResumeAt(pos int64) error { f.resume = pos; return nil }

// checkpointTopology is source -> q1 (running sum, a stream) -> q2 (a
// filter keeping even sums) -> sink.
func checkpointTopology(t *testing.T, alloc memory.Allocator, n int, out *[]string, dir string, onWrite func()) *Topology {
	src := &seekableSource{countSource: countSource{alloc: alloc, n: n, size: 50}, pause: 200 * time.Microsecond}
	in1 := NewInlet(testSchema, 2)
	sum := newRunningSum(alloc, in1)
	in2 := NewInlet(sum.Schema(), 2)
	mod, err := expr.Binary("%", expr.Col(1, "sum", arrow.PrimitiveTypes.Int64), expr.Lit(int64(3), arrow.PrimitiveTypes.Int64))
	if err != nil {
		t.Fatal(err)
	}
	even, err := expr.Binary("=", mod, expr.Lit(int64(0), arrow.PrimitiveTypes.Int64))
	if err != nil {
		t.Fatal(err)
	}
	filter, err := NewFilter(alloc, in2, even)
	if err != nil {
		t.Fatal(err)
	}
	return &Topology{
		Sources: []*SourceNode{{Stream: "nums", Op: src}},
		Queries: []*QueryNode{
			{Name: "sums", Root: sum, Inputs: []Subscription{{"nums", in1}}, Output: "sums"},
			{Name: "even", Root: filter, Inputs: []Subscription{{"sums", in2}},
				Sinks: []Sink{&lineFile{lines: out, resume: -1, onWrite: onWrite}}},
		},
		Checkpoints: &CheckpointConfig{Dir: dir, Interval: 2 * time.Millisecond, Alloc: alloc},
	}
}

// TestCheckpointCrashAndResume runs a two-query topology with checkpoints,
// crashes it (cancels the run) after a few checkpoints, and runs a fresh
// topology over the same state_dir and output: the output equals an
// uninterrupted run's, nothing lost or repeated, and the checkpoints are
// removed once the input was processed completely.
func TestCheckpointCrashAndResume(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer alloc.AssertSize(t, 0)
	const n = 20000
	var want []string
	plain := checkpointTopology(t, alloc, n, &want, "", nil)
	plain.Checkpoints = nil
	if err := plain.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(want) < n/3 {
		t.Fatalf("uninterrupted run wrote %d lines", len(want))
	}
	for _, crashAfter := range []int64{1, 3, 8} {
		dir := t.TempDir()
		var got []string
		ctx, cancel := context.WithCancel(context.Background())
		var topo *Topology
		topo = checkpointTopology(t, alloc, n, &got, dir, func() {
			if topo.CheckpointStats.Completed.Load() >= crashAfter {
				cancel()
			}
		})
		topo.Checkpoints.Interval = 2 * time.Millisecond
		err := topo.Run(ctx)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("crash run: %v (the input ended before the crash?)", err)
		}
		crashed := len(got)
		resumed := checkpointTopology(t, alloc, n, &got, dir, nil)
		if err := resumed.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if id := resumed.CheckpointStats.RestoredID.Load(); id < crashAfter {
			t.Fatalf("resumed from checkpoint %d, want at least %d", id, crashAfter)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("crash after checkpoint %d (%d lines written): resumed output has %d lines, want %d; first difference at %d",
				crashAfter, crashed, len(got), len(want), firstDifference(got, want))
		}
		if ids, _ := listCheckpoints(dir); len(ids) != 0 {
			t.Fatalf("checkpoints %v left after the input was processed", ids)
		}
		// ids go on growing in the next run (transactional sinks' markers)
		var again []string
		next := checkpointTopology(t, alloc, n, &again, dir, nil)
		next.Checkpoints.Interval = time.Millisecond
		if err := next.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if first, last := resumed.CheckpointStats.LastID.Load(), readLastID(dir); next.CheckpointStats.Completed.Load() > 0 && last <= first {
			t.Fatalf("checkpoint ids restarted: last id %d after a run that reached %d", last, first)
		}
	}

	// Stop drains, but takes a checkpoint first: the next run resumes from
	// it.
	dir := t.TempDir()
	var got []string
	var topo *Topology
	var stopped atomic.Int64
	topo = checkpointTopology(t, alloc, n, &got, dir, func() {
		if topo.CheckpointStats.Completed.Load() >= 2 && stopped.CompareAndSwap(0, topo.CheckpointStats.LastID.Load()) {
			go topo.Stop()
		}
	})
	if err := topo.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if last := topo.CheckpointStats.LastID.Load(); last <= stopped.Load() {
		t.Fatalf("no checkpoint after Stop: last %d, %d before it", last, stopped.Load())
	}
	resumed := checkpointTopology(t, alloc, n, &got, dir, nil)
	if err := resumed.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if id := resumed.CheckpointStats.RestoredID.Load(); id != topo.CheckpointStats.LastID.Load() {
		t.Fatalf("resumed from checkpoint %d, want the one Stop took (%d)", id, topo.CheckpointStats.LastID.Load())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after Stop and resume: %d lines, want %d; first difference at %d", len(got), len(want), firstDifference(got, want))
	}
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// committingSeekable is a committing source with a position.
type committingSeekable struct {
	committingSource
}

func (s *committingSeekable) Next(ctx context.Context) (Message, error) {
	time.Sleep(100 * time.Microsecond)
	return s.committingSource.Next(ctx)
}
func (s *committingSeekable) Position() ([]byte, error) { return []byte(strconv.Itoa(s.i)), nil }
func (s *committingSeekable) Seek([]byte) error         { return nil }

// TestCheckpointCommitsStatefulQueries: a query holding state commits its
// source's offsets only at the end of its input, unless checkpoints run:
// then each checkpoint on disk commits what its barrier covered.
func TestCheckpointCommitsStatefulQueries(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer alloc.AssertSize(t, 0)
	for _, checkpoints := range []bool{false, true} {
		src := &committingSeekable{committingSource{countSource: countSource{alloc: alloc, n: 1 << 30, size: 10, block: true}, t: t}}
		in := NewInlet(testSchema, 2)
		topo := &Topology{
			Sources: []*SourceNode{{Stream: "nums", Op: src}},
			Queries: []*QueryNode{{Name: "sums", Root: newRunningSum(alloc, in), Inputs: []Subscription{{"nums", in}},
				Sinks: []Sink{&collectSink{}}}},
			CommitInterval: time.Millisecond,
		}
		if checkpoints {
			topo.Checkpoints = &CheckpointConfig{Dir: t.TempDir(), Interval: 5 * time.Millisecond}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- topo.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for checkpoints && topo.CheckpointStats.Completed.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !checkpoints {
			time.Sleep(50 * time.Millisecond) // many commit intervals
		}
		committed := src.get()
		cancel()
		<-done
		switch {
		case checkpoints && committed == 0:
			t.Fatal("checkpoints were written but the stateful query committed nothing")
		case !checkpoints && committed != 0:
			t.Fatalf("without checkpoints a stateful query committed %d rows before the end of its input", committed)
		}
	}
}
