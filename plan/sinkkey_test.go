package plan

import (
	"fmt"
	"testing"
)

func TestSinkKeyIsTheOutputGroupByColumns(t *testing.T) {
	for sql, want := range map[string]string{
		`SELECT sector, ticker, COUNT(*) AS n FROM trades GROUP BY sector, ticker;`:                                                                       "[sector ticker]",
		`SELECT COUNT(*) AS n, ticker AS t FROM trades GROUP BY ticker HAVING COUNT(*) > 1;`:                                                              "[t]",
		`SELECT ticker, SUM(volume) AS v, window_start FROM trades GROUP BY ticker WINDOW TUMBLING (INTERVAL '1' MINUTE);`:                                "[ticker]",
		`SELECT COUNT(*) AS n FROM trades GROUP BY ticker;`:                                                                                               "[]",
		`SELECT UPPER(ticker) AS t, COUNT(*) AS n FROM trades GROUP BY ticker;`:                                                                           "[]",
		`SELECT ticker, volume FROM trades;`:                                                                                                              "[]",
		`SELECT * FROM (SELECT ticker, price, ROW_NUMBER() OVER (PARTITION BY ticker ORDER BY price DESC) AS rn FROM trades) WHERE rn <= 3;`:              "[ticker rn]",
		`SELECT price, rn AS r FROM (SELECT ticker, price, ROW_NUMBER() OVER (PARTITION BY ticker ORDER BY price DESC) AS rn FROM trades) WHERE rn <= 3;`: "[]",
	} {
		p := compile(t, sql)
		if got := fmt.Sprint(sinkKey(p.Queries[len(p.Queries)-1].Plan)); got != want {
			t.Errorf("%s\nkey %s, want %s\n%s", sql, got, want, lastPlan(p))
		}
	}
}
