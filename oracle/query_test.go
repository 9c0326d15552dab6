package oracle

import (
	"fmt"
	"strings"
)

// awaitingFix lists the constructs on which the engine is known to disagree
// with the oracle. The generator can produce each of them; runs skip them
// while they are listed (the -all flag includes them), except that
// over-before-1970 only keeps such queries' data after 1970. Remove an
// entry once its defect is fixed. One line each:
var awaitingFix = []string{}

// shape is the form of a generated query.
type shape int

const (
	project         shape = iota // SELECT exprs FROM ev WHERE p
	aggregate                    // GROUP BY with or without a window, optionally EMIT CHANGES
	overQuery                    // window functions (OVER)
	topN                         // ROW_NUMBER in a derived table filtered by rank
	joinTable                    // stream–table join
	subquery                     // IN / EXISTS / scalar subqueries
	streamJoin                   // interval and windowed joins of two streams
	overThenWindow               // a tumbling aggregate over a derived stream of LAG or LEAD by event time
	finalOverWindow              // EMIT FINAL aggregate over a windowed aggregate's stream
	numShapes
)

func (s shape) String() string {
	return [...]string{"project", "aggregate", "over", "topN", "joinTable", "subquery", "streamJoin", "overThenWindow", "finalOverWindow"}[s]
}

// window is a WINDOW clause; sizes are in seconds.
type window struct {
	kind           string // TUMBLING, SLIDING or SESSION
	size, adv, gap int64
	lateness       int64 // allowed_lateness (update_previous)
}

func (w *window) engine() string {
	switch w.kind {
	case "TUMBLING":
		return fmt.Sprintf("WINDOW TUMBLING (INTERVAL '%d' SECOND)", w.size)
	case "SLIDING":
		return fmt.Sprintf("WINDOW SLIDING (INTERVAL '%d' SECOND, INTERVAL '%d' SECOND)", w.size, w.adv)
	}
	return fmt.Sprintf("WINDOW SESSION (INTERVAL '%d' SECOND)", w.gap)
}

// source returns DuckDB's rows of from (ev or a derived table with its
// columns) assigned to their windows (column ws,
// the window start in epoch milliseconds). A row is late for a window whose
// end (plus w.lateness) is at or below its row watermark wm: late rows are left out, or with
// next (late_data = 'include_in_next_window', TUMBLING only) assigned to
// the window open at their watermark.
func (w *window) source(from, where string, next bool) string {
	adv := w.size
	if w.kind == "SLIDING" {
		adv = w.adv
	}
	a, z := adv*1000, w.size*1000
	floor := func(x string) string { return fmt.Sprintf("(%[1]s - ((%[1]s %% %[2]d) + %[2]d) %% %[2]d)", x, a) }
	start := floor("epoch_ms(ts)") + fmt.Sprintf(" - j * %d", a)
	if next {
		start = fmt.Sprintf("CASE WHEN %[1]s + %[2]d <= wm THEN %[3]s ELSE %[1]s END", floor("epoch_ms(ts)"), z, floor("wm"))
	}
	// With update_previous a closed window is kept allowed_lateness longer.
	keep := z + w.lateness*1000
	return fmt.Sprintf(`(SELECT * FROM (SELECT x.*, %[1]s AS ws
  FROM %[5]s x, (SELECT range AS j FROM range(0, %[3]d)))
  WHERE (wm IS NULL OR ws + %[2]d > wm) AND (%[4]s))`, start, keep, z/a, where, from)
}

// sessions returns DuckDB's rows of ev (those passing where) with their
// session number sid per key.
func (w *window) sessions(keys []expr, where string) string {
	part := ""
	if len(keys) > 0 {
		part = "PARTITION BY " + join(keys, false, ", ")
	}
	return fmt.Sprintf(`(SELECT *, SUM(brk) OVER (%[1]s ORDER BY ts, rid ROWS UNBOUNDED PRECEDING) AS sid FROM (
  SELECT *, CASE WHEN epoch_ms(ts) - epoch_ms(LAG(ts) OVER (%[1]s ORDER BY ts, rid)) < %[2]d THEN 0 ELSE 1 END AS brk
  FROM ev WHERE %[3]s))`, part, w.gap*1000, where)
}

// query is one generated query: its parts can be dropped one by one when a
// disagreement is shrunk.
type query struct {
	shape  shape
	items  []expr // select list (aliases c0, c1, ...)
	where  *expr
	keys   []expr // GROUP BY columns
	win    *window
	having *expr
	// changes: EMIT CHANGES. fold: the output is updates (EMIT CHANGES,
	// update_previous, top-N), compared after folding them by the first
	// nkey columns (the group and window, or partition and rank).
	changes, fold bool
	nkey          int
	// over / topN
	over   string // the OVER clause (engine)
	overDK string // the OVER clause (DuckDB)
	rank   int    // topN: rn <= rank
	// joinTable / subquery / finalOverWindow: the FROM clause or the
	// subquery term, per dialect.
	from, fromDK string
	groupDK      string   // streamJoin: DuckDB's GROUP BY
	next         bool     // reads evn: late_data = 'include_in_next_window'
	derived      bool     // WHERE is a derived stream f the query reads
	uses         []string // awaitingFix constructs this query uses
	before1970   bool     // the data may hold event times before 1970
	inBound      bool     // the data's disorder stays within the watermark bound
}

func join(es []expr, dk bool, sep string) string {
	var s []string
	for _, e := range es {
		if dk {
			s = append(s, e.duck)
		} else {
			s = append(s, e.eng)
		}
	}
	return strings.Join(s, sep)
}

func (q *query) selectList(dk bool) string {
	var s []string
	for n, e := range q.items {
		t := e.eng
		if dk {
			t = e.duck
		}
		s = append(s, fmt.Sprintf("%s AS c%d", t, n))
	}
	return strings.Join(s, ", ")
}

func (q *query) whereText(dk bool) string {
	if q.where == nil {
		return "TRUE"
	}
	if dk {
		return q.where.duck
	}
	return q.where.eng
}

func (q *query) columns() (names []string, kinds []kind) {
	for n, e := range q.items {
		names = append(names, fmt.Sprintf("c%d", n))
		kinds = append(kinds, e.t.kind())
	}
	return names, kinds
}

// engineSQL renders the query in the engine's dialect (after engineDDL).
func (q *query) engineSQL() string {
	var b strings.Builder
	switch q.shape {
	case topN:
		if q.win != nil {
			fmt.Fprintf(&b, "SELECT %s FROM (SELECT *, ROW_NUMBER() OVER (%s) AS rn, window_start AS wst FROM ev WHERE %s %s) WHERE rn <= %d",
				q.selectList(false), q.over, q.whereText(false), q.win.engine(), q.rank)
		} else {
			fmt.Fprintf(&b, "SELECT %s FROM (SELECT *, ROW_NUMBER() OVER (%s) AS rn FROM ev WHERE %s) WHERE rn <= %d",
				q.selectList(false), q.over, q.whereText(false), q.rank)
		}
		return b.String() + ";"
	case finalOverWindow, overThenWindow:
		b.WriteString(q.from)
	}
	from := "ev"
	switch {
	case q.shape == finalOverWindow || q.shape == overThenWindow:
		from = "w"
	case q.from != "":
		from = q.from
	}
	derived := q.derived && q.where != nil
	if derived {
		fmt.Fprintf(&b, "CREATE STREAM f AS SELECT * FROM %s WHERE %s;\n", from, q.where.eng)
		from = "f"
	}
	fmt.Fprintf(&b, "SELECT %s FROM %s", q.selectList(false), from)
	if q.where != nil && !derived {
		b.WriteString(" WHERE " + q.where.eng)
	}
	if len(q.keys) > 0 {
		b.WriteString(" GROUP BY " + join(q.keys, false, ", "))
	}
	if q.win != nil {
		b.WriteString(" " + q.win.engine())
	}
	if q.having != nil {
		b.WriteString(" HAVING " + q.having.eng)
	}
	if q.shape == aggregate || q.shape == finalOverWindow || q.shape == overThenWindow {
		if q.changes {
			b.WriteString(" EMIT CHANGES")
		} else if q.win == nil {
			b.WriteString(" EMIT FINAL")
		}
	}
	return b.String() + ";"
}

// duckSQL renders the query DuckDB evaluates as the expected result.
func (q *query) duckSQL() string {
	where := q.whereText(true)
	var b strings.Builder
	switch q.shape {
	case project, joinTable, subquery, streamJoin:
		from := "ev"
		if q.fromDK != "" {
			from = q.fromDK
		}
		fmt.Fprintf(&b, "SELECT %s FROM %s WHERE %s", q.selectList(true), from, where)
		if q.groupDK != "" {
			b.WriteString(" GROUP BY " + q.groupDK)
		}
	case overQuery:
		src := "ev"
		switch {
		case q.win != nil:
			src = q.win.source("ev", where, q.next)
			where = "TRUE"
		case q.next:
		case strings.Contains(q.over, "ORDER BY ts"):
			// Ordered by event time: a row below its watermark is late.
			where = "(wm IS NULL OR epoch_ms(ts) >= wm) AND " + where
		}
		fmt.Fprintf(&b, "SELECT %s FROM %s WHERE %s", q.selectList(true), src, where)
	case topN:
		src := "ev"
		if q.win != nil {
			src, where = q.win.source("ev", where, false), "TRUE"
		}
		fmt.Fprintf(&b, "SELECT %s FROM (SELECT *, ROW_NUMBER() OVER (%s) AS rn FROM %s WHERE %s) WHERE rn <= %d",
			q.selectList(true), q.overDK, src, where, q.rank)
	case aggregate, finalOverWindow, overThenWindow:
		src, group := "ev", join(q.keys, true, ", ")
		if q.shape != aggregate {
			src = q.fromDK
		}
		switch {
		case q.win == nil:
		case q.win.kind == "SESSION":
			src = q.win.sessions(q.keys, where)
			where = "TRUE"
			group = strings.TrimPrefix(group+", sid", ", ")
		default:
			src = q.win.source(src, where, q.next)
			where = "TRUE"
			group = strings.TrimPrefix(group+", ws", ", ")
		}
		fmt.Fprintf(&b, "SELECT %s FROM %s WHERE %s", q.selectList(true), src, where)
		if group != "" {
			b.WriteString(" GROUP BY " + group)
		}
		having := "TRUE"
		if q.having != nil {
			having = q.having.duck
		}
		if group == "" {
			// The engine's aggregate without GROUP BY emits no row
			// over no rows (SQL's has one).
			having += " AND COUNT(*) > 0"
		}
		b.WriteString(" HAVING " + having)
	}
	return b.String()
}

// lastAggregate reports whether dropping a select item could leave a
// windowed query with neither an aggregate nor GROUP BY (a construct in
// awaitingFix): its aggregates follow its first nkey items.
func (q *query) lastAggregate() bool {
	return q.shape == aggregate && q.win != nil && len(q.keys) == 0 && len(q.items)-q.nkey <= 1
}
