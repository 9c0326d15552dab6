package oracle

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// typ is the SQL type of a generated expression.
type typ int

const (
	tInt  typ = iota // BIGINT
	tDbl             // DOUBLE
	tDec             // DECIMAL
	tStr             // VARCHAR
	tBool            // BOOLEAN
	tTs              // TIMESTAMP
)

func (t typ) kind() kind {
	switch t {
	case tInt, tDec:
		return num
	case tDbl:
		return approx
	}
	return exact
}

// expr is one generated expression in the engine's dialect and in DuckDB's.
type expr struct {
	eng, duck string
	t         typ
}

func same(s string, t typ) expr { return expr{s, s, t} }

// gen draws random expressions and queries.
type gen struct {
	r    *rand.Rand
	qual string // prefix of column names ("e." in joins)
	off  map[string]bool
}

func (g *gen) pick(n int) int { return g.r.IntN(n) }

var columns = map[typ][]string{
	tInt: {"i"}, tDbl: {"d"}, tDec: {"m"}, tStr: {"k", "s"}, tTs: {"ts"},
}

// scalar returns an expression of type t over the columns of ev, nested at
// most depth deep.
func (g *gen) scalar(t typ, depth int) expr {
	if depth <= 0 || g.pick(3) == 0 {
		return g.leaf(t)
	}
	d := depth - 1
	if g.pick(6) == 0 {
		c, a, b := g.scalar(tBool, d), g.scalar(t, d), g.scalar(t, d)
		return expr{
			fmt.Sprintf("CASE WHEN %s THEN %s ELSE %s END", c.eng, a.eng, b.eng),
			fmt.Sprintf("CASE WHEN %s THEN %s ELSE %s END", c.duck, a.duck, b.duck), t}
	}
	if t != tBool && g.pick(8) == 0 {
		a, b := g.scalar(t, d), g.scalar(t, d)
		return bin("COALESCE(%s, %s)", a, b, t)
	}
	switch t {
	case tInt:
		a := g.scalar(tInt, d)
		switch g.pick(14) {
		case 9:
			// The engine rounds half away from zero (kernels/cast.go),
			// DuckDB's CAST half to even; its ROUND is half away.
			x := g.scalar(tDbl, d)
			return expr{"CAST(" + x.eng + " AS BIGINT)", "CAST(ROUND(" + x.duck + ") AS BIGINT)", t}
		case 10:
			return bin("GREATEST(%s, %s)", a, g.scalar(tInt, d), t)
		case 11:
			return bin("NULLIF(%s, %s)", a, g.leaf(tInt), t)
		case 12:
			f := []string{"SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "YEAR"}[g.pick(6)]
			x := g.scalar(tTs, d)
			return expr{"EXTRACT(" + f + " FROM " + x.eng + ")", "CAST(EXTRACT(" + f + " FROM " + x.duck + ") AS BIGINT)", t}
		case 13:
			return un("SIGN(%s)", a, t)
		case 0:
			return bin("(%s + %s)", a, g.scalar(tInt, d), t)
		case 1:
			return bin("(%s - %s)", a, g.scalar(tInt, d), t)
		case 2:
			return bin("(%s * %s)", a, g.leaf(tInt), t)
		case 3:
			b := g.scalar(tInt, d)
			return expr{fmt.Sprintf("(%s / %s)", a.eng, b.eng), fmt.Sprintf("(%s // NULLIF(%s, 0))", a.duck, b.duck), t}
		case 4:
			b := g.scalar(tInt, d)
			return expr{fmt.Sprintf("(%s %% %s)", a.eng, b.eng), fmt.Sprintf("(%s %% NULLIF(%s, 0))", a.duck, b.duck), t}
		case 5:
			return un("ABS(%s)", a, t)
		case 6:
			return un("LENGTH(%s)", g.scalar(tStr, d), t)
		case 7:
			s, sub := g.scalar(tStr, d), g.leaf(tStr)
			return bin("POSITION(%[2]s IN %[1]s)", s, sub, t)
		default:
			x := g.scalar(tDec, d)
			return expr{fmt.Sprintf("CAST(%s AS BIGINT)", x.eng), fmt.Sprintf("CAST(%s AS BIGINT)", x.duck), t}
		}
	case tDbl:
		a := g.scalar(tDbl, d)
		switch g.pick(9) {
		case 5:
			return un("CAST(%s AS DOUBLE)", g.scalar(tDec, d), t)
		case 6:
			return un("ROUND(%s)", a, t)
		case 7:
			return un("FLOOR(%s)", a, t)
		case 8:
			return bin("LEAST(%s, %s)", a, g.scalar(tDbl, d), t)
		case 0:
			return bin("(%s + %s)", a, g.scalar(tDbl, d), t)
		case 1:
			return bin("(%s * %s)", a, g.leaf(tDbl), t)
		case 2:
			return un("CAST(%s AS DOUBLE)", g.scalar(tInt, d), t)
		case 3:
			return un("ABS(%s)", a, t)
		default:
			return bin("(%s - %s)", a, g.scalar(tDbl, d), t)
		}
	case tDec:
		a := g.scalar(tDec, d)
		switch g.pick(9) {
		case 5:
			return bin("(%s * %s)", a, g.leaf(tDec), t)
		case 6:
			return un("CAST(%s AS DECIMAL(12,1))", a, t)
		case 7:
			return un("ROUND(%s, 1)", a, t)
		case 8:
			return bin("(%s %% %s)", a, g.leaf(tInt), t)
		case 0:
			return bin("(%s + %s)", a, g.scalar(tDec, d), t)
		case 1:
			return bin("(%s - %s)", a, g.leaf(tDec), t)
		case 2:
			return bin("(%s * %s)", a, g.leaf(tInt), t)
		case 3:
			return un("CAST(%s AS DECIMAL(12,2))", g.scalar(tInt, d), t)
		default:
			return un("ABS(%s)", a, t)
		}
	case tStr:
		a := g.scalar(tStr, d)
		switch g.pick(14) {
		case 10:
			return un("CAST(%s AS VARCHAR)", g.scalar(tDec, d), t)
		case 11:
			return un("RTRIM(%s)", a, t)
		case 12:
			// The engine's no match is NULL, DuckDB's ''.
			return expr{"REGEXP_EXTRACT(" + a.eng + ", '([a-z]+)')", "NULLIF(REGEXP_EXTRACT(" + a.duck + ", '([a-z]+)'), '')", t}
		case 13:
			return un("CAST(%s AS VARCHAR)", g.scalar(tBool, d), t)
		case 0:
			return un("UPPER(%s)", a, t)
		case 1:
			return un("LOWER(%s)", a, t)
		case 2:
			return un("TRIM(%s)", a, t)
		case 3:
			return bin("CONCAT(%s, %s)", a, g.scalar(tStr, d), t)
		case 4:
			return bin("(%s || %s)", a, g.scalar(tStr, d), t)
		case 5:
			p, n := g.pick(5)+1, g.pick(4)
			return un(fmt.Sprintf("SUBSTRING(%%s, %d, %d)", p, n), a, t)
		case 6:
			return un(fmt.Sprintf("SPLIT_PART(%%s, ',', %d)", g.pick(4)+1), a, t)
		case 7:
			return un("REPLACE(%s, 'b', 'XY')", a, t)
		case 8:
			return un("CAST(%s AS VARCHAR)", g.scalar(tInt, d), t)
		default:
			return un("LTRIM(%s)", a, t)
		}
	case tTs:
		a := g.scalar(tTs, d)
		if g.pick(2) == 0 {
			return un(fmt.Sprintf("(%%s + INTERVAL '%d' SECOND)", g.pick(20)-10), a, t)
		}
		return un("DATE_TRUNC('minute', %s)", a, t)
	case tBool:
		switch g.pick(10) {
		case 8:
			pat := []string{"'a%'", "'%B%'", "'_b%'"}[g.pick(3)]
			return un("(%s ILIKE "+strings.ReplaceAll(pat, "%", "%%")+")", g.scalar(tStr, d), t)
		case 9:
			a := g.scalar(tInt, d)
			return un(fmt.Sprintf("(%%s NOT IN (%d, %d, 0))", g.pick(10)-5, g.pick(10)), a, t)
		case 0:
			return bin("(%s AND %s)", g.scalar(tBool, d), g.scalar(tBool, d), t)
		case 1:
			return bin("(%s OR %s)", g.scalar(tBool, d), g.scalar(tBool, d), t)
		case 2:
			return un("(NOT %s)", g.scalar(tBool, d), t)
		case 3:
			ct := []typ{tInt, tDbl, tDec, tStr, tTs}[g.pick(5)]
			return un("(%s IS NULL)", g.scalar(ct, d), t)
		case 4:
			ct := []typ{tInt, tDec, tStr}[g.pick(3)]
			a, b, c := g.scalar(ct, d), g.leaf(ct), g.leaf(ct)
			return expr{fmt.Sprintf("(%s BETWEEN %s AND %s)", a.eng, b.eng, c.eng), fmt.Sprintf("(%s BETWEEN %s AND %s)", a.duck, b.duck, c.duck), t}
		case 5:
			a, b, c := g.scalar(tStr, d), g.leaf(tStr), g.leaf(tStr)
			return expr{fmt.Sprintf("(%s IN (%s, %s))", a.eng, b.eng, c.eng), fmt.Sprintf("(%s IN (%s, %s))", a.duck, b.duck, c.duck), t}
		case 6:
			pat := []string{"'a%'", "'%b%'", "'_b%'", "'%1 '", "'A%'"}[g.pick(5)]
			return un("(%s LIKE "+strings.ReplaceAll(pat, "%", "%%")+")", g.scalar(tStr, d), t)
		default:
			return g.compare(d)
		}
	}
	return g.leaf(t)
}

// compare returns a comparison of two expressions of one type.
func (g *gen) compare(depth int) expr {
	ct := []typ{tInt, tDbl, tDec, tStr, tTs}[g.pick(5)]
	op := []string{"=", "<>", "<", "<=", ">", ">="}[g.pick(6)]
	a := g.scalar(ct, depth)
	b := g.leaf(ct)
	if g.pick(3) == 0 {
		b = g.scalar(ct, depth)
	}
	return bin("(%s "+op+" %s)", a, b, tBool)
}

// leaf returns a column or a literal of type t.
func (g *gen) leaf(t typ) expr {
	if cols := columns[t]; len(cols) > 0 && g.pick(3) != 0 {
		return same(g.qual+cols[g.pick(len(cols))], t)
	}
	return g.literal(t)
}

// literal returns a literal of type t (for BOOLEAN: a comparison or NULL).
func (g *gen) literal(t typ) expr {
	switch t {
	case tInt:
		return same(fmt.Sprint(g.pick(25)-5), t)
	case tDbl:
		v := float64(g.pick(41)-20) / 2
		return expr{fmt.Sprintf("CAST(%g AS DOUBLE)", v), fmt.Sprintf("CAST(%g AS DOUBLE)", v), t}
	case tDec:
		return same(decText(int64(g.pick(4001)-2000)), t)
	case tStr:
		return same(sqlStr(&strs[g.pick(len(strs))]), t)
	case tTs:
		return same("TIMESTAMP '1970-01-01 00:00:00'", t)
	case tBool:
		if g.pick(5) == 0 {
			return same("CAST(NULL AS BOOLEAN)", t)
		}
		return g.compare(0)
	}
	panic("unknown type")
}

func un(format string, a expr, t typ) expr {
	return expr{fmt.Sprintf(format, a.eng), fmt.Sprintf(format, a.duck), t}
}

func bin(format string, a, b expr, t typ) expr {
	return expr{fmt.Sprintf(format, a.eng, b.eng), fmt.Sprintf(format, a.duck, b.duck), t}
}
