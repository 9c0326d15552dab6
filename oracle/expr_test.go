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
		return bin("COALESCE(%s, %s)", g.scalar(t, d), g.scalar(t, d), t)
	}
	fs := forms(t)
	e := fs[g.pick(len(fs))](g, d)
	e.t = t
	return e
}

// form builds an expression from sub-expressions nested at most d deep.
type form func(g *gen, d int) expr

// fn is a function of one argument of type a.
func fn(format string, a typ) form {
	return func(g *gen, d int) expr { return un(format, g.scalar(a, d), 0) }
}

// op is an operator or function of two arguments of types a and b; with
// leaf the second is a column or literal.
func op(format string, a, b typ, leaf bool) form {
	return func(g *gen, d int) expr {
		y := g.scalar(b, d)
		if leaf {
			y = g.leaf(b)
		}
		return bin(format, g.scalar(a, d), y, 0)
	}
}

// translated is a function of one argument of type a written differently
// for DuckDB.
func translated(eng, duck string, a typ) form {
	return func(g *gen, d int) expr {
		x := g.scalar(a, d)
		return expr{fmt.Sprintf(eng, x.eng), fmt.Sprintf(duck, x.duck), 0}
	}
}

// forms lists the ways to build an expression of type t.
func forms(t typ) []form {
	switch t {
	case tInt:
		return []form{
			op("(%s + %s)", tInt, tInt, false),
			op("(%s - %s)", tInt, tInt, false),
			op("(%s * %s)", tInt, tInt, true),
			// Division and modulo by zero are NULL (DuckDB is told so
			// too); DuckDB's / of integers is a DOUBLE, its // truncates.
			func(g *gen, d int) expr {
				a, b := g.scalar(tInt, d), g.scalar(tInt, d)
				return expr{fmt.Sprintf("(%s / %s)", a.eng, b.eng), fmt.Sprintf("(%s // %s)", a.duck, b.duck), 0}
			},
			op("(%s %% %s)", tInt, tInt, false),
			fn("ABS(%s)", tInt),
			fn("SIGN(%s)", tInt),
			fn("LENGTH(%s)", tStr),
			op("POSITION(%[2]s IN %[1]s)", tStr, tStr, true),
			fn("CAST(%s AS BIGINT)", tDec),
			// The engine rounds half away from zero (kernels/cast.go),
			// DuckDB's CAST half to even; its ROUND is half away.
			translated("CAST(%s AS BIGINT)", "CAST(ROUND(%s) AS BIGINT)", tDbl),
			op("GREATEST(%s, %s)", tInt, tInt, false),
			op("NULLIF(%s, %s)", tInt, tInt, true),
			func(g *gen, d int) expr {
				f := []string{"SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "YEAR"}[g.pick(6)]
				return translated("EXTRACT("+f+" FROM %s)", "CAST(EXTRACT("+f+" FROM %s) AS BIGINT)", tTs)(g, d)
			},
		}
	case tDbl:
		return []form{
			op("(%s + %s)", tDbl, tDbl, false),
			op("(%s - %s)", tDbl, tDbl, false),
			op("(%s * %s)", tDbl, tDbl, true),
			fn("CAST(%s AS DOUBLE)", tInt),
			fn("CAST(%s AS DOUBLE)", tDec),
			fn("ABS(%s)", tDbl),
			fn("ROUND(%s)", tDbl),
			fn("FLOOR(%s)", tDbl),
			op("LEAST(%s, %s)", tDbl, tDbl, false),
		}
	case tDec:
		return []form{
			op("(%s + %s)", tDec, tDec, false),
			op("(%s - %s)", tDec, tDec, true),
			op("(%s * %s)", tDec, tInt, true),
			op("(%s * %s)", tDec, tDec, true),
			op("(%s %% %s)", tDec, tInt, true),
			fn("CAST(%s AS DECIMAL(12,2))", tInt),
			fn("CAST(%s AS DECIMAL(12,1))", tDec),
			fn("ROUND(%s, 1)", tDec),
			fn("ABS(%s)", tDec),
		}
	case tStr:
		return []form{
			fn("UPPER(%s)", tStr),
			fn("LOWER(%s)", tStr),
			fn("TRIM(%s)", tStr),
			fn("LTRIM(%s)", tStr),
			fn("RTRIM(%s)", tStr),
			op("CONCAT(%s, %s)", tStr, tStr, false),
			op("(%s || %s)", tStr, tStr, false),
			func(g *gen, d int) expr {
				return fn(fmt.Sprintf("SUBSTRING(%%s, %d, %d)", g.pick(5)+1, g.pick(4)), tStr)(g, d)
			},
			func(g *gen, d int) expr {
				return fn(fmt.Sprintf("SPLIT_PART(%%s, ',', %d)", g.pick(4)+1), tStr)(g, d)
			},
			fn("REPLACE(%s, 'b', 'XY')", tStr),
			// The engine's REGEXP_EXTRACT without a match is NULL,
			// DuckDB's ''.
			translated("REGEXP_EXTRACT(%s, '([a-z]+)')", "NULLIF(REGEXP_EXTRACT(%s, '([a-z]+)'), '')", tStr),
			fn("CAST(%s AS VARCHAR)", tInt),
			fn("CAST(%s AS VARCHAR)", tDec),
			fn("CAST(%s AS VARCHAR)", tBool),
		}
	case tTs:
		return []form{
			func(g *gen, d int) expr {
				return fn(fmt.Sprintf("(%%s + INTERVAL '%d' SECOND)", g.pick(20)-10), tTs)(g, d)
			},
			fn("DATE_TRUNC('minute', %s)", tTs),
		}
	}
	return []form{
		op("(%s AND %s)", tBool, tBool, false),
		op("(%s OR %s)", tBool, tBool, false),
		fn("(NOT %s)", tBool),
		func(g *gen, d int) expr {
			return fn("(%s IS NULL)", []typ{tInt, tDbl, tDec, tStr, tTs}[g.pick(5)])(g, d)
		},
		func(g *gen, d int) expr {
			ct := []typ{tInt, tDec, tStr}[g.pick(3)]
			a, b, c := g.scalar(ct, d), g.leaf(ct), g.leaf(ct)
			return expr{fmt.Sprintf("(%s BETWEEN %s AND %s)", a.eng, b.eng, c.eng), fmt.Sprintf("(%s BETWEEN %s AND %s)", a.duck, b.duck, c.duck), 0}
		},
		op("(%s IN (%s, 'b'))", tStr, tStr, true),
		func(g *gen, d int) expr {
			return fn(fmt.Sprintf("(%%s NOT IN (%d, %d, 0))", g.pick(10)-5, g.pick(10)), tInt)(g, d)
		},
		func(g *gen, d int) expr {
			pat := []string{"'a%'", "'%b%'", "'_b%'", "'%1 '", "'A%'"}[g.pick(5)]
			return fn("(%s LIKE "+strings.ReplaceAll(pat, "%", "%%")+")", tStr)(g, d)
		},
		func(g *gen, d int) expr {
			pat := []string{"'a%'", "'%B%'", "'_b%'"}[g.pick(3)]
			return fn("(%s ILIKE "+strings.ReplaceAll(pat, "%", "%%")+")", tStr)(g, d)
		},
		func(g *gen, d int) expr { return g.compare(d) },
		func(g *gen, d int) expr { return g.compare(d) },
	}
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
			return same([]string{"NULL", "CAST(NULL AS BOOLEAN)"}[g.pick(2)], t)
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
