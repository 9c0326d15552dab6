package sql

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// Format prints e as SQL text with every operator application
// parenthesised, e.g. `(a + (b * c))`, `count(*)`, `CASE WHEN ... END`,
// `INTERVAL '5' MINUTE`, `CAST(x AS BIGINT)`. Parsing the output with
// ParseExpr gives back an equivalent tree. Identifiers are quoted only when
// needed. A nil expression prints as "".
func Format(e ast.Expr) string {
	var f formatter
	f.expr(e)
	return f.String()
}

// FormatQuery prints a SELECT (and any UNION chain) as one line of SQL in the
// style of Format.
func FormatQuery(s *ast.Select) string {
	var f formatter
	f.query(s)
	return f.String()
}

type formatter struct{ strings.Builder }

func (f *formatter) w(parts ...string) {
	for _, s := range parts {
		f.WriteString(s)
	}
}

// quoteIdent quotes name unless it reads back unchanged as a bare identifier.
func quoteIdent(name string) string {
	bare := name != "" && !reserved[name] && name != "current_timestamp" && name != "current_date"
	for i, r := range name {
		if !(r == '_' || unicode.IsLetter(r) && unicode.IsLower(r) || i > 0 && unicode.IsDigit(r)) {
			bare = false
		}
	}
	if bare {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (f *formatter) list(es []ast.Expr) {
	for i, e := range es {
		if i > 0 {
			f.w(", ")
		}
		f.expr(e)
	}
}

func (f *formatter) expr(e ast.Expr) {
	switch e := e.(type) {
	case nil:
	case *ast.ColumnRef:
		if e.Qualifier != "" {
			f.w(quoteIdent(e.Qualifier), ".")
		}
		f.w(quoteIdent(e.Name))
	case *ast.Literal:
		f.literal(e)
	case *ast.Binary:
		f.w("(")
		f.expr(e.L)
		f.w(" ", e.Op, " ")
		f.expr(e.R)
		f.w(")")
	case *ast.Unary:
		f.w("(", e.Op)
		if e.Op == "NOT" {
			f.w(" ")
		}
		f.expr(e.X)
		f.w(")")
	case *ast.FuncCall:
		f.call(e)
	case *ast.Case:
		f.w("CASE")
		if e.Operand != nil {
			f.w(" ")
			f.expr(e.Operand)
		}
		for _, w := range e.Whens {
			f.w(" WHEN ")
			f.expr(w.Cond)
			f.w(" THEN ")
			f.expr(w.Result)
		}
		if e.Else != nil {
			f.w(" ELSE ")
			f.expr(e.Else)
		}
		f.w(" END")
	case *ast.Cast:
		f.w("CAST(")
		f.expr(e.X)
		f.w(" AS ", formatType(e.Type), ")")
	case *ast.IsNull:
		f.w("(")
		f.expr(e.X)
		f.w(" IS ", not(e.Not), "NULL)")
	case *ast.IsBool:
		f.w("(")
		f.expr(e.X)
		f.w(" IS ", not(e.Not), strings.ToUpper(strconv.FormatBool(e.Value)), ")")
	case *ast.InList:
		f.w("(")
		f.expr(e.X)
		f.w(" ", not(e.Not), "IN (")
		f.list(e.List)
		f.w("))")
	case *ast.InSubquery:
		f.w("(")
		f.expr(e.X)
		f.w(" ", not(e.Not), "IN (")
		f.query(e.Query)
		f.w("))")
	case *ast.Exists:
		if e.Not {
			f.w("(NOT ")
		}
		f.w("EXISTS (")
		f.query(e.Query)
		f.w(")")
		if e.Not {
			f.w(")")
		}
	case *ast.Subquery:
		f.w("(")
		f.query(e.Query)
		f.w(")")
	case *ast.Between:
		f.w("(")
		f.expr(e.X)
		f.w(" ", not(e.Not), "BETWEEN ")
		f.expr(e.Lo)
		f.w(" AND ")
		f.expr(e.Hi)
		f.w(")")
	case *ast.Like:
		f.w("(")
		f.expr(e.X)
		f.w(" ", not(e.Not), map[bool]string{false: "LIKE ", true: "ILIKE "}[e.ILike])
		f.expr(e.Pattern)
		f.w(")")
	default:
		f.w("<unknown expression>")
	}
}

func not(b bool) string {
	if b {
		return "NOT "
	}
	return ""
}

func (f *formatter) literal(e *ast.Literal) {
	switch e.Kind {
	case ast.NumberLit:
		f.w(e.Value)
	case ast.StringLit:
		f.w(quoteString(e.Value))
	case ast.BoolLit:
		f.w(strings.ToUpper(e.Value))
	case ast.NullLit:
		f.w("NULL")
	case ast.IntervalLit:
		f.w("INTERVAL ", quoteString(e.Value), " ", e.Unit)
	case ast.TimestampLit:
		f.w("TIMESTAMP ", quoteString(e.Value))
	case ast.DateLit:
		f.w("DATE ", quoteString(e.Value))
	}
}

func formatType(t ast.TypeName) string {
	if len(t.Params) == 0 {
		return t.Name
	}
	ps := make([]string, len(t.Params))
	for i, n := range t.Params {
		ps[i] = strconv.Itoa(n)
	}
	return t.Name + "(" + strings.Join(ps, ",") + ")"
}

func (f *formatter) call(e *ast.FuncCall) {
	switch name := e.Name; {
	case name == "left" || name == "right",
		(name == "current_timestamp" || name == "current_date") && len(e.Args) == 0 && !e.Star:
		f.w(name)
	case name == "now" || name == "trim":
		f.w(`"`, name, `"`) // bare, these would be lowered again
	default:
		f.w(quoteIdent(name))
	}
	f.w("(")
	switch {
	case e.Star:
		f.w("*")
	case e.Distinct:
		f.w("DISTINCT ")
	}
	f.list(e.Args)
	f.w(")")
	if o := e.Over; o != nil {
		f.w(" OVER (")
		sep := ""
		if len(o.PartitionBy) > 0 {
			f.w("PARTITION BY ")
			f.list(o.PartitionBy)
			sep = " "
		}
		if len(o.OrderBy) > 0 {
			f.w(sep)
			f.orderBy(o.OrderBy)
			sep = " "
		}
		if fr := o.Frame; fr != nil {
			f.w(sep, fr.Unit, " BETWEEN ")
			f.bound(fr.Start)
			f.w(" AND ")
			f.bound(fr.End)
		}
		f.w(")")
	}
}

func (f *formatter) bound(b ast.FrameBound) {
	if b.N != nil {
		f.expr(b.N)
		f.w(strings.TrimPrefix(b.Kind, "N"))
		return
	}
	f.w(b.Kind)
}

func (f *formatter) orderBy(items []ast.OrderItem) {
	f.w("ORDER BY ")
	for i, it := range items {
		if i > 0 {
			f.w(", ")
		}
		f.expr(it.Expr)
		if it.Desc {
			f.w(" DESC")
		}
		if it.NullsFirst != nil {
			f.w(map[bool]string{false: " NULLS LAST", true: " NULLS FIRST"}[*it.NullsFirst])
		}
	}
}

func (f *formatter) alias(a *ast.Ident) {
	if a != nil {
		f.w(" AS ", quoteIdent(a.Name))
	}
}

func (f *formatter) query(s *ast.Select) {
	for ; s != nil; s = s.Union {
		f.w("SELECT ")
		if s.Distinct {
			f.w("DISTINCT ")
		}
		for i, it := range s.Items {
			if i > 0 {
				f.w(", ")
			}
			switch {
			case it.Star && it.StarQualifier != "":
				f.w(quoteIdent(it.StarQualifier), ".*")
			case it.Star:
				f.w("*")
			default:
				f.expr(it.Expr)
				f.alias(it.Alias)
			}
		}
		if s.From != nil {
			f.w(" FROM ")
			f.from(s.From)
		}
		if s.Where != nil {
			f.w(" WHERE ")
			f.expr(s.Where)
		}
		if len(s.GroupBy) > 0 {
			f.w(" GROUP BY ")
			f.list(s.GroupBy)
		}
		if w := s.Window; w != nil {
			f.w(" WINDOW ", w.Kind, "(")
			f.list(w.Args)
			f.w(")")
		}
		if s.Having != nil {
			f.w(" HAVING ")
			f.expr(s.Having)
		}
		if len(s.OrderBy) > 0 {
			f.w(" ")
			f.orderBy(s.OrderBy)
		}
		if s.Limit != nil {
			f.w(" LIMIT ")
			f.expr(s.Limit)
		}
		if s.Emit != "" {
			f.w(" EMIT ", s.Emit)
		}
		if s.Union != nil {
			f.w(" UNION ")
			if s.UnionAll {
				f.w("ALL ")
			}
		}
	}
}

func (f *formatter) from(item ast.FromItem) {
	switch t := item.(type) {
	case *ast.TableRef:
		f.w(quoteIdent(t.Name.Name))
		f.alias(t.Alias)
	case *ast.SubqueryRef:
		f.w("(")
		f.query(t.Query)
		f.w(")")
		f.alias(t.Alias)
	case *ast.Join:
		f.from(t.Left)
		f.w(" ", t.Kind, " JOIN ")
		if _, nested := t.Right.(*ast.Join); nested {
			f.w("(")
			f.from(t.Right)
			f.w(")")
		} else {
			f.from(t.Right)
		}
		if t.On != nil {
			f.w(" ON ")
			f.expr(t.On)
		}
		if t.Within != nil {
			f.w(" WITHIN ")
			f.expr(t.Within)
		}
	}
}
