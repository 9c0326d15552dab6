package sql

import (
	"strings"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// Expression grammar, lowest precedence first:
//
//	OR; AND; NOT; comparison, IS, [NOT] BETWEEN/IN/LIKE/ILIKE; ||; + -;
//	* / %; unary + -; postfix ::type; primary.

// expr parses a full expression.
func (p *parser) expr() ast.Expr { return p.or(nil) }

// The functions or, and, not and comparison take first, the already parsed
// leftmost operand at concatenation level, or nil to parse it themselves;
// POSITION(a IN b) uses this to go on after finding no IN.

func (p *parser) or(first ast.Expr) ast.Expr {
	l := p.and(first)
	for p.isKw("or") {
		op := p.advance().pos
		l = &ast.Binary{At: l.Position(), Op: "OR", OpAt: op, L: l, R: p.and(nil)}
	}
	return l
}

func (p *parser) and(first ast.Expr) ast.Expr {
	l := p.not(first)
	for p.isKw("and") {
		op := p.advance().pos
		l = &ast.Binary{At: l.Position(), Op: "AND", OpAt: op, L: l, R: p.not(nil)}
	}
	return l
}

func (p *parser) not(first ast.Expr) ast.Expr {
	if first != nil || !p.isKw("not") {
		return p.comparison(first)
	}
	p.enter()
	defer p.leave()
	at := p.advance().pos
	exists := p.isKw("exists")
	x := p.not(nil)
	if e, ok := x.(*ast.Exists); ok && exists && !e.Not {
		e.At, e.Not = at, true
		return e
	}
	return &ast.Unary{At: at, Op: "NOT", X: x}
}

var comparisonOps = map[string]string{"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

// comparison parses a comparison and the postfix predicates IS, BETWEEN, IN
// and LIKE; their operands bind tighter (concatenation level).
func (p *parser) comparison(first ast.Expr) ast.Expr {
	l := first
	if l == nil {
		l = p.binary(0)
	}
	for {
		t := p.cur()
		if op, ok := comparisonOps[t.val]; ok && t.kind == tOp {
			p.advance()
			l = &ast.Binary{At: l.Position(), Op: op, OpAt: t.pos, L: l, R: p.binary(0)}
			continue
		}
		if p.acceptKw("is") {
			not := p.acceptKw("not")
			switch {
			case p.acceptKw("null"):
				l = &ast.IsNull{At: l.Position(), X: l, Not: not}
			case p.isKw("true") || p.isKw("false"):
				l = &ast.IsBool{At: l.Position(), X: l, Not: not, Value: p.advance().val == "true"}
			default:
				p.expected("NULL, TRUE or FALSE")
			}
			continue
		}
		not := false
		if p.isKw("not") {
			switch n := p.peek(1); {
			case n.kind == tIdent && (n.val == "between" || n.val == "in" || n.val == "like" || n.val == "ilike"):
				p.advance()
				not = true
			default:
				return l
			}
		}
		switch {
		case p.acceptKw("between"):
			b := &ast.Between{At: l.Position(), X: l, Not: not, Lo: p.binary(0)}
			p.expectKw("and")
			b.Hi = p.binary(0)
			l = b
		case p.acceptKw("in"):
			l = p.in(l, not)
		case p.isKw("like") || p.isKw("ilike"):
			ilike := p.advance().val == "ilike"
			l = &ast.Like{At: l.Position(), X: l, Not: not, ILike: ilike, Pattern: p.binary(0)}
		default:
			return l
		}
	}
}

// in parses the parenthesised part of `x [NOT] IN (...)`.
func (p *parser) in(x ast.Expr, not bool) ast.Expr {
	p.expectOp("(")
	if p.isKw("select") {
		q := p.query()
		p.expectOp(")")
		return &ast.InSubquery{At: x.Position(), X: x, Query: q, Not: not}
	}
	e := &ast.InList{At: x.Position(), X: x, Not: not, List: p.exprList()}
	p.expectOp(")")
	return e
}

func (p *parser) exprList() []ast.Expr {
	var list []ast.Expr
	for {
		list = append(list, p.expr())
		if !p.acceptOp(",") {
			return list
		}
	}
}

// binaryLevels are the left-associative operator levels between comparison
// and unary, lowest first.
var binaryLevels = [][]string{{"||"}, {"+", "-"}, {"*", "/", "%"}}

func (p *parser) binary(level int) ast.Expr {
	if level == len(binaryLevels) {
		return p.unary()
	}
	l := p.binary(level + 1)
	for {
		t := p.cur()
		if t.kind != tOp || !contains(binaryLevels[level], t.val) {
			return l
		}
		p.advance()
		l = &ast.Binary{At: l.Position(), Op: t.val, OpAt: t.pos, L: l, R: p.binary(level + 1)}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) unary() ast.Expr {
	p.enter()
	defer p.leave()
	if t := p.cur(); t.kind == tOp && (t.val == "-" || t.val == "+") {
		p.advance()
		return &ast.Unary{At: t.pos, Op: t.val, X: p.unary()}
	}
	x := p.primary()
	for p.acceptOp("::") {
		x = &ast.Cast{At: x.Position(), X: x, Type: p.typeName()}
	}
	return x
}

func (p *parser) primary() ast.Expr {
	t := p.cur()
	if p.terms++; p.terms > MaxTerms {
		p.fail(t.pos, "statement too large: more than %d expression terms (split it into smaller statements)", MaxTerms)
	}
	switch t.kind {
	case tNumber:
		p.advance()
		return &ast.Literal{At: t.pos, Kind: ast.NumberLit, Value: t.val}
	case tDuration:
		p.advance()
		return &ast.Literal{At: t.pos, Kind: ast.IntervalLit, Value: t.val, Unit: t.unit}
	case tString:
		p.advance()
		return &ast.Literal{At: t.pos, Kind: ast.StringLit, Value: t.val}
	case tOp:
		if t.val == "(" {
			p.advance()
			if p.isKw("select") {
				q := p.query()
				p.expectOp(")")
				return &ast.Subquery{At: t.pos, Query: q}
			}
			e := p.expr()
			p.expectOp(")")
			return e
		}
	case tQIdent:
		return p.name()
	case tIdent:
		next := p.peek(1)
		switch t.val {
		case "true", "false":
			p.advance()
			return &ast.Literal{At: t.pos, Kind: ast.BoolLit, Value: t.val}
		case "null":
			p.advance()
			return &ast.Literal{At: t.pos, Kind: ast.NullLit}
		case "interval":
			return p.interval()
		case "case":
			return p.caseExpr()
		case "cast":
			p.advance()
			p.expectOp("(")
			c := &ast.Cast{At: t.pos, X: p.expr()}
			p.expectKw("as")
			c.Type = p.typeName()
			p.expectOp(")")
			return c
		case "exists":
			p.advance()
			p.expectOp("(")
			if !p.isKw("select") {
				p.expected("SELECT")
			}
			e := &ast.Exists{At: t.pos, Query: p.query()}
			p.expectOp(")")
			return e
		case "timestamp", "date":
			if next.kind == tString {
				p.advance()
				p.advance()
				kind := map[string]ast.LiteralKind{"timestamp": ast.TimestampLit, "date": ast.DateLit}[t.val]
				return &ast.Literal{At: t.pos, Kind: kind, Value: next.val}
			}
		case "left", "right": // the string functions, not the joins
			if next.kind == tOp && next.val == "(" {
				p.advance()
				return p.call(t)
			}
		}
		if !reserved[t.val] {
			return p.name()
		}
	}
	p.expected("expression")
	return nil
}

// name parses a column reference or a function call starting with a name.
func (p *parser) name() ast.Expr {
	t := p.advance()
	if t.kind == tIdent {
		switch t.val {
		case "current_timestamp", "current_date":
			if p.isOp("(") && p.peek(1).kind == tOp && p.peek(1).val == ")" {
				p.advance()
				p.advance()
			}
			return &ast.FuncCall{At: t.pos, Name: t.val}
		}
	}
	if p.isOp("(") {
		return p.call(t)
	}
	if p.acceptOp(".") {
		col := p.ident("column name")
		return &ast.ColumnRef{At: t.pos, Qualifier: t.val, Name: col.Name}
	}
	return &ast.ColumnRef{At: t.pos, Name: t.val}
}

// call parses the argument list of a function named by t, lowering the
// special forms documented on ast.FuncCall.
func (p *parser) call(t token) ast.Expr {
	p.expectOp("(")
	f := &ast.FuncCall{At: t.pos, Name: t.val}
	if t.kind == tIdent {
		if e := p.specialCall(f); e != nil {
			return e
		}
	}
	if p.acceptOp("*") {
		f.Star = true
	} else if !p.isOp(")") {
		if f.Distinct = p.acceptKw("distinct"); !f.Distinct {
			p.acceptKw("all")
		}
		f.Args = p.exprList()
	}
	p.expectOp(")")
	if p.isKw("over") {
		f.Over = p.over()
	}
	return f
}

// specialCall parses the SQL-standard argument syntax of EXTRACT, SUBSTRING,
// POSITION, TRIM and NOW, after the '('. It returns nil (consuming nothing)
// when the arguments are an ordinary list.
func (p *parser) specialCall(f *ast.FuncCall) ast.Expr {
	done := func() ast.Expr { p.expectOp(")"); return f }
	switch f.Name {
	case "now":
		f.Name = "current_timestamp"
		return nil
	case "extract":
		t := p.cur()
		if (t.kind == tIdent || t.kind == tString) && p.peek(1).kind == tIdent && p.peek(1).val == "from" {
			p.advance()
			p.advance()
			field := &ast.Literal{At: t.pos, Kind: ast.StringLit, Value: strings.ToUpper(t.val)}
			f.Args = []ast.Expr{field, p.expr()}
			return done()
		}
	case "substring":
		if p.isOp(")") {
			return nil
		}
		s := p.expr()
		f.Args = []ast.Expr{s}
		switch {
		case p.acceptKw("from"):
			f.Args = append(f.Args, p.expr())
			if p.acceptKw("for") {
				f.Args = append(f.Args, p.expr())
			}
		case p.isKw("for"):
			at := p.advance().pos
			f.Args = append(f.Args, &ast.Literal{At: at, Kind: ast.NumberLit, Value: "1"}, p.expr())
		default:
			for p.acceptOp(",") {
				f.Args = append(f.Args, p.expr())
			}
		}
		return done()
	case "position":
		if p.isOp(")") || p.isKw("not") {
			return nil
		}
		a := p.binary(0) // below comparison, so IN is not taken as a predicate
		if p.acceptKw("in") {
			f.Args = []ast.Expr{a, p.binary(0)}
			return done()
		}
		f.Args = []ast.Expr{p.or(a)}
		for p.acceptOp(",") {
			f.Args = append(f.Args, p.expr())
		}
		return done()
	case "trim":
		f.Name = "btrim"
		switch {
		case p.acceptKw("both"):
		case p.acceptKw("leading"):
			f.Name = "ltrim"
		case p.acceptKw("trailing"):
			f.Name = "rtrim"
		}
		if p.acceptKw("from") {
			f.Args = []ast.Expr{p.expr()}
			return done()
		}
		if p.isOp(")") {
			p.expected("expression")
		}
		e := p.expr()
		if p.acceptKw("from") {
			f.Args = []ast.Expr{p.expr(), e}
			return done()
		}
		f.Args = []ast.Expr{e}
		for p.acceptOp(",") {
			f.Args = append(f.Args, p.expr())
		}
		return done()
	}
	return nil
}

// over parses `OVER (PARTITION BY ... ORDER BY ... [frame])`.
func (p *parser) over() *ast.OverSpec {
	o := &ast.OverSpec{At: p.expectKw("over")}
	p.expectOp("(")
	if p.acceptKw("partition") {
		p.expectKw("by")
		o.PartitionBy = p.exprList()
	}
	if p.acceptKw("order") {
		p.expectKw("by")
		o.OrderBy = p.orderItems()
	}
	if p.isKw("rows") || p.isKw("range") {
		t := p.advance()
		f := &ast.Frame{At: t.pos, Unit: strings.ToUpper(t.val)}
		if p.acceptKw("between") {
			f.Start = p.frameBound()
			p.expectKw("and")
			f.End = p.frameBound()
		} else {
			f.Start = p.frameBound()
			f.End = ast.FrameBound{Kind: "CURRENT ROW"}
		}
		o.Frame = f
	}
	p.expectOp(")")
	return o
}

func (p *parser) frameBound() ast.FrameBound {
	var b ast.FrameBound
	switch {
	case p.acceptKw("current"):
		p.expectKw("row")
		return ast.FrameBound{Kind: "CURRENT ROW"}
	case p.acceptKw("unbounded"):
		b.Kind = "UNBOUNDED"
	default:
		b.Kind, b.N = "N", p.binary(0)
	}
	switch {
	case p.acceptKw("preceding"):
		b.Kind += " PRECEDING"
	case p.acceptKw("following"):
		b.Kind += " FOLLOWING"
	default:
		p.expected("PRECEDING or FOLLOWING", "PRECEDING", "FOLLOWING")
	}
	return b
}

func (p *parser) caseExpr() ast.Expr {
	c := &ast.Case{At: p.expectKw("case")}
	if !p.isKw("when") && !p.isKw("end") {
		c.Operand = p.expr()
	}
	for p.acceptKw("when") {
		w := ast.When{Cond: p.expr()}
		p.expectKw("then")
		w.Result = p.expr()
		c.Whens = append(c.Whens, w)
	}
	if len(c.Whens) == 0 {
		p.expected("WHEN", "WHEN")
	}
	if p.acceptKw("else") {
		c.Else = p.expr()
	}
	p.expectKw("end")
	return c
}

// intervalUnits maps the unit words after INTERVAL '5' to units.
var intervalUnits = map[string]string{
	"millisecond": "MILLISECOND", "milliseconds": "MILLISECOND",
	"second": "SECOND", "seconds": "SECOND",
	"minute": "MINUTE", "minutes": "MINUTE",
	"hour": "HOUR", "hours": "HOUR",
	"day": "DAY", "days": "DAY",
}

// stringIntervalUnits adds the abbreviations accepted inside the string of
// INTERVAL '5 min'.
var stringIntervalUnits = map[string]string{
	"ms": "MILLISECOND", "msec": "MILLISECOND", "msecs": "MILLISECOND",
	"s": "SECOND", "sec": "SECOND", "secs": "SECOND",
	"m": "MINUTE", "min": "MINUTE", "mins": "MINUTE",
	"h": "HOUR", "hr": "HOUR", "hrs": "HOUR", "d": "DAY",
}

const unitList = "MILLISECOND, SECOND, MINUTE, HOUR or DAY"

// interval parses INTERVAL '5' MINUTE, INTERVAL '5 minutes', INTERVAL 5
// MINUTE or INTERVAL 5m.
func (p *parser) interval() ast.Expr {
	at := p.expectKw("interval")
	t := p.cur()
	switch t.kind {
	case tDuration:
		p.advance()
		return &ast.Literal{At: at, Kind: ast.IntervalLit, Value: t.val, Unit: t.unit}
	case tString, tNumber:
		p.advance()
	default:
		p.expected("interval quantity such as '5'")
	}
	num, rest := splitNumber(strings.TrimSpace(t.val))
	if num == "" {
		p.fail(t.pos, "invalid interval quantity %s", describe(t))
	}
	if rest = strings.ToLower(strings.TrimSpace(rest)); rest != "" {
		unit, ok := intervalUnits[rest]
		if !ok {
			unit, ok = stringIntervalUnits[rest]
		}
		if !ok {
			p.fail(t.pos, "unknown interval unit %q (want %s)", rest, unitList)
		}
		return &ast.Literal{At: at, Kind: ast.IntervalLit, Value: num, Unit: unit}
	}
	u := p.cur()
	unit := intervalUnits[u.val]
	if u.kind != tIdent || unit == "" {
		p.expected("interval unit (" + unitList + ")")
	}
	p.advance()
	return &ast.Literal{At: at, Kind: ast.IntervalLit, Value: num, Unit: unit}
}

// splitNumber splits s into a leading optionally signed decimal number and
// the rest; num is "" if s does not start with one.
func splitNumber(s string) (num, rest string) {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for ; i < len(s) && (isDigit(s[i]) || s[i] == '.'); i++ {
		if s[i] == '.' {
			if strings.Contains(s[:i], ".") {
				break
			}
		} else {
			digits++
		}
	}
	if digits == 0 {
		return "", s
	}
	return s[:i], s[i:]
}
