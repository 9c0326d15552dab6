package plan

import (
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
		if f, ok := it.Expr.(*ast.FuncCall); ok && f.Over != nil && name == hint.col {
			call = f
		}
	}
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
