package oracle

import (
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

var (
	numCases  = flag.Int("cases", 0, "number of random cases (default 2000, 400 with -short)")
	firstCase = flag.Int("first", 1, "number of the first case; case n always draws the same query and data")
	budget    = flag.Duration("budget", 100*time.Second, "stop starting new cases after this long")
	withAll   = flag.Bool("all", false, "also draw the constructs listed in awaitingFix")
)

// TestOracle runs random queries over random data in the engine, at batch
// sizes 1, 3 and the default, and compares each result with DuckDB's
// result of the same query translated to DuckDB's SQL with the engine's
// documented semantics (docs/time-and-windows.md: watermarks and late rows;
// docs/window-functions.md: ROWS frames; docs/sql.md: division by zero). A disagreement is shrunk to a minimal query and data.
func TestOracle(t *testing.T) {
	n := *numCases
	if n == 0 {
		n = 2000
		if testing.Short() {
			n = 400
		}
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The engine's integer and DECIMAL division or modulo by zero is NULL
	// (docs/sql.md).
	if _, err := db.Exec("SET error_on_division_by_zero = false"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ran, skipped, failed, empty := 0, 0, 0, 0
	byShape, failedBy := map[string]int{}, map[string]int{}
	for c := *firstCase; c < *firstCase+n; c++ {
		if time.Since(start) > *budget {
			t.Logf("time budget %v spent", *budget)
			break
		}
		q, ds, ok := draw(c)
		if !ok {
			skipped++
			continue
		}
		ran++
		byShape[q.shape.String()]++
		if q.next {
			byShape["include_in_next_window"]++
		}
		msg, nrows, err := checkRows(t.TempDir(), db, q, ds)
		if nrows == 0 {
			empty++
		}
		if err != nil {
			t.Fatalf("case %d: %v\nquery: %s\nDuckDB: %s", c, err, q.engineSQL(), q.duckSQL())
		}
		if msg == "" {
			continue
		}
		failed++
		failedBy[strings.Join(q.uses, "+")]++
		if failed > 5 {
			t.Errorf("case %d (rerun: -first %d -cases 1, uses %v) disagrees (not shrunk: more than 5 failures)", c, c, q.uses)
			continue
		}
		q, ds, msg = shrink(t, db, q, ds, msg)
		t.Errorf("case %d (rerun: -first %d -cases 1, uses %v) disagrees; shrunk to:\nengine SQL: %s\nDuckDB SQL: %s\n%s%s",
			c, c, q.uses, q.engineSQL(), q.duckSQL(), ds, msg)
	}
	t.Logf("%d cases run (%d disagreed %v, %d with no rows) %v, %d skipped (awaiting fixes), in %v",
		ran, failed, failedBy, empty, byShape, skipped, time.Since(start).Round(time.Second))
}

// draw makes case c's query and data; ok is false when the query uses a
// construct listed in awaitingFix (unless -all).
func draw(c int) (*query, dataset, bool) {
	r := rand.New(rand.NewPCG(uint64(c), 14))
	g := &gen{r: r}
	q := g.query(shape(r.IntN(int(numShapes))))
	for _, u := range q.uses {
		if *withAll || !slices.Contains(awaitingFix, u) {
			continue
		}
		if u != "over-before-1970" {
			return q, dataset{}, false
		}
		q.before1970 = false
	}
	return q, genData(r, 3+r.IntN(25), q.inBound, q.before1970), true
}

// check runs q over ds in the engine at three batch sizes and in DuckDB. It
// returns a description of the first disagreement (empty when they agree)
// and an error when DuckDB cannot run its translation.
func check(dir string, db *sql.DB, q *query, ds dataset) (string, error) {
	msg, _, err := checkRows(dir, db, q, ds)
	return msg, err
}

// checkRows is check that also returns the number of rows DuckDB gave.
func checkRows(dir string, db *sql.DB, q *query, ds dataset) (string, int, error) {
	if err := ds.writeFiles(dir); err != nil {
		return "", 0, err
	}
	if _, err := db.Exec(ds.duckDDL()); err != nil {
		return "", 0, fmt.Errorf("loading DuckDB: %w", err)
	}
	cols, kinds := q.columns()
	want, err := duckResult(db, q.duckSQL(), kinds)
	if err != nil {
		return "", 0, err
	}
	for _, batch := range []int{1, 3, 0} {
		lines, err := runEngine(dir, engineDDL+q.engineSQL(), batch)
		if err != nil {
			return fmt.Sprintf("batch size %d: engine error: %v\nDuckDB:\n%s", batch, err, want), len(want), nil
		}
		got, err := engineResult(lines, cols, kinds)
		if err != nil {
			return fmt.Sprintf("batch size %d: %v", batch, err), len(want), nil
		}
		if q.fold {
			got = fold(got, q.nkey)
		}
		if !sameMultiset(got, want) {
			return fmt.Sprintf("batch size %d:\nengine:\n%sDuckDB:\n%s", batch, got, want), len(want), nil
		}
	}
	return "", len(want), nil
}

// fold applies an updating result (EMIT CHANGES, top-N) as upserts keyed by
// its first nkey columns: the state after the last update.
func fold(res result, nkey int) result {
	var out result
	at := map[string]int{}
	for _, row := range res {
		k := fmt.Sprint(row[:nkey])
		if n, ok := at[k]; ok {
			out[n] = row
			continue
		}
		at[k] = len(out)
		out = append(out, row)
	}
	return out
}

// shrink drops rows, select items and clauses while the query still
// disagrees, and returns the smallest disagreeing case found.
func shrink(t *testing.T, db *sql.DB, q *query, ds dataset, msg string) (*query, dataset, string) {
	try := func(q2 *query, ds2 dataset) bool {
		m, err := check(t.TempDir(), db, q2, ds2)
		if err != nil || m == "" {
			return false
		}
		q, ds, msg = q2, ds2, m
		return true
	}
	for budget := 300; budget > 0; {
		progress := false
		for n := 0; n < len(ds.ev) && budget > 0; n++ {
			budget--
			if try(q, dataset{ev: slices.Delete(slices.Clone(ds.ev), n, n+1), dim: ds.dim}) {
				progress = true
				n--
			}
		}
		for n := 0; n < len(ds.dim) && budget > 0; n++ {
			budget--
			if try(q, dataset{ev: ds.ev, dim: slices.Delete(slices.Clone(ds.dim), n, n+1)}) {
				progress = true
				n--
			}
		}
		for n := q.nkey; n < len(q.items) && len(q.items) > 1 && budget > 0 && !q.lastAggregate(); n++ {
			budget--
			q2 := *q
			q2.items = slices.Delete(slices.Clone(q.items), n, n+1)
			if try(&q2, ds) {
				progress = true
				n--
			}
		}
		if q.where != nil {
			budget--
			q2 := *q
			q2.where = nil
			progress = try(&q2, ds) || progress
		}
		if q.having != nil {
			budget--
			q2 := *q
			q2.having = nil
			progress = try(&q2, ds) || progress
		}
		if !progress {
			break
		}
	}
	return q, ds, msg
}
