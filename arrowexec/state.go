package arrowexec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"
)

// Stateful is an operator whose state checkpoints save (checkpoint.go).
//
// Contract, on top of Operator's:
//   - When a checkpoint barrier (a message with Barrier set) arrives from
//     its input, the operator first returns every output derived from
//     earlier input, then calls Barrier.Save(self) — its state now reflects
//     exactly the input before the barrier — and then returns the barrier
//     message itself, with Watermark set to its own output watermark, before
//     any output derived from later input. An operator with several inputs
//     aligns: after a barrier on one input it reads no further from that
//     input until the same barrier has arrived on every input that has not
//     ended, then saves and returns the barrier once.
//   - SaveState writes the state to w: everything the operator derived from
//     its input and has not yet emitted for good (open windows, group
//     tables, join buffers, watermark, counters that affect output). It does
//     not change the state.
//   - LoadState is called at most once, before Open, on an operator built
//     from the same plan, with what SaveState wrote. Afterwards the operator
//     behaves exactly as the saved one would have from the barrier on.
//
// Stateless operators (filters, projections) need not implement Stateful;
// they pass barrier messages through like any watermark-only message.
type Stateful interface {
	Operator
	SaveState(w *StateWriter) error
	LoadState(r *StateReader) error
}

// Barrier is a checkpoint barrier travelling with the stream (see Stateful).
// Sources send it after the last message their saved position covers.
type Barrier struct {
	// ID numbers the checkpoints of a run, from 1.
	ID int64
	// save records an operator's state in the checkpoint.
	save func(op Stateful, st *StateWriter) error
}

// NewBarrier returns a barrier whose Save hands each operator's written
// state to save (tests and the checkpoint coordinator).
func NewBarrier(id int64, save func(op Stateful, st *StateWriter) error) *Barrier {
	return &Barrier{ID: id, save: save}
}

// Save snapshots op's state into the checkpoint the barrier belongs to.
func (b *Barrier) Save(op Stateful) error {
	w := &StateWriter{}
	if err := op.SaveState(w); err != nil {
		w.Release()
		return fmt.Errorf("checkpoint %d: saving state: %w", b.ID, err)
	}
	if b.save == nil {
		w.Release()
		return nil
	}
	return b.save(op, w)
}

// StateWriter collects one operator's state: named tables of Arrow record
// batches (each table one schema) and named scalar values. It takes
// ownership of the batches put into it.
type StateWriter struct {
	tables map[string]*stateTable
	values map[string]string
}

type stateTable struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
}

// Put appends rec to the table name, taking ownership of it. Every batch
// of a table must have the same schema.
func (w *StateWriter) Put(name string, rec arrow.RecordBatch) error {
	if w.tables == nil {
		w.tables = map[string]*stateTable{}
	}
	t := w.tables[name]
	if t == nil {
		t = &stateTable{schema: rec.Schema()}
		w.tables[name] = t
	} else if !t.schema.Equal(rec.Schema()) {
		rec.Release()
		return fmt.Errorf("state table %q: schema %s differs from %s", name, rec.Schema(), t.schema)
	}
	t.batches = append(t.batches, rec)
	return nil
}

// SetValue records a scalar value (a watermark, a counter, a flag).
func (w *StateWriter) SetValue(name, value string) {
	if w.values == nil {
		w.values = map[string]string{}
	}
	w.values[name] = value
}

// SetInt records an integer value.
func (w *StateWriter) SetInt(name string, v int64) { w.SetValue(name, strconv.FormatInt(v, 10)) }

// SetBool records a flag.
func (w *StateWriter) SetBool(name string, v bool) { w.SetValue(name, strconv.FormatBool(v)) }

// Bytes is the size of the tables' buffers.
func (w *StateWriter) Bytes() int64 {
	var n int64
	for _, t := range w.tables {
		for _, b := range t.batches {
			for _, c := range b.Columns() {
				n += int64(c.Data().SizeInBytes())
			}
		}
	}
	return n
}

// Release releases the batches put into the writer.
func (w *StateWriter) Release() {
	for _, t := range w.tables {
		for _, b := range t.batches {
			b.Release()
		}
	}
	w.tables = nil
}

// tableNames returns the table names in sorted order.
func (w *StateWriter) tableNames() []string {
	names := make([]string, 0, len(w.tables))
	for n := range w.tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// encodeTable writes table name as an Arrow IPC stream (the checkpoint
// file compresses all of its tables as one zstd stream).
func (w *StateWriter) encodeTable(out io.Writer, name string) error {
	t := w.tables[name]
	iw := ipc.NewWriter(out, ipc.WithSchema(t.schema))
	for _, b := range t.batches {
		if err := iw.Write(b); err != nil {
			_ = iw.Close()
			return err
		}
	}
	return iw.Close()
}

// StateReader gives an operator's saved state back to LoadState. The
// batches it returns belong to the reader; retain what you keep.
type StateReader struct {
	tables map[string][]arrow.RecordBatch
	values map[string]string
}

// Table returns the batches of the table name (nil when none were saved).
func (r *StateReader) Table(name string) []arrow.RecordBatch { return r.tables[name] }

// Value returns a saved scalar value.
func (r *StateReader) Value(name string) (string, bool) {
	v, ok := r.values[name]
	return v, ok
}

// Int, Uint and Bool return a saved value; missing or malformed values
// are errors.
func (r *StateReader) Int(name string) (int64, error) {
	return parseValue(r, name, func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) })
}

func (r *StateReader) Uint(name string) (uint64, error) {
	return parseValue(r, name, func(v string) (uint64, error) { return strconv.ParseUint(v, 10, 64) })
}

func (r *StateReader) Bool(name string) (bool, error) { return parseValue(r, name, strconv.ParseBool) }

func parseValue[T any](r *StateReader, name string, parse func(string) (T, error)) (T, error) {
	var zero T
	v, ok := r.values[name]
	if !ok {
		return zero, fmt.Errorf("state value %q missing", name)
	}
	x, err := parse(v)
	if err != nil {
		return zero, fmt.Errorf("state value %q: %w", name, err)
	}
	return x, nil
}

// Release releases the reader's batches.
func (r *StateReader) Release() {
	for _, bs := range r.tables {
		for _, b := range bs {
			b.Release()
		}
	}
	r.tables = nil
}

// decodeTable reads one table written by encodeTable.
func (r *StateReader) decodeTable(alloc memory.Allocator, name string, in io.Reader) error {
	ir, err := ipc.NewReader(in, ipc.WithAllocator(alloc))
	if err != nil {
		return fmt.Errorf("state table %q: %w", name, err)
	}
	defer ir.Release()
	if r.tables == nil {
		r.tables = map[string][]arrow.RecordBatch{}
	}
	r.tables[name] = []arrow.RecordBatch{} // present even when empty
	for ir.Next() {
		rec := ir.RecordBatch()
		rec.Retain()
		r.tables[name] = append(r.tables[name], rec)
	}
	if err := ir.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("state table %q: %w", name, err)
	}
	return nil
}

// RoundTrip encodes w's state as a checkpoint would (Arrow IPC, compressed
// with zstd) and decodes it into a reader allocated from alloc; it releases
// w. Tests of Stateful operators use it to check SaveState/LoadState.
func RoundTrip(alloc memory.Allocator, w *StateWriter) (*StateReader, error) {
	defer w.Release()
	r := &StateReader{values: w.values}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	for _, name := range w.tableNames() {
		var buf bytes.Buffer
		if err := w.encodeTable(&buf, name); err != nil {
			r.Release()
			return nil, err
		}
		raw, err := dec.DecodeAll(enc.EncodeAll(buf.Bytes(), nil), nil)
		if err != nil {
			r.Release()
			return nil, err
		}
		if err := r.decodeTable(alloc, name, bytes.NewReader(raw)); err != nil {
			r.Release()
			return nil, err
		}
	}
	return r, nil
}
