package arrowexec

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestTapSeesEveryMessageAndSlowReadersAreCutOff(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	topo := &Topology{Sources: []*SourceNode{{Stream: "nums", Op: &countSource{alloc: alloc, n: 100, size: 10}}}}
	if _, err := topo.Tap("nope", 4); err == nil {
		t.Fatal("tap of an unknown stream: want an error")
	}
	fast, err := topo.Tap("nums", 100)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := topo.Tap("nums", 2)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := topo.Tap("nums", 100)
	if err != nil {
		t.Fatal(err)
	}
	gone.Close() // unsubscribes before the run: dropped at the first message
	if err := topo.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []int64
	last := NoWatermark
	for {
		msg, err := fast.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = msg.Watermark
		if msg.Batch != nil {
			got = append(got, msg.Batch.Column(0).(*array.Int64).Int64Values()...)
		}
		msg.Release()
	}
	if len(got) != 100 || got[0] != 0 || got[99] != 99 || last != FinalWatermark {
		t.Fatalf("fast tap saw %d rows ending with watermark %s, want 0..99 then +inf", len(got), FormatWatermark(last))
	}
	var slowErr error
	for slowErr == nil {
		var msg Message
		msg, slowErr = slow.Next(context.Background())
		msg.Release()
	}
	if !errors.Is(slowErr, ErrSlowConsumer) {
		t.Fatalf("slow tap ended with %v, want ErrSlowConsumer", slowErr)
	}
	if _, err := topo.Tap("nums", 4); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("tap after the end: %v, want ErrStreamEnded", err)
	}
	fast.Close()
	slow.Close()
}

func TestClosedTapsAreDropped(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	topo := &Topology{Sources: []*SourceNode{{Stream: "nums", Op: &countSource{alloc: alloc, n: 10, size: 1, block: true}}}}
	gone, err := topo.Tap("nums", 100)
	if err != nil {
		t.Fatal(err)
	}
	gone.Close()
	kept, err := topo.Tap("nums", 100)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Run(context.Background()) }()
	for i := 0; i < 10; i++ { // all ten rows reached the open tap
		msg, err := kept.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		msg.Release()
	}
	topo.taps.mu.Lock()
	n := len(topo.taps.streams["nums"].readers)
	topo.taps.mu.Unlock()
	if n != 1 {
		t.Errorf("%d readers on the stream, want the one still open", n)
	}
	topo.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	kept.Close()
}
