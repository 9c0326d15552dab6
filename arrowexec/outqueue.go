package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// outQueue is the output side of a single-input operator that turns each
// input message into any number of output messages (window functions,
// session windows, top-N): they wait in the queue until Next returns them.
type outQueue struct {
	queue []Message
	eof   bool // the input has ended
}

// queueStep is how outQueue.next drives its operator.
type queueStep struct {
	op   Stateful // whose state a checkpoint barrier saves
	what string   // prefixes the operator's errors
	// consume takes an input message (and releases it), queueing the
	// output it causes.
	consume func(ctx context.Context, msg Message) error
	// end, called once at the input's end, queues what remains.
	end func(ctx context.Context) error
	// watermark is the output watermark a barrier is returned with.
	watermark func() Watermark
}

// next implements Operator.Next for the operator: it returns the first
// queued message, reading input until there is one. After consuming an
// input message that carries a checkpoint barrier it saves the operator's
// state and queues the barrier itself, behind the output of the input
// before it (the Stateful contract). Once the input has ended and the
// queue is drained it returns io.EOF. The returned message belongs to the
// caller.
func (q *outQueue) next(ctx context.Context, input Operator, s queueStep) (Message, error) {
	for len(q.queue) == 0 {
		if q.eof {
			return Message{}, io.EOF
		}
		if err := ctx.Err(); err != nil {
			return Message{}, err
		}
		msg, err := input.Next(ctx)
		if errors.Is(err, io.EOF) {
			q.eof = true
			if err := s.end(ctx); err != nil {
				return Message{}, fmt.Errorf("%s: %w", s.what, err)
			}
			continue
		}
		if err != nil {
			return Message{}, err
		}
		b := msg.Barrier
		if err := s.consume(ctx, msg); err != nil {
			return Message{}, fmt.Errorf("%s: %w", s.what, err)
		}
		if b != nil {
			if err := b.Save(s.op); err != nil {
				return Message{}, fmt.Errorf("%s: %w", s.what, err)
			}
			q.queue = append(q.queue, Message{Watermark: s.watermark(), Barrier: b})
		}
	}
	m := q.queue[0]
	q.queue[0] = Message{}
	q.queue = q.queue[1:]
	return m, nil
}

// release releases the queued messages (Close).
func (q *outQueue) release() {
	for _, m := range q.queue {
		m.Release()
	}
	q.queue = nil
}
