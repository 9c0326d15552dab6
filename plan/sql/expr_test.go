package sql

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// exprCases pairs an expression with its fully parenthesised Format output.
var exprCases = []struct{ src, want string }{
	// precedence and associativity
	{"a OR b AND NOT c = d", "(a OR (b AND (NOT (c = d))))"},
	{"a OR b OR c", "((a OR b) OR c)"},
	{"a AND b AND c", "((a AND b) AND c)"},
	{"NOT a AND b", "((NOT a) AND b)"},
	{"NOT NOT a", "(NOT (NOT a))"},
	{"1 - 2 - 3", "((1 - 2) - 3)"},
	{"1 - (2 - 3)", "(1 - (2 - 3))"},
	{"a + b * c", "(a + (b * c))"},
	{"a * b + c % d / e", "((a * b) + ((c % d) / e))"},
	{"-x * y", "((-x) * y)"},
	{"- -x", "(-(-x))"},
	{"+x - -1", "((+x) - (-1))"},
	{"-x::int", "(-CAST(x AS INT))"},
	{"a::varchar(10)::bigint", "CAST(CAST(a AS VARCHAR(10)) AS BIGINT)"},
	{"a || b || c", "((a || b) || c)"},
	{"a || b + c", "(a || (b + c))"},
	{"a = b || c", "(a = (b || c))"},
	{"a < b = c", "((a < b) = c)"},
	{"a != b", "(a <> b)"},
	{"a <> b AND c >= d OR e <= f", "(((a <> b) AND (c >= d)) OR (e <= f))"},
	{"x BETWEEN 1 AND 2 AND y", "((x BETWEEN 1 AND 2) AND y)"},
	{"x NOT BETWEEN a + 1 AND b * 2", "(x NOT BETWEEN (a + 1) AND (b * 2))"},
	{"x IS NOT NULL AND y IS NULL", "((x IS NOT NULL) AND (y IS NULL))"},
	{"x IS TRUE OR y IS NOT FALSE", "((x IS TRUE) OR (y IS NOT FALSE))"},
	{"NOT x IS NULL", "(NOT (x IS NULL))"},
	{"a NOT LIKE 'x%' OR b ILIKE c || '%'", "((a NOT LIKE 'x%') OR (b ILIKE (c || '%')))"},
	{"x IN (1, 2 + 3)", "(x IN (1, (2 + 3)))"},
	{"x NOT IN (SELECT y FROM t)", "(x NOT IN (SELECT y FROM t))"},
	{"NOT EXISTS (SELECT 1) OR EXISTS (SELECT * FROM t WHERE t.a = b)",
		"((NOT EXISTS (SELECT 1)) OR EXISTS (SELECT * FROM t WHERE (t.a = b)))"},
	{"(SELECT max(a) FROM t) + 1", "((SELECT max(a) FROM t) + 1)"},
	// literals
	{"1e-3 + .5 + 42 + 3.14", "(((1e-3 + .5) + 42) + 3.14)"},
	{"'it''s'", "'it''s'"},
	{"TRUE AND false OR NULL", "((TRUE AND FALSE) OR NULL)"},
	{"INTERVAL '5' MINUTE", "INTERVAL '5' MINUTE"},
	{"INTERVAL '90' SECONDS", "INTERVAL '90' SECOND"},
	{"INTERVAL '5 minutes'", "INTERVAL '5' MINUTE"},
	{"INTERVAL ' 2 hrs '", "INTERVAL '2' HOUR"},
	{"INTERVAL '-1.5' day", "INTERVAL '-1.5' DAY"},
	{"interval 3 days", "INTERVAL '3' DAY"},
	{"INTERVAL 10s", "INTERVAL '10' SECOND"},
	{"500ms + 5s + 1m + 1h + 1D", "((((INTERVAL '500' MILLISECOND + INTERVAL '5' SECOND) + INTERVAL '1' MINUTE) + INTERVAL '1' HOUR) + INTERVAL '1' DAY)"},
	{"TIMESTAMP '2024-01-01 00:00:00'", "TIMESTAMP '2024-01-01 00:00:00'"},
	{"date '2024-01-01'", "DATE '2024-01-01'"},
	// names
	{"t.a + T.B", "(t.a + t.b)"},
	{`"Weird ""col""" + "t"."X"`, `("Weird ""col""" + t."X")`},
	{`"select" + "count"`, `("select" + count)`},
	// calls and special forms
	{"count(*)", "count(*)"},
	{"COUNT(DISTINCT x) + Sum(ALL y)", "(count(DISTINCT x) + sum(y))"},
	{"f()", "f()"},
	{"coalesce(a, b, 1)", "coalesce(a, b, 1)"},
	{"extract(YEAR from ts) = 2024", "(extract('YEAR', ts) = 2024)"},
	{"substring(s from 2 for 3)", "substring(s, 2, 3)"},
	{"substring(s from 2)", "substring(s, 2)"},
	{"substring(s for 3)", "substring(s, 1, 3)"},
	{"substring(s, 2, 3)", "substring(s, 2, 3)"},
	{"position('a' in s)", "position('a', s)"},
	{"position(a = b, c)", "position((a = b), c)"},
	{"trim(s)", "btrim(s)"},
	{"trim(both 'x' from s)", "btrim(s, 'x')"},
	{"trim(leading from s)", "ltrim(s)"},
	{"trim(trailing 'x' from s)", "rtrim(s, 'x')"},
	{"CURRENT_TIMESTAMP - INTERVAL '1' HOUR", "(current_timestamp() - INTERVAL '1' HOUR)"},
	{"now()", "current_timestamp()"},
	{"left(s, 2) || right(s, 1)", "(left(s, 2) || right(s, 1))"},
	{"CASE x WHEN 1 THEN 'a' WHEN 2 THEN 'b' END", "CASE x WHEN 1 THEN 'a' WHEN 2 THEN 'b' END"},
	{"CASE WHEN a > 1 THEN 1 ELSE 2 + 3 END * 2", "(CASE WHEN (a > 1) THEN 1 ELSE (2 + 3) END * 2)"},
	{"CAST(a + b AS DECIMAL(18,4))", "CAST((a + b) AS DECIMAL(18,4))"},
	{"CAST(x AS double precision)", "CAST(x AS DOUBLE)"},
	{"sum(x) OVER ()", "sum(x) OVER ()"},
	{"rank() OVER (PARTITION BY a, b ORDER BY c DESC NULLS LAST, d)",
		"rank() OVER (PARTITION BY a, b ORDER BY c DESC NULLS LAST, d)"},
	{"avg(p) OVER (ORDER BY ts ROWS 3 PRECEDING)",
		"avg(p) OVER (ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW)"},
	{"avg(p) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND UNBOUNDED FOLLOWING)",
		"avg(p) OVER (ORDER BY ts RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND UNBOUNDED FOLLOWING)"},
	{"lag(p, 1) OVER (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND 2 FOLLOWING)",
		"lag(p, 1) OVER (ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND 2 FOLLOWING)"},
}

func TestFormatPrecedence(t *testing.T) {
	for _, c := range exprCases {
		e, err := ParseExpr(c.src)
		if err != nil {
			t.Errorf("ParseExpr(%q): %v", c.src, err)
			continue
		}
		got := Format(e)
		if got != c.want {
			t.Errorf("ParseExpr(%q)\n got %s\nwant %s", c.src, got, c.want)
			continue
		}
		// The printed form parses back to the same tree.
		e2, err := ParseExpr(got)
		if err != nil {
			t.Errorf("reparse %q: %v", got, err)
		} else if again := Format(e2); again != got {
			t.Errorf("reparse %q gave %s", got, again)
		}
	}
}

func TestLoweredNodes(t *testing.T) {
	e, _ := ParseExpr("extract(hour FROM ts)")
	f := e.(*ast.FuncCall)
	if l, ok := f.Args[0].(*ast.Literal); !ok || l.Kind != ast.StringLit || l.Value != "HOUR" {
		t.Errorf("extract field = %#v", f.Args[0])
	}
	e, _ = ParseExpr("count(*)")
	if f := e.(*ast.FuncCall); !f.Star || f.Args != nil {
		t.Errorf("count(*) = %#v", f)
	}
	e, _ = ParseExpr("NOT EXISTS (SELECT 1)")
	if x, ok := e.(*ast.Exists); !ok || !x.Not {
		t.Errorf("NOT EXISTS = %#v", e)
	}
	e, _ = ParseExpr("x ILIKE 'a%'")
	if l, ok := e.(*ast.Like); !ok || !l.ILike || l.Not {
		t.Errorf("ILIKE = %#v", e)
	}
}

func TestPositions(t *testing.T) {
	src := "SELECT a,\n" +
		"       t.b + 1 AS c,\n" +
		"\tnaïve || 'é' AS d\n" +
		"FROM t JOIN u ON t.k = u.k\n" +
		"WHERE x BETWEEN 1 AND 2 -- comment\n" +
		"  /* multi\n     line */ AND f(y, INTERVAL '5' SECOND)"
	q := queryOf(t, mustOne[*ast.SelectStatement](t, src))
	bin := q.Items[1].Expr.(*ast.Binary)
	concat := q.Items[2].Expr.(*ast.Binary)
	join := q.From.(*ast.Join)
	and := q.Where.(*ast.Binary)
	call := and.R.(*ast.FuncCall)
	checks := []struct {
		name      string
		got, want ast.Pos
	}{
		{"select", q.At, ast.Pos{Line: 1, Col: 1}},
		{"item a", q.Items[0].At, ast.Pos{Line: 1, Col: 8}},
		{"item t.b + 1", q.Items[1].At, ast.Pos{Line: 2, Col: 8}},
		{"binary", bin.At, ast.Pos{Line: 2, Col: 8}},
		{"binary op", bin.OpAt, ast.Pos{Line: 2, Col: 12}},
		{"literal 1", bin.R.Position(), ast.Pos{Line: 2, Col: 14}},
		{"alias c", q.Items[1].Alias.At, ast.Pos{Line: 2, Col: 19}},
		{"naïve", concat.At, ast.Pos{Line: 3, Col: 2}},
		{"|| after naïve", concat.OpAt, ast.Pos{Line: 3, Col: 8}},
		{"'é'", concat.R.Position(), ast.Pos{Line: 3, Col: 11}},
		{"alias d", q.Items[2].Alias.At, ast.Pos{Line: 3, Col: 18}},
		{"join", join.At, ast.Pos{Line: 4, Col: 6}},
		{"table u", join.Right.Position(), ast.Pos{Line: 4, Col: 13}},
		{"on", join.On.(*ast.Binary).OpAt, ast.Pos{Line: 4, Col: 22}},
		{"between", and.L.Position(), ast.Pos{Line: 5, Col: 7}},
		{"and", and.OpAt, ast.Pos{Line: 7, Col: 14}},
		{"call", call.At, ast.Pos{Line: 7, Col: 18}},
		{"interval", call.Args[1].Position(), ast.Pos{Line: 7, Col: 23}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: at %v, want %v", c.name, c.got, c.want)
		}
	}

	stmts := mustParse(t, "SET a = 1;\n  CREATE STREAM s (\n x INT,\n y TIMESTAMP)")
	if at := stmts[1].Position(); at != (ast.Pos{Line: 2, Col: 3}) {
		t.Errorf("create at %v", at)
	}
	cs := stmts[1].(*ast.CreateSource)
	if at := cs.Columns[1].Type.At; at != (ast.Pos{Line: 4, Col: 4}) {
		t.Errorf("type at %v", at)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"SELECT 'abc", "line 1, column 8: unterminated string literal"},
		{"SELECT \"abc FROM t", "line 1, column 8: unterminated quoted identifier"},
		{"SELECT a FROM t /* open", "line 1, column 17: unterminated comment"},
		{"SELECT a FROM WHERE x", `line 1, column 15: expected table name, found "WHERE"`},
		{"SELECT a FROM t; SELECT b FROM", "line 1, column 31: expected table name, found end of input"},
		{"SELECT a # b", "line 1, column 10: unexpected character '#'"},
		{"SELECT 'héllo' ¤", "line 1, column 16: unexpected character '¤'"},
		{"SELECT 5x FROM t", `line 1, column 8: invalid number or duration "5x" (duration units are ms, s, m, h and d)`},
		{"SELEC * FROM t", `line 1, column 1: expected SELECT, found "SELEC"`},
		{"UPDATE t SET a = 1", `line 1, column 1: expected SELECT, CREATE or SET, found "UPDATE"`},
		{"SELECT ticker,\n       price\n  FORM trades", `line 3, column 3: expected FROM, found "FORM"`},
		{"SELECT a\nFROM t\n  WHER a > 1", `line 3, column 3: expected WHERE, found "WHER"`},
		{"SELECT 1 2", `line 1, column 10: expected ";" or end of input, found "2"`},
		{"SELECT (a + b FROM t", `line 1, column 15: expected ")", found "FROM"`},
		{"SELECT a) FROM t", `line 1, column 9: expected ";" or end of input, found ")"`},
		{"SELECT f(a", `line 1, column 11: expected ")", found end of input`},
		{"SELECT ((1)", `line 1, column 12: expected ")", found end of input`},
		{"CREATE STREAM x (a INT", `line 1, column 23: expected "," or ")", found end of input`},
		{"CREATE STREAM x (a INT,\n  b INT(3))", "line 2, column 8: INT takes no parameters"},
		{"CREATE STREAM x (a 5)", `line 1, column 20: expected type name, found "5"`},
		{"SELECT CAST(a AS SELECT)", `line 1, column 18: expected type name, found "SELECT"`},
		{"CREATE STREAM x (a DECIMAL(1,2,3))", "line 1, column 32: DECIMAL takes at most 2 parameter(s)"},
		{"CREATE STREAM x (a INT, WATERMARK FOR a AS a, WATERMARK FOR a AS a)", "line 1, column 47: duplicate WATERMARK clause"},
		{"CREATE VIEW v AS SELECT 1", `line 1, column 8: expected STREAM or TABLE, found "VIEW"`},
		{"CREATE STREAM s", "line 1, column 16: expected \"(\", AS or WITH, found end of input"},
		{"CREATE TABLE IF NOT EXISTS x AS SELECT 1", "line 1, column 14: IF NOT EXISTS is not supported with CREATE ... AS"},
		{"CREATE STREAM x AS SELECT 1 FROM t WITH (a = )", `line 1, column 46: expected option value, found ")"`},
		{"SET = 1", `line 1, column 5: expected setting name, found "="`},
		{"SELECT count(*) FROM t WINDOW TUMBLING()", `line 1, column 40: expected window size, found ")"`},
		{"SELECT count(*) FROM t WINDOW SESSION()", `line 1, column 39: expected session gap, found ")"`},
		{"SELECT count(*) FROM t WINDOW SLIDING(1m)", `line 1, column 41: expected "," and window advance, found ")"`},
		{"SELECT count(*) FROM t WINDOW TUMBLING(1m, 2m)", `line 1, column 42: expected ")", found ","`},
		{"SELECT count(*) FROM t WINDOW HOPPING(1m)", `line 1, column 31: expected TUMBLING, SLIDING or SESSION, found "HOPPING"`},
		{"SELECT a FROM t WINDOW TUMBLING(1m)\nGROUP BY a WINDOW TUMBLING(2m)", "line 2, column 12: duplicate WINDOW clause"},
		{"SELECT INTERVAL '5' FORTNIGHT", `line 1, column 21: expected interval unit (MILLISECOND, SECOND, MINUTE, HOUR or DAY), found "FORTNIGHT"`},
		{"SELECT INTERVAL '5'", "line 1, column 20: expected interval unit (MILLISECOND, SECOND, MINUTE, HOUR or DAY), found end of input"},
		{"SELECT INTERVAL '5 weeks'", `line 1, column 17: unknown interval unit "weeks" (want MILLISECOND, SECOND, MINUTE, HOUR or DAY)`},
		{"SELECT INTERVAL 'abc' MINUTE", "line 1, column 17: invalid interval quantity string 'abc'"},
		{"SELECT x IS 5", `line 1, column 13: expected NULL, TRUE or FALSE, found "5"`},
		{"SELECT CASE END", `line 1, column 13: expected WHEN, found "END"`},
		{"SELECT CASE WHEN a THEN 1", "line 1, column 26: expected END, found end of input"},
		{"SELECT a FROM t JOIN u", "line 1, column 23: expected ON, found end of input"},
		{"SELECT a FROM t ORDER a", `line 1, column 23: expected BY, found "a"`},
		{"SELECT a FROM t EMIT SOON", `line 1, column 22: expected CHANGES or FINAL, found "SOON"`},
		{"SELECT CAST(a AS)", `line 1, column 17: expected type name, found ")"`},
		{"SELECT a AS FROM t", `line 1, column 13: expected alias, found "FROM"`},
		{"SELECT sum(a) OVER (ROWS 1)", `line 1, column 27: expected PRECEDING or FOLLOWING, found ")"`},
		{"SELECT a FROM t WHERE", "line 1, column 22: expected expression, found end of input"},
		{"SELECT a FROM t WHERE x IN ()", `line 1, column 29: expected expression, found ")"`},
		{"SELECT\n\n   a +", "line 3, column 7: expected expression, found end of input"},
	}
	for _, c := range cases {
		_, err := Parse(c.src)
		if err == nil {
			t.Errorf("Parse(%q): no error, want %s", c.src, c.want)
			continue
		}
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): error %T is not *Error", c.src, err)
		}
		if err.Error() != c.want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", c.src, err, c.want)
		}
	}
}

func TestParseExprErrors(t *testing.T) {
	for src, want := range map[string]string{
		"":       "line 1, column 1: expected expression, found end of input",
		"a b":    `line 1, column 3: expected end of input, found "b"`,
		"a FROM": `line 1, column 3: expected end of input, found "FROM"`,
	} {
		if _, err := ParseExpr(src); err == nil || err.Error() != want {
			t.Errorf("ParseExpr(%q) = %v, want %s", src, err, want)
		}
	}
}

func TestDeepNesting(t *testing.T) {
	for _, src := range []string{
		"SELECT " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000),
		"SELECT " + strings.Repeat("- ", 100000) + "1",
		"SELECT " + strings.Repeat("NOT ", 100000) + "1",
		"SELECT * FROM " + strings.Repeat("(SELECT * FROM ", 100000) + "t",
	} {
		_, err := Parse(src)
		if err == nil || !strings.Contains(err.Error(), "nested too deeply") {
			t.Errorf("got %v", err)
		}
	}
	// Moderate nesting is fine.
	if _, err := Parse("SELECT " + strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100)); err != nil {
		t.Error(err)
	}
}

// TestStatementTermLimit: a statement with more than MaxTerms expression
// terms is refused at the term that exceeds the limit; the limit counts
// per statement, and an IN list of 10,000 values is well within it.
func TestStatementTermLimit(t *testing.T) {
	in := func(n int) string {
		vals := make([]string, n)
		for i := range vals {
			vals[i] = "1"
		}
		return "SELECT a FROM t WHERE a IN (" + strings.Join(vals, ",") + ")"
	}
	if _, err := Parse(in(10000) + ";\n" + in(10000) + ";"); err != nil {
		t.Fatal(err)
	}
	// a is term 1, and the IN's a term 2: value k is term k+2, at column
	// 29+2(k-1) of line 2
	_, err := Parse("SELECT 1;\n" + in(MaxTerms))
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "statement too large") {
		t.Fatalf("got %v", err)
	}
	k := MaxTerms - 1
	if pe.Pos.Line != 2 || pe.Pos.Col != 29+2*(k-1) {
		t.Errorf("at %d:%d, want 2:%d", pe.Pos.Line, pe.Pos.Col, 29+2*(k-1))
	}
}
