package plan

// Subqueries: IN (SELECT ...), EXISTS, their negations and scalar
// subqueries, uncorrelated or correlated by equalities, planned as joins
// against the subquery's complete result rather than run once per row.
//
// The rewrite, per subquery:
//
//   - Correlation. Conjuncts of the subquery's WHERE of the form
//     inner_expr = outer_expr (inner_expr over the subquery's FROM,
//     outer_expr over the outer query's) become join keys: inner_expr is
//     appended to the subquery's select list (and to its GROUP BY when it
//     aggregates), outer_expr is evaluated over the outer rows. Any other
//     use of an outer column is refused with its position.
//   - Placement. A top-level conjunct of WHERE that is [NOT] IN or [NOT]
//     EXISTS becomes a SemiJoin (AntiJoin for the negations) that filters
//     the outer rows. Any other subquery (inside OR, NOT of a larger
//     expression, CASE, comparisons with a scalar subquery, the select list)
//     becomes a MarkJoin, which appends the IN/EXISTS result as a BOOLEAN
//     column with SQL's three-valued logic, or a ScalarJoin (lookup), which
//     appends the subquery's value; the expression then reads that column.
//   - Boundedness. The subquery's inputs must end (a file, a generator with
//     rows, a table read from one, or a stream derived only from such): the
//     subquery is read to its end before any outer row is answered, so the
//     answer never changes. Over an unbounded input there is no such moment
//     and the query is refused, naming the input and what to do instead.
//   - Tables. A table read directly by a subquery is reduced to its latest
//     row per PRIMARY KEY (LAST_VALUE per key, emitted at the end of its
//     input) before the subquery's WHERE and aggregates see it.
//   - Empty input. An aggregate without GROUP BY yields one row even over
//     no rows (COUNT 0, other aggregates NULL). For an outer row whose
//     correlation key has no subquery rows (or for an uncorrelated subquery
//     over empty input) the operator uses that row, computed at planning
//     time by evaluating the select list (and HAVING) over empty aggregates.

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
)

// SubqueryJoin answers a subquery for every row of Input by joining it
// with the subquery's complete result, Sub (see arrowexec.SubqueryJoinOp).
// Its output columns are Input's visible columns, then, for MarkJoin and
// ScalarJoin, the appended column Name, then Input's row-watermark column
// when Input has event time (which the output keeps).
type SubqueryJoin struct {
	At    ast.Pos
	Input Node // the outer rows (probe side)
	Sub   Node // the subquery (build side), bounded
	Mode  arrowexec.SubqueryMode
	// Exists marks an EXISTS subquery (no values), Not a negated one as
	// written (NOT IN, NOT EXISTS).
	Exists, Not bool
	// ProbeKeys[i] (over Input) = BuildKeys[i] (over Sub): the correlation.
	ProbeKeys, BuildKeys []expr.Expr
	KeyText              []string
	// OuterText names the probe keys as written.
	OuterText []string
	// ProbeValue IN (BuildValue ...) for IN; BuildValue alone for a
	// scalar subquery.
	ProbeValue, BuildValue expr.Expr
	// Missing is the result for outer rows without subquery rows (see
	// arrowexec.SubqueryJoinConfig); nil: FALSE or NULL.
	Missing expr.Expr
	// Name is the appended column; Text the subquery as written.
	Name, Text string

	schema *arrow.Schema
	nVis   int
}

func (s *SubqueryJoin) setSchema() {
	in := s.Input.Schema()
	if s.Mode == arrowexec.SemiJoin || s.Mode == arrowexec.AntiJoin {
		s.schema = in
		s.nVis = len(visibleFields(in))
		return
	}
	fields := append([]arrow.Field(nil), visibleFields(in)...)
	s.nVis = len(fields)
	t := sqltypes.Boolean
	if s.Mode == arrowexec.ScalarJoin {
		t = s.BuildValue.Type()
	}
	fields = append(fields, arrow.Field{Name: s.Name, Type: t, Nullable: true})
	if wm := wmIndex(in); wm >= 0 {
		fields = append(fields, in.Field(wm))
	}
	s.schema = arrow.NewSchema(fields, nil)
}

func (s *SubqueryJoin) Schema() *arrow.Schema { return s.schema }
func (s *SubqueryJoin) Children() []Node      { return []Node{s.Input, s.Sub} }
func (s *SubqueryJoin) EventTime() int        { return s.Input.EventTime() }

func (s *SubqueryJoin) joinName() string {
	switch s.Mode {
	case arrowexec.SemiJoin:
		return "SemiJoin"
	case arrowexec.AntiJoin:
		return "AntiJoin"
	case arrowexec.MarkJoin:
		return "MarkJoin"
	}
	return "LookupJoin"
}

func (s *SubqueryJoin) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", s.joinName(), s.Text)
	if len(s.KeyText) > 0 {
		fmt.Fprintf(&b, " correlated on [%s]", strings.Join(s.KeyText, ", "))
	}
	if s.Mode == arrowexec.MarkJoin || s.Mode == arrowexec.ScalarJoin {
		fmt.Fprintf(&b, " AS %s", s.Name)
	}
	if s.Missing != nil {
		fmt.Fprintf(&b, " (no rows: %s)", s.Missing)
	}
	return b.String()
}

// physical describes the operator Build creates.
func (s *SubqueryJoin) physical() string {
	const built = "the subquery's bounded input is read to its end first while outer rows wait"
	if s.Mode == arrowexec.ScalarJoin && len(s.ProbeKeys) == 0 {
		return fmt.Sprintf("ScalarSubquery %s evaluated once (%s), then appended to every row as the constant %s; more than one row is an error, none is NULL", s.Text, built, s.Name)
	}
	keys := "none (uncorrelated)"
	if len(s.KeyText) > 0 {
		keys = "[" + strings.Join(s.KeyText, ", ") + "]"
	}
	what := map[arrowexec.SubqueryMode]string{
		arrowexec.SemiJoin:   "keeps rows whose IN/EXISTS is TRUE",
		arrowexec.AntiJoin:   "keeps rows whose IN/EXISTS is FALSE (NULL-aware NOT IN)",
		arrowexec.MarkJoin:   "appends IN/EXISTS as TRUE/FALSE/NULL",
		arrowexec.ScalarJoin: "appends the one value per key; more than one row is an error, none is NULL",
	}[s.Mode]
	return fmt.Sprintf("Hash%s keys %s (%s; vectorised hash probe without insertion; %s)", s.joinName(), keys, built, what)
}

func (s *SubqueryJoin) clone() *SubqueryJoin {
	c := *s
	c.ProbeKeys = append([]expr.Expr(nil), s.ProbeKeys...)
	c.BuildKeys = append([]expr.Expr(nil), s.BuildKeys...)
	return &c
}

// mapExprs replaces the expressions over Input by probe(e) and those over
// Sub by build(e) (on a clone: the key slices are the node's own).
func (s *SubqueryJoin) mapExprs(probe, build func(expr.Expr) (expr.Expr, error)) error {
	var err error
	do := func(e *expr.Expr, f func(expr.Expr) (expr.Expr, error)) {
		if *e != nil && err == nil {
			*e, err = f(*e)
		}
	}
	for i := range s.ProbeKeys {
		do(&s.ProbeKeys[i], probe)
		do(&s.BuildKeys[i], build)
	}
	do(&s.ProbeValue, probe)
	do(&s.Missing, probe)
	do(&s.BuildValue, build)
	return err
}

func (s *SubqueryJoin) fold() (Node, error) {
	c := s.clone()
	var err error
	if c.Input, err = fold(s.Input); err != nil {
		return nil, err
	}
	if c.Sub, err = fold(s.Sub); err != nil {
		return nil, err
	}
	if err := c.mapExprs(expr.Fold, expr.Fold); err != nil {
		return nil, err
	}
	c.setSchema()
	return c, nil
}

func (s *SubqueryJoin) pushFilters() Node {
	c := s.clone()
	c.Input, c.Sub = pushFilters(s.Input), pushFilters(s.Sub)
	c.setSchema()
	return c
}

// prune narrows Input to the columns the parent and the probe expressions
// need (and its event time, which the output keeps), and Sub to the keys
// and the value.
func (s *SubqueryJoin) prune(needed []int) (Node, map[int]int) {
	var needIn []int
	for _, c := range needed {
		if c < s.nVis {
			needIn = append(needIn, c)
		}
	}
	for _, e := range append(append([]expr.Expr(nil), s.ProbeKeys...), s.ProbeValue, s.Missing) {
		if e != nil {
			needIn = union(needIn, expr.Columns(e))
		}
	}
	if et := s.Input.EventTime(); et >= 0 {
		needIn = union(needIn, []int{et})
	}
	var needSub []int
	for _, e := range append(append([]expr.Expr(nil), s.BuildKeys...), s.BuildValue) {
		if e != nil {
			needSub = union(needSub, expr.Columns(e))
		}
	}
	if len(needSub) == 0 {
		needSub = []int{0} // EXISTS: only the rows count
	}
	in, mIn := prune(s.Input, union(needIn, nil))
	sub, mSub := prune(s.Sub, needSub)
	c := s.clone()
	c.Input, c.Sub = in, sub
	_ = c.mapExprs(func(e expr.Expr) (expr.Expr, error) { return expr.Remap(e, mIn), nil },
		func(e expr.Expr) (expr.Expr, error) { return expr.Remap(e, mSub), nil })
	c.setSchema()
	out := map[int]int{}
	for old, nw := range mIn {
		if old < s.nVis {
			out[old] = nw
		}
	}
	for i := s.nVis; i < s.schema.NumFields(); i++ {
		out[i] = c.nVis + (i - s.nVis)
	}
	return c, out
}

func (b *opBuilder) buildSubqueryJoin(s *SubqueryJoin) (arrowexec.Operator, error) {
	probe, err := b.build(s.Input)
	if err != nil {
		return nil, err
	}
	build, err := b.build(s.Sub)
	if err != nil {
		_ = probe.Close()
		return nil, err
	}
	what := "subquery"
	switch {
	case s.Mode == arrowexec.ScalarJoin:
		what = "scalar subquery"
	case s.Exists:
		what = "EXISTS subquery"
	case s.ProbeValue != nil:
		what = "IN subquery"
	}
	cfg := arrowexec.SubqueryJoinConfig{
		Query: b.node.Name, Subquery: fmt.Sprintf("%s %s at %s", what, s.Text, s.At), Mode: s.Mode,
		ProbeKeys: s.ProbeKeys, BuildKeys: s.BuildKeys, KeyText: s.OuterText,
		ProbeValue: s.ProbeValue, BuildValue: s.BuildValue, Missing: s.Missing,
		WM: wmIndex(s.Input.Schema()), Schema: s.schema,
	}
	op, err := arrowexec.NewSubqueryJoin(b.alloc, probe, build, cfg)
	if err != nil {
		_ = probe.Close()
		_ = build.Close()
		return nil, at(s.At, err)
	}
	return op, nil
}

// ---- binding ----

// hasSubquery reports whether e contains a subquery (not looking inside
// subqueries).
func hasSubquery(e ast.Expr) bool { return firstSubquery(e) != nil }

// firstSubquery returns the first subquery expression in e, or nil.
func firstSubquery(e ast.Expr) ast.Expr {
	var found ast.Expr
	ast.Inspect(e, func(n ast.Expr) bool {
		switch n.(type) {
		case *ast.InSubquery, *ast.Exists, *ast.Subquery:
			if found == nil {
				found = n
			}
		}
		return found == nil
	})
	return found
}

// checkSubqueryPlacement refuses subqueries where no join can answer them:
// in an aggregating query's select list, GROUP BY or HAVING, or next to
// window functions.
func checkSubqueryPlacement(sel *ast.Select, aggregating bool) error {
	var where []ast.Expr
	if aggregating {
		for _, it := range sel.Items {
			if it.Expr != nil {
				where = append(where, it.Expr)
			}
		}
		where = append(where, sel.GroupBy...)
	}
	if sel.Having != nil {
		where = append(where, sel.Having)
	}
	for _, e := range where {
		if s := firstSubquery(e); s != nil {
			return notSupported(s.Position(), "a subquery in the select list, GROUP BY or HAVING of a query that aggregates or uses window functions (subqueries may be used in WHERE, and in the select list of a plain query; aggregate in a CREATE STREAM ... AS stage and use the subquery in a query over it)")
		}
	}
	return nil
}

// stripNot removes leading NOTs, reporting whether their count is odd.
func stripNot(e ast.Expr) (ast.Expr, bool) {
	neg := false
	for {
		u, ok := e.(*ast.Unary)
		if !ok || u.Op != "NOT" {
			return e, neg
		}
		e, neg = u.X, !neg
	}
}

// isSemiConjunct reports whether a WHERE conjunct is [NOT] IN or [NOT]
// EXISTS (a semi or anti join).
func isSemiConjunct(c ast.Expr) bool {
	c, _ = stripNot(c)
	switch c.(type) {
	case *ast.InSubquery, *ast.Exists:
		return true
	}
	return false
}

// bindWhereSubqueries filters node by a WHERE clause that contains
// subqueries: its plain conjuncts first, then one semi or anti join per
// [NOT] IN / [NOT] EXISTS conjunct, then mark and lookup joins for the
// other subqueries and a filter over their columns.
func (b *selectBinder) bindWhereSubqueries(node Node, where ast.Expr, sc *scope) (Node, error) {
	var plain, semi, rest []ast.Expr
	for _, c := range splitAnd(where) {
		switch {
		case !hasSubquery(c):
			plain = append(plain, c)
		case isSemiConjunct(c):
			semi = append(semi, c)
		default:
			rest = append(rest, c)
		}
	}
	filter := func(node Node, e ast.Expr) (Node, error) {
		pred, err := bindExpr(e, sc)
		if err != nil {
			return nil, err
		}
		if pred, err = predicate(e.Position(), "WHERE", pred); err != nil {
			return nil, err
		}
		return &Filter{Input: node, Pred: pred}, nil
	}
	var err error
	if len(plain) > 0 {
		if node, err = filter(node, andAll(plain)); err != nil {
			return nil, err
		}
	}
	for _, c := range semi {
		inner, neg := stripNot(c)
		mode := arrowexec.SemiJoin
		switch e := inner.(type) {
		case *ast.InSubquery:
			if e.Not {
				neg = !neg
			}
			if hasSubquery(e.X) {
				if node, err = b.planSubqueryValues(node, e.X, sc); err != nil {
					return nil, err
				}
			}
		case *ast.Exists:
			if e.Not {
				neg = !neg
			}
		}
		if neg {
			mode = arrowexec.AntiJoin
		}
		if node, err = b.subqueryJoin(node, sc, inner, mode); err != nil {
			return nil, err
		}
	}
	if len(rest) > 0 {
		w := andAll(rest)
		if node, err = b.planSubqueryValues(node, w, sc); err != nil {
			return nil, err
		}
		if node, err = filter(node, w); err != nil {
			return nil, err
		}
	}
	return node, nil
}

// bindItemSubqueries plans the subqueries of a plain query's select list
// as mark and lookup joins over node.
func (b *selectBinder) bindItemSubqueries(node Node, items []ast.SelectItem, sc *scope) (Node, error) {
	var err error
	for _, it := range items {
		if it.Star || it.Expr == nil || !hasSubquery(it.Expr) {
			continue
		}
		if node, err = b.planSubqueryValues(node, it.Expr, sc); err != nil {
			return nil, err
		}
	}
	return node, nil
}

// planSubqueryValues adds a mark join (IN, EXISTS) or lookup join (scalar
// subquery) over node for every subquery in e not planned yet, and
// registers its column in sc so that binding e reads it.
func (b *selectBinder) planSubqueryValues(node Node, e ast.Expr, sc *scope) (Node, error) {
	var err error
	ast.Inspect(e, func(n ast.Expr) bool {
		if err != nil {
			return false
		}
		mode := arrowexec.MarkJoin
		switch s := n.(type) {
		case *ast.InSubquery:
			if hasSubquery(s.X) {
				if node, err = b.planSubqueryValues(node, s.X, sc); err != nil {
					return false
				}
			}
		case *ast.Subquery:
			mode = arrowexec.ScalarJoin
		case *ast.Exists:
		default:
			return true
		}
		if _, done := sc.subq[n]; !done {
			node, err = b.subqueryJoin(node, sc, n, mode)
		}
		return false
	})
	return node, err
}

// correlation is one equality between the subquery and the outer query.
type correlation struct {
	inner, outer ast.Expr
}

// subqueryJoin plans subquery expression e (an *ast.InSubquery, *ast.Exists
// or *ast.Subquery) over the outer rows node, whose names resolve in sc.
func (b *selectBinder) subqueryJoin(node Node, sc *scope, e ast.Expr, mode arrowexec.SubqueryMode) (Node, error) {
	sj := &SubqueryJoin{At: e.Position(), Input: node, Mode: mode, Text: sql.Format(e)}
	var q *ast.Select
	var x ast.Expr
	switch e := e.(type) {
	case *ast.InSubquery:
		q, x, sj.Not = e.Query, e.X, e.Not
	case *ast.Exists:
		q, sj.Exists, sj.Not = e.Query, true, e.Not
	case *ast.Subquery:
		q = e.Query
	}
	if mode == arrowexec.ScalarJoin {
		sj.Text = "(" + sql.FormatQuery(q) + ")"
	}
	sb := &selectBinder{p: b.p, stateTTL: b.stateTTL, inSubquery: true}
	q2, corr, err := sb.decorrelate(q, sc, sj.Exists, mode == arrowexec.ScalarJoin)
	if err != nil {
		return nil, err
	}
	sub, err := sb.bindSelect(q2)
	if err != nil {
		return nil, explainOuterRef(err, q, sc)
	}
	if err := b.checkBounded(sub, q); err != nil {
		return nil, err
	}
	sj.Sub = sub
	subFields := visibleFields(sub.Schema())
	nItems := len(subFields) - len(corr)

	// correlation keys
	for i, c := range corr {
		plain := *sc
		plain.aliases = nil
		pk, err := bindExpr(c.outer, &plain)
		if err != nil {
			return nil, err
		}
		f := subFields[nItems+i]
		bk := expr.Col(nItems+i, f.Name, f.Type)
		t, err := commonKeyType(pk.Type(), bk.Type())
		if err != nil {
			return nil, errorf(c.outer.Position(), "correlated subquery: %v", err)
		}
		if pk, err = expr.Cast(pk, t); err != nil {
			return nil, at(c.outer.Position(), err)
		}
		if bk, err = expr.Cast(bk, t); err != nil {
			return nil, at(c.outer.Position(), err)
		}
		sj.ProbeKeys = append(sj.ProbeKeys, pk)
		sj.BuildKeys = append(sj.BuildKeys, bk)
		sj.KeyText = append(sj.KeyText, sql.Format(c.inner)+" = "+sql.Format(c.outer))
		sj.OuterText = append(sj.OuterText, sql.Format(c.outer))
	}

	// the value
	def := emptyAggregateRow(sub, q, len(corr) > 0)
	switch {
	case sj.Exists:
		if def.rows {
			sj.Missing = expr.Lit(true, sqltypes.Boolean)
		}
	case nItems != 1:
		what := "IN (SELECT ...)"
		if mode == arrowexec.ScalarJoin {
			what = "a scalar subquery"
		}
		return nil, errorf(q.At, "the subquery returns %d columns; %s needs exactly one", nItems, what)
	case mode == arrowexec.ScalarJoin:
		sj.BuildValue = expr.Col(0, subFields[0].Name, subFields[0].Type)
		if def.rows && def.value != nil {
			if v, ok := expr.IsConst(def.value); ok && v != nil && arrow.TypeEqual(def.value.Type(), sj.BuildValue.Type()) {
				sj.Missing = def.value
			}
		}
	default: // IN
		xe, err := bindExpr(x, sc)
		if err != nil {
			return nil, err
		}
		be := expr.Col(0, subFields[0].Name, subFields[0].Type)
		t, err := commonKeyType(xe.Type(), be.Type())
		if err != nil {
			return nil, errorf(x.Position(), "IN (SELECT ...): %v", err)
		}
		if xe, err = expr.Cast(xe, t); err != nil {
			return nil, at(x.Position(), err)
		}
		if be, err = expr.Cast(be, t); err != nil {
			return nil, at(x.Position(), err)
		}
		sj.ProbeValue, sj.BuildValue = xe, be
		if def.rows && def.value != nil {
			// x IN (one value d) is x = d
			d, err := expr.Cast(def.value, t)
			if err == nil {
				if v, ok := expr.IsConst(d); ok && v == nil {
					sj.Missing = expr.Lit(nil, sqltypes.Boolean)
				} else if m, err := expr.Binary("=", xe, d); err == nil {
					sj.Missing = m
				}
			}
		}
	}
	sj.Name = fmt.Sprintf("$subquery_%d_%d", sj.At.Line, sj.At.Col)
	sj.setSchema()
	if mode == arrowexec.MarkJoin || mode == arrowexec.ScalarJoin {
		col := expr.Col(sj.nVis, sj.Name, sj.schema.Field(sj.nVis).Type)
		if sj.Not {
			if col, err = expr.Unary("NOT", col); err != nil {
				return nil, at(sj.At, err)
			}
		}
		if sc.subq == nil {
			sc.subq = map[ast.Expr]expr.Expr{}
		}
		sc.subq[e] = col
	}
	return sj, nil
}

// decorrelate takes the correlation equalities out of the subquery's WHERE
// and returns the subquery to bind: their inner sides appended to the
// select list (and GROUP BY when it aggregates), as hidden columns after
// the subquery's own. exists and scalar say what the subquery is for.
func (sb *selectBinder) decorrelate(q *ast.Select, outer *scope, exists, scalar bool) (*ast.Select, []correlation, error) {
	q2 := *q
	if !scalar {
		q2.Distinct = false // IN and EXISTS do not care about duplicates
	}
	aggregating := len(q.GroupBy) > 0 || q.Having != nil || q.Window != nil
	for _, it := range q.Items {
		aggregating = aggregating || it.Expr != nil && hasAggregate(it.Expr)
	}
	if exists && !aggregating && firstOver(q.Items) == nil {
		// EXISTS only counts rows: SELECT 1 (a SELECT * of a join may have
		// duplicate names)
		q2.Items = []ast.SelectItem{{At: q.At, Expr: &ast.Literal{At: q.At, Kind: ast.NumberLit, Value: "1"}, Alias: &ast.Ident{At: q.At, Name: "$exists"}}}
	}
	if q.Where == nil {
		return &q2, nil, nil
	}
	// the subquery's own names
	_, isc, err := (&selectBinder{p: sb.p, stateTTL: sb.stateTTL}).bindFrom(q.From)
	if err != nil {
		return nil, nil, err
	}
	aliases := map[string]bool{}
	for _, it := range q.Items {
		if it.Alias != nil {
			aliases[it.Alias.Name] = true
		}
	}
	side := func(ref *ast.ColumnRef) int {
		switch {
		case scopeKnows(isc, ref):
			return 0
		case ref.Qualifier == "" && aliases[ref.Name]:
			return 0
		case scopeKnows(outer, ref):
			return 1
		}
		return 0 // unknown: the binder reports it
	}
	uses := func(e ast.Expr) (inner, out bool, first *ast.ColumnRef) {
		ast.Inspect(e, func(n ast.Expr) bool {
			if ref, ok := n.(*ast.ColumnRef); ok {
				if side(ref) == 1 {
					out = true
					if first == nil {
						first = ref
					}
				} else {
					inner = true
				}
			}
			return true
		})
		return inner, out, first
	}
	var keep []ast.Expr
	var corr []correlation
	for _, c := range splitAnd(q.Where) {
		_, out, first := uses(c)
		if !out {
			keep = append(keep, c)
			continue
		}
		if bin, ok := c.(*ast.Binary); ok && bin.Op == "=" && !hasAggregate(bin) {
			li, lo, _ := uses(bin.L)
			ri, ro, _ := uses(bin.R)
			switch {
			case li && !lo && ro && !ri:
				corr = append(corr, correlation{inner: bin.L, outer: bin.R})
				continue
			case ri && !ro && lo && !li:
				corr = append(corr, correlation{inner: bin.R, outer: bin.L})
				continue
			}
		}
		return nil, nil, errorf(first.At, "correlated subquery: the condition %s uses the outer query's column %s in a way that cannot be planned as a join; "+
			"only equalities between the subquery's and the outer query's columns (sub.col = outer.col), AND-ed in the subquery's WHERE, are supported",
			sql.Format(c), sql.Format(first))
	}
	if len(corr) == 0 {
		return &q2, nil, nil
	}
	switch {
	case q.Limit != nil:
		return nil, nil, notSupported(q.Limit.Position(), "LIMIT in a correlated subquery")
	case firstOver(q.Items) != nil:
		return nil, nil, notSupported(firstOver(q.Items).At, "a window function in a correlated subquery")
	}
	q2.Where = andAll(keep)
	q2.Items = append([]ast.SelectItem(nil), q2.Items...)
	for i, c := range corr {
		q2.Items = append(q2.Items, ast.SelectItem{At: c.inner.Position(), Expr: c.inner,
			Alias: &ast.Ident{At: c.inner.Position(), Name: fmt.Sprintf("$corr_%d", i+1)}})
		if aggregating {
			q2.GroupBy = append(slices.Clip(q2.GroupBy), c.inner)
		}
	}
	return &q2, corr, nil
}

// scopeKnows reports whether ref names a column of sc (perhaps
// ambiguously).
func scopeKnows(sc *scope, ref *ast.ColumnRef) bool {
	if sc == nil {
		return false
	}
	for _, c := range sc.cols {
		if c.name == ref.Name && (ref.Qualifier == "" || containsFold(c.qualifiers, ref.Qualifier)) {
			return true
		}
	}
	return false
}

// explainOuterRef turns "unknown column" errors for outer columns used
// outside the subquery's WHERE equalities into an explanation.
func explainOuterRef(err error, q *ast.Select, outer *scope) error {
	var pe *Error
	if !errors.As(err, &pe) || !(strings.HasPrefix(pe.Msg, "unknown column") || strings.HasPrefix(pe.Msg, "unknown stream or alias")) {
		return err
	}
	var found *ast.ColumnRef
	walkSelect(q, func(e ast.Expr) {
		ast.Inspect(e, func(n ast.Expr) bool {
			if ref, ok := n.(*ast.ColumnRef); ok && ref.At == pe.Pos && scopeKnows(outer, ref) {
				found = ref
			}
			return found == nil
		})
	})
	if found == nil {
		return err
	}
	return errorf(found.At, "correlated subquery: %s is a column of the outer query; the outer query's columns may only be used in equalities with the subquery's columns (sub.col = outer.col) AND-ed in the subquery's WHERE", sql.Format(found))
}

// walkSelect calls f on every expression of q (not of nested subqueries).
func walkSelect(q *ast.Select, f func(ast.Expr)) {
	for _, it := range q.Items {
		if it.Expr != nil {
			f(it.Expr)
		}
	}
	for _, e := range append(append([]ast.Expr{q.Where, q.Having}, q.GroupBy...), q.Limit) {
		if e != nil {
			f(e)
		}
	}
	var from func(ast.FromItem)
	from = func(fi ast.FromItem) {
		if j, ok := fi.(*ast.Join); ok {
			from(j.Left)
			from(j.Right)
			if j.On != nil {
				f(j.On)
			}
		}
	}
	from(q.From)
}

// emptyRow is what an aggregate without GROUP BY yields over no rows.
type emptyRow struct {
	rows  bool      // it yields a row (HAVING, if any, holds)
	value expr.Expr // its first column, a constant (nil: unknown)
}

// emptyAggregateRow computes the row the subquery q (bound as sub)
// returns for an outer row without subquery rows when it aggregates
// without GROUP BY: the select list over empty aggregates (COUNT 0, others
// NULL), if HAVING holds for them. Other subqueries return no row then.
func emptyAggregateRow(sub Node, q *ast.Select, correlated bool) emptyRow {
	if len(q.GroupBy) > 0 || q.Window != nil {
		return emptyRow{}
	}
	n := sub
	if l, ok := n.(*Limit); ok {
		if l.N == 0 {
			return emptyRow{}
		}
		n = l.Input
	}
	p, ok := n.(*Project)
	if !ok || len(p.Exprs) == 0 {
		return emptyRow{}
	}
	n = p.Input
	var having expr.Expr
	if f, ok := n.(*Filter); ok {
		having, n = f.Pred, f.Input
	}
	a, ok := n.(*Aggregate)
	if !ok || a.Window != nil || (!correlated && len(a.Keys) > 0) {
		return emptyRow{}
	}
	repl := map[int]expr.Expr{}
	for i, k := range a.Keys {
		repl[i] = expr.Lit(nil, k.Type())
	}
	first := a.firstAggColumn()
	for i, c := range a.Aggs {
		t := a.schema.Field(first + i).Type
		switch c.Spec.Func {
		case "count", "count_star", "approx_count_distinct":
			repl[first+i] = expr.Lit(int64(0), t)
		default:
			repl[first+i] = expr.Lit(nil, t)
		}
	}
	if having != nil {
		h, err := expr.Fold(expr.Substitute(having, repl))
		if v, ok := expr.IsConst(h); err != nil || !ok || v != true {
			return emptyRow{}
		}
	}
	v, err := expr.Fold(expr.Substitute(p.Exprs[0], repl))
	if _, ok := expr.IsConst(v); err != nil || !ok {
		return emptyRow{rows: true}
	}
	return emptyRow{rows: true, value: v}
}

// latestRows reduces a table scan to the latest row per PRIMARY KEY
// (LAST_VALUE of every other column, emitted at the end of its input), in
// the table's column order, for subqueries that read a table directly.
func latestRows(s *Scan) Node {
	r := s.Relation
	vis := visibleFields(s.Schema())
	a := &Aggregate{Input: s, TimeCol: -1, WMCol: -1}
	pos := make([]int, len(vis))
	isKey := map[int]bool{}
	for _, k := range r.PrimaryKey {
		for i, f := range vis {
			if f.Name == k && !isKey[i] { // column-level keys may be listed twice
				isKey[i] = true
				pos[i] = len(a.Keys)
				a.Keys = append(a.Keys, expr.Col(i, f.Name, f.Type))
				a.KeyNames = append(a.KeyNames, f.Name)
			}
		}
	}
	for i, f := range vis {
		if isKey[i] {
			continue
		}
		pos[i] = len(a.Keys) + len(a.Aggs)
		a.Aggs = append(a.Aggs, AggCall{Spec: agg.Spec{Func: "last_value", Input: f.Type},
			Arg: expr.Col(i, f.Name, f.Type), Name: "last_value(" + f.Name + ")"})
	}
	node := newAggregate(a)
	exprs := make([]expr.Expr, len(vis))
	names := make([]string, len(vis))
	for i, f := range vis {
		out := node.Schema().Field(pos[i])
		exprs[i] = expr.Col(pos[i], out.Name, out.Type)
		names[i] = f.Name
	}
	return newProject(node, exprs, names)
}

// ---- boundedness ----

// unbounded returns a relation n reads that never ends, and the source
// stream or table it comes from (itself unless it is derived).
func (p *Pipeline) unbounded(n Node) (*Relation, *Relation) {
	if s, ok := n.(*Scan); ok {
		r := s.Relation
		if r.Kind != DerivedStream {
			if boundedSource(r) {
				return nil, nil
			}
			return r, r
		}
		for _, q := range p.Queries {
			if q.Output == r.Name {
				if _, root := p.unbounded(q.Plan); root != nil {
					return r, root
				}
				return nil, nil
			}
		}
		return nil, nil
	}
	for _, c := range n.Children() {
		if r, root := p.unbounded(c); r != nil {
			return r, root
		}
	}
	return nil, nil
}

// checkBounded refuses a subquery over an input that never ends.
func (b *selectBinder) checkBounded(sub Node, q *ast.Select) error {
	r, root := b.p.unbounded(sub)
	if r == nil {
		return nil
	}
	pos := q.At
	walkFrom(q.From, func(t *ast.TableRef) {
		if t.Name.Name == r.Name && pos == q.At {
			pos = t.Name.At
		}
	})
	conn := root.Options["connector"]
	if conn == "generator" {
		conn += " with rows = 0"
	}
	what := fmt.Sprintf("%s %q, which never ends (connector %s)", r.noun(), r.Name, conn)
	if r != root {
		what = fmt.Sprintf("stream %q, which is derived from %s %q that never ends (connector %s)", r.Name, root.noun(), root.Name, conn)
	}
	return errorf(pos, "the subquery reads %s: its result is never complete, so no outer row could ever be answered "+
		"(a subquery is read to its end before the outer rows are matched against it). "+
		"Declare the reference data as a CREATE TABLE read from a bounded source (a file, or a generator with rows > 0), "+
		"join a table fed by an unbounded source with a stream–table JOIN (it looks up the current rows), "+
		"or use a JOIN with a time bound (e.g. JOIN ... ON ... WITHIN INTERVAL '5' MINUTE)", what)
}

// walkFrom calls f on every table reference of a FROM clause (not inside
// subqueries).
func walkFrom(fi ast.FromItem, f func(*ast.TableRef)) {
	switch x := fi.(type) {
	case *ast.TableRef:
		f(x)
	case *ast.Join:
		walkFrom(x.Left, f)
		walkFrom(x.Right, f)
	}
}
