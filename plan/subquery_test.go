package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

const subqueryDDL = joinTestDDL + `CREATE STREAM live (id BIGINT, v BIGINT) WITH (connector = 'generator', rows = '0');
CREATE TABLE ktab (id BIGINT PRIMARY KEY, v BIGINT) WITH (connector = 'kafka', topic = 'k');
`

func compileSubquery(t *testing.T, sql string) *Pipeline {
	t.Helper()
	p, err := Compile(subqueryDDL+sql, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// subqueryJoins lists the SubqueryJoin nodes of a plan, outermost first.
func subqueryJoins(n Node) []*SubqueryJoin {
	var out []*SubqueryJoin
	if s, ok := n.(*SubqueryJoin); ok {
		out = append(out, s)
	}
	for _, c := range n.Children() {
		out = append(out, subqueryJoins(c)...)
	}
	return out
}

func TestSubqueryPlannedAsJoins(t *testing.T) {
	cases := []struct {
		sql  string
		mode arrowexec.SubqueryMode
		want []string // in the explain output
	}{
		{`SELECT o.id FROM o WHERE o.cust IN (SELECT cust FROM c WHERE tier > 1);`, arrowexec.SemiJoin,
			[]string{"SemiJoin (o.cust IN (SELECT cust FROM c WHERE (tier > 1)))", "HashSemiJoin keys none (uncorrelated)"}},
		{`SELECT o.id FROM o WHERE o.cust NOT IN (SELECT cust FROM c);`, arrowexec.AntiJoin,
			[]string{"AntiJoin (o.cust NOT IN (SELECT cust FROM c))", "HashAntiJoin", "NULL-aware NOT IN"}},
		{`SELECT o.id FROM o WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.id = o.id);`, arrowexec.AntiJoin,
			[]string{"AntiJoin (NOT EXISTS (SELECT 1 FROM p WHERE (p.id = o.id))) correlated on [p.id = o.id]", "HashAntiJoin keys [p.id = o.id]"}},
		{`SELECT o.id FROM o WHERE EXISTS (SELECT 1 FROM p WHERE p.id = o.id) OR o.id = 7;`, arrowexec.MarkJoin,
			[]string{"MarkJoin EXISTS (SELECT 1 FROM p WHERE (p.id = o.id)) correlated on [p.id = o.id] AS $subquery_", "HashMarkJoin keys [p.id = o.id]"}},
		{`SELECT o.id, (SELECT MAX(amt) FROM p) AS m FROM o;`, arrowexec.ScalarJoin,
			[]string{"LookupJoin (SELECT max(amt) FROM p) AS $subquery_", "ScalarSubquery (SELECT max(amt) FROM p) evaluated once"}},
		{`SELECT o.id FROM o WHERE o.id > (SELECT AVG(amt) FROM p WHERE p.id = o.id);`, arrowexec.ScalarJoin,
			[]string{"LookupJoin (SELECT avg(amt) FROM p WHERE (p.id = o.id)) correlated on [p.id = o.id]", "HashLookupJoin keys [p.id = o.id]"}},
	}
	for _, tc := range cases {
		p := compileSubquery(t, tc.sql)
		q := p.Queries[len(p.Queries)-1]
		sj := subqueryJoins(q.Plan)
		if len(sj) != 1 || sj[0].Mode != tc.mode {
			t.Errorf("%s: want one %s join, got %v", tc.sql, tc.mode, FormatTree(q.Plan))
			continue
		}
		ex := p.Explain()
		for _, w := range tc.want {
			if !strings.Contains(ex, w) {
				t.Errorf("%s\nexplain lacks %q:\n%s", tc.sql, w, ex)
			}
		}
	}
}

// TestSubqueryDecorrelation: the correlation equality leaves the
// subquery's WHERE, its inner side becomes a column (and a GROUP BY key
// when the subquery aggregates), its outer side the probe key.
func TestSubqueryDecorrelation(t *testing.T) {
	p := compileSubquery(t, `SELECT o.id FROM o WHERE o.id > (SELECT COUNT(*) FROM p WHERE p.id = o.id AND p.amt > 5);`)
	q := p.Queries[len(p.Queries)-1]
	sj := subqueryJoins(q.Logical)[0]
	if len(sj.ProbeKeys) != 1 || sj.ProbeKeys[0].String() != "id" || sj.KeyText[0] != "p.id = o.id" {
		t.Fatalf("keys %v %v", sj.ProbeKeys, sj.KeyText)
	}
	sub := FormatTree(sj.Sub)
	for _, w := range []string{"Aggregate GROUP BY id [count(*)] EMIT FINAL", "Filter (amt > 5)", "p.id AS $corr_1"} {
		if !strings.Contains(sub, w) {
			t.Errorf("subquery plan lacks %q:\n%s", w, sub)
		}
	}
	if strings.Contains(sub, "o.id") {
		t.Errorf("the correlation stayed in the subquery:\n%s", sub)
	}
	// COUNT over no rows is 0: the result for outer rows without partners
	if v, ok := expr.IsConst(sj.Missing); !ok || v != int64(0) {
		t.Fatalf("missing value %v", sj.Missing)
	}
}

// TestSubqueryEmptyAggregateRow: what an aggregate without GROUP BY yields
// over no rows, used for outer rows without subquery rows.
func TestSubqueryEmptyAggregateRow(t *testing.T) {
	cases := []struct {
		sql, missing string // "" for none
	}{
		{`SELECT o.id, (SELECT COUNT(*) + 1 FROM p WHERE p.id = o.id) AS n FROM o;`, "1"},
		{`SELECT o.id, (SELECT SUM(amt) FROM p WHERE p.id = o.id) AS n FROM o;`, ""},
		{`SELECT o.id, (SELECT COUNT(*) FROM p WHERE p.id = o.id HAVING COUNT(*) > 0) AS n FROM o;`, ""},
		{`SELECT o.id, (SELECT amt FROM p WHERE p.id = o.id) AS n FROM o;`, ""},
		{`SELECT o.id FROM o WHERE EXISTS (SELECT COUNT(*) FROM p WHERE p.id = o.id);`, "true"},
		{`SELECT o.id FROM o WHERE EXISTS (SELECT 1 FROM p WHERE p.id = o.id);`, ""},
		{`SELECT o.id FROM o WHERE o.id IN (SELECT COUNT(*) FROM p WHERE p.id = o.id);`, "(CAST(id AS BIGINT) = 0)"},
		{`SELECT o.id, (SELECT COUNT(*) FROM p WHERE p.id = 3) AS n FROM o;`, "0"},
	}
	for _, tc := range cases {
		p := compileSubquery(t, tc.sql)
		sj := subqueryJoins(p.Queries[len(p.Queries)-1].Logical)[0]
		got := ""
		if sj.Missing != nil {
			got = sj.Missing.String()
		}
		if got != tc.missing && !(tc.missing != "" && strings.Contains(got, "= 0")) {
			t.Errorf("%s: missing %q, want %q", tc.sql, got, tc.missing)
		}
	}
}

// TestSubqueryOverTableUsesLatestRows: a table read by a subquery is
// reduced to its latest row per primary key before its WHERE.
func TestSubqueryOverTableUsesLatestRows(t *testing.T) {
	p := compileSubquery(t, `SELECT o.id FROM o WHERE o.cust IN (SELECT cust FROM c WHERE tier > 1);`)
	sub := FormatTree(subqueryJoins(p.Queries[len(p.Queries)-1].Logical)[0].Sub)
	want := "Filter (tier > 1)\n    Project cust AS cust VARCHAR, last_value(name) AS name VARCHAR, last_value(tier) AS tier INT\n      Aggregate GROUP BY cust [last_value(name), last_value(tier)] EMIT FINAL\n        Scan table c"
	if !strings.Contains(sub, want) {
		t.Fatalf("got:\n%s\nwant the filter over the latest rows:\n%s", sub, want)
	}
}

// TestSubqueryPlainConjunctsFilterFirst: conditions without subqueries
// filter the outer rows before they probe the subquery.
func TestSubqueryPlainConjunctsFilterFirst(t *testing.T) {
	p := compileSubquery(t, `SELECT o.id FROM o WHERE o.cust IN (SELECT cust FROM c) AND o.id > 3 AND EXISTS (SELECT 1 FROM p WHERE p.id = o.id);`)
	got := FormatTree(p.Queries[len(p.Queries)-1].Plan)
	if !strings.Contains(got, "SemiJoin EXISTS") || !strings.Contains(got, "  SemiJoin (o.cust IN") || !strings.Contains(got, "Filter (id > 3)\n        Scan stream o") {
		t.Fatalf("plan:\n%s", got)
	}
}

func TestSubqueryErrors(t *testing.T) {
	cases := []struct{ sql, want string }{
		{`SELECT o.id FROM o WHERE o.id IN (SELECT id FROM live);`,
			`line 9, column 50: the subquery reads stream "live", which never ends (connector generator with rows = 0): its result is never complete`},
		{`SELECT o.id FROM o WHERE o.id IN (SELECT id FROM ktab);`,
			`line 9, column 50: the subquery reads table "ktab", which never ends (connector kafka)`},
		{`SELECT o.id FROM o WHERE EXISTS (SELECT 1 FROM p WHERE p.amt > o.id);`,
			`line 9, column 64: correlated subquery: the condition (p.amt > o.id) uses the outer query's column o.id`},
		{`SELECT o.id FROM o WHERE EXISTS (SELECT 1 FROM p WHERE p.id = o.id OR p.amt = o.id);`,
			`correlated subquery: the condition ((p.id = o.id) OR (p.amt = o.id))`},
		{`SELECT o.id, (SELECT o.cust FROM p WHERE p.id = o.id) AS x FROM o;`,
			`line 9, column 22: correlated subquery: o.cust is a column of the outer query`},
		{`SELECT o.id FROM o WHERE o.id IN (SELECT id, amt FROM p);`,
			`line 9, column 35: the subquery returns 2 columns; IN (SELECT ...) needs exactly one`},
		{`SELECT o.id, (SELECT id, amt FROM p) AS x FROM o;`,
			`the subquery returns 2 columns; a scalar subquery needs exactly one`},
		{`SELECT o.id FROM o WHERE o.cust IN (SELECT id FROM p);`,
			`IN (SELECT ...): cannot join VARCHAR with BIGINT`},
		{`SELECT o.id FROM o WHERE o.id IN (SELECT id FROM p WHERE p.amt = o.id LIMIT 1);`,
			`LIMIT in a correlated subquery is not supported yet`},
		{`SELECT o.id FROM o WHERE o.id IN (SELECT COUNT(*) FROM p GROUP BY id EMIT CHANGES);`,
			`EMIT CHANGES in a subquery`},
		{`SELECT o.cust, COUNT(*) AS n FROM o GROUP BY o.cust HAVING COUNT(*) > (SELECT 1);`,
			`a subquery in the select list, GROUP BY or HAVING of a query that aggregates`},
		{`SELECT o.id FROM o JOIN p ON o.id = p.id AND p.amt IN (SELECT amt FROM p) WITHIN INTERVAL '1' MINUTE;`,
			`a subquery here (subqueries may be used in WHERE`},
	}
	for _, tc := range cases {
		_, err := Compile(subqueryDDL+tc.sql, arrowexec.DefaultSettings(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.sql, err, tc.want)
		}
	}
	_, err := Compile(subqueryDDL+`SELECT o.id FROM o JOIN p ON o.id = p.id AND p.amt IN (SELECT amt FROM p) WITHIN INTERVAL '1' MINUTE;`, arrowexec.DefaultSettings(), nil)
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("a subquery in ON: %v does not wrap ErrNotSupported", err)
	}
}
