package plan

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
)

// scopeCol is a column visible to expressions: its input index and the
// qualifiers (relation name and alias) that may prefix it.
type scopeCol struct {
	qualifiers []string
	name       string
	typ        arrow.DataType
	index      int
}

// scope is what names resolve against while binding one SELECT.
type scope struct {
	cols []scopeCol
	// owner describes the relation for error messages: `stream "trades"`.
	owner string
	// aliases are select-list aliases usable in WHERE and GROUP BY (after
	// input columns), bound on use.
	aliases map[string]ast.Expr
	// agg, when set, binds over an aggregate's output (select list, HAVING).
	agg *aggContext
	// inAggregate is set while binding an aggregate's argument.
	inAggregate bool
	// over, when set, binds window function calls to an Over node's
	// output (select list of a query with OVER).
	over *overContext
	// subq maps the subquery expressions planned as joins (subquery.go)
	// to the columns holding their results.
	subq map[ast.Expr]expr.Expr
	// lazy is set inside CASE, whose branches run only for some rows: a
	// constant there that cannot be computed fails no query.
	lazy bool
}

func (s *scope) names() []string {
	out := make([]string, len(s.cols))
	for i, c := range s.cols {
		out[i] = c.name
	}
	return out
}

func (s *scope) resolve(ref *ast.ColumnRef) (expr.Expr, error) {
	var found []scopeCol
	qualifierKnown := ref.Qualifier == ""
	for _, c := range s.cols {
		if ref.Qualifier != "" {
			if !containsFold(c.qualifiers, ref.Qualifier) {
				continue
			}
			qualifierKnown = true
		}
		if c.name == ref.Name {
			found = append(found, c)
		}
	}
	switch {
	case len(found) == 1:
		c := found[0]
		return expr.Col(c.index, c.name, c.typ), nil
	case len(found) > 1:
		return nil, errorf(ref.At, "column reference %q is ambiguous; qualify it with a stream name or alias", ref.Name)
	case !qualifierKnown:
		return nil, errorf(ref.At, "unknown stream or alias %q", ref.Qualifier)
	}
	if a, ok := s.aliases[ref.Name]; ok && ref.Qualifier == "" {
		if hasAggregate(a) {
			return nil, errorf(ref.At, "%q refers to an aggregate, which is not allowed here", ref.Name)
		}
		if s.over == nil && hasOver(a) {
			return nil, errorf(ref.At, "%q refers to a window function, which is not allowed here; to filter on it, compute it in a CREATE STREAM ... AS stage and filter that stream", ref.Name)
		}
		inner := *s
		inner.aliases = nil // an alias may not refer to an alias
		return bindExpr(a, &inner)
	}
	where := ""
	if s.owner != "" {
		where = " in " + s.owner
	}
	return nil, errorf(ref.At, "unknown column %q%s%s", ref.Name, where, suggest(ref.Name, s.names()))
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// aggregateNames are the aggregate functions of the dialect; they bind in
// the windows issue and are refused until then.
var aggregateNames = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true,
	"stddev": true, "stddev_samp": true, "stddev_pop": true,
	"variance": true, "var_samp": true, "var_pop": true,
	"first_value": true, "last_value": true, "approx_count_distinct": true,
}

// windowFunctionNames are only valid with OVER.
var windowFunctionNames = map[string]bool{
	"row_number": true, "rank": true, "dense_rank": true, "lag": true, "lead": true,
}

// bindExpr turns an AST expression into a typed, compiled expression.
// A constant part that cannot be computed (CAST('abc' AS INT), a string
// compared with a TIMESTAMP that is not one) is an error at its operand,
// unless it sits in a CASE branch that may never run.
func bindExpr(e ast.Expr, sc *scope) (expr.Expr, error) {
	out, err := bindNode(e, sc)
	if err != nil || sc.lazy {
		return out, err
	}
	if _, isLit := e.(*ast.Literal); isLit {
		return out, nil
	}
	folded, err := expr.Fold(out) // folded here, parents fold in constant time
	if err != nil {
		return nil, at(constantOperand(e, err), err)
	}
	return folded, nil
}

// constantOperand is where the error err of folding e points: the literal
// operand of e whose text err quotes, else e's only constant operand, else
// e itself.
func constantOperand(e ast.Expr, err error) ast.Pos {
	var consts []ast.Expr
	ast.Inspect(e, func(x ast.Expr) bool {
		if x == e {
			return true
		}
		if isConstantAST(x) {
			consts = append(consts, x)
		}
		return false
	})
	for _, c := range consts {
		if l, ok := c.(*ast.Literal); ok && strings.Contains(err.Error(), strconv.Quote(l.Value)) {
			return l.At
		}
	}
	if len(consts) == 1 {
		return consts[0].Position()
	}
	if b, ok := e.(*ast.Binary); ok {
		return b.OpAt
	}
	return e.Position()
}

// isConstantAST reports whether e reads no column, subquery, aggregate or
// window function.
func isConstantAST(e ast.Expr) bool {
	constant := true
	ast.Inspect(e, func(x ast.Expr) bool {
		switch x := x.(type) {
		case *ast.ColumnRef, *ast.InSubquery, *ast.Exists, *ast.Subquery:
			constant = false
		case *ast.FuncCall:
			if x.Over != nil || aggregateNames[x.Name] || windowFunctionNames[x.Name] {
				constant = false
			}
		}
		return constant
	})
	return constant
}

// bindNode binds e (bindExpr, without its constant check).
func bindNode(e ast.Expr, sc *scope) (expr.Expr, error) {
	if sc.agg != nil {
		if out, ok, err := sc.agg.bind(e, sc); ok {
			return out, err
		}
	}
	if f, ok := e.(*ast.FuncCall); ok && f.Over != nil && sc.over != nil {
		return sc.over.bind(f)
	}
	switch e := e.(type) {
	case *ast.ColumnRef:
		return sc.resolve(e)
	case *ast.Literal:
		return bindLiteral(e)
	case *ast.Binary:
		l, err := bindExpr(e.L, sc)
		if err != nil {
			return nil, err
		}
		r, err := bindExpr(e.R, sc)
		if err != nil {
			return nil, err
		}
		out, err := expr.Binary(e.Op, l, r)
		if err != nil {
			return nil, at(e.OpAt, err)
		}
		return out, nil
	case *ast.Unary:
		x, err := bindExpr(e.X, sc)
		if err != nil {
			return nil, err
		}
		out, err := expr.Unary(e.Op, x)
		return out, wrapAt(e.At, err)
	case *ast.FuncCall:
		return bindCall(e, sc)
	case *ast.Case:
		var operand, els expr.Expr
		var err error
		lazy := *sc
		lazy.lazy = true
		sc := &lazy
		if e.Operand != nil {
			if operand, err = bindExpr(e.Operand, sc); err != nil {
				return nil, err
			}
		}
		whens := make([]expr.Expr, len(e.Whens))
		thens := make([]expr.Expr, len(e.Whens))
		for i, w := range e.Whens {
			if whens[i], err = bindExpr(w.Cond, sc); err != nil {
				return nil, err
			}
			if thens[i], err = bindExpr(w.Result, sc); err != nil {
				return nil, err
			}
		}
		if e.Else != nil {
			if els, err = bindExpr(e.Else, sc); err != nil {
				return nil, err
			}
		}
		out, err := expr.Case(operand, whens, thens, els)
		return out, wrapAt(e.At, err)
	case *ast.Cast:
		x, err := bindExpr(e.X, sc)
		if err != nil {
			return nil, err
		}
		t, err := bindType(e.Type)
		if err != nil {
			return nil, err
		}
		out, err := expr.Cast(x, t)
		return out, wrapAt(e.At, err)
	case *ast.IsNull:
		x, err := bindExpr(e.X, sc)
		if err != nil {
			return nil, err
		}
		return expr.IsNull(x, e.Not), nil
	case *ast.IsBool:
		x, err := bindExpr(e.X, sc)
		if err != nil {
			return nil, err
		}
		out, err := expr.IsBool(x, e.Value, e.Not)
		return out, wrapAt(e.At, err)
	case *ast.InList:
		x, err := bindExpr(e.X, sc)
		if err != nil {
			return nil, err
		}
		list, err := bindExprs(e.List, sc)
		if err != nil {
			return nil, err
		}
		out, err := expr.InList(x, list, e.Not)
		return out, wrapAt(e.At, err)
	case *ast.Between:
		args, err := bindExprs([]ast.Expr{e.X, e.Lo, e.Hi}, sc)
		if err != nil {
			return nil, err
		}
		out, err := expr.Between(args[0], args[1], args[2], e.Not)
		return out, wrapAt(e.At, err)
	case *ast.Like:
		x, err := bindExpr(e.X, sc)
		if err != nil {
			return nil, err
		}
		p, err := bindExpr(e.Pattern, sc)
		if err != nil {
			return nil, err
		}
		out, err := expr.Like(x, p, e.Not, e.ILike)
		return out, wrapAt(e.At, err)
	case *ast.InSubquery, *ast.Exists, *ast.Subquery:
		if col, ok := sc.subq[e]; ok {
			return col, nil
		}
		return nil, notSupported(e.Position(), "a subquery here (subqueries may be used in WHERE and in the select list of a query without aggregation or window functions)")
	}
	return nil, errorf(e.Position(), "unsupported expression %T", e)
}

func wrapAt(pos ast.Pos, err error) error {
	if err == nil {
		return nil
	}
	return at(pos, err)
}

func bindExprs(list []ast.Expr, sc *scope) ([]expr.Expr, error) {
	out := make([]expr.Expr, len(list))
	for i, a := range list {
		e, err := bindExpr(a, sc)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

func bindCall(f *ast.FuncCall, sc *scope) (expr.Expr, error) {
	upper := strings.ToUpper(f.Name)
	switch {
	case f.Over != nil:
		return nil, errorf(f.At, "window function %s(...) OVER (...) is not allowed here", upper)
	case aggregateNames[f.Name] && sc.inAggregate:
		return nil, errorf(f.At, "aggregate function calls cannot be nested")
	case aggregateNames[f.Name]:
		return nil, errorf(f.At, "aggregate function %s is not allowed here", upper)
	case windowFunctionNames[f.Name]:
		return nil, errorf(f.At, "%s requires an OVER clause", upper)
	case f.Star:
		return nil, errorf(f.At, "%s(*) is only valid for COUNT", upper)
	case f.Distinct:
		return nil, errorf(f.At, "DISTINCT is only valid in aggregate functions")
	}
	if scalars := expr.FuncNames(); !slices.Contains(scalars, strings.ToLower(f.Name)) {
		// before the arguments: under GROUP BY they would fail first, as
		// columns outside an aggregate
		names := append(scalars, slices.Collect(maps.Keys(aggregateNames))...)
		names = append(names, slices.Collect(maps.Keys(windowFunctionNames))...)
		return nil, errorf(f.At, "unknown function %q%s", f.Name, suggest(f.Name, names))
	}
	args, err := bindExprs(f.Args, sc)
	if err != nil {
		return nil, err
	}
	out, err := expr.Func(f.Name, args)
	return out, wrapAt(f.At, err)
}

func bindType(t ast.TypeName) (arrow.DataType, error) {
	dt, err := sqltypes.FromName(t.Name, t.Params...)
	if err != nil {
		return nil, at(t.At, err)
	}
	return dt, nil
}

// unitMillis are the interval units the parser normalises to.
var unitMillis = map[string]float64{
	"MILLISECOND": 1, "SECOND": 1e3, "MINUTE": 60e3, "HOUR": 3600e3, "DAY": 86400e3,
}

// intervalMillis converts an interval literal to milliseconds.
func intervalMillis(l *ast.Literal) (int64, error) {
	unit, ok := unitMillis[l.Unit]
	if !ok {
		return 0, errorf(l.At, "unknown interval unit %q", l.Unit)
	}
	v, err := strconv.ParseFloat(l.Value, 64)
	if err != nil {
		return 0, errorf(l.At, "bad interval quantity %q", l.Value)
	}
	ms := v * unit
	if ms != math.Trunc(ms) || math.Abs(ms) > math.MaxInt64/2 {
		return 0, errorf(l.At, "interval %s %s is not a whole number of milliseconds", l.Value, l.Unit)
	}
	return int64(ms), nil
}

func bindLiteral(l *ast.Literal) (expr.Expr, error) {
	switch l.Kind {
	case ast.NullLit:
		return expr.Lit(nil, sqltypes.Null), nil
	case ast.BoolLit:
		return expr.Lit(l.Value == "true", sqltypes.Boolean), nil
	case ast.StringLit:
		return expr.Lit(l.Value, sqltypes.Varchar), nil
	case ast.IntervalLit:
		ms, err := intervalMillis(l)
		if err != nil {
			return nil, err
		}
		return expr.Lit(ms, sqltypes.Interval), nil
	case ast.TimestampLit, ast.DateLit:
		t := sqltypes.Timestamp
		if l.Kind == ast.DateLit {
			t = sqltypes.Date
		}
		c, err := expr.Cast(expr.Lit(l.Value, sqltypes.Varchar), t)
		if err != nil {
			return nil, at(l.At, err)
		}
		folded, err := expr.Fold(c)
		if err != nil {
			return nil, errorf(l.At, "bad %s literal %q: %v", sqltypes.Name(t), l.Value, err)
		}
		return folded, nil
	case ast.NumberLit:
		return bindNumber(l)
	}
	return nil, errorf(l.At, "unsupported literal")
}

// bindNumber types a numeric literal: INT when it fits, else BIGINT; with a
// decimal point, an exact DECIMAL(p,s) of its digits; with an exponent,
// DOUBLE.
func bindNumber(l *ast.Literal) (expr.Expr, error) {
	text := l.Value
	if strings.ContainsAny(text, "eE") {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, errorf(l.At, "bad number %q", text)
		}
		return expr.Lit(f, sqltypes.Double), nil
	}
	if !strings.Contains(text, ".") {
		n, err := strconv.ParseInt(text, 10, 64)
		if err == nil {
			if n >= math.MinInt32 && n <= math.MaxInt32 {
				return expr.Lit(int32(n), sqltypes.Int), nil
			}
			return expr.Lit(n, sqltypes.BigInt), nil
		}
	}
	intPart, frac, _ := strings.Cut(text, ".")
	intPart = strings.TrimLeft(intPart, "0")
	scale := int32(len(frac))
	precision := max(int32(len(intPart))+scale, 1)
	if precision > sqltypes.MaxDecimalPrecision {
		return nil, errorf(l.At, "number %s has more than %d digits", text, sqltypes.MaxDecimalPrecision)
	}
	n, err := kernels.ParseDecimal(text, precision, scale)
	if err != nil {
		return nil, errorf(l.At, "bad number %q: %v", text, err)
	}
	return expr.Lit(n, sqltypes.Decimal(precision, scale)), nil
}
