package arrowexec

import (
	"context"
	"errors"
	"sync"

	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// inputReaders reads the two inputs of a two-input operator (joins) on a
// goroutine each, one message ahead, so the operator can take whichever
// input is ready: it never blocks one stream while the other is behind, and
// a self-join over one fanned-out stream cannot deadlock.
type inputReaders struct {
	inputs [2]Operator
	ch     [2]chan joinItem
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// joinItem is one read of an input: a message or the error (io.EOF at the
// end) that ended it.
type joinItem struct {
	msg Message
	err error
}

// openInputs opens both inputs.
func (r *inputReaders) openInputs(ctx context.Context) error {
	if err := r.inputs[0].Open(ctx); err != nil {
		return err
	}
	return r.inputs[1].Open(ctx)
}

// start launches one reader goroutine per input. They live until stop (or
// the end of their input): their context keeps ctx's values but not its
// cancellation, which belongs to the call that happened to start them; the
// operator's Next watches its own ctx.
func (r *inputReaders) start(ctx context.Context) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	for s := range r.inputs {
		r.ch[s] = make(chan joinItem, 1)
		r.wg.Add(1)
		go r.read(rctx, s)
	}
}

func (r *inputReaders) read(ctx context.Context, s int) {
	defer r.wg.Done()
	for {
		msg, err := r.pull(ctx, s)
		select {
		case r.ch[s] <- joinItem{msg: msg, err: err}:
		case <-ctx.Done():
			msg.Release()
			return
		}
		if err != nil {
			return
		}
	}
}

// pull reads one message of input s; a memory-limit panic of an operator
// below becomes its error (the query driver only recovers its own
// goroutine).
func (r *inputReaders) pull(ctx context.Context, s int) (msg Message, err error) {
	defer resource.Recover(&err)
	return r.inputs[s].Next(ctx)
}

// stopReaders stops the reader goroutines and releases the messages they
// had read ahead. It is idempotent.
func (r *inputReaders) stopReaders() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	for _, ch := range r.ch {
		for drained := false; !drained; {
			select {
			case it := <-ch:
				it.msg.Release()
			default:
				drained = true
			}
		}
	}
}

// closeInputs closes both inputs.
func (r *inputReaders) closeInputs() error {
	return errors.Join(r.inputs[0].Close(), r.inputs[1].Close())
}
