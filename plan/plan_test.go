package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
)

const tradesDDL = `CREATE STREAM trades (ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'generator');
`

func compile(t *testing.T, sql string) *Pipeline {
	t.Helper()
	p, err := Compile(tradesDDL+sql, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lastPlan(p *Pipeline) string { return FormatTree(p.Queries[len(p.Queries)-1].Plan) }

func TestPredicatePushDownThroughDerivedTable(t *testing.T) {
	p := compile(t, `SELECT n FROM (SELECT ticker AS n, volume * 2 AS v2, volume FROM trades) x WHERE volume > 5 AND n = 'AAPL';`)
	got := lastPlan(p)
	want := `Project n AS n VARCHAR
  Project ticker AS n VARCHAR
    Filter ((volume > 5) AND (ticker = 'AAPL'))
      Scan stream trades [ticker, volume]
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestFilterOnComputedColumnStaysAbove(t *testing.T) {
	p := compile(t, `SELECT n FROM (SELECT ticker AS n, volume * 2 AS v2 FROM trades) x WHERE v2 > 5;`)
	got := lastPlan(p)
	if !strings.Contains(got, "Filter (v2 > 5)\n    Project") {
		t.Fatalf("filter on a computed column was pushed below its projection:\n%s", got)
	}
}

func TestProjectionPushDownNarrowsScan(t *testing.T) {
	p := compile(t, `SELECT price * volume AS notional FROM trades WHERE sector = 'tech';`)
	got := lastPlan(p)
	if !strings.Contains(got, "Scan stream trades [sector, price, volume]") {
		t.Fatalf("scan not narrowed:\n%s", got)
	}
	// The logical plan as bound still reads every column.
	if !strings.Contains(FormatTree(p.Queries[0].Logical), "[ticker, sector, price, volume, trade_time]") {
		t.Fatal("logical plan should show the unpruned scan")
	}
	if p.Queries[0].Plan.Schema().NumFields() != 1 {
		t.Fatal("output schema changed")
	}
}

func TestConstantFolding(t *testing.T) {
	p := compile(t, `SELECT ticker, 2 * 3 + 1 AS seven FROM trades WHERE 1 = 1 AND volume > 10 * 100;`)
	got := lastPlan(p)
	if strings.Contains(got, "(1 = 1)") || strings.Contains(got, "10 * 100") || strings.Contains(got, "2 * 3") {
		t.Fatalf("constants not folded:\n%s", got)
	}
	if !strings.Contains(got, "7 AS seven") || !strings.Contains(got, "1000") {
		t.Fatalf("folded constants missing:\n%s", got)
	}
	p = compile(t, `SELECT ticker FROM trades WHERE 1 = 1;`)
	if strings.Contains(lastPlan(p), "Filter") {
		t.Fatalf("constant TRUE filter kept:\n%s", lastPlan(p))
	}
}

func TestConstantErrorsSurfaceAtPlanTime(t *testing.T) {
	_, err := Compile(tradesDDL+"SELECT CAST('abc' AS BIGINT) AS x FROM trades;", arrowexec.DefaultSettings(), nil)
	if err == nil || !strings.Contains(err.Error(), `cannot cast "abc" to BIGINT`) || !strings.HasPrefix(err.Error(), "line 3, column 1") {
		t.Fatalf("got %v", err)
	}
}

func TestErrorsAreCollectedAcrossStatements(t *testing.T) {
	_, err := Compile(tradesDDL+"SELECT nope FROM trades;\nSELECT ticker FROM nowhere;\nSELECT t.ticker FROM trades t CROSS JOIN trades u;", arrowexec.DefaultSettings(), nil)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Fatal("the join error should wrap ErrNotSupported")
	}
}

func TestSettingsPrecedence(t *testing.T) {
	base := arrowexec.DefaultSettings()
	if err := base.Set("batch_size", "100"); err != nil { // e.g. from the environment
		t.Fatal(err)
	}
	p, err := Compile("SET batch_size = 200; SET linger_ms = 7;"+tradesDDL, base, map[string]string{"batch_size": "300"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Settings.BatchSize != 300 || p.Settings.Linger.Milliseconds() != 7 {
		t.Fatalf("batch_size %d linger %s", p.Settings.BatchSize, p.Settings.Linger)
	}
}

func TestParseDuration(t *testing.T) {
	for in, ms := range map[string]int64{"5s": 5000, "500ms": 500, "1500": 1500, "5 seconds": 5000, "INTERVAL '2' MINUTE": 120000, "1h30m": 5400000} {
		d, err := ParseDuration(in)
		if err != nil || d.Milliseconds() != ms {
			t.Errorf("%q: %v %v", in, d, err)
		}
	}
	for _, bad := range []string{"soon", "-5s", "5 fortnights", ""} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEditDistanceSuggestions(t *testing.T) {
	cands := []string{"price", "volume", "ticker"}
	for in, want := range map[string]string{"pirce": "price", "volum": "volume", "tikcer": "ticker", "zzz": "", "p": ""} {
		got := suggest(in, cands)
		if want == "" && got != "" || want != "" && got != ` (did you mean "`+want+`"?)` {
			t.Errorf("suggest(%q) = %q", in, got)
		}
	}
}
