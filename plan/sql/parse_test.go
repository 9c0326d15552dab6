package sql

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/plan/ast"
)

func readSeed(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/reference_examples.sql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustParse(t *testing.T, src string) []ast.Statement {
	t.Helper()
	stmts, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return stmts
}

func mustOne[T ast.Statement](t *testing.T, src string) T {
	t.Helper()
	stmts := mustParse(t, src)
	if len(stmts) != 1 {
		t.Fatalf("Parse(%q): got %d statements, want 1", src, len(stmts))
	}
	s, ok := stmts[0].(T)
	if !ok {
		t.Fatalf("Parse(%q): got %T", src, stmts[0])
	}
	return s
}

func queryOf(t *testing.T, s ast.Statement) *ast.Select {
	t.Helper()
	switch s := s.(type) {
	case *ast.SelectStatement:
		return s.Query
	case *ast.CreateAs:
		return s.Query
	}
	t.Fatalf("statement %T has no query", s)
	return nil
}

func interval(t *testing.T, e ast.Expr, value, unit string) {
	t.Helper()
	l, ok := e.(*ast.Literal)
	if !ok || l.Kind != ast.IntervalLit || l.Value != value || l.Unit != unit {
		t.Errorf("got %s (%#v), want INTERVAL '%s' %s", Format(e), e, value, unit)
	}
}

func TestReferenceExamples(t *testing.T) {
	stmts := mustParse(t, readSeed(t))
	if len(stmts) != 12 {
		t.Fatalf("got %d statements, want 12", len(stmts))
	}

	t.Run("stock_prices window", func(t *testing.T) {
		q := queryOf(t, stmts[0])
		w := q.Window
		if w == nil || w.Kind != "TUMBLING" || len(w.Args) != 1 {
			t.Fatalf("window = %#v", w)
		}
		interval(t, w.Args[0], "1", "MINUTE")
		if got := q.Items[2].Alias; got == nil || got.Name != "rank" {
			t.Errorf("alias = %v, want rank", got)
		}
		got := Format(q.Items[2].Expr)
		if want := "row_number() OVER (PARTITION BY sector ORDER BY price DESC)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	t.Run("having", func(t *testing.T) {
		q := queryOf(t, stmts[1])
		if got := Format(q.Having); got != "(count(*) > 100)" {
			t.Errorf("having = %s", got)
		}
		if len(q.GroupBy) != 1 || Format(q.GroupBy[0]) != "sector" || q.Window != nil {
			t.Errorf("group by = %v, window %v", q.GroupBy, q.Window)
		}
	})

	t.Run("join", func(t *testing.T) {
		q := queryOf(t, stmts[2])
		j, ok := q.From.(*ast.Join)
		if !ok || j.Kind != "INNER" {
			t.Fatalf("from = %#v", q.From)
		}
		if l := j.Left.(*ast.TableRef); l.Name.Name != "orders" || l.Alias.Name != "o" {
			t.Errorf("left = %#v", l)
		}
		if got := Format(j.On); got != "(o.order_id = p.order_id)" {
			t.Errorf("on = %s", got)
		}
		b, ok := q.Where.(*ast.Between)
		if !ok {
			t.Fatalf("where = %T", q.Where)
		}
		if got := Format(b.X); got != "p.timestamp" {
			t.Errorf("between x = %s", got)
		}
		hi, ok := b.Hi.(*ast.Binary)
		if !ok || hi.Op != "+" || Format(hi.L) != "o.timestamp" {
			t.Fatalf("hi = %s", Format(b.Hi))
		}
		interval(t, hi.R, "1", "HOUR")
	})

	t.Run("timestamp column", func(t *testing.T) {
		for _, i := range []int{3, 6} {
			c := stmts[i].(*ast.CreateAs)
			if c.Name.Name != "raw_trades" {
				t.Errorf("name = %s", c.Name.Name)
			}
			it := c.Query.Items[3]
			ref, ok := it.Expr.(*ast.ColumnRef)
			if !ok || ref.Name != "timestamp" || ref.Qualifier != "" || it.Alias == nil || it.Alias.Name != "trade_time" {
				t.Errorf("item = %s AS %v", Format(it.Expr), it.Alias)
			}
		}
	})

	t.Run("lag over", func(t *testing.T) {
		q := queryOf(t, stmts[4])
		want := "(price - lag(price) OVER (PARTITION BY ticker ORDER BY trade_time))"
		if got := Format(q.Items[1].Expr); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	t.Run("moving average frame", func(t *testing.T) {
		f := queryOf(t, stmts[7]).Items[1].Expr.(*ast.FuncCall)
		fr := f.Over.Frame
		if f.Name != "avg" || fr == nil || fr.Unit != "ROWS" || fr.Start.Kind != "N PRECEDING" ||
			Format(fr.Start.N) != "19" || fr.End.Kind != "CURRENT ROW" || fr.End.N != nil {
			t.Errorf("got %s", Format(f))
		}
	})

	t.Run("price_alerts case", func(t *testing.T) {
		q := queryOf(t, stmts[8])
		c, ok := q.Items[3].Expr.(*ast.Case)
		if !ok || len(c.Whens) != 2 || c.Operand != nil {
			t.Fatalf("item = %#v", q.Items[3].Expr)
		}
		if got := Format(c.Whens[0].Cond); got != "(price > (ma_20 * 1.05))" {
			t.Errorf("first WHEN = %s", got)
		}
		if got := Format(c.Else); got != "'NORMAL'" {
			t.Errorf("else = %s", got)
		}
		if got := Format(q.Where); got != "(signal <> 'NORMAL')" {
			t.Errorf("where = %s", got)
		}
	})

	t.Run("design source", func(t *testing.T) {
		s := stmts[9].(*ast.CreateSource)
		if s.Table || s.Name.Name != "trades" || len(s.Columns) != 5 {
			t.Fatalf("got %#v", s)
		}
		if got := s.Columns[2].Type; got.Name != "DECIMAL" || !reflect.DeepEqual(got.Params, []int{18, 4}) {
			t.Errorf("price type = %#v", got)
		}
		w := s.Watermark
		if w == nil || w.Column.Name != "trade_time" || Format(w.Expr) != "(trade_time - INTERVAL '5' SECOND)" {
			t.Fatalf("watermark = %#v", w)
		}
		if w.At != (ast.Pos{Line: 67, Col: 3}) {
			t.Errorf("watermark at %v", w.At)
		}
		if len(s.With) != 4 {
			t.Fatalf("with = %#v", s.With)
		}
		o := s.With[3]
		if o.Key.Name != "late_data" || o.Value != "dead_letter" || o.ValueAt != (ast.Pos{Line: 69, Col: 21}) {
			t.Errorf("late_data option = %#v", o)
		}
	})

	t.Run("design create as with sink", func(t *testing.T) {
		c := stmts[10].(*ast.CreateAs)
		if len(c.With) != 3 || c.With[1].Key.Name != "path" || c.With[1].Value != "out/big_trades.jsonl" {
			t.Errorf("with = %#v", c.With)
		}
		if got := Format(c.Query.Items[1].Expr); got != "(price * volume)" || c.Query.Items[1].Alias.Name != "notional" {
			t.Errorf("item = %s", got)
		}
	})

	t.Run("design window after group by", func(t *testing.T) {
		q := queryOf(t, stmts[11])
		if q.Window == nil || q.Window.Kind != "TUMBLING" || Format(q.Having) != "(count(*) > 100)" {
			t.Fatalf("window %v having %s", q.Window, Format(q.Having))
		}
		if got := Format(q.Items[4].Expr); got != "window_end" {
			t.Errorf("item 4 = %s", got)
		}
	})
}

func TestStatements(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		stmts := mustParse(t, "SET batch_size = 500; set Late_Data = 'drop'; SET x = true;SET y = -1.5;SET z = 10s")
		want := [][2]string{{"batch_size", "500"}, {"late_data", "drop"}, {"x", "true"}, {"y", "-1.5"}, {"z", "10s"}}
		if len(stmts) != len(want) {
			t.Fatalf("got %d statements", len(stmts))
		}
		for i, s := range stmts {
			set := s.(*ast.Set)
			if set.Name.Name != want[i][0] || set.Value != want[i][1] {
				t.Errorf("stmt %d = %+v, want %v", i, set, want[i])
			}
		}
	})

	t.Run("create table", func(t *testing.T) {
		s := mustOne[*ast.CreateSource](t, `CREATE TABLE IF NOT EXISTS "Users" (
			id BIGINT NOT NULL PRIMARY KEY, name STRING, score DOUBLE PRECISION,
			tz TIMESTAMP WITH TIME ZONE, d date, ok BOOL, n NUMERIC(10), v VARCHAR(20),
			"Key" int, i INTERVAL, b Blob(1, 2), PRIMARY KEY (name)
		) WITH ('Connector' = 'kafka', 'properties.group.id' = g1, Topic = Users, retries = 3)`)
		if !s.Table || !s.IfNotExists || s.Name.Name != "Users" {
			t.Errorf("header = %+v", s)
		}
		var types []string
		for _, c := range s.Columns {
			types = append(types, c.Name.Name+" "+formatType(c.Type))
		}
		want := "id BIGINT,name VARCHAR,score DOUBLE,tz TIMESTAMP,d DATE,ok BOOLEAN,n DECIMAL(10),v VARCHAR(20),Key INT,i INTERVAL,b BLOB(1,2)"
		if got := strings.Join(types, ","); got != want {
			t.Errorf("columns = %s\nwant %s", got, want)
		}
		if !s.Columns[0].NotNull || !s.Columns[0].PrimaryKey || s.Columns[1].NotNull {
			t.Errorf("constraints = %+v", s.Columns[:2])
		}
		if len(s.PrimaryKey) != 2 || s.PrimaryKey[0].Name != "id" || s.PrimaryKey[1].Name != "name" {
			t.Errorf("primary key = %v", s.PrimaryKey)
		}
		var opts []string
		for _, o := range s.With {
			opts = append(opts, o.Key.Name+"="+o.Value)
		}
		if got := strings.Join(opts, ","); got != "connector=kafka,properties.group.id=g1,topic=Users,retries=3" {
			t.Errorf("options = %s", got)
		}
	})

	t.Run("schema-less source and create with-as", func(t *testing.T) {
		stmts := mustParse(t, `CREATE STREAM s WITH (connector = 'kafka');
			CREATE TABLE t WITH (connector = 'file') AS SELECT * FROM s EMIT FINAL`)
		if s := stmts[0].(*ast.CreateSource); s.Columns != nil || len(s.With) != 1 {
			t.Errorf("got %+v", s)
		}
		if c := stmts[1].(*ast.CreateAs); !c.Table || len(c.With) != 1 || c.Query.Emit != "FINAL" || !c.Query.Items[0].Star {
			t.Errorf("got %+v", c)
		}
	})

	t.Run("bare select with sink", func(t *testing.T) {
		s := mustOne[*ast.SelectStatement](t, "select * from t emit changes with (format = 'json');")
		if s.Query.Emit != "CHANGES" || len(s.With) != 1 || s.Position() != (ast.Pos{Line: 1, Col: 1}) {
			t.Errorf("got %+v", s)
		}
	})

	t.Run("select clauses", func(t *testing.T) {
		q := queryOf(t, mustOne[*ast.SelectStatement](t, `
			SELECT DISTINCT t.*, a AS "A", b c, count(DISTINCT d), sum(e) total
			FROM t
			LEFT OUTER JOIN (SELECT * FROM u) AS x ON t.k = x.k WITHIN INTERVAL '5' MINUTE
			CROSS JOIN v, w
			RIGHT JOIN y ON true FULL JOIN z zz ON false
			WHERE a > 1
			GROUP BY a, b
			HAVING sum(e) > 0
			ORDER BY a DESC NULLS FIRST, b ASC, c NULLS LAST
			LIMIT 10
			UNION ALL SELECT 1 UNION SELECT 2`))
		if !q.Distinct || !q.Items[0].Star || q.Items[0].StarQualifier != "t" {
			t.Errorf("items[0] = %+v", q.Items[0])
		}
		var aliases []string
		for _, it := range q.Items[1:] {
			a := "-"
			if it.Alias != nil {
				a = it.Alias.Name
			}
			aliases = append(aliases, a)
		}
		if got := strings.Join(aliases, ","); got != "A,c,-,total" {
			t.Errorf("aliases = %s", got)
		}
		if f := q.Items[3].Expr.(*ast.FuncCall); !f.Distinct || f.Name != "count" {
			t.Errorf("count distinct = %+v", f)
		}
		want := "SELECT DISTINCT t.*, a AS \"A\", b AS c, count(DISTINCT d), sum(e) AS total FROM t " +
			"LEFT JOIN (SELECT * FROM u) AS x ON (t.k = x.k) WITHIN INTERVAL '5' MINUTE CROSS JOIN v CROSS JOIN w " +
			"RIGHT JOIN y ON TRUE FULL JOIN z AS zz ON FALSE WHERE (a > 1) GROUP BY a, b HAVING (sum(e) > 0) " +
			"ORDER BY a DESC NULLS FIRST, b, c NULLS LAST LIMIT 10 UNION ALL SELECT 1 UNION SELECT 2"
		if got := FormatQuery(q); got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
		// Joins are left-associative: the outermost join is the last one.
		j := q.From.(*ast.Join)
		if j.Kind != "FULL" || j.Right.(*ast.TableRef).Alias.Name != "zz" || j.Left.(*ast.Join).Kind != "RIGHT" {
			t.Errorf("outer join = %+v", j)
		}
		if !q.UnionAll || q.Union == nil || q.Union.UnionAll || q.Union.Union == nil {
			t.Errorf("union chain wrong")
		}
	})

	t.Run("window forms", func(t *testing.T) {
		cases := []struct{ src, want string }{
			{"SELECT count(*) FROM t WINDOW TUMBLING(1m)", "TUMBLING(INTERVAL '1' MINUTE)"},
			{"SELECT count(*) FROM t WHERE x WINDOW sliding(INTERVAL '1' HOUR, 5m)", "SLIDING(INTERVAL '1' HOUR, INTERVAL '5' MINUTE)"},
			{"SELECT count(*) FROM t GROUP BY k WINDOW SESSION(500ms)", "SESSION(INTERVAL '500' MILLISECOND)"},
			{"SELECT count(*) FROM t GROUP BY k, TUMBLING(1d)", "TUMBLING(INTERVAL '1' DAY)"},
			{"SELECT count(*) FROM t TUMBLING(1d) GROUP BY k", "TUMBLING(INTERVAL '1' DAY)"},
			{"SELECT count(*) FROM t x WHERE k > 0 SESSION(INTERVAL '30' SECOND)", "SESSION(INTERVAL '30' SECOND)"},
			{"SELECT count(*) FROM t GROUP BY k HAVING count(*) > 1 WINDOW TUMBLING(1.5h)", "TUMBLING(INTERVAL '1.5' HOUR)"},
		}
		for _, c := range cases {
			w := queryOf(t, mustOne[*ast.SelectStatement](t, c.src)).Window
			if w == nil {
				t.Errorf("%s: no window", c.src)
				continue
			}
			var f formatter
			f.list(w.Args)
			if got := w.Kind + "(" + f.String() + ")"; got != c.want {
				t.Errorf("%s: got %s, want %s", c.src, got, c.want)
			}
		}
	})

	t.Run("non-reserved keywords as names", func(t *testing.T) {
		q := queryOf(t, mustOne[*ast.SelectStatement](t, `SELECT date, time, key, value, window_start,
			count, first, last, rank, session, partition, "offset", timestamp, tumbling, watermark, stream, table
			FROM session s WHERE date > DATE '2024-01-01' AND timestamp < TIMESTAMP '2024-01-01 00:00:00'`))
		var names []string
		for _, it := range q.Items {
			names = append(names, it.Expr.(*ast.ColumnRef).Name)
		}
		want := "date,time,key,value,window_start,count,first,last,rank,session,partition,offset,timestamp,tumbling,watermark,stream,table"
		if got := strings.Join(names, ","); got != want {
			t.Errorf("got %s", got)
		}
		if got := Format(q.Where); got != "((date > DATE '2024-01-01') AND (timestamp < TIMESTAMP '2024-01-01 00:00:00'))" {
			t.Errorf("where = %s", got)
		}
	})

	t.Run("empty and comments", func(t *testing.T) {
		stmts := mustParse(t, "-- nothing\n;; /* still \n nothing */ ;")
		if len(stmts) != 0 {
			t.Errorf("got %d statements", len(stmts))
		}
	})
}
