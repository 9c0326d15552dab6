package arrowexec

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
)

// Operator is a pull-based stage of a query pipeline.
//
// Contract:
//   - Schema may be called at any time and describes every batch Next returns.
//   - Open is called exactly once, before Next. An operator does no work, and
//     opens no input, before Open; it opens its inputs in Open.
//   - Next returns the next message. The returned batch belongs to the caller,
//     which must Release it. At the end of the stream Next returns io.EOF;
//     before that it has returned a message with FinalWatermark if the input
//     was bounded. Any other error is terminal for the operator: the caller
//     must not call Next again. Next checks ctx and returns ctx.Err() when it
//     is cancelled.
//   - Watermarks returned by Next never go backwards.
//   - Close releases every resource the operator holds, closes its inputs,
//     may be called without Open or after an error, and is idempotent.
//   - An operator is not safe for concurrent use: one goroutine drives it.
type Operator interface {
	Schema() *arrow.Schema
	Open(ctx context.Context) error
	Next(ctx context.Context) (Message, error)
	Close() error
}
