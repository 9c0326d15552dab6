package expr

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/ferrisstreams/ferris/kernels"
)

// The reference interpreter evaluates an expression one row at a time over
// Go values, with exact big.Rat arithmetic for decimals. It shares no
// evaluation code with the kernels beyond value formatting and parsing.

var errRef = errors.New("reference error")

func refEval(e Expr, row []any) (any, error) {
	switch x := e.(type) {
	case *colExpr:
		return row[x.index], nil
	case *litExpr:
		return x.val, nil
	case *castExpr:
		v, err := refEval(x.x, row)
		if err != nil || v == nil {
			return nil, err
		}
		return refCast(v, x.x.Type(), x.to)
	case *likeExpr:
		s, err := refEval(x.x, row)
		if err != nil {
			return nil, err
		}
		p, err := refEval(x.pattern, row)
		if err != nil || s == nil || p == nil {
			return nil, err
		}
		str, pat := s.(string), p.(string)
		if x.ci {
			str, pat = strings.ToLower(str), strings.ToLower(pat)
		}
		return refLike([]rune(str), []rune(pat)) != x.not, nil
	case *caseExpr:
		if x.coalesce {
			for _, v := range x.vals {
				r, err := refEval(v, row)
				if err != nil || r != nil {
					return r, err
				}
			}
			return nil, nil
		}
		for i, c := range x.conds {
			cv, err := refEval(c, row)
			if err != nil {
				return nil, err
			}
			if cv == true {
				return refEval(x.vals[i], row)
			}
		}
		if x.els == nil {
			return nil, nil
		}
		return refEval(x.els, row)
	case *opExpr:
		return refOp(x, row, "s")
	case *evalOnce:
		v, err := refEval(x.x, row)
		if err != nil {
			return nil, err
		}
		return refEval(x.over, []any{v})
	case *inSetExpr:
		v, err := refEval(x.x, row)
		if err != nil || v == nil {
			return nil, err
		}
		var out any = false
		for _, l := range x.set.lits {
			switch {
			case l.val == nil:
				out = nil
			case refCompare(v, l.val, x.x.Type(), l.typ) == 0:
				return !x.not, nil
			}
		}
		if out == nil {
			return nil, nil
		}
		return x.not, nil
	case *unitHint:
		if op, ok := x.Expr.(*opExpr); ok {
			return refOp(op, row, x.unit)
		}
		return refEval(x.Expr, row)
	}
	return nil, fmt.Errorf("reference: unsupported %T", e)
}

// ratOf converts a numeric Go value of type t to an exact rational.
func ratOf(v any, t arrow.DataType) *big.Rat {
	switch n := v.(type) {
	case int32:
		return new(big.Rat).SetInt64(int64(n))
	case int64:
		return new(big.Rat).SetInt64(n)
	case float64:
		r, _ := new(big.Rat).SetString(fmt.Sprint(n))
		return r
	case decimal128.Num:
		s := t.(*arrow.Decimal128Type).Scale
		return new(big.Rat).SetFrac(n.BigInt(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s)), nil))
	}
	panic(fmt.Sprintf("ratOf %T", v))
}

// ratToDecimal rounds r half away from zero to scale s, checking precision.
func ratToDecimal(r *big.Rat, t *arrow.Decimal128Type) (decimal128.Num, error) {
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale)), nil)))
	num, den := scaled.Num(), scaled.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	m.Abs(m).Mul(m, big.NewInt(2))
	if m.Cmp(den) >= 0 {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	lim := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Precision)), nil)
	if new(big.Int).Abs(q).Cmp(lim) >= 0 {
		return decimal128.Num{}, errRef
	}
	return decimal128.FromBigInt(q), nil
}

func refCast(v any, from, to arrow.DataType) (any, error) {
	if out, ok, err := refCastTemporal(v, from, to); ok {
		return out, err
	}
	if from.ID() == arrow.DURATION && to.ID() == arrow.STRING {
		return kernels.FormatInterval(v.(int64)), nil
	}
	if to.ID() == arrow.STRING {
		switch x := v.(type) {
		case string:
			return x, nil
		case bool:
			return fmt.Sprint(x), nil
		case int32, int64:
			if from.ID() == arrow.TIMESTAMP {
				return kernels.FormatTimestamp(x.(int64)), nil
			}
			return fmt.Sprint(x), nil
		case float64:
			return kernels.FormatDouble(x), nil
		case decimal128.Num:
			return kernels.FormatDecimal(x, from.(*arrow.Decimal128Type).Scale), nil
		}
	}
	if s, ok := v.(string); ok {
		switch to.ID() {
		case arrow.TIMESTAMP:
			ms, err := kernels.ParseTimestamp(s)
			return ms, err
		case arrow.FLOAT64:
			return kernels.ParseDouble(s)
		}
		r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
		if !ok {
			return nil, errRef
		}
		v, from = r, nil
	}
	var r *big.Rat
	if rr, ok := v.(*big.Rat); ok {
		r = rr
	} else if f, ok := v.(float64); ok {
		if to.ID() == arrow.FLOAT64 {
			return f, nil
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errRef
		}
		r = ratOf(f, from)
	} else {
		r = ratOf(v, from)
	}
	switch to.ID() {
	case arrow.FLOAT64:
		f, _ := r.Float64()
		return f, nil
	case arrow.DECIMAL128:
		return ratToDecimal(r, to.(*arrow.Decimal128Type))
	case arrow.INT32, arrow.INT64:
		d, err := ratToDecimal(r, &arrow.Decimal128Type{Precision: 38, Scale: 0})
		if err != nil {
			return nil, err
		}
		b := d.BigInt()
		if to.ID() == arrow.INT32 {
			if b.Cmp(big.NewInt(math.MaxInt32)) > 0 || b.Cmp(big.NewInt(math.MinInt32)) < 0 {
				return nil, errRef
			}
			return int32(b.Int64()), nil
		}
		if !b.IsInt64() {
			return nil, errRef
		}
		return b.Int64(), nil
	}
	return nil, fmt.Errorf("refCast %s -> %s", from, to)
}

func refLike(s, p []rune) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	switch p[0] {
	case '%':
		for i := 0; i <= len(s); i++ {
			if refLike(s[i:], p[1:]) {
				return true
			}
		}
		return false
	case '_':
		return len(s) > 0 && refLike(s[1:], p[1:])
	case '\\':
		p = p[1:]
	}
	return len(s) > 0 && s[0] == p[0] && refLike(s[1:], p[1:])
}

func refCompare(a, b any, at, bt arrow.DataType) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case x:
			return 1
		}
		return -1
	case float64:
		y := b.(float64)
		xn, yn := math.IsNaN(x), math.IsNaN(y)
		switch {
		case xn && yn:
			return 0
		case xn:
			return 1
		case yn:
			return -1
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return ratOf(a, at).Cmp(ratOf(b, bt))
}

func refOp(x *opExpr, row []any, unit string) (any, error) {
	args := make([]any, len(x.args))
	for i, a := range x.args {
		v, err := refEval(a, row)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	switch x.name {
	case "AND", "OR":
		a, b := args[0], args[1]
		dec := x.name == "OR" // the deciding value
		if a == dec || b == dec {
			return dec, nil
		}
		if a == nil || b == nil {
			return nil, nil
		}
		return !dec, nil
	case "NOT":
		if args[0] == nil {
			return nil, nil
		}
		return !args[0].(bool), nil
	case "IS NULL":
		return args[0] == nil, nil
	case "IS NOT NULL":
		return args[0] != nil, nil
	case "IS TRUE":
		return args[0] == true, nil
	case "IS NOT TRUE":
		return args[0] != true, nil
	case "IS FALSE":
		return args[0] == false, nil
	case "IS NOT FALSE":
		return args[0] != false, nil
	case "CONCAT":
		var sb strings.Builder
		for _, a := range args {
			if a != nil {
				sb.WriteString(a.(string))
			}
		}
		return sb.String(), nil
	case "GREATEST", "LEAST":
		return refGreatestLeast(x, args), nil
	}
	for _, a := range args {
		if a == nil {
			return nil, nil
		}
	}
	at := func(i int) arrow.DataType { return x.args[i].Type() }
	switch x.name {
	case "=", "<>", "<", "<=", ">", ">=":
		c := refCompare(args[0], args[1], at(0), at(1))
		return map[string]bool{"=": c == 0, "<>": c != 0, "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[x.name], nil
	case "||":
		return args[0].(string) + args[1].(string), nil
	case "+", "-", "*", "/", "%":
		if x.typ.ID() == arrow.DURATION && len(args) == 2 {
			if f, ok := args[1].(float64); ok { // INTERVAL * or / a number
				return refScaleInterval(x.name, args[0].(int64), f)
			}
		}
		if len(args) == 1 { // unary minus
			if f, ok := args[0].(float64); ok {
				return 0 - f, nil
			}
			args = []any{int32(0), args[0]}
			return refArith("-", args, []arrow.DataType{at(0), at(0)}, x.typ)
		}
		return refArith(x.name, args, []arrow.DataType{at(0), at(1)}, x.typ)
	case "UPPER":
		return strings.ToUpper(args[0].(string)), nil
	case "LOWER":
		return strings.ToLower(args[0].(string)), nil
	case "LENGTH":
		return int32(utf8.RuneCountInString(args[0].(string))), nil
	}
	return refFunc(x, args, unit)
}

func refArith(op string, args []any, types []arrow.DataType, out arrow.DataType) (any, error) {
	if f, ok := args[0].(float64); ok {
		g := args[1].(float64)
		switch op {
		case "+":
			return f + g, nil
		case "-":
			return f - g, nil
		case "*":
			return f * g, nil
		}
		if g == 0 {
			return nil, nil
		}
		if op == "/" {
			return f / g, nil
		}
		return math.Mod(f, g), nil
	}
	a, b := ratOf(args[0], types[0]), ratOf(args[1], types[1])
	var r *big.Rat
	switch op {
	case "+":
		r = new(big.Rat).Add(a, b)
	case "-":
		r = new(big.Rat).Sub(a, b)
	case "*":
		r = new(big.Rat).Mul(a, b)
	case "/", "%":
		if b.Sign() == 0 {
			return nil, nil
		}
		q := new(big.Rat).Quo(a, b)
		if out.ID() != arrow.DECIMAL128 || op == "%" { // truncate toward zero
			t := new(big.Int).Quo(q.Num(), q.Denom())
			if op == "/" {
				r = new(big.Rat).SetInt(t)
			} else {
				r = new(big.Rat).Sub(a, new(big.Rat).Mul(b, new(big.Rat).SetInt(t)))
			}
		} else {
			r = q
		}
	}
	switch out.ID() {
	case arrow.DECIMAL128:
		return ratToDecimal(r, out.(*arrow.Decimal128Type))
	case arrow.INT32, arrow.DATE32:
		if !r.IsInt() || !r.Num().IsInt64() || r.Num().Int64() != int64(int32(r.Num().Int64())) {
			return nil, errRef
		}
		return int32(r.Num().Int64()), nil
	}
	if !r.Num().IsInt64() {
		return nil, errRef
	}
	return r.Num().Int64(), nil
}
