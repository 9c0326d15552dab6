package expr

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// node is implemented by every Expr of this package; it lets the generic
// passes (Fold, Columns, Remap) walk and rebuild trees.
type node interface {
	Expr
	children() []Expr
	// withChildren returns a copy of the node over new children of the same
	// types as the old ones.
	withChildren(ch []Expr) Expr
}

// ---- columns ----

type colExpr struct {
	index int
	name  string
	typ   arrow.DataType
}

var _ node = (*colExpr)(nil)

// Col references column index of the input batch, of type t.
func Col(index int, name string, t arrow.DataType) Expr {
	return &colExpr{index: index, name: name, typ: t}
}

func (c *colExpr) Type() arrow.DataType        { return c.typ }
func (c *colExpr) String() string              { return c.name }
func (c *colExpr) children() []Expr            { return nil }
func (c *colExpr) withChildren(ch []Expr) Expr { return c }
func (c *colExpr) Eval(_ *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	if c.index < 0 || c.index >= int(batch.NumCols()) {
		return nil, fmt.Errorf("column %s: index %d out of range (batch has %d columns)", c.name, c.index, batch.NumCols())
	}
	col := batch.Column(c.index)
	if !arrow.TypeEqual(col.DataType(), c.typ) {
		return nil, fmt.Errorf("column %s: batch holds %s, expected %s", c.name, col.DataType(), c.typ)
	}
	col.Retain()
	return col, nil
}

// ---- literals ----

type litExpr struct {
	val any
	typ arrow.DataType
	one arrow.Array // the value as a one-row array (garbage collected, never released)
}

var _ node = (*litExpr)(nil)

// Lit is a constant of type t; v is the Go value listed in the package
// documentation (nil is NULL). Go integer and float values of another width
// are converted; a value that does not fit t panics (a planner bug).
// Evaluating a Lit fills an array of the batch length; operators with a
// constant operand use the value directly instead.
func Lit(v any, t arrow.DataType) Expr {
	v = normalizeValue(v, t)
	return &litExpr{val: v, typ: t, one: oneRow(v, t)}
}

func (l *litExpr) Type() arrow.DataType        { return l.typ }
func (l *litExpr) children() []Expr            { return nil }
func (l *litExpr) withChildren(ch []Expr) Expr { return l }
func (l *litExpr) String() string {
	switch {
	case l.val == nil:
		return "NULL"
	case l.typ.ID() == arrow.STRING:
		return "'" + strings.ReplaceAll(l.val.(string), "'", "''") + "'"
	case l.typ.ID() == arrow.TIMESTAMP || l.typ.ID() == arrow.DATE32 || l.typ.ID() == arrow.DURATION:
		return sqltypes.Name(l.typ) + " '" + kernels.Text(l.one, 0) + "'"
	}
	return kernels.Text(l.one, 0)
}

func (l *litExpr) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	return kernels.Repeat(ctx.Alloc, l.one, int(batch.NumRows()))
}

// normalizeValue converts a Go value to the canonical Go type of t.
func normalizeValue(v any, t arrow.DataType) any {
	if v == nil {
		return nil
	}
	toI64 := func() int64 {
		switch x := v.(type) {
		case int:
			return int64(x)
		case int32:
			return int64(x)
		case int64:
			return x
		case time.Time:
			return x.UnixMilli()
		case time.Duration:
			return x.Milliseconds()
		}
		panic(fmt.Sprintf("expr.Lit: %T value for %s", v, sqltypes.Name(t)))
	}
	switch t.ID() {
	case arrow.INT32:
		return int32(toI64())
	case arrow.INT64, arrow.TIMESTAMP, arrow.DURATION:
		return toI64()
	case arrow.DATE32:
		if tm, ok := v.(time.Time); ok {
			return int32(tm.UnixMilli() / kernels.MillisPerDay)
		}
		return int32(toI64())
	case arrow.FLOAT64:
		switch x := v.(type) {
		case float64:
			return x
		case float32:
			return float64(x)
		}
		return float64(toI64())
	case arrow.DECIMAL128:
		if d, ok := v.(decimal128.Num); ok {
			return d
		}
		return decimal128.FromI64(toI64())
	}
	return v
}

// oneRow builds a one-row array of type t holding v.
func oneRow(v any, t arrow.DataType) arrow.Array {
	alloc := memory.DefaultAllocator
	if t.ID() == arrow.NULL {
		return array.NewNull(1)
	}
	b := array.NewBuilder(alloc, t)
	defer b.Release()
	if v == nil {
		b.AppendNull()
		return b.NewArray()
	}
	switch bb := b.(type) {
	case *array.BooleanBuilder:
		bb.Append(v.(bool))
	case *array.Int32Builder:
		bb.Append(v.(int32))
	case *array.Int64Builder:
		bb.Append(v.(int64))
	case *array.Float64Builder:
		bb.Append(v.(float64))
	case *array.Decimal128Builder:
		bb.Append(v.(decimal128.Num))
	case *array.StringBuilder:
		bb.Append(v.(string))
	case *array.TimestampBuilder:
		bb.Append(arrow.Timestamp(v.(int64)))
	case *array.Date32Builder:
		bb.Append(arrow.Date32(v.(int32)))
	case *array.DurationBuilder:
		bb.Append(arrow.Duration(v.(int64)))
	default:
		panic(fmt.Sprintf("expr.Lit: unsupported type %s", t))
	}
	return b.NewArray()
}

// valueAt returns row i of a as the Go value of the package documentation.
func valueAt(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch x := a.(type) {
	case *array.Boolean:
		return x.Value(i)
	case *array.Int32:
		return x.Value(i)
	case *array.Int64:
		return x.Value(i)
	case *array.Float64:
		return x.Value(i)
	case *array.Decimal128:
		return x.Value(i)
	case *array.String:
		return strings.Clone(x.Value(i))
	case *array.Timestamp:
		return int64(x.Value(i))
	case *array.Date32:
		return int32(x.Value(i))
	case *array.Duration:
		return int64(x.Value(i))
	}
	return nil
}

// IsConst returns the value of e if e is a literal (e.g. a folded constant).
func IsConst(e Expr) (value any, ok bool) {
	if l, isLit := e.(*litExpr); isLit {
		return l.val, true
	}
	return nil, false
}

// ---- tree passes ----

// Columns returns the sorted, distinct input column indexes e references.
func Columns(e Expr) []int {
	var out []int
	walk(e, func(x Expr) {
		if c, ok := x.(*colExpr); ok {
			out = append(out, c.index)
		}
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// Remap returns e with every column index i replaced by mapping[i] (indexes
// missing from mapping are kept).
func Remap(e Expr, mapping map[int]int) Expr {
	return rewriteColumns(e, func(c *colExpr) Expr {
		if j, found := mapping[c.index]; found {
			return &colExpr{index: j, name: c.name, typ: c.typ}
		}
		return c
	})
}

// Substitute returns e with every reference to column i replaced by
// repl[i] (columns missing from repl are kept). The planner uses it to move
// an expression below a projection: repl holds the projection's expressions.
func Substitute(e Expr, repl map[int]Expr) Expr {
	return rewriteColumns(e, func(c *colExpr) Expr {
		if r, found := repl[c.index]; found {
			return r
		}
		return c
	})
}

// rewriteColumns rebuilds e with every column reference replaced by f's
// result.
func rewriteColumns(e Expr, f func(*colExpr) Expr) Expr {
	if c, ok := e.(*colExpr); ok {
		return f(c)
	}
	n, ok := e.(node)
	if !ok {
		return e
	}
	ch := n.children()
	if len(ch) == 0 {
		return e
	}
	nc := make([]Expr, len(ch))
	for i, c := range ch {
		if c != nil {
			nc[i] = rewriteColumns(c, f)
		}
	}
	return n.withChildren(nc)
}

func walk(e Expr, f func(Expr)) {
	if e == nil {
		return
	}
	f(e)
	if n, ok := e.(node); ok {
		for _, c := range n.children() {
			walk(c, f)
		}
	}
}

// volatile reports whether e must be evaluated per batch even without
// column references (CURRENT_TIMESTAMP).
func volatile(e Expr) bool {
	v := false
	walk(e, func(x Expr) {
		_, isCol := x.(*colExpr)
		f, isFunc := x.(*funcExpr)
		v = v || isCol || (isFunc && f.volatile)
	})
	return v
}

// Fold replaces every sub-tree without column references (and without
// CURRENT_TIMESTAMP/NOW) by a literal holding its value, evaluated once.
// Errors of constant sub-trees (a bad cast of a constant, an overflow)
// surface here, at plan time; the one exception is the branches of CASE
// and COALESCE, which are left unevaluated when folding them fails so that
// a branch that is never selected cannot fail the query.
func Fold(e Expr) (Expr, error) {
	f, _, err := fold(e)
	return f, err
}

// fold is Fold, also reporting whether the result is volatile (see
// volatile), decided from the children's answers so that folding a deep
// tree takes linear time.
func fold(e Expr) (Expr, bool, error) {
	if e == nil {
		return nil, false, nil
	}
	n, ok := e.(node)
	if !ok {
		return e, false, nil
	}
	if _, isLit := e.(*litExpr); isLit {
		return e, false, nil
	}
	_, vol := e.(*colExpr)
	if f, isFunc := e.(*funcExpr); isFunc && f.volatile {
		vol = true
	}
	ch := n.children()
	if len(ch) > 0 {
		_, lazy := e.(lazyNode)
		nc := make([]Expr, len(ch))
		for i, c := range ch {
			f, v, err := fold(c)
			if err != nil {
				if !lazy {
					return nil, false, err
				}
				f, v = c, volatile(c)
			}
			nc[i] = f
			vol = vol || v
		}
		e = n.withChildren(nc)
	}
	if vol {
		return e, true, nil
	}
	v, err := evalConst(e)
	if err != nil {
		return nil, false, err
	}
	return Lit(v, e.Type()), false, nil
}

// lazyNode marks nodes whose children are evaluated only for some rows.
type lazyNode interface{ lazy() }

// evalConst evaluates a column-free expression on a one-row batch.
func evalConst(e Expr) (any, error) {
	batch := array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, 1)
	defer batch.Release()
	ctx := &Context{Alloc: memory.DefaultAllocator, Now: time.Now()}
	a, err := e.Eval(ctx, batch)
	if err != nil {
		return nil, err
	}
	defer a.Release()
	return valueAt(a, 0), nil
}

// ---- evaluation helpers ----

// evalAll evaluates exprs in order; on error the arrays made so far are
// released.
func evalAll(ctx *Context, batch arrow.RecordBatch, exprs []Expr) ([]arrow.Array, error) {
	out := make([]arrow.Array, len(exprs))
	for i, e := range exprs {
		a, err := e.Eval(ctx, batch)
		if err != nil {
			releaseAll(out)
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

// evalOperand evaluates e for a kernel that broadcasts: a literal yields
// its one-row array (retained), anything else a full array.
func evalOperand(ctx *Context, batch arrow.RecordBatch, e Expr) (arrow.Array, error) {
	if l, ok := e.(*litExpr); ok {
		l.one.Retain()
		return l.one, nil
	}
	return e.Eval(ctx, batch)
}

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		if a != nil {
			a.Release()
		}
	}
}

func typeName(t arrow.DataType) string { return sqltypes.Name(t) }

func isNullType(t arrow.DataType) bool { return t.ID() == arrow.NULL }
