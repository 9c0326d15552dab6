package expr

import (
	"fmt"
	"sort"
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
// Its length grows with the tree; the functions of this file compare
// sub-trees through a keyer instead, in time linear in the tree.
func Key(e Expr) string {
	var b strings.Builder
	if !writeKey(&b, e) {
		return ""
	}
	return b.String()
}

func writeKey(b *strings.Builder, e Expr) bool {
	if !writeNodeKey(b, e) {
		return false
	}
	if _, ok := e.(*evalOnce); ok {
		b.WriteString("[")
		if !writeKey(b, e.(*evalOnce).over) {
			return false
		}
		b.WriteString("]")
	}
	n, ok := e.(node)
	if !ok || e == nil {
		return true
	}
	switch e.(type) {
	case *colExpr, *litExpr:
		return true
	}
	b.WriteString("(")
	for i, c := range n.children() {
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

// writeNodeKey writes what distinguishes e itself from other nodes (not its
// children); false for a node this package does not know.
func writeNodeKey(b *strings.Builder, e Expr) bool {
	if e == nil {
		b.WriteString("nil")
		return true
	}
	fmt.Fprintf(b, "%T<%s>", e, e.Type())
	switch x := e.(type) {
	case *colExpr:
		fmt.Fprintf(b, "#%d", x.index)
	case *litExpr:
		fmt.Fprintf(b, "%T:%#v", x.val, x.val)
	case *opExpr:
		fmt.Fprintf(b, "%q,%v,%v,%v", x.name, x.infix, x.bcast, x.volatile)
	case *castExpr:
	case *caseExpr:
		fmt.Fprintf(b, "%v,%d,%d", x.coalesce, len(x.conds), len(x.vals))
	case *likeExpr:
		fmt.Fprintf(b, "%v,%v", x.not, x.ci)
	case *inSetExpr:
		fmt.Fprintf(b, "%v,%s", x.not, x.set.key)
	case *evalOnce:
	default:
		return false
	}
	return true
}

// keyer hash-conses sub-trees: structurally equal trees (equal Key) get
// the same id, computed bottom-up once per node from the node's own
// description and its children's ids, so numbering a tree takes time
// linear in its size however deep it is. Ids are remembered per node
// (nodes are immutable); -1 marks trees Key would give "".
type keyer struct {
	ids    map[Expr]int
	intern map[string]int
	b      strings.Builder
}

func newKeyer() *keyer { return &keyer{ids: map[Expr]int{}, intern: map[string]int{}} }

// id returns the id of e's structure, or -1.
func (k *keyer) id(e Expr) int {
	if e == nil {
		return k.internKey("nil")
	}
	if id, ok := k.ids[e]; ok {
		return id
	}
	n, isNode := e.(node)
	if !isNode {
		return -1 // not ours: maybe not comparable, never shared
	}
	var ch []int
	switch e.(type) {
	case *colExpr, *litExpr:
	default:
		for _, c := range n.children() {
			ci := k.id(c)
			if ci < 0 {
				k.ids[e] = -1
				return -1
			}
			ch = append(ch, ci)
		}
	}
	if o, ok := e.(*evalOnce); ok {
		oi := k.id(o.over)
		if oi < 0 {
			k.ids[e] = -1
			return -1
		}
		ch = append(ch, oi)
	}
	k.b.Reset()
	if !writeNodeKey(&k.b, e) {
		k.ids[e] = -1
		return -1
	}
	fmt.Fprintf(&k.b, "|%d", len(ch)) // the children's ids follow: unambiguous
	for _, c := range ch {
		fmt.Fprintf(&k.b, ",%d", c)
	}
	id := k.internKey(k.b.String())
	k.ids[e] = id
	return id
}

func (k *keyer) internKey(s string) int {
	id, ok := k.intern[s]
	if !ok {
		id = len(k.intern)
		k.intern[s] = id
	}
	return id
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
// every row): every node other than a column or a literal. It returns them
// by keyer id, and the ids in first-seen order.
func (k *keyer) collect(roots []Expr) (map[int]*occurrence, []int) {
	m := map[int]*occurrence{}
	var order []int // first-seen order, for determinism
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
		id := k.id(e)
		if id < 0 {
			return size
		}
		o := m[id]
		if o == nil {
			o = &occurrence{e: e, size: size}
			m[id] = o
			order = append(order, id)
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

// replace returns e with every sub-tree whose id is in repl replaced by
// repl's expression (outermost first).
func (k *keyer) replace(e Expr, repl map[int]Expr) Expr {
	if e == nil || len(repl) == 0 {
		return e
	}
	if _, isCol := e.(*colExpr); !isCol {
		if r, ok := repl[k.id(e)]; ok {
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
		nc[i] = k.replace(c, repl)
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
	subs, _ := newKeyer().eagerSubtrees(e)
	return subs
}

// eagerSubtrees is EagerSubtrees, with the keyer ids of the sub-trees.
func (k *keyer) eagerSubtrees(e Expr) ([]Expr, []int) {
	m, order := k.collect([]Expr{e})
	var occ []*occurrence
	var ids []int
	for _, id := range order {
		if o := m[id]; o.eager {
			occ = append(occ, o)
			ids = append(ids, id)
		}
	}
	// outermost first: larger trees before the trees they contain
	idx := make([]int, len(occ))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return occ[idx[a]].size > occ[idx[b]].size })
	out := make([]Expr, len(idx))
	outIDs := make([]int, len(idx))
	for i, j := range idx {
		out[i], outIDs[i] = occ[j].e, ids[j]
	}
	return out, outIDs
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

// maxShared bounds the sub-expressions a Program shares: each costs a pass
// over the expressions to find, so a statement with thousands of repeated
// sub-trees is not planned in quadratic time.
const maxShared = 64

// NewProgram prepares exprs for evaluation over batches of ncols columns.
func NewProgram(exprs []Expr, ncols int) *Program {
	p := &Program{orig: exprs, ncols: ncols}
	roots := append([]Expr(nil), exprs...)
	var defs []Expr
	k := newKeyer()
	for len(defs) < maxShared {
		m, order := k.collect(append(append([]Expr(nil), roots...), defs...))
		var best *occurrence
		bestID := -1
		for _, id := range order {
			o := m[id]
			if o.count >= 2 && o.eager && (best == nil || o.size > best.size) {
				best, bestID = o, id
			}
		}
		if best == nil {
			break
		}
		col := Col(ncols+len(defs), best.e.String(), best.e.Type())
		repl := map[int]Expr{bestID: col}
		for i, r := range roots {
			roots[i] = k.replace(r, repl)
		}
		for i, d := range defs {
			defs[i] = k.replace(d, repl)
		}
		defs = append(defs, best.e)
	}
	if len(defs) == 0 {
		p.exprs = exprs
		return p
	}
	// defs[j] reads only later defs (hoisted later, hence smaller):
	// evaluate them last to first
	nd := len(defs)
	mapping := make(map[int]int, nd)
	for j := range defs {
		mapping[ncols+j] = ncols + nd - 1 - j
	}
	p.shared = make([]Expr, nd)
	for j, d := range defs {
		p.shared[nd-1-j] = Remap(d, mapping)
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
func Costly(e Expr) bool { return costlyMemo(e, map[Expr]bool{}) }

// Carry finds the costly sub-expressions that pred evaluates on every row
// and that exprs also compute, outermost first, and returns them with
// exprs rewritten to read the i-th of them as column ncols+i. A filter can
// compute them with its predicate and hand them to the projection above it
// (exprs reading its output, whose first ncols columns are its input's).
func Carry(pred Expr, exprs []Expr, ncols int) (carry []Expr, rewritten []Expr) {
	rewritten = append([]Expr(nil), exprs...)
	k := newKeyer()
	subs, ids := k.eagerSubtrees(pred)
	var present map[int]bool
	find := func() {
		present = map[int]bool{}
		for _, e := range rewritten {
			walk(e, func(x Expr) { present[k.id(x)] = true })
		}
	}
	find()
	costly := map[Expr]bool{}
	for i, s := range subs {
		if len(carry) == maxShared || !present[ids[i]] || !costlyMemo(s, costly) {
			continue
		}
		repl := map[int]Expr{ids[i]: Col(ncols+len(carry), s.String(), s.Type())}
		for i, e := range rewritten {
			rewritten[i] = k.replace(e, repl)
		}
		carry = append(carry, s)
		find()
	}
	return carry, rewritten
}

// costlyMemo is Costly remembering the answer for every node of e in memo,
// so that asking it of each sub-tree of a tree takes linear time.
func costlyMemo(e Expr, memo map[Expr]bool) bool {
	if e == nil {
		return false
	}
	if c, ok := memo[e]; ok {
		return c
	}
	c := false
	switch x := e.(type) {
	case *opExpr:
		c = !x.infix && !strings.HasPrefix(x.name, "IS ")
	case *likeExpr, *castExpr, *caseExpr, *inSetExpr:
		c = true
	}
	if n, ok := e.(node); ok {
		for _, ch := range n.children() {
			c = costlyMemo(ch, memo) || c
		}
		memo[e] = c // only our nodes: others may not be comparable
	}
	return c
}
