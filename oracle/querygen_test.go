package oracle

import (
	"fmt"
	"slices"
	"strings"
)

// aggCall returns a random aggregate call and whether it is a moving
// STDDEV/VARIANCE when used with OVER.
func (g *gen) aggCall() (expr, bool) {
	switch g.pick(12) {
	case 0:
		return same("COUNT(*)", tInt), false
	case 1:
		a := g.scalar([]typ{tInt, tStr, tDbl, tDec}[g.pick(4)], 1)
		return un("COUNT(%s)", a, tInt), false
	case 2:
		return un("COUNT(DISTINCT %s)", g.leaf(tStr), tInt), false
	case 3:
		return un("SUM(%s)", g.scalar(tInt, 1), tInt), false
	case 4:
		return un("SUM(%s)", g.scalar(tDec, 1), tDec), false
	case 5:
		return un("SUM(%s)", g.scalar(tDbl, 1), tDbl), false
	case 6:
		return un("AVG(%s)", g.scalar([]typ{tInt, tDbl, tDec}[g.pick(3)], 1), tDbl), false
	case 7, 8:
		t := []typ{tInt, tDbl, tDec, tStr, tTs}[g.pick(5)]
		return un([]string{"MIN(%s)", "MAX(%s)"}[g.pick(2)], g.scalar(t, 1), t), false
	case 9:
		f := []string{"STDDEV_SAMP", "STDDEV_POP", "VAR_SAMP", "VAR_POP"}[g.pick(4)]
		return un(f+"(%s)", g.scalar([]typ{tInt, tDbl}[g.pick(2)], 1), tDbl), true
	default:
		t := []typ{tInt, tDbl, tDec, tStr, tTs}[g.pick(5)]
		a := g.scalar(t, 1)
		if g.pick(2) == 0 {
			return expr{"FIRST_VALUE(" + a.eng + ")", "first(" + a.duck + " ORDER BY rid)", t}, false
		}
		return expr{"LAST_VALUE(" + a.eng + ")", "last(" + a.duck + " ORDER BY rid)", t}, false
	}
}

func (g *gen) window(session bool) *window {
	if session {
		return &window{kind: "SESSION", gap: []int64{1, 2, 3, 5}[g.pick(4)]}
	}
	size := []int64{1, 2, 5, 10, 30}[g.pick(5)]
	if g.pick(2) == 0 {
		return &window{kind: "TUMBLING", size: size}
	}
	adv := []int64{1, 2, 5}[g.pick(3)]
	return &window{kind: "SLIDING", size: adv * int64(1+g.pick(3)), adv: adv}
}

func (g *gen) items(n int, depth int) []expr {
	var es []expr
	for range n {
		es = append(es, g.scalar([]typ{tInt, tDbl, tDec, tStr, tBool, tTs}[g.pick(6)], depth))
	}
	return es
}

func (g *gen) maybeWhere() *expr {
	if g.pick(2) == 0 {
		return nil
	}
	w := g.scalar(tBool, 1+g.pick(2))
	return &w
}

// query draws a query of the given shape.
func (g *gen) query(s shape) *query {
	q := &query{shape: s, before1970: true}
	switch s {
	case project:
		q.items = g.items(1+g.pick(4), 3)
		q.where = g.maybeWhere()
	case aggregate:
		g.aggregate(q)
	case overQuery:
		g.over(q)
	case topN:
		part := g.leaf(tStr)
		ot := []typ{tInt, tDbl, tDec, tStr}[g.pick(4)]
		ord := g.leaf(ot)
		dir, nulls := "ASC", "NULLS LAST"
		if g.pick(2) == 0 {
			dir, nulls = "DESC", "NULLS FIRST"
		}
		q.over = fmt.Sprintf("PARTITION BY %s ORDER BY %s %s", part.eng, ord.eng, dir)
		q.overDK = fmt.Sprintf("PARTITION BY %s ORDER BY %s %s %s, rid", part.duck, ord.duck, dir, nulls)
		q.rank = 1 + g.pick(3)
		q.items = []expr{part, same("rn", tInt), ord}
		q.nkey = 2
		q.fold = true
		q.where = g.maybeWhere()
		if g.pick(3) == 0 {
			// Windowed: the top N of each window, emitted at its close.
			q.win = g.window(false)
			q.fold = false
			q.overDK = strings.Replace(q.overDK, " ORDER BY", ", ws ORDER BY", 1)
			q.items = append(q.items, expr{"wst", "make_timestamp(ws * 1000)", tTs})
		}
	case joinTable:
		g.qual = "e."
		q.items = append(g.items(1+g.pick(3), 2), same("t.label", tStr), same("t.w", tInt))
		q.where = g.maybeWhere()
		g.qual = ""
		kind := []string{"JOIN", "LEFT JOIN"}[g.pick(2)]
		q.from = "ev e " + kind + " dimt t ON e.k = t.k"
		q.fromDK = "ev e " + kind + " " + latestDim + " t ON e.k = t.k"
	case subquery:
		g.subquery(q)
	case streamJoin:
		g.streamJoin(q)
	case finalOverWindow:
		g.finalOverWindow(q)
	case overThenWindow:
		g.overThenWindow(q)
	}
	return q
}

func (g *gen) aggregate(q *query) {
	session := g.pick(5) == 0
	if g.pick(4) != 0 || session {
		q.win = g.window(session)
	}
	if g.pick(3) != 0 || session && g.pick(2) == 0 {
		q.keys = []expr{same([]string{"k", "s"}[g.pick(2)], tStr)}
		if g.pick(4) == 0 {
			q.keys = append(q.keys, same("i", tInt))
		}
	}
	q.items = slices.Clone(q.keys)
	if q.win != nil {
		ws, we := g.windowBounds(q.win)
		if g.pick(2) == 0 {
			q.items = append(q.items, ws)
		}
		if g.pick(2) == 0 {
			q.items = append(q.items, we)
		}
	}
	q.nkey = len(q.items)
	n := 1 + g.pick(3)
	if q.win != nil && len(q.keys) == 0 && g.pick(8) == 0 {
		n = 0
		q.uses = append(q.uses, "window-without-aggregate")
	}
	for range n {
		a, _ := g.aggCall()
		q.items = append(q.items, a)
	}
	if len(q.items) == 0 {
		ws, _ := g.windowBounds(q.win)
		q.items = append(q.items, ws)
	}
	q.where = g.maybeWhere()
	if n > 0 && g.pick(3) == 0 {
		a, _ := g.aggCall()
		h := bin("(%s > %s)", a, g.literal(a.t), tBool)
		if a.t == tStr || a.t == tTs {
			h = un("(%s IS NOT NULL)", a, tBool)
		}
		q.having = &h
	}
	q.changes = q.win == nil && g.pick(2) == 0 || q.win != nil && q.win.kind != "SESSION" && g.pick(4) == 0
	update := !q.changes && q.win != nil && q.win.kind != "SESSION" && g.pick(4) == 0
	if update {
		// late_data = 'update_previous', allowed_lateness = '10s': a
		// window's last revision holds its late rows within 10 s.
		q.from, q.win.lateness = "evu", 10
		q.uses = append(q.uses, "update-previous-unopened-window")
	}
	if q.changes || update {
		// Compared as the state after the last update of each group and
		// window, which needs the key columns selected.
		q.fold = true
		q.items = append(slices.Clone(q.keys), q.items[len(q.keys):]...)
		if q.win != nil {
			ws, _ := g.windowBounds(q.win)
			q.items = append(slices.Clone(q.keys), append([]expr{ws}, q.items[len(q.keys):]...)...)
			q.nkey = len(q.keys) + 1
			if q.changes {
				q.uses = append(q.uses, "emit-changes-window")
			}
		} else {
			q.nkey = len(q.keys)
		}
		if q.having != nil {
			// A group can leave a HAVING result; updates never delete it.
			q.having = nil
		}
		if q.win == nil && len(q.keys) == 0 {
			q.changes, q.fold = false, false
		}
	}
	if q.win != nil && q.win.kind == "SESSION" {
		q.inBound = true
	}
	if q.win != nil && q.win.kind == "TUMBLING" && !update && g.pick(3) == 0 {
		q.next, q.from = true, "evn"
	}
	if q.win != nil && q.where != nil && g.pick(3) == 0 {
		// The filter as a derived stream: row watermarks pass through it.
		q.derived = true
	}
}

// windowBounds returns window_start and window_end of w in both dialects.
func (g *gen) windowBounds(w *window) (start, end expr) {
	if w.kind == "SESSION" {
		return expr{"window_start", "MIN(ts)", tTs}, expr{"window_end", fmt.Sprintf("MAX(ts) + INTERVAL '%d' SECOND", w.gap), tTs}
	}
	return expr{"window_start", "make_timestamp(ws * 1000)", tTs}, expr{"window_end", fmt.Sprintf("make_timestamp((ws + %d) * 1000)", w.size*1000), tTs}
}

// over draws window-function queries: over the whole bounded input ordered
// by a non-time column, ordered by event time (incremental, late rows
// dropped), or within TUMBLING/SLIDING windows.
func (g *gen) over(q *query) {
	part := ""
	partDK := ""
	if g.pick(3) != 0 {
		p := g.leaf(tStr)
		part, partDK = "PARTITION BY "+p.eng+" ", "PARTITION BY "+p.duck
	}
	mode := g.pick(3)
	var ord, ordDK string
	switch mode {
	case 0: // event time
		ord, ordDK = "ORDER BY ts", "ts"
		if g.pick(3) == 0 {
			// A late row is processed as if its event time were its
			// watermark.
			q.next, q.from = true, "evn"
			ordDK = "CASE WHEN epoch_ms(ts) < wm THEN wm ELSE epoch_ms(ts) END"
		}
	default:
		ot := []typ{tInt, tDbl, tDec, tStr}[g.pick(4)]
		o := g.leaf(ot)
		dir, nulls := "ASC", "NULLS LAST"
		if g.pick(2) == 0 {
			dir, nulls = "DESC", "NULLS FIRST"
		}
		ord, ordDK = "ORDER BY "+o.eng+" "+dir, o.duck+" "+dir+" "+nulls
	}
	noOrder := mode != 0 && g.pick(5) == 0
	if noOrder {
		// Without ORDER BY rows are taken in arrival order and are all
		// peers; in a window a call's frame is the whole partition.
		ord = ""
	}
	if mode == 2 {
		q.win = g.window(false)
		if partDK == "" {
			partDK = "PARTITION BY ws"
		} else {
			partDK += ", ws"
		}
		ws, _ := g.windowBounds(q.win)
		q.items = append(q.items, ws)
	} else if mode == 1 && !noOrder {
		q.uses = append(q.uses, "over-before-1970")
	}
	q.over = part + ord
	q.overDK = partDK
	spec := func(ties bool, frame string) string {
		o := ordDK
		switch {
		case noOrder && !ties:
			return "(" + partDK + ")"
		case noOrder:
			o = "rid"
			if q.win != nil && frame != "" {
				frame = "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
			}
		case ties:
			o += ", rid"
		}
		return fmt.Sprintf("(%s ORDER BY %s %s)", partDK, o, frame)
	}
	q.items = append(q.items, g.items(1+g.pick(2), 1)...)
	lead := false
	for range 1 + g.pick(3) {
		frame := "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
		frameEng := ""
		if g.pick(2) == 0 && !(noOrder && q.win != nil) {
			n := g.pick(4)
			frame = fmt.Sprintf("ROWS BETWEEN %d PRECEDING AND CURRENT ROW", n)
			frameEng = " " + frame
		}
		over := " OVER (" + q.over + frameEng + ")"
		switch g.pick(6) {
		case 0:
			q.items = append(q.items, expr{"ROW_NUMBER()" + over, "ROW_NUMBER() OVER " + spec(true, ""), tInt})
		case 1:
			f := []string{"RANK()", "DENSE_RANK()"}[g.pick(2)]
			if q.next {
				// A late row is ordered at its watermark but keeps its
				// event time, which RANK compares: its peers are not
				// modelled here.
				f = "ROW_NUMBER()"
			}
			q.items = append(q.items, expr{f + over, f + " OVER " + spec(q.next, ""), tInt})
		case 2:
			t := []typ{tInt, tDec, tStr, tDbl}[g.pick(4)]
			a := g.scalar(t, 1)
			f := "LAG"
			if g.pick(3) == 0 && !lead {
				f, lead = "LEAD", true
				over = " OVER (" + q.over + ")" // all LEADs share one OVER clause
			}
			off := 1 + g.pick(2)
			q.items = append(q.items, expr{fmt.Sprintf("%s(%s, %d)%s", f, a.eng, off, over), fmt.Sprintf("%s(%s, %d) OVER %s", f, a.duck, off, spec(true, "")), t})
		default:
			a, moving := g.overAgg()
			if moving {
				q.uses = append(q.uses, "moving-stddev")
			}
			q.items = append(q.items, expr{a.eng + over, a.duck + " OVER " + spec(true, frame), a.t})
		}
	}
	q.where = g.maybeWhere()
}

// overAgg returns an aggregate usable as a window function (DuckDB's
// FIRST_VALUE and LAST_VALUE keep NULLs, as the engine's do) and whether it
// is a moving STDDEV/VARIANCE.
func (g *gen) overAgg() (expr, bool) {
	for {
		a, moving := g.aggCall()
		switch {
		case strings.HasPrefix(a.eng, "COUNT(DISTINCT"):
			continue
		case strings.HasPrefix(a.eng, "FIRST_VALUE"), strings.HasPrefix(a.eng, "LAST_VALUE"):
			a.duck = strings.ToUpper(a.eng[:strings.Index(a.eng, "(")]) + strings.TrimSuffix(a.duck[strings.Index(a.duck, "("):], " ORDER BY rid)") + ")"
		}
		return a, moving
	}
}

// latestDim is DuckDB's view of the table dimt: the latest row per key.
const latestDim = "(SELECT * FROM dim WHERE k IS NOT NULL QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY rid DESC) = 1)"

// subqueries are predicates on ev with subqueries over dim (a bounded
// stream) and dimt (its table: the latest row per key).
var subqueries = []string{
	"k IN (SELECT k FROM dim WHERE w > 0)",
	"k NOT IN (SELECT k FROM dim WHERE w < 5)",
	"i IN (SELECT w FROM dim)",
	"i NOT IN (SELECT w FROM dim WHERE label IS NOT NULL)",
	"EXISTS (SELECT 1 FROM dim WHERE dim.k = ev.k)",
	"NOT EXISTS (SELECT 1 FROM dim WHERE dim.k = ev.k AND dim.w > 0)",
	"k IN (SELECT k FROM dim WHERE w IN (SELECT w FROM dim WHERE label <> ''))",
	"i > (SELECT AVG(w) FROM dim)",
	"(SELECT COUNT(*) FROM dim WHERE dim.k = ev.k) > 1",
	"k IN (SELECT k FROM dimt WHERE w > 0)",
	"EXISTS (SELECT 1 FROM dimt WHERE dimt.k = ev.k AND dimt.label = 'one')",
}

// scalarSubqueries are select items with scalar subqueries.
var scalarSubqueries = []expr{
	same("(SELECT MAX(w) FROM dim WHERE dim.k = ev.k)", tInt),
	same("(SELECT COUNT(*) FROM dim WHERE dim.k = ev.k)", tInt),
	same("(SELECT SUM(w) FROM dim)", tInt),
	same("(SELECT w FROM dimt WHERE dimt.k = ev.k)", tInt),
	same("k IN (SELECT k FROM dim)", tBool),
}

func (g *gen) subquery(q *query) {
	q.items = g.items(1+g.pick(3), 2)
	q.where = g.maybeWhere()
	if g.pick(3) == 0 {
		q.items = append(q.items, scalarSubqueries[g.pick(len(scalarSubqueries))])
	} else {
		term := same(subqueries[g.pick(len(subqueries))], tBool)
		switch {
		case q.where == nil:
			q.where = &term
		case g.pick(3) == 0: // a mark join
			w := bin("(%s OR %s)", *q.where, term, tBool)
			q.where = &w
		default:
			w := bin("%s AND %s", *q.where, term, tBool)
			q.where = &w
		}
	}
	q.fromDK = "ev"
	for n, e := range q.items {
		q.items[n].duck = strings.ReplaceAll(e.duck, "FROM dimt", "FROM "+latestDim+" dimt")
	}
	if q.where != nil {
		w := *q.where
		w.duck = strings.ReplaceAll(w.duck, "FROM dimt", "FROM "+latestDim+" dimt")
		q.where = &w
	}
}

// finalOverWindow: an EMIT FINAL aggregate reading a tumbling aggregate's
// stream w.
func (g *gen) finalOverWindow(q *query) {
	size := []int64{1, 2, 5, 10}[g.pick(4)]
	q.from = fmt.Sprintf("CREATE STREAM w AS SELECT k, COUNT(*) AS n, SUM(i) AS si, window_start FROM ev GROUP BY k WINDOW TUMBLING (INTERVAL '%d' SECOND);\n", size)
	wnd := &window{kind: "TUMBLING", size: size}
	q.fromDK = "(SELECT k, COUNT(*) AS n, SUM(i) AS si, ws FROM " + wnd.source("ev", "TRUE", false) + " GROUP BY k, ws)"
	q.keys = []expr{same("k", tStr)}
	q.items = []expr{same("k", tStr), same("SUM(n)", tInt), same("MAX(si)", tInt), same("COUNT(*)", tInt)}
	q.uses = append(q.uses, "final-over-window")
}

// streamJoin joins ev with itself (aliases a and b) within a time bound or
// a tumbling window, over data whose disorder stays within the watermark
// bound: no row is late, so the result is SQL's join.
func (g *gen) streamJoin(q *query) {
	q.inBound = true
	kind := []string{"JOIN", "LEFT JOIN"}[g.pick(2)]
	g.qual = "a."
	q.items = g.items(1+g.pick(2), 1)
	q.where = g.maybeWhere()
	g.qual = "b."
	q.items = append(q.items, g.items(1+g.pick(2), 1)...)
	g.qual = ""
	lo, hi := g.pick(6)-3, g.pick(6)
	if lo > hi {
		lo, hi = hi, lo
	}
	switch g.pick(3) {
	case 0:
		cond := fmt.Sprintf("a.k = b.k AND b.ts BETWEEN a.ts + INTERVAL '%d' SECOND AND a.ts + INTERVAL '%d' SECOND", lo, hi)
		q.from = "ev a " + kind + " ev b ON " + cond
		q.fromDK = q.from
	case 1:
		q.from = fmt.Sprintf("ev a %s ev b ON a.k = b.k WITHIN INTERVAL '%d' SECOND", kind, hi)
		q.fromDK = fmt.Sprintf("ev a %s ev b ON a.k = b.k AND abs(epoch_ms(b.ts) - epoch_ms(a.ts)) <= %d", kind, hi*1000)
	default:
		size := []int64{1, 2, 5, 10}[g.pick(4)]
		q.win = &window{kind: "TUMBLING", size: size}
		q.from = "ev a " + kind + " ev b ON a.k = b.k"
		z := size * 1000
		fl := func(c string) string {
			return fmt.Sprintf("(epoch_ms(%[1]s.ts) - ((epoch_ms(%[1]s.ts) %% %[2]d) + %[2]d) %% %[2]d)", c, z)
		}
		q.fromDK = fmt.Sprintf("ev a %s ev b ON a.k = b.k AND %s = %s", kind, fl("a"), fl("b"))
		ws := expr{"window_start", "make_timestamp(" + fl("a") + " * 1000)", tTs}
		if g.pick(2) == 0 {
			q.items = append(q.items, ws)
			return
		}
		// Aggregated: the groups use the join's windows.
		q.keys = []expr{same("a.k", tStr)}
		q.groupDK = "a.k, " + fl("a")
		q.items = []expr{same("a.k", tStr), ws}
		for len(q.items) < 3+g.pick(3) {
			g.qual = []string{"a.", "b."}[g.pick(2)]
			// FIRST_VALUE and LAST_VALUE are left out: the order of
			// a self-join's pairs is not the input's.
			if a, _ := g.aggCall(); !strings.Contains(a.duck, "ORDER BY rid") {
				q.items = append(q.items, a)
			}
		}
		g.qual = ""
	}
}

// overThenWindow: a tumbling aggregate reading a derived stream w of LAG or
// LEAD ordered by event time. Rows below their watermark are dropped by the
// OVER; the rest come out with watermarks that make none late downstream.
func (g *gen) overThenWindow(q *query) {
	f := "LAG"
	if g.pick(2) == 0 {
		f = "LEAD"
		q.uses = append(q.uses, "lead-watermark-hold")
	}
	part := []string{"k", "s"}[g.pick(2)]
	q.from = fmt.Sprintf("CREATE STREAM w AS SELECT k, s, i, ts, %s(i) OVER (PARTITION BY %s ORDER BY ts) AS p FROM ev;\n", f, part)
	// No row of w is late downstream: its wm is NULL.
	q.fromDK = fmt.Sprintf("(SELECT k, s, i, ts, NULL AS wm, rid, %s(i) OVER (PARTITION BY %s ORDER BY ts, rid) AS p FROM ev WHERE wm IS NULL OR epoch_ms(ts) >= wm)", f, part)
	if g.pick(3) == 0 {
		// An interval join instead (its output time is a's), over data
		// without late rows.
		q.uses, q.inBound = nil, true
		lo, hi := g.pick(4)-3, g.pick(4)
		cond := fmt.Sprintf("a.k = b.k AND b.ts BETWEEN a.ts + INTERVAL '%d' SECOND AND a.ts + INTERVAL '%d' SECOND", lo, hi)
		q.from = "CREATE STREAM w AS SELECT a.k AS k, a.s AS s, a.i AS i, a.ts AS ts, b.i AS p FROM ev a JOIN ev b ON " + cond + ";\n"
		q.fromDK = "(SELECT a.k, a.s, a.i, a.ts, NULL AS wm, a.rid, b.i AS p FROM ev a JOIN ev b ON " + cond + ")"
	}
	q.win = &window{kind: "TUMBLING", size: []int64{1, 2, 5, 10}[g.pick(4)]}
	q.keys = []expr{same("k", tStr)}
	ws, _ := g.windowBounds(q.win)
	q.items = []expr{same("k", tStr), ws, same("COUNT(*)", tInt), same("SUM(p)", tInt), same("MAX(i)", tInt)}
	q.nkey = 2
}
