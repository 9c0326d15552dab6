package plan

import (
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
)

const ticksDDL = `CREATE STREAM ticks (sym VARCHAR, venue VARCHAR, px DECIMAL(10,2), qty BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'generator');
`

func compileTicks(t *testing.T, sql string) *Pipeline {
	t.Helper()
	p, err := Compile(ticksDDL+sql, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Window functions become an Over node under the select list's
// projection; the scan is narrowed to what it and the projection read,
// and explain names the operator.
func TestOverPlanAndExplain(t *testing.T) {
	p := compileTicks(t, `SELECT sym, px - LAG(px) OVER (PARTITION BY sym ORDER BY ts) AS chg,
  AVG(px) OVER (PARTITION BY sym ORDER BY ts ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS ma FROM ticks;`)
	got := lastPlan(p)
	for _, want := range []string{
		"Project sym AS sym VARCHAR, (px - lag(px) OVER (PARTITION BY sym ORDER BY ts)) AS chg DECIMAL(11,2), avg(px) OVER",
		"  Over [lag(px) OVER (PARTITION BY sym ORDER BY ts), avg(px) OVER (PARTITION BY sym ORDER BY ts ROWS BETWEEN 4 PRECEDING AND CURRENT ROW)] in event-time order, late_data=drop",
		"    Scan stream ticks [sym, px, ts, _wm]",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("plan lacks %q:\n%s", want, got)
		}
	}
	o := p.Queries[0].Plan.Children()[0].(*Over)
	if len(o.Specs) != 1 || len(o.Calls) != 2 || o.Calls[1].Frame.Preceding != 4 || o.Calls[1].Spec != 0 {
		t.Fatalf("calls %+v specs %d: want two calls sharing one specification", o.Calls, len(o.Specs))
	}
	ex := p.Explain()
	if !strings.Contains(ex, "WindowFunctions incremental, rows released in event-time order at the watermark [lag, avg ROWS 4 PRECEDING]") {
		t.Fatalf("explain does not show the operator:\n%s", ex)
	}
	// Event time passes through to a derived stream.
	p = compileTicks(t, `CREATE STREAM m AS SELECT sym, ts, LAG(px) OVER (PARTITION BY sym ORDER BY ts) AS prev FROM ticks;`)
	if r := p.Relation("m"); r.EventTime != "ts" {
		t.Fatalf("derived stream event time %q, want ts", r.EventTime)
	}
}

// Windowed: the Over node has window_start/window_end, no event time,
// and calls without ORDER BY frame their whole partition.
func TestOverWindowedPlan(t *testing.T) {
	p := compileTicks(t, `SELECT sym, SUM(qty) OVER (PARTITION BY sym) AS total, RANK() OVER (ORDER BY px DESC) AS r, window_end
FROM ticks WINDOW TUMBLING (INTERVAL '1' MINUTE);`)
	o := p.Queries[0].Plan.Children()[0].(*Over)
	if o.Window == nil || o.EventTime() != -1 || !o.Calls[0].Frame.WholePartition || o.Calls[1].Frame.WholePartition {
		t.Fatalf("windowed Over: %+v", o)
	}
	if !o.Specs[1].OrderBy[0].Desc || !o.Specs[1].OrderBy[0].NullsFirst {
		t.Fatal("ORDER BY px DESC should put NULLs first")
	}
	if !strings.Contains(p.Explain(), "WindowFunctions per TUMBLING(60000ms) window") {
		t.Fatalf("explain:\n%s", p.Explain())
	}
}
