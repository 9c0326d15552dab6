package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
)

// seekableReplay is a replaySource with a checkpoint position (the batch
// index). With hold set it does not end after its batches: it waits until
// the run is cancelled, so that a checkpoint can catch all of its state.
type seekableReplay struct {
	replaySource
	hold bool
}

func (s *seekableReplay) Next(ctx context.Context) (arrowexec.Message, error) {
	if s.hold && s.i >= s.rounds*len(s.batches) {
		select {
		case <-ctx.Done():
			return arrowexec.Message{}, ctx.Err()
		case <-time.After(time.Millisecond): // a watermark-only message lets barriers through
			return arrowexec.Message{Watermark: arrowexec.NoWatermark}, nil
		}
	}
	return s.replaySource.Next(ctx)
}
func (s *seekableReplay) Position() ([]byte, error) { return []byte(strconv.Itoa(s.i)), nil }
func (s *seekableReplay) Seek(pos []byte) (err error) {
	s.i, err = strconv.Atoi(string(pos))
	return err
}

// checkpointSQL is a tumbling-window aggregation over the events stream.
const checkpointSQL = `SELECT k, COUNT(*) AS n, SUM(v) AS sv, AVG(x) AS ax, MIN(price) AS lo, MAX(v) AS hi
FROM events GROUP BY k WINDOW TUMBLING (INTERVAL '%d' SECOND) WITH (connector = 'discard');`

// BenchmarkCheckpointCost runs the tumbling-window benchmark (10,000 keys,
// 10 s windows) without checkpoints and with one every 100 ms and every
// second: the cost of checkpoints as a ratio of rows/s in one run.
func BenchmarkCheckpointCost(b *testing.B) {
	for _, every := range []time.Duration{0, time.Second, 100 * time.Millisecond} {
		name := "none"
		if every > 0 {
			name = "every" + every.String()
		}
		b.Run(name, func(b *testing.B) {
			p, err := plan.Compile(eventsDDL+fmt.Sprintf(checkpointSQL, 10), arrowexec.DefaultSettings(), nil)
			if err != nil {
				b.Fatal(err)
			}
			mem := memory.NewGoAllocator()
			const rows = 4_000_000
			batches := makeEvents(mem, p.Relation("events").Declared, rows, 10_000, 10, 8192)
			defer releaseAll(batches)
			var out atomic.Int64
			conns := checkpointConnectors(batches, &out, false)
			var completed int64
			b.ResetTimer()
			for range b.N {
				topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, 0)})
				if err != nil {
					b.Fatal(err)
				}
				if every > 0 {
					topo.Checkpoints = &arrowexec.CheckpointConfig{Dir: b.TempDir(), Interval: every}
				}
				if err := topo.Run(context.Background()); err != nil {
					b.Fatal(err)
				}
				completed += topo.CheckpointStats.Completed.Load()
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(completed)/float64(b.N), "checkpoints/run")
		})
	}
}

// BenchmarkCheckpoint1MKeys: one open window holding 1,000,000 keys (five
// aggregates each): the size and time of a checkpoint of it, and the time
// to restore it.
func BenchmarkCheckpoint1MKeys(b *testing.B) {
	p, err := plan.Compile(eventsDDL+fmt.Sprintf(checkpointSQL, 3600), arrowexec.DefaultSettings(), nil)
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	const keys = 1_000_000
	batches := makeEvents(mem, p.Relation("events").Declared, 4*keys, keys, 1000, 8192)
	defer releaseAll(batches)
	var out atomic.Int64
	var bytes, took, restore int64
	for range b.N {
		dir := b.TempDir()
		topo, err := p.Build(plan.BuildEnv{Connectors: checkpointConnectors(batches, &out, true), Resources: resource.NewManager(mem, 0)})
		if err != nil {
			b.Fatal(err)
		}
		topo.Checkpoints = &arrowexec.CheckpointConfig{Dir: dir, Interval: 200 * time.Millisecond}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { // cancel once a checkpoint started after the whole input was read is written
			for topo.SourceStats("events").RowsIn.Load() < int64(4*keys) {
				time.Sleep(10 * time.Millisecond)
			}
			for c0 := topo.CheckpointStats.Completed.Load(); topo.CheckpointStats.Completed.Load() < c0+2; {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}()
		_ = topo.Run(ctx)
		cancel()
		bytes, took = topo.CheckpointStats.LastBytes.Load(), topo.CheckpointStats.LastNanos.Load()

		again, err := p.Build(plan.BuildEnv{Connectors: checkpointConnectors(batches, &out, false), Resources: resource.NewManager(mem, 0)})
		if err != nil {
			b.Fatal(err)
		}
		again.Checkpoints = &arrowexec.CheckpointConfig{Dir: dir, Interval: time.Hour}
		if err := again.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		if again.CheckpointStats.RestoredID.Load() == 0 {
			b.Fatal("not restored")
		}
		restore = again.CheckpointStats.RestoreNanos.Load()
	}
	b.ReportMetric(float64(bytes)/(1<<20), "checkpoint-MiB")
	b.ReportMetric(time.Duration(took).Seconds()*1000, "checkpoint-ms")
	b.ReportMetric(time.Duration(restore).Seconds()*1000, "restore-ms")
}

func checkpointConnectors(batches []arrow.RecordBatch, out *atomic.Int64, hold bool) *arrowexec.Connectors {
	conns := &arrowexec.Connectors{}
	conns.RegisterSource("replay", func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return &seekableReplay{replaySource: replaySource{schema: spec.Schema, batches: batches, rounds: 1}, hold: hold}, nil
	})
	conns.RegisterSink("discard", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discardSink{out}, nil })
	return conns
}

func releaseAll(batches []arrow.RecordBatch) {
	for _, b := range batches {
		b.Release()
	}
}
