package kafka

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTopologyExactlyOnceRecovery runs kafka -> copy -> kafka with
// exactly_once and checkpoints every 30 ms through the engine, interrupts
// the first run after three checkpoints, while it copies more input
// (cancelling its context, as a crash would leave it), and runs again to
// the end of the input from the same state_dir: a read_committed reader
// sees every input record exactly once, and no transaction stays open.
func TestTopologyExactlyOnceRecovery(t *testing.T) {
	t.Run("cancel", func(t *testing.T) { exactlyOnceRecovery(t, "cancel") })
	// Stop takes a checkpoint before draining; output after it is left
	// uncommitted (Close aborts) and written again by the next run.
	t.Run("stop", func(t *testing.T) {
		exactlyOnceRecovery(t, "stop")
	})
}

func exactlyOnceRecovery(t *testing.T, how string) {
	c := newCluster(t, 1, "in", "out")
	mem := checkedAlloc(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := func(from, to int) {
		pcl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		defer pcl.Close()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "in", Value: []byte(fmt.Sprintf(`{"ticker":"T%03d","volume":%d}`, i, i))})
		}
		if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
		{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
	}, nil)
	var cs arrowexec.Connectors
	cfg := kafkasrc.Config{Brokers: c.ListenAddrs()}
	kafkasrc.Register(&cs, cfg)
	Register(&cs, cfg)
	topology := func(bounded bool) *arrowexec.Topology {
		srcF, _ := cs.Source("kafka")
		o := arrowexec.Options{"topic": "in", "linger_ms": "0"}
		if bounded {
			o["end_offset"] = "latest"
		}
		src, err := srcF(arrowexec.SourceSpec{Name: "trades", Schema: schema, Alloc: mem, BatchSize: 5, Options: o})
		if err != nil {
			t.Fatal(err)
		}
		sinkF, _ := cs.Sink("kafka")
		snk, err := sinkF(arrowexec.SinkSpec{Name: "copy", Schema: schema, Alloc: mem,
			Options: arrowexec.Options{"topic": "out", "linger_ms": "0", "exactly_once": "true"}})
		if err != nil {
			t.Fatal(err)
		}
		in := arrowexec.NewInlet(schema, 4)
		return &arrowexec.Topology{
			Sources:     []*arrowexec.SourceNode{{Stream: "trades", Op: src}},
			Queries:     []*arrowexec.QueryNode{{Name: "copy", Root: in, Inputs: []arrowexec.Subscription{{Stream: "trades", Inlet: in}}, Sinks: []arrowexec.Sink{snk}}},
			Checkpoints: &arrowexec.CheckpointConfig{Dir: dir, Interval: 30 * time.Millisecond, Alloc: mem},
		}
	}

	produce(0, 100)
	run1 := topology(false)
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run1.Run(rctx) }()
	for run1.CheckpointStats.Completed.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	produce(100, 150) // being copied when the run is interrupted
	time.Sleep(20 * time.Millisecond)
	if how == "stop" {
		run1.Stop()
	} else {
		rcancel()
	}
	err := <-done
	rcancel()
	t.Logf("run 1 (%s): %v; checkpoints %d, last %d", how, err, run1.CheckpointStats.Completed.Load(), run1.CheckpointStats.LastID.Load())

	produce(150, 200)
	run2 := topology(true)
	if err := run2.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("run 2 resumed from checkpoint %d", run2.CheckpointStats.RestoredID.Load())

	got := readTopic(t, c, "out", true, 200, 10*time.Second)
	got = append(got, readTopic(t, c, "out", true, len(got)+1, time.Second)[len(got):]...)
	var want []string
	for i := range 200 {
		want = append(want, fmt.Sprintf("T%03d", i))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		dups := 0
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				dups++
			}
		}
		t.Fatalf("read_committed: %d records (%d duplicates), want each of the 200 once", len(got), dups)
	}
	noOpenTxn(t, c, "out", "after the runs")
}
