package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// inputReaders reads the two inputs of a two-input operator (joins) on a
// goroutine each, one message ahead, so the operator can take whichever
// input is ready: it never blocks one stream while the other is behind, and
// a self-join over one fanned-out stream cannot deadlock. (A join with
// watermark alignment does stop taking the input that is ahead, for a
// bounded time while the other does not advance; see JoinOp.)
//
// Barrier alignment (see Stateful): the operator hands every item it takes
// from ch[s] to note. After a barrier on input s, readable(s) is false (the
// operator must not take from ch[s]) until the same barrier has arrived on
// every input that has not ended; note then returns it. The inputs stay
// readable otherwise, so the one-message read-ahead cannot deadlock: a
// held input's reader blocks on its channel while the other input, whose
// producer already sent the barrier (a fan-out sends each message to every
// subscriber before the next), is read up to its barrier.
type inputReaders struct {
	inputs [2]Operator
	ch     [2]chan joinItem
	cancel context.CancelFunc
	wg     sync.WaitGroup

	barrier *Barrier // being aligned; nil when none
	held    [2]bool  // input delivered barrier and is not read until aligned
	ended   [2]bool  // input returned an error (io.EOF at its end)
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

// pull reads one message of input s; a panic of an operator below becomes
// its error (the query driver only recovers its own goroutine).
func (r *inputReaders) pull(ctx context.Context, s int) (msg Message, err error) {
	defer RecoverPanic(&err)
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

// readable reports whether the operator may take the next item of input s:
// false while s waits at a barrier for the other input.
func (r *inputReaders) readable(s int) bool { return !r.held[s] }

// note records item it, just taken from input s, for barrier alignment.
// When it completes a barrier — it is the barrier on the last input that
// had not delivered it, or the end of that input — note returns the
// barrier and every input is readable again; otherwise it returns nil.
// The operator processes a data or end item before calling note (input
// before the barrier, and the end of an input, precede the checkpoint).
func (r *inputReaders) note(s int, it joinItem) (*Barrier, error) {
	switch {
	case it.err != nil:
		r.ended[s] = true
	case it.msg.Barrier != nil:
		if r.barrier != nil && r.barrier.ID != it.msg.Barrier.ID {
			return nil, fmt.Errorf("input %d: checkpoint barrier %d while aligning barrier %d", s, it.msg.Barrier.ID, r.barrier.ID)
		}
		r.barrier = it.msg.Barrier
		r.held[s] = true
	}
	if r.barrier == nil {
		return nil, nil
	}
	for x := range r.held {
		if !r.held[x] && !r.ended[x] {
			return nil, nil
		}
	}
	b := r.barrier
	r.barrier, r.held = nil, [2]bool{}
	return b, nil
}

// closeInputs closes both inputs.
func (r *inputReaders) closeInputs() error {
	return errors.Join(r.inputs[0].Close(), r.inputs[1].Close())
}

// saveMessages saves msgs, input messages an operator keeps unprocessed,
// as the state table name (their batches) and the value name (each
// message's watermark, partition and whether it has a batch). It retains
// the batches it puts.
func saveMessages(w *StateWriter, name string, msgs []Message) error {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		batch := 0
		if m.Batch != nil {
			batch = 1
			m.Batch.Retain()
			if err := w.Put(name, m.Batch); err != nil {
				return err
			}
		}
		parts[i] = fmt.Sprintf("%d:%d:%d", m.Watermark, m.Partition, batch)
	}
	w.SetValue(name, strings.Join(parts, ","))
	return nil
}

// loadMessages returns the messages saveMessages saved; they belong to the
// caller.
func loadMessages(r *StateReader, name string) ([]Message, error) {
	v, ok := r.Value(name)
	if !ok {
		return nil, fmt.Errorf("state value %q missing", name)
	}
	if v == "" {
		return nil, nil
	}
	batches := r.Table(name)
	var out []Message
	for _, f := range strings.Split(v, ",") {
		var m Message
		var batch int
		if _, err := fmt.Sscanf(f, "%d:%d:%d", &m.Watermark, &m.Partition, &batch); err != nil || batch == 1 && len(batches) == 0 {
			for _, m := range out {
				m.Release()
			}
			return nil, fmt.Errorf("state value %q: bad message %q", name, f)
		}
		if batch == 1 {
			m.Batch = batches[0]
			m.Batch.Retain()
			batches = batches[1:]
		}
		out = append(out, m)
	}
	return out, nil
}
