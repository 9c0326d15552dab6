package arrowexec

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferrisstreams/ferris/kernels"
)

// Data errors raised by operators: a Filter or Project whose expression
// fails on a batch (an integer overflow, a string that does not cast) fails
// only because of some of its rows. With a bad-row handler (SetDataErrors)
// the operator finds those rows, hands each to the handler (the query's
// failure strategy: dead letter, log and skip, or fail) and processes the
// others. Finding them costs one evaluation per row, paid only by batches
// that failed.

// unaryInput gives the input of a single-input operator (tree walks).
func (u *unary) unaryInput() Operator { return u.input }

// SetDataErrors gives the Filter and Project operators of the tree under
// root (every operator reachable through operatorInputs: single-input
// operators, joins, subquery joins and instrumentation) the bad-row handler
// h. Build-time only.
func SetDataErrors(root Operator, h DeadLetter) {
	switch o := root.(type) {
	case *FilterOp:
		o.bad = h
	case *ProjectOp:
		o.bad = h
	}
	for _, in := range operatorInputs(root) {
		SetDataErrors(in, h)
	}
}

// salvage processes msg (which it does not release) row by row to find the
// rows process fails on with a data error, hands each to the operator's
// handler, and returns process applied to the other rows. A handler error
// (failure_strategy fail) is returned.
func (u *unary) salvage(ctx context.Context, msg Message, process func(Message) (Message, error)) (Message, error) {
	b := msg.Batch
	n := int(b.NumRows())
	keep := array.NewBooleanBuilder(u.alloc)
	defer keep.Release()
	keep.Reserve(n)
	bad := 0
	for i := range n {
		row := b.NewSlice(int64(i), int64(i+1))
		out, err := process(Message{Batch: row, Watermark: msg.Watermark})
		row.Release()
		out.Release()
		if err == nil {
			keep.UnsafeAppend(true)
			continue
		}
		if Classify(err) != ClassData {
			return Message{}, err
		}
		bad++
		keep.UnsafeAppend(false)
		rec := DeadLetterRecord{Time: time.Now().UTC(), Position: fmt.Sprintf("row %d of %d", i+1, n),
			Reason: err.Error(), Raw: RowJSON(b, i)}
		if herr := u.bad.DeadLetter(ctx, rec); herr != nil {
			return Message{}, herr
		}
	}
	if bad == 0 { // the batch failed but no row alone does: not a row's fault
		return process(msg)
	}
	mask := keep.NewBooleanArray()
	defer mask.Release()
	good, err := kernels.Filter(u.alloc, b, mask)
	if err != nil {
		return Message{}, err
	}
	defer good.Release()
	if good.NumRows() == 0 {
		return Message{Watermark: msg.Watermark, Partition: msg.Partition}, nil
	}
	return process(Message{Batch: good, Watermark: msg.Watermark, Partition: msg.Partition})
}
