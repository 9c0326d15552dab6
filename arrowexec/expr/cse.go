package expr

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Common-subexpression elimination.
//
// An operator that evaluates several expressions over one batch (a
// projection list, a predicate) often computes the same sub-tree more than
// once: Nexmark q21's CASE tests LOWER(channel) in four WHENs. A Program
// computes each such sub-tree once per batch, as an extra column appended to
// the batch, and evaluates the expressions rewritten to read that column.
//
// Sub-trees are compared structurally (Key): node kind, result type,
// operator or function name, literal values, column indexes and children.
// Every function of this package is deterministic within a batch
// (CURRENT_TIMESTAMP reads Context.Now, fixed for the batch), so equal
// sub-trees have equal values.
//
// A sub-tree is shared only when at least one of its occurrences is
// evaluated on every row of the batch (it is not inside a CASE branch after
// the first WHEN, nor a COALESCE argument after the first): computing it on
// every row then adds no work and cannot raise an error the unshared
// expressions would not have raised.

// Key returns a structural description of e: two expressions with equal
// keys compute the same values over the same batch. It is "" for trees
// holding a node this package does not know (such trees are never shared).
func Key(e Expr) string {
	var b strings.Builder
	if !writeKey(&b, e) {
		return ""
	}
	return b.String()
}

func writeKey(b *strings.Builder, e Expr) bool {
	if e == nil {
		b.WriteString("nil")
		return true
	}
	fmt.Fprintf(b, "%T<%s>", e, e.Type())
	switch x := e.(type) {
	case *colExpr:
		fmt.Fprintf(b, "#%d", x.index)
		return true
	case *litExpr:
		fmt.Fprintf(b, "%T:%#v", x.val, x.val)
		return true
	case *opExpr:
		fmt.Fprintf(b, "%q,%v,%v,%v", x.name, x.infix, x.bcast, x.volatile)
	case *castExpr:
	case *caseExpr:
		fmt.Fprintf(b, "%v,%d,%d", x.coalesce, len(x.conds), len(x.vals))
	case *likeExpr:
		fmt.Fprintf(b, "%v,%v", x.not, x.ci)
	case *evalOnce:
		b.WriteString("[")
		if !writeKey(b, x.over) {
			return false
		}
		b.WriteString("]")
	default:
		return false
	}
	b.WriteString("(")
	for i, c := range e.(node).children() {
		if i > 0 {
			b.WriteString(",")
		}
		if !writeKey(b, c) {
			return false
		}
	}
	b.WriteString(")")
	return true
}

// eagerChildren reports, for each child of n, whether n evaluates it on
// every row it is evaluated on.
func eagerChildren(n node) []bool {
	ch := n.children()
	out := make([]bool, len(ch))
	c, isCase := n.(*caseExpr)
	_, lazy := n.(lazyNode)
	switch {
	case isCase && len(ch) > 0:
		// the first WHEN (or COALESCE's first argument) sees every row
		if c.coalesce {
			out[len(c.conds)] = true
		} else if len(c.conds) > 0 {
			out[0] = true
		}
	case !lazy:
		for i := range out {
			out[i] = true
		}
	}
	return out
}

// occurrence counts the sub-trees with one key.
type occurrence struct {
	e     Expr
	count int
	eager bool // some occurrence is evaluated on every row
	size  int  // nodes in the tree
}

// collect counts the shareable sub-trees of roots (which are evaluated on
// every row): every node other than a column or a literal.
func collect(roots []Expr) (map[string]*occurrence, []string) {
	m := map[string]*occurrence{}
	var order []string // first-seen order, for determinism
	var visit func(e Expr, eager bool) int
	visit = func(e Expr, eager bool) int {
		n, ok := e.(node)
		if !ok || e == nil {
			return 1
		}
		size := 1
		ch := n.children()
		ea := eagerChildren(n)
		for i, c := range ch {
			if c != nil {
				size += visit(c, eager && ea[i])
			}
		}
		switch e.(type) {
		case *colExpr, *litExpr:
			return size
		}
		k := Key(e)
		if k == "" {
			return size
		}
		o := m[k]
		if o == nil {
			o = &occurrence{e: e, size: size}
			m[k] = o
			order = append(order, k)
		}
		o.count++
		o.eager = o.eager || eager
		return size
	}
	for _, r := range roots {
		visit(r, true)
	}
	return m, order
}

// Replace returns e with every sub-tree whose key is in repl replaced by
// repl's expression (outermost first).
func Replace(e Expr, repl map[string]Expr) Expr {
	if e == nil || len(repl) == 0 {
		return e
	}
	if _, isCol := e.(*colExpr); !isCol {
		if r, ok := repl[Key(e)]; ok {
			return r
		}
	}
	n, ok := e.(node)
	if !ok {
		return e
	}
	ch := n.children()
	if len(ch) == 0 {
		return e
	}
	nc := make([]Expr, len(ch))
	changed := false
	for i, c := range ch {
		nc[i] = Replace(c, repl)
		changed = changed || nc[i] != c
	}
	if !changed {
		return e
	}
	return n.withChildren(nc)
}

// EagerSubtrees returns the distinct shareable sub-trees of e (neither
// columns nor literals) that e evaluates on every row, outermost first.
func EagerSubtrees(e Expr) []Expr {
	m, order := collect([]Expr{e})
	var out []Expr
	for _, k := range order {
		if o := m[k]; o.eager {
			out = append(out, o.e)
		}
	}
	// outermost first: larger trees before the trees they contain
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && size(out[j]) > size(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func size(e Expr) int {
	n := 0
	walk(e, func(Expr) { n++ })
	return n
}

// Program evaluates a list of expressions over batches of ncols columns,
// computing each common sub-expression once per batch (see Key for
// equality and the package notes above for which are shared). It is
// immutable and safe for concurrent use.
type Program struct {
	orig   []Expr
	exprs  []Expr // orig over the input columns and the shared ones
	shared []Expr // shared[k] is column ncols+k, over the columns before it
	ncols  int
}

// NewProgram prepares exprs for evaluation over batches of ncols columns.
func NewProgram(exprs []Expr, ncols int) *Program {
	p := &Program{orig: exprs, ncols: ncols}
	roots := append([]Expr(nil), exprs...)
	var defs []Expr
	for {
		m, order := collect(append(append([]Expr(nil), roots...), defs...))
		var best *occurrence
		bestKey := ""
		for _, k := range order {
			o := m[k]
			if o.count >= 2 && o.eager && (best == nil || o.size > best.size) {
				best, bestKey = o, k
			}
		}
		if best == nil {
			break
		}
		col := Col(ncols+len(defs), best.e.String(), best.e.Type())
		repl := map[string]Expr{bestKey: col}
		for i, r := range roots {
			roots[i] = Replace(r, repl)
		}
		for i, d := range defs {
			defs[i] = Replace(d, repl)
		}
		defs = append(defs, best.e)
	}
	if len(defs) == 0 {
		p.exprs = exprs
		return p
	}
	// defs[j] reads only later defs (hoisted later, hence smaller):
	// evaluate them last to first
	k := len(defs)
	mapping := make(map[int]int, k)
	for j := range defs {
		mapping[ncols+j] = ncols + k - 1 - j
	}
	p.shared = make([]Expr, k)
	for j, d := range defs {
		p.shared[k-1-j] = Remap(d, mapping)
	}
	p.exprs = make([]Expr, len(roots))
	for i, r := range roots {
		p.exprs[i] = Remap(r, mapping)
	}
	return p
}

// Exprs returns the expressions as given to NewProgram.
func (p *Program) Exprs() []Expr { return p.orig }

// Shared returns the sub-expressions computed once per batch, in
// evaluation order (for tests and explain output).
func (p *Program) Shared() []Expr { return p.shared }

// Rewritten returns the expressions over the input columns followed by the
// shared ones.
func (p *Program) Rewritten() []Expr { return p.exprs }

// Eval evaluates every expression over batch, returning one array per
// expression; the arrays belong to the caller. A batch whose column count
// is not the one the program was made for is evaluated without sharing.
// An evaluation error is an *EvalError naming the expression (as given, or
// the shared sub-expression) that failed.
func (p *Program) Eval(ctx *Context, batch arrow.RecordBatch) ([]arrow.Array, error) {
	exprs := p.exprs
	if len(p.shared) == 0 || int(batch.NumCols()) != p.ncols {
		exprs = p.orig
	} else {
		wide, err := p.Widen(ctx, batch)
		if err != nil {
			return nil, err
		}
		defer wide.Release()
		batch = wide
	}
	out := make([]arrow.Array, len(exprs))
	for i, e := range exprs {
		a, err := e.Eval(ctx, batch)
		if err != nil {
			releaseAll(out)
			return nil, &EvalError{Expr: p.orig[i], Err: err}
		}
		out[i] = a
	}
	return out, nil
}

// EvalError is an error of Program.Eval: Expr failed with Err.
type EvalError struct {
	Expr Expr
	Err  error
}

func (e *EvalError) Error() string { return e.Expr.String() + ": " + e.Err.Error() }
func (e *EvalError) Unwrap() error { return e.Err }

// Widen returns batch with the shared columns appended (the batch the
// rewritten expressions read); the caller releases it.
func (p *Program) Widen(ctx *Context, batch arrow.RecordBatch) (arrow.RecordBatch, error) {
	n := batch.NumRows()
	fields := append([]arrow.Field(nil), batch.Schema().Fields()...)
	cols := append([]arrow.Array(nil), batch.Columns()...)
	var made []arrow.Array
	defer func() { releaseAll(made) }()
	cur := batch
	cur.Retain()
	for k, e := range p.shared {
		a, err := e.Eval(ctx, cur)
		cur.Release()
		if err != nil {
			return nil, &EvalError{Expr: e, Err: err}
		}
		made = append(made, a)
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("_cse%d", k), Type: e.Type(), Nullable: true})
		cols = append(cols, a)
		cur = array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, n)
	}
	return cur, nil
}

// Costly reports whether e computes more than column arithmetic and
// comparisons: it calls a function, matches LIKE, casts or branches. Such a
// value is worth carrying from one operator to the next rather than
// computed again; cheaper ones cost less to recompute than to copy.
func Costly(e Expr) bool {
	costly := false
	walk(e, func(x Expr) {
		switch x := x.(type) {
		case *opExpr:
			costly = costly || !x.infix && !strings.HasPrefix(x.name, "IS ")
		case *likeExpr, *castExpr, *caseExpr:
			costly = true
		}
	})
	return costly
}

// Carry finds the costly sub-expressions that pred evaluates on every row
// and that exprs also compute, outermost first, and returns them with
// exprs rewritten to read the i-th of them as column ncols+i. A filter can
// compute them with its predicate and hand them to the projection above it
// (exprs reading its output, whose first ncols columns are its input's).
func Carry(pred Expr, exprs []Expr, ncols int) (carry []Expr, rewritten []Expr) {
	rewritten = append([]Expr(nil), exprs...)
	for _, s := range EagerSubtrees(pred) {
		if !Costly(s) {
			continue
		}
		k := Key(s)
		found := false
		for _, e := range rewritten {
			walk(e, func(x Expr) { found = found || Key(x) == k })
		}
		if !found {
			continue
		}
		repl := map[string]Expr{k: Col(ncols+len(carry), s.String(), s.Type())}
		for i, e := range rewritten {
			rewritten[i] = Replace(e, repl)
		}
		carry = append(carry, s)
	}
	return carry, rewritten
}
