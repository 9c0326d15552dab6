package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
)

const joinTestDDL = `CREATE STREAM o (id BIGINT, cust VARCHAR, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' MINUTE)
WITH (connector = 'file', path = 'o.jsonl', format = 'json');
CREATE STREAM p (id BIGINT, amt BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts)
WITH (connector = 'file', path = 'p.jsonl', format = 'json');
CREATE TABLE c (cust VARCHAR PRIMARY KEY, name VARCHAR, tier INT)
WITH (connector = 'file', path = 'c.jsonl', format = 'json');
`

func compileJoin(t *testing.T, sql string) *Pipeline {
	t.Helper()
	p, err := Compile(joinTestDDL+sql, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExplainShowsJoin(t *testing.T) {
	cases := []struct{ sql, want string }{
		{`SELECT o.id, p.amt FROM o JOIN p ON o.id = p.id WHERE p.ts BETWEEN o.ts AND o.ts + INTERVAL '1' HOUR;`,
			"IntervalJoin INNER keys [o.id = p.id] bound p.ts - o.ts IN [00:00:00, 01:00:00] (inputs read concurrently; vectorised hash build/probe; state evicted by watermark; output watermark = min of inputs - 01:00:00)"},
		{`SELECT o.id, p.amt FROM o LEFT JOIN p ON p.id = o.id AND p.ts > o.ts - INTERVAL '5' SECOND AND p.ts < o.ts + INTERVAL '10' SECOND AND p.amt > o.id;`,
			"IntervalJoin LEFT keys [o.id = p.id] bound p.ts - o.ts IN [-00:00:04.999, 00:00:09.999]"},
		{`SELECT o.id FROM o FULL JOIN p ON o.id = p.id WITHIN INTERVAL '5' MINUTE;`,
			"IntervalJoin FULL keys [o.id = p.id] bound p.ts - o.ts IN [-00:05:00, 00:05:00]"},
		{`SELECT o.id, window_start FROM o JOIN p ON o.id = p.id WINDOW TUMBLING (INTERVAL '1' MINUTE);`,
			"WindowJoin INNER keys [o.id = p.id] window TUMBLING(00:01:00)"},
		{`SELECT o.id FROM o RIGHT JOIN p ON o.id = p.id WITH (state_ttl = '2h');`,
			"TTLJoin RIGHT keys [o.id = p.id] state_ttl 02:00:00"},
		{`SELECT o.id, c.name FROM o LEFT JOIN c ON o.cust = c.cust;`,
			"HashJoin LEFT stream–table with c keys [o.cust = c.cust] (vectorised hash probe of the table's latest rows; no stream state; bounded table read to its end first)"},
	}
	for _, tc := range cases {
		ex := compileJoin(t, tc.sql).Explain()
		if !strings.Contains(ex, tc.want) {
			t.Errorf("%s\nexplain lacks %q:\n%s", tc.sql, tc.want, ex)
		}
	}
}

// A WHERE condition that rejects NULLs of the padded side turns an outer
// join into an inner one; one that keeps them stays above the join.
func TestWhereOnOuterJoin(t *testing.T) {
	p := compileJoin(t, `SELECT o.id FROM o LEFT JOIN p ON o.id = p.id WHERE p.ts BETWEEN o.ts AND o.ts + INTERVAL '1' HOUR;`)
	if got := FormatTree(p.Queries[0].Logical); !strings.Contains(got, "Join INNER ON [o.id = p.id] interval") {
		t.Fatalf("LEFT JOIN with a strict WHERE bound should be INNER:\n%s", got)
	}
	p = compileJoin(t, `SELECT o.id FROM o LEFT JOIN p ON o.id = p.id WITHIN INTERVAL '1' HOUR WHERE p.amt IS NULL AND o.cust = 'x';`)
	got := FormatTree(p.Queries[0].Logical)
	for _, want := range []string{"Filter IS NULL(amt)\n    Join LEFT", "Filter (cust = 'x')\n        Scan stream o"} {
		if !strings.Contains(got, want) {
			t.Fatalf("plan lacks %q:\n%s", want, got)
		}
	}
}

// Pruning narrows both inputs but keeps keys, times and the table's
// primary key.
func TestJoinPruning(t *testing.T) {
	p := compileJoin(t, `SELECT p.amt, c.name FROM o JOIN p ON o.id = p.id WITHIN INTERVAL '1' MINUTE JOIN c ON o.cust = c.cust;`)
	got := FormatTree(p.Queries[0].Plan)
	for _, want := range []string{"Scan stream o [id, cust, ts, _wm]", "Scan stream p [id, amt, ts, _wm]", "Scan table c [cust, name]"} {
		if !strings.Contains(got, want) {
			t.Fatalf("plan lacks %q:\n%s", want, got)
		}
	}
}

func TestJoinErrors(t *testing.T) {
	cases := []struct{ sql, want string }{
		{`SELECT o.id FROM o JOIN p ON o.id = p.id;`, "line 7, column 18: JOIN of streams o and p has no time bound"},
		{`SELECT c.name FROM c LEFT JOIN o ON o.cust = c.cust;`, "LEFT JOIN that keeps every row of table c"},
		{`SELECT o.id FROM o JOIN p ON o.id = p.id AND p.ts BETWEEN o.ts + INTERVAL '2' SECOND AND o.ts + INTERVAL '1' SECOND;`, "is empty"},
		{`SELECT o.id FROM o JOIN p ON o.cust = p.amt WITHIN INTERVAL '1' SECOND;`, "line 7, column 37: cannot apply = to VARCHAR and BIGINT"},
		{`SELECT o.id FROM o JOIN p ON o.id = p.id AND p.amt WITHIN INTERVAL '1' SECOND;`, "join condition must be BOOLEAN"},
	}
	for _, tc := range cases {
		_, err := Compile(joinTestDDL+tc.sql, arrowexec.DefaultSettings(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.sql, err, tc.want)
		}
	}
	_, err := Compile(joinTestDDL+`SELECT c.name FROM c JOIN c c2 ON c.cust = c2.cust;`, arrowexec.DefaultSettings(), nil)
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("table–table join: got %v", err)
	}
}

// A projection keeps event time through either side's time column of an
// INNER join, and through window_start of a windowed FULL join.
func TestJoinEventTime(t *testing.T) {
	for _, sql := range []string{
		`SELECT o.id, p.ts FROM o JOIN p ON o.id = p.id WITHIN INTERVAL '1' MINUTE;`,
		`SELECT o.id, o.ts FROM o JOIN p ON o.id = p.id WITHIN INTERVAL '1' MINUTE;`,
		`SELECT o.id, window_start FROM o FULL JOIN p ON o.id = p.id WINDOW TUMBLING (INTERVAL '1' MINUTE);`,
		`SELECT o.id, o.ts FROM o LEFT JOIN c ON o.cust = c.cust;`,
	} {
		if et := compileJoin(t, sql).Queries[0].Plan.EventTime(); et != 1 {
			t.Errorf("%s: event time column %d, want 1", sql, et)
		}
	}
	for _, sql := range []string{
		`SELECT o.id, p.ts FROM o LEFT JOIN p ON o.id = p.id WITHIN INTERVAL '1' MINUTE;`,
		`SELECT o.id, o.ts FROM o FULL JOIN p ON o.id = p.id WITHIN INTERVAL '1' MINUTE;`,
	} {
		if et := compileJoin(t, sql).Queries[0].Plan.EventTime(); et != -1 {
			t.Errorf("%s: event time column %d, want none", sql, et)
		}
	}
}

// findJoin returns the first stream–stream or stream–table join in n.
func findJoin(n Node) *Join {
	if j, ok := n.(*Join); ok {
		return j
	}
	for _, c := range n.Children() {
		if j := findJoin(c); j != nil {
			return j
		}
	}
	return nil
}

// Watermark alignment is only for joins whose inputs come from different
// sources: pausing one side of a self-join, or of a join with a side
// derived from the other's source, could starve the other side.
func TestJoinInputsIndependent(t *testing.T) {
	cases := []struct {
		sql  string
		want bool
	}{
		{`SELECT o.id, p.amt FROM o JOIN p ON o.id = p.id WITHIN INTERVAL '5' SECOND;`, true},
		{`SELECT a.id FROM o a JOIN o b ON a.id = b.id WITHIN INTERVAL '5' SECOND;`, false},
		{`CREATE STREAM big AS SELECT id, ts FROM o WHERE id > 10;
SELECT o.id FROM o JOIN big ON o.id = big.id WITHIN INTERVAL '5' SECOND;`, false},
		{`CREATE STREAM big AS SELECT id, ts FROM p WHERE id > 10;
SELECT o.id FROM o JOIN big ON o.id = big.id WITHIN INTERVAL '5' SECOND;`, true},
	}
	for _, tc := range cases {
		p := compileJoin(t, tc.sql)
		q := p.Queries[len(p.Queries)-1]
		j := findJoin(q.Plan)
		if j == nil {
			t.Fatalf("%s: no join in\n%s", tc.sql, FormatTree(q.Plan))
		}
		if got := independent(p, j.Left, j.Right); got != tc.want {
			t.Errorf("%s: independent = %v, want %v", tc.sql, got, tc.want)
		}
	}
}
