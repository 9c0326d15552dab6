package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
)

// unary holds what every single-input operator shares.
type unary struct {
	input  Operator
	alloc  memory.Allocator
	closed bool
	// bad receives rows whose expressions fail (Filter, Project), which
	// are then dropped; nil: the batch fails (fault_rows.go).
	bad DeadLetter
}

func (u *unary) Open(ctx context.Context) error { return u.input.Open(ctx) }

func (u *unary) Close() error {
	if u.closed {
		return nil
	}
	u.closed = true
	return u.input.Close()
}

func (u *unary) evalContext() *expr.Context {
	return &expr.Context{Alloc: u.alloc, Now: time.Now()}
}

// FilterOp keeps the rows for which a BOOLEAN predicate is TRUE (NULL and
// FALSE rows are dropped) and compacts them into a new batch. Empty results
// are not emitted as batches, but their watermark is.
//
// A filter may also carry computed columns: expressions appended to each
// output batch (NewFilterCarrying). The planner uses them to hand the
// projection above the values of sub-expressions the predicate computes
// anyway. Common sub-expressions of the predicate and the carried columns
// are computed once per batch (expr.Program).
type FilterOp struct {
	unary
	pred   expr.Expr
	prog   *expr.Program // pred, then the carried expressions
	keep   []int         // input columns passed on; nil: all
	schema *arrow.Schema
}

var _ Operator = (*FilterOp)(nil)

// NewFilter returns a filter over input. pred must be BOOLEAN.
func NewFilter(alloc memory.Allocator, input Operator, pred expr.Expr) (*FilterOp, error) {
	return NewFilterCarrying(alloc, input, pred, nil, nil, nil)
}

// NewFilterCarrying returns a filter over input whose output batches hold
// the input's columns listed in keep (all of them when keep is nil), in
// that order, followed by one column per carry expression (named by names),
// evaluated over the input batch and filtered with it. Columns the consumer
// does not read are thus not compacted.
func NewFilterCarrying(alloc memory.Allocator, input Operator, pred expr.Expr, keep []int, carry []expr.Expr, names []string) (*FilterOp, error) {
	if pred.Type().ID() != arrow.BOOL {
		return nil, fmt.Errorf("filter predicate %s is %s, not BOOLEAN", pred, pred.Type())
	}
	in := input.Schema()
	for _, c := range keep {
		if c < 0 || c >= in.NumFields() {
			return nil, fmt.Errorf("filter: kept column %d out of range (%d columns)", c, in.NumFields())
		}
	}
	schema := in
	if len(carry) > 0 || keep != nil {
		var fields []arrow.Field
		if keep == nil {
			fields = append(fields, in.Fields()...)
		}
		for _, c := range keep {
			fields = append(fields, in.Field(c))
		}
		for i, e := range carry {
			fields = append(fields, arrow.Field{Name: names[i], Type: e.Type(), Nullable: true})
		}
		schema = arrow.NewSchema(fields, nil)
	}
	prog := expr.NewProgram(append([]expr.Expr{pred}, carry...), in.NumFields())
	return &FilterOp{unary: unary{input: input, alloc: alloc}, pred: pred, prog: prog, keep: keep, schema: schema}, nil
}

// Schema implements Operator.
func (f *FilterOp) Schema() *arrow.Schema { return f.schema }

// Program returns the predicate and carried expressions as the filter
// evaluates them (for tests and explain output).
func (f *FilterOp) Program() *expr.Program { return f.prog }

// Next implements Operator.
func (f *FilterOp) Next(ctx context.Context) (Message, error) {
	msg, err := f.input.Next(ctx)
	if err != nil || msg.Batch == nil {
		return msg, err
	}
	defer msg.Release()
	out, err := f.filter(msg)
	if err != nil && f.bad != nil && Classify(err) == ClassData {
		out, err = f.salvage(ctx, msg, f.filter)
	}
	return out, WithOperator("Filter", err)
}

// filter filters one message (not released).
func (f *FilterOp) filter(msg Message) (Message, error) {
	vals, err := f.prog.Eval(f.evalContext(), msg.Batch)
	if err != nil {
		var ee *expr.EvalError
		if errors.As(err, &ee) && ee.Expr == f.pred {
			err = ee.Err // named below
		}
		return Message{}, DataError(fmt.Errorf("filter %s: %w", f.pred, err))
	}
	defer func() {
		for _, v := range vals {
			v.Release()
		}
	}()
	in := msg.Batch
	if len(vals) > 1 || f.keep != nil {
		var cols []arrow.Array
		if f.keep == nil {
			cols = append(cols, in.Columns()...)
		}
		for _, c := range f.keep {
			cols = append(cols, in.Column(c))
		}
		cols = append(cols, vals[1:]...)
		in = array.NewRecordBatch(f.schema, cols, in.NumRows())
		defer in.Release()
	}
	out, err := kernels.Filter(f.alloc, in, vals[0].(*array.Boolean))
	if err != nil {
		return Message{}, fmt.Errorf("filter %s: %w", f.pred, err)
	}
	if out.NumRows() == 0 {
		out.Release()
		return Message{Watermark: msg.Watermark}, nil
	}
	return Message{Batch: out, Watermark: msg.Watermark}, nil
}

// String describes the operator for explain output.
func (f *FilterOp) String() string { return "Filter " + f.pred.String() }

// ProjectOp computes one output column per expression.
// Common sub-expressions of the list are computed once per batch
// (expr.Program).
type ProjectOp struct {
	unary
	exprs  []expr.Expr
	prog   *expr.Program
	schema *arrow.Schema
}

var _ Operator = (*ProjectOp)(nil)

// NewProject returns a projection of input; names label the output columns.
func NewProject(alloc memory.Allocator, input Operator, exprs []expr.Expr, names []string) *ProjectOp {
	fields := make([]arrow.Field, len(exprs))
	for i, e := range exprs {
		fields[i] = arrow.Field{Name: names[i], Type: e.Type(), Nullable: true}
	}
	prog := expr.NewProgram(exprs, input.Schema().NumFields())
	return &ProjectOp{unary: unary{input: input, alloc: alloc}, exprs: exprs, prog: prog, schema: arrow.NewSchema(fields, nil)}
}

// Schema implements Operator.
func (p *ProjectOp) Schema() *arrow.Schema { return p.schema }

// Next implements Operator.
func (p *ProjectOp) Next(ctx context.Context) (Message, error) {
	msg, err := p.input.Next(ctx)
	if err != nil || msg.Batch == nil {
		return msg, err
	}
	defer msg.Release()
	out, err := p.project(msg)
	if err != nil && p.bad != nil && Classify(err) == ClassData {
		out, err = p.salvage(ctx, msg, p.project)
	}
	return out, WithOperator("Project", err)
}

// project projects one message (not released).
func (p *ProjectOp) project(msg Message) (_ Message, err error) {
	cols, err := p.prog.Eval(p.evalContext(), msg.Batch)
	if err != nil {
		return Message{}, DataError(fmt.Errorf("project %w", err))
	}
	out := array.NewRecordBatch(p.schema, cols, msg.Batch.NumRows())
	for _, c := range cols {
		c.Release()
	}
	return Message{Batch: out, Watermark: msg.Watermark}, nil
}

// Program returns the expressions as the projection evaluates them (for
// tests and explain output).
func (p *ProjectOp) Program() *expr.Program { return p.prog }

// LimitOp passes the first n rows and then ends the stream. It is Stateful:
// a checkpoint saves how many rows it may still pass.
type LimitOp struct {
	unary
	left int64
}

var _ Stateful = (*LimitOp)(nil)

// NewLimit returns an operator passing at most n rows of input.
func NewLimit(input Operator, n int64) *LimitOp {
	return &LimitOp{unary: unary{input: input}, left: n}
}

// Schema implements Operator.
func (l *LimitOp) Schema() *arrow.Schema { return l.input.Schema() }

// Next implements Operator. After n rows it returns a FinalWatermark message
// and then io.EOF, closing its input early.
func (l *LimitOp) Next(ctx context.Context) (Message, error) {
	if l.left <= 0 {
		if l.left == 0 {
			l.left = -1
			_ = l.Close()
			return Message{Watermark: FinalWatermark}, nil
		}
		return Message{}, io.EOF
	}
	msg, err := l.input.Next(ctx)
	if err != nil {
		return msg, err
	}
	if msg.Batch == nil {
		if msg.Barrier != nil {
			if err := msg.Barrier.Save(l); err != nil {
				return Message{}, fmt.Errorf("limit: %w", err)
			}
		}
		return msg, nil
	}
	if n := msg.Batch.NumRows(); n > l.left {
		sliced := msg.Batch.NewSlice(0, l.left)
		msg.Release()
		msg.Batch = sliced
	}
	l.left -= msg.Batch.NumRows()
	return msg, nil
}

// SaveState implements Stateful: the rows the limit may still pass.
func (l *LimitOp) SaveState(w *StateWriter) error {
	w.SetInt("left", l.left)
	return nil
}

// LoadState implements Stateful.
func (l *LimitOp) LoadState(r *StateReader) error {
	left, err := r.Int("left")
	if err != nil {
		return fmt.Errorf("limit: %w", err)
	}
	l.left = left
	return nil
}

// ValuesOp produces one row with no columns and then ends: the input of a
// SELECT without FROM.
type ValuesOp struct {
	done bool
}

var _ Operator = (*ValuesOp)(nil)

// NewValues returns a ValuesOp.
func NewValues() *ValuesOp { return &ValuesOp{} }

// Schema implements Operator.
func (*ValuesOp) Schema() *arrow.Schema { return arrow.NewSchema(nil, nil) }

// Open implements Operator.
func (*ValuesOp) Open(context.Context) error { return nil }

// Next implements Operator.
func (v *ValuesOp) Next(ctx context.Context) (Message, error) {
	if err := ctx.Err(); err != nil {
		return Message{}, err
	}
	if v.done {
		return Message{}, io.EOF
	}
	v.done = true
	return Message{Batch: array.NewRecordBatch(v.Schema(), nil, 1), Watermark: FinalWatermark}, nil
}

// Close implements Operator.
func (*ValuesOp) Close() error { return nil }
