package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/plan/ast"
)

// An updating top-N is the pattern
//
//	SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY p ORDER BY k) AS rn FROM s) [AS t]
//	WHERE rn <= N          -- or rn < N+1, or rn = 1
//
// where ORDER BY k is not the event time (which an unbounded stream could
// not be sorted by). The derived table's Over node then keeps N rows per
// partition and emits upserts keyed (partition, rn) as rows arrive
// (arrowexec.TopNOp), on bounded and unbounded inputs alike; the outer
// filter stays (every row it sees passes it). The outer query sees the
// filter, the derived table the window function: the outer binder offers
// the filter to the derived table it reads (topNHint), which takes it
// when its select list fits (topNShape). A subquery (IN, EXISTS, scalar)
// offers no filter: its rows must be final, so over its bounded input it
// ranks at the end as before. Only ROW_NUMBER is supported;
// a RANK or DENSE_RANK filtered the same way over an unbounded stream is
// refused.

// topNHint is an outer query's filter on a derived table's column: col
// <= n.
type topNHint struct {
	col  string
	qual string // the column's qualifier as written ("" if none)
	n    int64
}

// topNFilter returns the rank filter sel offers the derived table it
// reads, or nil: sel reads one derived table, does not aggregate or call
// window functions, and its WHERE is exactly `col <= N`, `col < N` (N >
// 1) or `col = 1` (or the same written the other way round, `N >= col`),
// N an integer literal up to 2^20.
func topNFilter(sel *ast.Select) *topNHint {
	sub, ok := sel.From.(*ast.SubqueryRef)
	if !ok || sel.Where == nil || sel.Window != nil || len(sel.GroupBy) > 0 || sel.Having != nil || firstOver(sel.Items) != nil || hasAggregateItem(sel.Items) {
		return nil
	}
	bin, ok := sel.Where.(*ast.Binary)
	if !ok {
		return nil
	}
	op, l, r := bin.Op, bin.L, bin.R
	if _, litLeft := l.(*ast.Literal); litLeft { // 10 >= rn
		flip := map[string]string{">=": "<=", ">": "<", "=": "="}
		op, l, r = flip[op], r, l
	}
	col, ok := l.(*ast.ColumnRef)
	lit, isLit := r.(*ast.Literal)
	if !ok || !isLit || lit.Kind != ast.NumberLit {
		return nil
	}
	if col.Qualifier != "" && (sub.Alias == nil || col.Qualifier != sub.Alias.Name) {
		return nil
	}
	v, err := strconv.ParseInt(lit.Value, 10, 64)
	if err != nil {
		return nil
	}
	switch op {
	case "<=":
	case "<":
		v--
	case "=":
		if v != 1 {
			return nil
		}
	default:
		return nil
	}
	if v < 1 || v > 1<<20 {
		return nil
	}
	return &topNHint{col: col.Name, qual: col.Qualifier, n: v}
}

// topNShape reports whether sel (a derived table refused as ordered by
// other than event time) is a top-N under hint: its only window function
// is a ROW_NUMBER() OVER (... ORDER BY ...) selected as hint's column, with
// no WINDOW clause and no LIMIT. RANK or DENSE_RANK in its place is an error over an
// unbounded input (a bounded one still ranks its whole input at its end).
func topNShape(sel *ast.Select, hint *topNHint, unbounded bool) (bool, error) {
	call, calls := rankCall(sel, hint)
	if call == nil || calls != 1 || sel.Window != nil || sel.Limit != nil || len(call.Over.OrderBy) == 0 {
		return false, nil
	}
	switch call.Name {
	case "row_number":
		return true, nil
	case "rank", "dense_rank":
		if unbounded {
			return false, notSupported(call.At, fmt.Sprintf("%s in an updating top-N over an unbounded stream (only ROW_NUMBER() ... WHERE rn <= N is)", strings.ToUpper(call.Name)))
		}
	}
	return false, nil
}

// windowedTopNShape reports whether sel, with a WINDOW clause, is a
// windowed top-N under hint: its only window function is a ROW_NUMBER()
// selected as hint's column, with no LIMIT. Its Over node then keeps
// only the rows ranked 1..N per partition and window (Over.Prune): the
// same rows, ranks and emission as ranking every row, since hint's
// filter drops the others.
func windowedTopNShape(sel *ast.Select, hint *topNHint) bool {
	call, calls := rankCall(sel, hint)
	return call != nil && calls == 1 && sel.Window != nil && sel.Limit == nil && call.Name == "row_number"
}

// windowedRanking reports whether sel, with a WINDOW clause, ranks by
// ROW_NUMBER, its only window function, selected under a name of its own
// (a stream whose readers all filter by rank is fused into them, which
// then prune: windowedTopNShape).
func windowedRanking(sel *ast.Select) bool {
	if sel.Window == nil || sel.Limit != nil {
		return false
	}
	call, calls := windowCall(sel, func(_ string, f *ast.FuncCall) bool { return f.Name == "row_number" })
	return calls == 1 && call != nil
}

// rankCall returns the window call sel selects as hint's column (nil if
// none) and how many window calls sel makes.
func rankCall(sel *ast.Select, hint *topNHint) (*ast.FuncCall, int) {
	return windowCall(sel, func(name string, _ *ast.FuncCall) bool { return name == hint.col })
}

// windowCall returns the last select item of sel that is a window call
// for which match (given the item's output name) holds, nil if none, and
// how many window calls sel makes in all.
func windowCall(sel *ast.Select, match func(name string, f *ast.FuncCall) bool) (*ast.FuncCall, int) {
	var call *ast.FuncCall
	calls := 0
	for i, it := range sel.Items {
		if it.Expr == nil {
			continue
		}
		ast.Inspect(it.Expr, func(e ast.Expr) bool {
			if f, ok := e.(*ast.FuncCall); ok && f.Over != nil {
				calls++
			}
			return true
		})
		name := implicitName(it.Expr, i)
		if it.Alias != nil {
			name = it.Alias.Name
		}
		if f, ok := it.Expr.(*ast.FuncCall); ok && f.Over != nil && match(name, f) {
			call = f
		}
	}
	return call, calls
}

// buildTopN makes the operator of an Over node with TopN set.
func (b *opBuilder) buildTopN(n *Over) (arrowexec.Operator, error) {
	in, err := b.build(n.Input)
	if err != nil {
		return nil, err
	}
	spec := n.Specs[n.Calls[0].Spec]
	return arrowexec.NewTopN(b.alloc, in, arrowexec.TopNConfig{
		Query: b.node.Name, PartitionBy: spec.PartitionBy, OrderBy: spec.OrderBy, N: n.TopN, Schema: n.Schema(),
	})
}

// topNPhysical describes the operator of an Over node with TopN set.
func topNPhysical(n *Over) string {
	return fmt.Sprintf("TopN %d per partition, updating (upserts keyed by partition and rank; at most %d rows kept per partition, copied out of their batches)", n.TopN, n.TopN)
}

// ---- the two-query form ----
//
//	CREATE STREAM ranked AS SELECT ..., ROW_NUMBER() OVER (...) AS rn FROM s;
//	SELECT ... FROM ranked WHERE rn <= N;
//
// ranked alone cannot be computed over an unbounded stream (and over a
// bounded one it ranks every row at the end of input). When ranked has no
// sink and every query that reads it does so as above (FROM ranked
// directly, filtered by rank alone), the ranking is fused into each
// reader as its derived table: ranked does not exist as a stream of its
// own (no query computes it, nothing exports it), and each reader runs an
// updating top-N. A ranking ordered by event time is not fused: it runs as
// its own stream, as before. A windowed ranking (WINDOW clause, its one
// window function a ROW_NUMBER, windowedRanking) is fused too: each
// reader then ranks per window keeping only N rows per partition
// (windowedTopNShape), and emits the same rows as before when windows
// close.

// fusableRankings returns the CREATE STREAM ... AS statements without
// sink options whose select list calls a window function and whose every
// reader (any later statement mentioning the name, in FROM, a join or a
// subquery) is a top-N over it (rankingReader).
func fusableRankings(stmts []ast.Statement) map[string]bool {
	out := map[string]bool{}
	for i, st := range stmts {
		c, ok := st.(*ast.CreateAs)
		if !ok || c.Table || len(c.With) > 0 || firstOver(c.Query.Items) == nil {
			continue
		}
		refs, readers := 0, 0
		for _, later := range stmts[i+1:] {
			q := statementQuery(later)
			if q == nil {
				continue
			}
			refs += countRefs(q, c.Name.Name)
			if rankingReader(q, c.Name.Name) != nil {
				readers++
			}
		}
		if readers > 0 && readers == refs {
			out[c.Name.Name] = true
		}
	}
	return out
}

func statementQuery(st ast.Statement) *ast.Select {
	switch s := st.(type) {
	case *ast.CreateAs:
		return s.Query
	case *ast.SelectStatement:
		return s.Query
	}
	return nil
}

// rankingReader returns sel reading the stream name as a derived table
// (fused is its query, nil to leave a placeholder) when sel reads name
// directly (FROM name [alias]) filtered by rank alone (topNFilter), else
// nil.
func rankingReader(sel *ast.Select, name string) *ast.Select {
	return fuseReader(sel, name, &ast.Select{})
}

func fuseReader(sel *ast.Select, name string, fused *ast.Select) *ast.Select {
	t, ok := sel.From.(*ast.TableRef)
	if !ok || t.Name.Name != name {
		return nil
	}
	alias := t.Alias
	if alias == nil {
		alias = &ast.Ident{At: t.Name.At, Name: name}
	}
	out := *sel
	out.From = &ast.SubqueryRef{At: t.At, Query: fused, Alias: alias}
	if topNFilter(&out) == nil {
		return nil
	}
	return &out
}

// countRefs counts the mentions of the stream name in sel: in FROM,
// joins, derived tables, subqueries and UNIONs.
func countRefs(sel *ast.Select, name string) int {
	n := 0
	tableRefs(sel, func(t *ast.TableRef) {
		if t.Name.Name == name {
			n++
		}
	})
	return n
}

// tableRefs calls f on every stream or table reference of sel, in text
// order: in FROM, joins, derived tables, subqueries and UNIONs.
func tableRefs(sel *ast.Select, f func(*ast.TableRef)) {
	if sel == nil {
		return
	}
	exprs := func(e ast.Expr) {
		ast.Inspect(e, func(x ast.Expr) bool {
			switch s := x.(type) {
			case *ast.InSubquery:
				tableRefs(s.Query, f)
			case *ast.Exists:
				tableRefs(s.Query, f)
			case *ast.Subquery:
				tableRefs(s.Query, f)
			}
			return true
		})
	}
	var from func(fi ast.FromItem)
	from = func(fi ast.FromItem) {
		switch x := fi.(type) {
		case *ast.TableRef:
			f(x)
		case *ast.SubqueryRef:
			tableRefs(x.Query, f)
		case *ast.Join:
			from(x.Left)
			from(x.Right)
			exprs(x.On)
		}
	}
	for _, it := range sel.Items {
		exprs(it.Expr)
	}
	from(sel.From)
	exprs(sel.Where)
	for _, g := range sel.GroupBy {
		exprs(g)
	}
	exprs(sel.Having)
	tableRefs(sel.Union, f)
}

// isStreamOrder reports whether err is the refusal to order an unbounded
// stream by other than its event time.
func isStreamOrder(err error) bool {
	var pe *Error
	return errors.As(err, &pe) && errors.Is(pe.Err, errStreamOrder)
}

// ranksWholeInput reports whether n ranks a bounded input at its end.
func ranksWholeInput(n Node) bool {
	if o, ok := n.(*Over); ok && o.Window == wholeInput {
		return true
	}
	for _, c := range n.Children() {
		if ranksWholeInput(c) {
			return true
		}
	}
	return false
}
