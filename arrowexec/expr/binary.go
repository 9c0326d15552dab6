package expr

import (
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// kernelFn evaluates an operator over its operands' arrays (length n or,
// for literals, 1 and broadcast).
type kernelFn func(ctx *Context, args []arrow.Array, n int) (arrow.Array, error)

// opExpr is an operator or function application: the arguments are
// evaluated (literals as broadcast one-row arrays when bcast is set) and
// handed to a type-specialised kernel chosen at construction.
type opExpr struct {
	name     string // operator symbol or upper-case function name
	infix    bool
	args     []Expr
	typ      arrow.DataType
	kernel   kernelFn
	bcast    bool // the kernel accepts one-row (broadcast) arguments
	volatile bool
}

var _ node = (*opExpr)(nil)

func (o *opExpr) Type() arrow.DataType { return o.typ }
func (o *opExpr) children() []Expr     { return o.args }
func (o *opExpr) withChildren(ch []Expr) Expr {
	c := *o
	c.args = ch
	return &c
}

func (o *opExpr) String() string {
	var b strings.Builder
	o.writeString(&b)
	return b.String()
}

// writeString writes String's text to b: a deep chain (a long OR) is
// rendered in time linear in its text, not quadratic.
func (o *opExpr) writeString(b *strings.Builder) {
	arg := func(e Expr) {
		if x, ok := e.(*opExpr); ok {
			x.writeString(b)
		} else {
			b.WriteString(e.String())
		}
	}
	switch {
	case o.infix && len(o.args) == 2:
		b.WriteString("(")
		arg(o.args[0])
		b.WriteString(" " + o.name + " ")
		arg(o.args[1])
		b.WriteString(")")
		return
	case o.infix && len(o.args) == 1:
		if o.name == "NOT" {
			b.WriteString("(NOT ")
		} else {
			b.WriteString("(" + o.name)
		}
		arg(o.args[0])
		b.WriteString(")")
		return
	}
	b.WriteString(o.name + "(")
	for i, a := range o.args {
		if i > 0 {
			b.WriteString(", ")
		}
		arg(a)
	}
	b.WriteString(")")
}

func (o *opExpr) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	n := int(batch.NumRows())
	args := make([]arrow.Array, len(o.args))
	defer releaseAll(args)
	for i, e := range o.args {
		var err error
		if o.bcast {
			args[i], err = evalOperand(ctx, batch, e)
		} else {
			args[i], err = e.Eval(ctx, batch)
		}
		if err != nil {
			return nil, err
		}
	}
	return o.kernel(ctx, args, n)
}

// funcExpr is kept as a name for the reference interpreter and volatile
// detection: functions are opExprs.
type funcExpr = opExpr

// ---- casts ----

type castExpr struct {
	x  Expr
	to arrow.DataType
}

var _ node = (*castExpr)(nil)

func (c *castExpr) Type() arrow.DataType        { return c.to }
func (c *castExpr) children() []Expr            { return []Expr{c.x} }
func (c *castExpr) withChildren(ch []Expr) Expr { return &castExpr{x: ch[0], to: c.to} }
func (c *castExpr) String() string {
	return "CAST(" + c.x.String() + " AS " + typeName(c.to) + ")"
}
func (c *castExpr) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	a, err := c.x.Eval(ctx, batch)
	if err != nil {
		return nil, err
	}
	defer a.Release()
	return kernels.Cast(ctx.Alloc, a, c.to)
}

// Cast converts x to type to (see kernels.Cast for the rules). Casting to
// the same type returns x; unsupported pairs are an error.
func Cast(x Expr, to arrow.DataType) (Expr, error) {
	if arrow.TypeEqual(x.Type(), to) {
		return x, nil
	}
	if !kernels.CanCast(x.Type(), to) {
		return nil, fmt.Errorf("cannot cast %s to %s", typeName(x.Type()), typeName(to))
	}
	return implicitCast(x, to), nil
}

// implicitCast wraps x in a cast to t (nothing if x already has type t); a
// literal is converted at once when that succeeds (when it fails the cast
// node stays and the error surfaces in Fold or Eval).
func implicitCast(x Expr, t arrow.DataType) Expr {
	if arrow.TypeEqual(x.Type(), t) {
		return x
	}
	c := &castExpr{x: x, to: t}
	if l, ok := x.(*litExpr); ok {
		if l.val == nil {
			return Lit(nil, t)
		}
		if v, err := evalConst(c); err == nil {
			return Lit(v, t)
		}
	}
	return c
}

// ---- type rules ----

func isInteger(t arrow.DataType) bool { return t.ID() == arrow.INT32 || t.ID() == arrow.INT64 }
func isTemporal(t arrow.DataType) bool {
	return t.ID() == arrow.TIMESTAMP || t.ID() == arrow.DATE32 || t.ID() == arrow.DURATION
}

// promote returns the common numeric type of two numeric types: INT op INT
// is INT, INT and BIGINT mix to BIGINT, any DOUBLE gives DOUBLE, integers
// with DECIMAL give DECIMAL (INT as DECIMAL(10,0), BIGINT as DECIMAL(19,0))
// wide enough for both (precision capped at 38).
func promote(a, b arrow.DataType) arrow.DataType {
	switch {
	case a.ID() == arrow.FLOAT64 || b.ID() == arrow.FLOAT64:
		return sqltypes.Double
	case a.ID() == arrow.DECIMAL128 || b.ID() == arrow.DECIMAL128:
		da, _ := sqltypes.DecimalOf(a)
		db, _ := sqltypes.DecimalOf(b)
		s := max(da.Scale, db.Scale)
		p := min(max(da.Precision-da.Scale, db.Precision-db.Scale)+s, sqltypes.MaxDecimalPrecision)
		return sqltypes.Decimal(p, s)
	case a.ID() == arrow.INT64 || b.ID() == arrow.INT64:
		return sqltypes.BigInt
	}
	return sqltypes.Int
}

// commonType returns the type values of all the given types convert to
// (CASE branches, COALESCE, IN lists): NULL goes with anything, numeric
// types promote, DATE goes with TIMESTAMP (as TIMESTAMP), and a VARCHAR
// literal goes with anything it can be parsed as. It returns NULL when all
// are NULL.
func commonType(what string, exprs []Expr) (arrow.DataType, error) {
	var t arrow.DataType = sqltypes.Null
	for _, e := range exprs {
		et := e.Type()
		switch {
		case isNullType(et):
		case isNullType(t) || arrow.TypeEqual(t, et):
			if isNullType(t) {
				t = et
			}
		case sqltypes.IsNumeric(t) && sqltypes.IsNumeric(et):
			t = promote(t, et)
		case (t.ID() == arrow.TIMESTAMP && et.ID() == arrow.DATE32) || (t.ID() == arrow.DATE32 && et.ID() == arrow.TIMESTAMP):
			t = sqltypes.Timestamp
		default:
			t = nil
		}
		if t == nil {
			break
		}
	}
	if t == nil {
		// second chance: VARCHAR literals adopt the other type
		var other arrow.DataType
		for _, e := range exprs {
			if _, isLit := e.(*litExpr); isLit && e.Type().ID() == arrow.STRING || isNullType(e.Type()) {
				continue
			}
			if other == nil || arrow.TypeEqual(other, e.Type()) {
				other = e.Type()
				continue
			}
			other = nil
			break
		}
		if other == nil {
			names := make([]string, len(exprs))
			for i, e := range exprs {
				names[i] = typeName(e.Type())
			}
			return nil, fmt.Errorf("%s types %s cannot be matched", what, strings.Join(names, " and "))
		}
		t = other
	}
	return t, nil
}

// ---- binary operators ----

// Binary builds l op r for op one of + - * / % || = <> != < <= > >= AND OR
// (case-insensitive). Semantics:
//   - AND, OR, NOT use three-valued logic (false AND NULL is false, true OR
//     NULL is true, otherwise NULL in gives NULL).
//   - Comparisons with NULL yield NULL. Compatible types are converted
//     first: numeric types promote (DECIMALs of different scales compare
//     exactly), a VARCHAR compared with a TIMESTAMP, DATE or INTERVAL is
//     parsed as that type, a VARCHAR literal compared with a number is
//     parsed as the number, DATE compared with TIMESTAMP is midnight UTC.
//     DOUBLE NaN equals NaN and is above every number (PostgreSQL).
//   - Arithmetic: see promote for numeric result types and
//     sqltypes.DecimalResult for DECIMAL precision and scale. Integer
//     overflow is an error, integer division truncates toward zero,
//     division and modulo by zero yield NULL (all types, DOUBLE included).
//   - TIMESTAMP ± INTERVAL is TIMESTAMP, TIMESTAMP - TIMESTAMP is INTERVAL,
//     INTERVAL ± INTERVAL is INTERVAL, INTERVAL * or / a number is INTERVAL
//     (rounded to the millisecond), DATE ± integer is DATE (days), DATE -
//     DATE is INT (days), DATE ± INTERVAL is TIMESTAMP.
//   - || concatenates VARCHAR (NULL if either side is NULL); a non-VARCHAR
//     operand is cast to VARCHAR, as in PostgreSQL.
func Binary(op string, l, r Expr) (Expr, error) {
	op = strings.ToUpper(op)
	switch op {
	case "AND", "OR":
		return logical(op, l, r)
	case "=", "==", "<>", "!=", "<", "<=", ">", ">=":
		return comparison(op, l, r)
	case "+", "-", "*", "/", "%":
		return arithmetic(op, l, r)
	case "||":
		return concatOp(l, r)
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

func cannotApply(op string, l, r Expr) error {
	return fmt.Errorf("cannot apply %s to %s and %s", op, typeName(l.Type()), typeName(r.Type()))
}

func logical(op string, l, r Expr) (Expr, error) {
	for _, x := range []Expr{l, r} {
		if x.Type().ID() != arrow.BOOL && !isNullType(x.Type()) {
			return nil, cannotApply(op, l, r)
		}
	}
	l, r = implicitCast(l, sqltypes.Boolean), implicitCast(r, sqltypes.Boolean)
	k := func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		return kernels.And(ctx.Alloc, a[0], a[1], n), nil
	}
	if op == "OR" {
		k = func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			return kernels.Or(ctx.Alloc, a[0], a[1], n), nil
		}
	}
	return &opExpr{name: op, infix: true, args: []Expr{l, r}, typ: sqltypes.Boolean, kernel: k, bcast: true}, nil
}

var cmpOps = map[string]kernels.CmpOp{
	"=": kernels.Eq, "==": kernels.Eq, "<>": kernels.Ne, "!=": kernels.Ne,
	"<": kernels.Lt, "<=": kernels.Le, ">": kernels.Gt, ">=": kernels.Ge,
}

// comparable converts l and r to a type they can be compared in.
func comparable(op string, l, r Expr) (Expr, Expr, error) {
	lt, rt := l.Type(), r.Type()
	_, llit := l.(*litExpr)
	_, rlit := r.(*litExpr)
	switch {
	case isNullType(lt) && isNullType(rt):
		return Lit(nil, sqltypes.Boolean), Lit(nil, sqltypes.Boolean), nil
	case isNullType(lt):
		return Lit(nil, rt), r, nil
	case isNullType(rt):
		return l, Lit(nil, lt), nil
	case arrow.TypeEqual(lt, rt):
		return l, r, nil
	case lt.ID() == arrow.DECIMAL128 && rt.ID() == arrow.DECIMAL128:
		return l, r, nil // compared exactly across scales
	case sqltypes.IsNumeric(lt) && sqltypes.IsNumeric(rt):
		t := promote(lt, rt)
		if t.ID() == arrow.DECIMAL128 {
			// keep each side's scale: convert integers only
			if lt.ID() != arrow.DECIMAL128 {
				d, _ := sqltypes.DecimalOf(lt)
				l = implicitCast(l, d)
			}
			if rt.ID() != arrow.DECIMAL128 {
				d, _ := sqltypes.DecimalOf(rt)
				r = implicitCast(r, d)
			}
			return l, r, nil
		}
		return implicitCast(l, t), implicitCast(r, t), nil
	case lt.ID() == arrow.STRING && (isTemporal(rt) || llit && (sqltypes.IsNumeric(rt) || rt.ID() == arrow.BOOL)):
		return implicitCast(l, rt), r, nil
	case rt.ID() == arrow.STRING && (isTemporal(lt) || rlit && (sqltypes.IsNumeric(lt) || lt.ID() == arrow.BOOL)):
		return l, implicitCast(r, lt), nil
	case lt.ID() == arrow.DATE32 && rt.ID() == arrow.TIMESTAMP:
		return implicitCast(l, rt), r, nil
	case lt.ID() == arrow.TIMESTAMP && rt.ID() == arrow.DATE32:
		return l, implicitCast(r, lt), nil
	}
	return nil, nil, cannotApply(op, l, r)
}

func comparison(op string, l, r Expr) (Expr, error) {
	cop := cmpOps[op]
	l2, r2, err := comparable(op, l, r)
	if err != nil {
		return nil, err
	}
	if op == "==" {
		op = "="
	} else if op == "!=" {
		op = "<>"
	}
	k := func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		if a[0].DataType().ID() == arrow.NULL {
			return array.MakeArrayOfNull(ctx.Alloc, sqltypes.Boolean, n), nil
		}
		return kernels.Compare(ctx.Alloc, cop, a[0], a[1], n)
	}
	return &opExpr{name: op, infix: true, args: []Expr{l2, r2}, typ: sqltypes.Boolean, kernel: k, bcast: true}, nil
}

var arithOps = map[string]kernels.ArithOp{"+": kernels.Add, "-": kernels.Sub, "*": kernels.Mul, "/": kernels.Div, "%": kernels.Mod}

// arithKernel is a kernel over same-storage operands.
func arithKernel(aop kernels.ArithOp, out arrow.DataType) kernelFn {
	return func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		return kernels.Arith(ctx.Alloc, aop, a[0], a[1], n, out)
	}
}

func arithmetic(op string, l, r Expr) (Expr, error) {
	aop := arithOps[op]
	lt, rt := l.Type(), r.Type()
	if isNullType(lt) && isNullType(rt) {
		return Lit(nil, sqltypes.Null), nil
	}
	// a NULL operand takes the type of the other side
	if isNullType(lt) {
		l, lt = Lit(nil, rt), rt
	}
	if isNullType(rt) {
		r, rt = Lit(nil, lt), lt
	}
	mk := func(t arrow.DataType, k kernelFn, args ...Expr) (Expr, error) {
		return &opExpr{name: op, infix: true, args: args, typ: t, kernel: k, bcast: true}, nil
	}
	L, R := lt.ID(), rt.ID()
	switch {
	case sqltypes.IsNumeric(lt) && sqltypes.IsNumeric(rt):
		t := promote(lt, rt)
		if t.ID() != arrow.DECIMAL128 {
			return mk(t, arithKernel(aop, t), implicitCast(l, t), implicitCast(r, t))
		}
		dl, _ := sqltypes.DecimalOf(lt)
		dr, _ := sqltypes.DecimalOf(rt)
		out := sqltypes.DecimalResult(op, dl, dr)
		if op == "*" && (isInteger(lt) || isInteger(rt)) {
			// DECIMAL * integer: multiply by the integer storage directly.
			if isInteger(lt) {
				l, r = r, l
			}
			return mk(out, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
				return kernels.DecimalMulInt(ctx.Alloc, a[0], a[1], n, out)
			}, l, r)
		}
		return mk(out, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			return kernels.DecimalArith(ctx.Alloc, aop, a[0], a[1], n, out)
		}, implicitCast(l, dl), implicitCast(r, dr))
	case L == arrow.TIMESTAMP && R == arrow.DURATION && (op == "+" || op == "-"):
		return mk(lt, arithKernel(aop, lt), l, r)
	case L == arrow.DURATION && R == arrow.TIMESTAMP && op == "+":
		return mk(rt, arithKernel(aop, rt), r, l)
	case L == arrow.TIMESTAMP && R == arrow.TIMESTAMP && op == "-":
		return mk(sqltypes.Interval, arithKernel(aop, sqltypes.Interval), l, r)
	case L == arrow.DURATION && R == arrow.DURATION && (op == "+" || op == "-"):
		return mk(lt, arithKernel(aop, lt), l, r)
	case L == arrow.DURATION && sqltypes.IsNumeric(rt) && (op == "*" || op == "/"),
		sqltypes.IsNumeric(lt) && R == arrow.DURATION && op == "*":
		if R == arrow.DURATION {
			l, r = r, l
		}
		return mk(sqltypes.Interval, scaleInterval(aop), l, implicitCast(r, sqltypes.Double))
	case L == arrow.DATE32 && isInteger(rt) && (op == "+" || op == "-"):
		return mk(lt, arithKernel(aop, lt), l, implicitCast(r, sqltypes.Int))
	case isInteger(lt) && R == arrow.DATE32 && op == "+":
		return mk(rt, arithKernel(aop, rt), r, implicitCast(l, sqltypes.Int))
	case L == arrow.DATE32 && R == arrow.DATE32 && op == "-":
		return mk(sqltypes.Int, arithKernel(aop, sqltypes.Int), l, r)
	case L == arrow.DATE32 && R == arrow.DURATION && (op == "+" || op == "-"):
		return arithmetic(op, implicitCast(l, sqltypes.Timestamp), r)
	case L == arrow.DURATION && R == arrow.DATE32 && op == "+":
		return arithmetic(op, implicitCast(r, sqltypes.Timestamp), l)
	case L == arrow.STRING && isTemporal(rt):
		if _, ok := l.(*litExpr); ok {
			return arithmetic(op, implicitCast(l, stringPartner(op, rt)), r)
		}
	case R == arrow.STRING && isTemporal(lt):
		if _, ok := r.(*litExpr); ok {
			return arithmetic(op, l, implicitCast(r, stringPartner(op, lt)))
		}
	}
	return nil, cannotApply(op, l, r)
}

// stringPartner is the type a VARCHAR literal takes in arithmetic with a
// temporal operand: an interval, unless subtracting timestamps.
func stringPartner(op string, other arrow.DataType) arrow.DataType {
	if other.ID() == arrow.DURATION {
		return sqltypes.Timestamp
	}
	return sqltypes.Interval
}

// scaleInterval multiplies or divides an INTERVAL by a DOUBLE, rounding to
// the millisecond (half away from zero); dividing by zero yields NULL.
func scaleInterval(aop kernels.ArithOp) kernelFn {
	return func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		iv, f := a[0].(*array.Duration), a[1].(*array.Float64)
		return kernels.MapFixed(ctx.Alloc, sqltypes.Interval, n, a, func(i int) (int64, bool, error) {
			x, y := float64(iv.Value(kernels.Broadcast(iv, n, i))), f.Value(kernels.Broadcast(f, n, i))
			var v float64
			if aop == kernels.Mul {
				v = x * y
			} else {
				if y == 0 {
					return 0, false, nil
				}
				v = x / y
			}
			v = math.Round(v)
			if math.IsNaN(v) || v >= math.MaxInt64 || v < math.MinInt64 {
				return 0, false, fmt.Errorf("INTERVAL overflow in %s %s %s", kernels.FormatInterval(int64(x)), aop, kernels.FormatDouble(y))
			}
			return int64(v), true, nil
		})
	}
}

func concatOp(l, r Expr) (Expr, error) {
	lt, rt := l.Type(), r.Type()
	if lt.ID() != arrow.STRING && rt.ID() != arrow.STRING && !(isNullType(lt) || isNullType(rt)) {
		return nil, cannotApply("||", l, r)
	}
	l, r = implicitCast(l, sqltypes.Varchar), implicitCast(r, sqltypes.Varchar)
	k := func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		x, y := a[0].(*array.String), a[1].(*array.String)
		return kernels.MapString(ctx.Alloc, n, a, func(i int) (string, bool, error) {
			return x.Value(kernels.Broadcast(x, n, i)) + y.Value(kernels.Broadcast(y, n, i)), true, nil
		})
	}
	return &opExpr{name: "||", infix: true, args: []Expr{l, r}, typ: sqltypes.Varchar, kernel: k, bcast: true}, nil
}

// Unary builds op x for op "-" (numeric or INTERVAL; negating the most
// negative integer is an overflow error), "+" (numeric or INTERVAL, no-op)
// or "NOT" (BOOLEAN, three-valued).
func Unary(op string, x Expr) (Expr, error) {
	op = strings.ToUpper(op)
	t := x.Type()
	switch op {
	case "+":
		if sqltypes.IsNumeric(t) || t.ID() == arrow.DURATION || isNullType(t) {
			return x, nil
		}
	case "-":
		if sqltypes.IsNumeric(t) || t.ID() == arrow.DURATION {
			return &opExpr{name: "-", infix: true, args: []Expr{x}, typ: t, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
				return kernels.Negate(ctx.Alloc, a[0])
			}}, nil
		}
		if isNullType(t) {
			return x, nil
		}
	case "NOT":
		if t.ID() == arrow.BOOL || isNullType(t) {
			x = implicitCast(x, sqltypes.Boolean)
			return &opExpr{name: "NOT", infix: true, args: []Expr{x}, typ: sqltypes.Boolean, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
				return kernels.Not(ctx.Alloc, a[0]), nil
			}}, nil
		}
	default:
		return nil, fmt.Errorf("unknown operator %s", op)
	}
	return nil, fmt.Errorf("cannot apply %s to %s", op, typeName(t))
}
