package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// The derived-table form of a top-N, and the two-query form (fused), are
// planned as an Over node with TopN under the outer filter, with no event
// time, and explain names the operator; rn < N and rn = 1 give N-1 and 1;
// over a bounded input too.
func TestTopNPlanAndExplain(t *testing.T) {
	const unbounded = `CREATE STREAM live (sym VARCHAR, px DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'generator', rows = '0');
`
	for _, c := range []struct {
		sql string
		n   int64
	}{
		{`SELECT * FROM (SELECT sym, px, ts, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC) AS rn FROM live) WHERE rn <= 10;`, 10},
		{`SELECT t.sym, t.rn FROM (SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px, ts DESC) AS rn FROM live) t WHERE t.rn < 4;`, 3},
		{`SELECT px FROM (SELECT px, ROW_NUMBER() OVER (ORDER BY px) AS rn FROM live) WHERE rn = 1;`, 1},
		{`SELECT px FROM (SELECT px, ROW_NUMBER() OVER (ORDER BY px) AS rn FROM live) WHERE 5 >= rn;`, 5},
		{`SELECT px FROM (SELECT px, ROW_NUMBER() OVER (ORDER BY px) AS rn FROM live) WHERE 5 > rn;`, 4},
		{`SELECT * FROM (SELECT sym, px, qty, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY qty DESC) AS rn FROM ticks) WHERE rn <= 2;`, 2},
		// the two-query form: the ranking is fused into its reader
		{`CREATE STREAM ranked AS SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC) AS rn FROM live;
SELECT * FROM ranked WHERE rn <= 7;`, 7},
		{`CREATE STREAM ranked AS SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC) AS rn FROM live;
SELECT r.sym FROM ranked r WHERE r.rn = 1;`, 1},
	} {
		p, err := Compile(ticksDDL+unbounded+c.sql, arrowexec.DefaultSettings(), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		var over *Over
		var walk func(n Node)
		walk = func(n Node) {
			if o, ok := n.(*Over); ok {
				over = o
			}
			for _, ch := range n.Children() {
				walk(ch)
			}
		}
		walk(p.Queries[len(p.Queries)-1].Plan)
		if len(p.Queries) != 1 || p.Relation("ranked") != nil {
			t.Fatalf("%s: the ranking should be fused into its reader, not a query of its own", c.sql)
		}
		if over == nil || over.TopN != c.n || over.EventTime() != -1 {
			t.Fatalf("%s: want an Over with TopN %d and no event time:\n%s", c.sql, c.n, lastPlan(p))
		}
		if f := over.Schema().Field(over.Schema().NumFields() - 1); f.Type.ID() != arrow.INT64 || !strings.HasPrefix(f.Name, "row_number() OVER (") {
			t.Fatalf("%s: last column %s", c.sql, f.Name)
		}
		if ex := p.Explain(); !strings.Contains(ex, "TopN ") || !strings.Contains(ex, "updating") {
			t.Fatalf("%s: explain does not show the top-N:\n%s", c.sql, ex)
		}
	}
}

// Forms that are not a top-N over an unbounded stream are refused, naming
// line and column; over a bounded input the ranking is still computed at
// its end.
func TestTopNRefused(t *testing.T) {
	const unbounded = `CREATE STREAM live (sym VARCHAR, px DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'generator', rows = '0');
`
	const order = "an unbounded stream can only be ordered by its event time"
	for _, c := range []struct{ sql, at, want string }{
		// RANK and DENSE_RANK
		{`SELECT * FROM (SELECT sym, RANK() OVER (PARTITION BY sym ORDER BY px DESC) AS r FROM live) WHERE r <= 3;`, "RANK", "RANK in an updating top-N over an unbounded stream"},
		{`SELECT * FROM (SELECT sym, DENSE_RANK() OVER (PARTITION BY sym ORDER BY px DESC) AS r FROM live) WHERE r = 1;`, "DENSE_RANK", "DENSE_RANK in an updating top-N"},
		// other filters
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE rn > 3;`, "px)", order},
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE rn <= 3 AND px > 1;`, "px)", order},
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE rn = 2;`, "px)", order},
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE rn <= 0;`, "px)", order},
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE 3 <= rn;`, "px)", order},
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE rn <= 2000000;`, "px)", order},
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live) WHERE px <= 3;`, "px)", order},
		// a second window function; no filter at all
		{`SELECT * FROM (SELECT sym, ROW_NUMBER() OVER (ORDER BY px) AS rn, LAG(px) OVER (ORDER BY ts) AS p FROM live) WHERE rn <= 3;`, "px)", order},
		{`SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live;`, "px)", order},
		{`SELECT * FROM (SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live LIMIT 5) WHERE rn <= 3;`, "px)", order},
		// the two-query form with a reader that is not a top-N: the ranked
		// stream itself cannot be computed
		{`CREATE STREAM ranked AS SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live; SELECT * FROM ranked WHERE rn <= 3; SELECT sym FROM ranked;`, "px)", order},
		{`CREATE STREAM ranked AS SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live; SELECT * FROM ranked WHERE rn > 3;`, "px)", order},
		{`CREATE STREAM ranked AS SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live WITH (connector = 'stdout'); SELECT * FROM ranked WHERE rn <= 3;`, "px)", order},
		{`CREATE STREAM ranked AS SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn FROM live; SELECT * FROM ranked WHERE rn <= 3 AND sym IN (SELECT sym FROM ranked);`, "px)", order},
	} {
		want := fmt.Sprintf("line 5, column %d: %s", strings.Index(c.sql, c.at)+1, c.want)
		_, err := Compile(ticksDDL+unbounded+c.sql, arrowexec.DefaultSettings(), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\nerror %v\nwant %q", c.sql, err, want)
		}
	}
	// a ranking by event time runs as its own stream, not fused
	p, err := Compile(ticksDDL+unbounded+`CREATE STREAM ranked AS SELECT sym, ts, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY ts) AS rn FROM live;
SELECT * FROM ranked WHERE rn <= 3;`, arrowexec.DefaultSettings(), nil)
	if err != nil || len(p.Queries) != 2 || p.Relation("ranked") == nil || strings.Contains(p.Explain(), "TopN") {
		t.Fatalf("a ranking by event time: %v", err)
	}
	// a subquery's rows are final: the bounded input is ranked at its end
	p = compileTicks(t, `CREATE STREAM f (sym VARCHAR, px BIGINT) WITH (connector = 'file', path = 'x.jsonl', format = 'json');
SELECT sym FROM ticks WHERE sym IN (SELECT sym FROM (SELECT sym, ROW_NUMBER() OVER (ORDER BY px DESC) AS rn FROM f) WHERE rn <= 3);`)
	if got := lastPlan(p); strings.Contains(got, "top 3") || !strings.Contains(got, "[row_number() OVER (ORDER BY px DESC)] processing-time") {
		t.Fatalf("top-N filter in an IN subquery:\n%s", got)
	}
	// a bounded input ranks its whole input at its end (RANK filtered)
	p = compileTicks(t, `CREATE STREAM f (sym VARCHAR, px BIGINT) WITH (connector = 'file', path = 'x.jsonl', format = 'json');
SELECT * FROM (SELECT sym, RANK() OVER (PARTITION BY sym ORDER BY px DESC) AS r FROM f) WHERE r <= 3;`)
	if got := lastPlan(p); !strings.Contains(got, "[rank() OVER (PARTITION BY sym ORDER BY px DESC)] processing-time") || strings.Contains(got, "top 3") {
		t.Fatalf("bounded RANK filter:\n%s", lastPlan(p))
	}
}

// A windowed ROW_NUMBER filtered by rank, in the derived-table form or
// the two-query form (fused), keeps N rows per partition and window
// (Over.Prune) and explain says so; other windowed rankings keep every row.
func TestWindowedTopNPlan(t *testing.T) {
	const live = `CREATE STREAM live (sym VARCHAR, px DECIMAL(10,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'generator', rows = '0');
`
	const ranked = `CREATE STREAM ranked AS SELECT sym, px, ts, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC, ts) AS rn FROM live WINDOW TUMBLING (INTERVAL '10' SECOND);
`
	for _, c := range []struct {
		sql     string
		n       int64
		queries int
	}{
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC) AS rn FROM live WINDOW TUMBLING (INTERVAL '1' MINUTE)) WHERE rn <= 3;`, 3, 1},
		{`SELECT t.sym FROM (SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px) AS rn, window_start FROM live WINDOW SLIDING (INTERVAL '1' MINUTE, INTERVAL '10' SECOND)) t WHERE t.rn < 3;`, 2, 1},
		{ranked + `SELECT sym, px FROM ranked WHERE rn = 1;`, 1, 1},
		{ranked + `SELECT r.sym FROM ranked r WHERE 4 >= r.rn;`, 4, 1},
		// not pruned: a filter on another column, RANK, two calls, a
		// reader that is not a top-N (the ranking stays a query)
		{`SELECT * FROM (SELECT sym, px, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC) AS rn FROM live WINDOW TUMBLING (INTERVAL '1' MINUTE)) WHERE px <= 3;`, 0, 1},
		{`SELECT * FROM (SELECT sym, RANK() OVER (PARTITION BY sym ORDER BY px DESC) AS rn FROM live WINDOW TUMBLING (INTERVAL '1' MINUTE)) WHERE rn <= 3;`, 0, 1},
		{`SELECT * FROM (SELECT sym, ROW_NUMBER() OVER (PARTITION BY sym ORDER BY px DESC) AS rn, LAG(px) OVER (PARTITION BY sym ORDER BY px) AS l FROM live WINDOW TUMBLING (INTERVAL '1' MINUTE)) WHERE rn <= 3;`, 0, 1},
		{ranked + `SELECT sym FROM ranked WHERE rn = 1 OR px > 10;`, 0, 2},
	} {
		p, err := Compile(live+c.sql, arrowexec.DefaultSettings(), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		if len(p.Queries) != c.queries {
			t.Fatalf("%s: %d queries, want %d", c.sql, len(p.Queries), c.queries)
		}
		var over *Over
		var walk func(n Node)
		walk = func(n Node) {
			if o, ok := n.(*Over); ok {
				over = o
			}
			for _, ch := range n.Children() {
				walk(ch)
			}
		}
		walk(p.Queries[0].Plan)
		if over == nil || over.Window == nil || over.TopN != 0 || over.Prune != c.n {
			t.Fatalf("%s: want a windowed Over with Prune %d:\n%s", c.sql, c.n, p.Explain())
		}
		ex := p.Explain()
		if want := fmt.Sprintf("top %d per partition and window", c.n); (c.n > 0) != strings.Contains(ex, want) {
			t.Fatalf("%s: explain and %q:\n%s", c.sql, want, ex)
		}
	}
}
