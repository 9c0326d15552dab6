package arrowexec

import (
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// ErrSlowConsumer ends a Tap whose reader fell more than its buffer behind
// the stream. The pipeline never waits for a tap.
var ErrSlowConsumer = errors.New("tap reader too slow: it fell behind the stream by more than its buffer")

// ErrStreamEnded is returned by Tap for a stream that has already ended.
var ErrStreamEnded = errors.New("stream has ended")

// taps holds the live taps of a running topology, by stream.
type taps struct {
	mu      sync.Mutex
	streams map[string]*tapStream
}

type tapStream struct {
	schema  *arrow.Schema // visible columns (hidden ones stripped)
	readers []*Inlet
	ended   bool
	pos     StreamPosition
}

// StreamPosition is how far a stream has gone: the rows it has carried so
// far and its current watermark (NoWatermark before the first).
type StreamPosition struct {
	Rows      int64
	Watermark Watermark
}

// Tap subscribes to a stream of a running (or about to run) topology from
// now on: the returned Inlet receives every later message of the stream,
// without hidden columns, until the stream ends (io.EOF) or the reader falls
// depth messages behind, which ends the tap with ErrSlowConsumer. Close the
// Inlet to unsubscribe. Tap is safe for concurrent use; it is meant for
// live exports (Arrow Flight, HTTP), which must never stall the pipeline.
func (t *Topology) Tap(stream string, depth int) (*Inlet, error) {
	in, _, err := t.TapAt(stream, depth)
	return in, err
}

// TapAt is Tap, also returning the stream's position when the tap
// starts: the rows that passed before it, which it will not see.
func (t *Topology) TapAt(stream string, depth int) (*Inlet, StreamPosition, error) {
	t.tapsOnce()
	t.taps.mu.Lock()
	defer t.taps.mu.Unlock()
	s, ok := t.taps.streams[stream]
	if !ok {
		return nil, StreamPosition{}, fmt.Errorf("unknown stream %q (known: %v)", stream, sortedKeys(t.taps.streams))
	}
	if s.ended {
		return nil, s.pos, fmt.Errorf("stream %q: %w", stream, ErrStreamEnded)
	}
	in := NewInlet(s.schema, max(depth, 1))
	s.readers = append(s.readers, in)
	return in, s.pos, nil
}

// StreamSchema returns the visible schema of a stream of the topology.
func (t *Topology) StreamSchema(stream string) (*arrow.Schema, bool) {
	t.tapsOnce()
	t.taps.mu.Lock()
	defer t.taps.mu.Unlock()
	s, ok := t.taps.streams[stream]
	if !ok {
		return nil, false
	}
	return s.schema, true
}

// Streams returns the names of the topology's streams, sorted.
func (t *Topology) Streams() []string {
	t.tapsOnce()
	t.taps.mu.Lock()
	defer t.taps.mu.Unlock()
	return sortedKeys(t.taps.streams)
}

// tapsOnce registers every stream of the topology, for taps and source
// counters, the first time either is needed.
func (t *Topology) tapsOnce() {
	t.tapInit.Do(func() {
		t.taps.streams = map[string]*tapStream{}
		t.sourceStats = map[string]*SourceStats{}
		for _, s := range t.Sources {
			t.sourceStats[s.Stream] = &SourceStats{}
			t.taps.streams[s.Stream] = &tapStream{schema: visibleSchema(s.Op.Schema()), pos: StreamPosition{Watermark: NoWatermark}}
		}
		for _, q := range t.Queries {
			if q.Output != "" && q.Root != nil {
				t.taps.streams[q.Output] = &tapStream{schema: visibleSchema(q.Root.Schema()), pos: StreamPosition{Watermark: NoWatermark}}
			}
		}
	})
}

// visibleSchema drops the hidden columns (VisibleColumns).
func visibleSchema(s *arrow.Schema) *arrow.Schema {
	if n := VisibleColumns(s); n < s.NumFields() {
		return arrow.NewSchema(s.Fields()[:n], nil)
	}
	return s
}

// toTaps hands a copy of msg (without hidden columns) to every tap of the
// stream without blocking, and advances the stream's position; a tap whose
// buffer is full is failed and removed. msg stays the caller's.
func (t *Topology) toTaps(stream string, msg Message) {
	t.taps.mu.Lock()
	defer t.taps.mu.Unlock()
	s := t.taps.streams[stream]
	if s == nil {
		return
	}
	s.pos.Rows += msg.Rows()
	s.pos.Watermark = max(s.pos.Watermark, msg.Watermark)
	if len(s.readers) == 0 {
		return
	}
	kept := s.readers[:0]
	for _, in := range s.readers {
		if in.Closed() { // unsubscribed
			in.Finish()
			continue
		}
		out := Message{Watermark: msg.Watermark}
		if msg.Batch != nil {
			b := msg.Batch
			cols := b.Columns()[:s.schema.NumFields()]
			out.Batch = array.NewRecordBatch(s.schema, cols, b.NumRows())
		}
		if !in.TryPush(out) {
			in.Fail(fmt.Errorf("stream %q: %w", stream, ErrSlowConsumer))
			continue
		}
		kept = append(kept, in)
	}
	clear(s.readers[len(kept):])
	s.readers = kept
}

// endTaps finishes every tap of the stream (with err, if the stream failed).
func (t *Topology) endTaps(stream string, err error) {
	t.taps.mu.Lock()
	defer t.taps.mu.Unlock()
	s := t.taps.streams[stream]
	if s == nil {
		return
	}
	s.ended = true
	finish(s.readers, err)
	s.readers = nil
}
