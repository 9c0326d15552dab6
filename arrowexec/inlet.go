package arrowexec

import (
	"context"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// Inlet is the leaf operator of a query that reads a stream: the engine
// pushes the stream's messages into it and the query pulls them with Next.
//
// Push and Finish are called by the stream's producer goroutine; Next by the
// query's. Once the query stops reading (Close), pushes release their
// message and return immediately, so a failed query never blocks a stream.
type Inlet struct {
	schema *arrow.Schema
	ch     chan Message
	done   chan struct{}
	once   sync.Once
	err    error // set before Finish when the producer failed
	// consumed is the source sequence number of the last message Next
	// returned (read by the query goroutine only).
	consumed int64
}

var _ Operator = (*Inlet)(nil)

// NewInlet returns an Inlet for batches of schema buffering depth messages.
func NewInlet(schema *arrow.Schema, depth int) *Inlet {
	return &Inlet{schema: schema, ch: make(chan Message, depth), done: make(chan struct{})}
}

// Schema implements Operator.
func (in *Inlet) Schema() *arrow.Schema { return in.schema }

// Open implements Operator.
func (in *Inlet) Open(context.Context) error { return nil }

// Next implements Operator: it returns the next pushed message, or io.EOF
// after Finish.
func (in *Inlet) Next(ctx context.Context) (Message, error) {
	select {
	case m, ok := <-in.ch:
		if !ok {
			if in.err != nil {
				return Message{}, in.err
			}
			return Message{}, io.EOF
		}
		if m.seq > 0 {
			in.consumed = m.seq
		}
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Push hands msg to the query, taking ownership of it. It blocks while the
// buffer is full (backpressure) and returns ctx.Err() if ctx ends first.
func (in *Inlet) Push(ctx context.Context, msg Message) error {
	select {
	case <-in.done:
		msg.Release()
		return nil
	default:
	}
	select {
	case in.ch <- msg:
		return nil
	case <-in.done:
		msg.Release()
		return nil
	case <-ctx.Done():
		msg.Release()
		return ctx.Err()
	}
}

// Closed reports whether the reader has closed the Inlet.
func (in *Inlet) Closed() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// TryPush hands msg to the query if the buffer has room, taking ownership
// of it either way, and reports whether it was queued (a message for a
// closed Inlet counts as delivered). It never blocks.
func (in *Inlet) TryPush(msg Message) bool {
	select {
	case <-in.done:
		msg.Release()
		return true
	default:
	}
	select {
	case in.ch <- msg:
		return true
	default:
		msg.Release()
		return false
	}
}

// Finish signals the end of the stream. Call it once, from the producer,
// after its last Push. If the query has already closed the Inlet, messages
// that raced with Close are released here.
func (in *Inlet) Finish() {
	close(in.ch)
	select {
	case <-in.done:
		in.drain()
	default:
	}
}

// Fail ends the stream with err instead of io.EOF (the producer failed).
// Call it instead of Finish.
func (in *Inlet) Fail(err error) {
	in.err = err
	in.Finish()
}

// Close implements Operator: it stops accepting messages and releases the
// buffered ones. It is idempotent.
func (in *Inlet) Close() error {
	in.once.Do(func() { close(in.done) })
	in.drain()
	return nil
}

// drain releases queued messages without waiting for more.
func (in *Inlet) drain() {
	for {
		select {
		case m, ok := <-in.ch:
			if !ok {
				return
			}
			m.Release()
		default:
			return
		}
	}
}
