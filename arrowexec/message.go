// Package arrowexec is the FerrisStreams executor: the operator contract,
// messages that carry Arrow record batches and watermarks, the operators
// themselves, the connector contracts implemented by sources and sinks, and
// the pipeline driver that runs a topology of queries.
package arrowexec

import (
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Watermark is an event time in milliseconds since the Unix epoch. It is a
// promise that no later row in the same stream has an event time below it.
type Watermark = int64

const (
	// NoWatermark means no watermark has been established yet.
	NoWatermark Watermark = math.MinInt64
	// FinalWatermark is the watermark of a bounded input at its end: every
	// window closes and every pending result is flushed.
	FinalWatermark Watermark = math.MaxInt64
)

// FormatWatermark renders a watermark for humans (explain output, errors).
func FormatWatermark(w Watermark) string {
	switch w {
	case NoWatermark:
		return "-inf"
	case FinalWatermark:
		return "+inf"
	}
	return time.UnixMilli(w).UTC().Format("2006-01-02T15:04:05.000Z")
}

// Message is the unit that flows between operators: an optional record batch
// and the watermark of the stream as of the end of that batch.
//
// Ownership: a Message returned by Next belongs to the caller, who must call
// Release (or pass it on, transferring ownership). Batch is nil for a
// watermark-only message. Watermarks in a stream never go backwards.
type Message struct {
	Batch     arrow.RecordBatch
	Watermark Watermark
	// Partition is the source partition every row of Batch came from, for
	// sources with partitions (see PartitionedSource); 0 otherwise. Only the
	// WatermarkAssigner reads it.
	Partition int32
	// Barrier, on a watermark-only message, makes it a checkpoint barrier
	// (see Stateful): operators pass it on in stream order.
	Barrier *Barrier

	seq int64 // position in its source's stream, for commits (0: none)
}

// Release releases the batch, if any. It is safe on a watermark-only message.
func (m Message) Release() {
	if m.Batch != nil {
		m.Batch.Release()
	}
}

// Rows is the number of rows in the message's batch (0 when it has none).
func (m Message) Rows() int64 {
	if m.Batch == nil {
		return 0
	}
	return m.Batch.NumRows()
}

func (m Message) String() string {
	return fmt.Sprintf("Message{rows=%d, watermark=%s}", m.Rows(), FormatWatermark(m.Watermark))
}
