package expr

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// IsNull builds x IS NULL (x IS NOT NULL when not is set); never NULL.
func IsNull(x Expr, not bool) Expr {
	name := "IS NULL"
	if not {
		name = "IS NOT NULL"
	}
	return &opExpr{name: name, args: []Expr{x}, typ: sqltypes.Boolean, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		return kernels.IsNull(ctx.Alloc, a[0], not), nil
	}}
}

// IsBool builds x IS [NOT] TRUE / FALSE for a BOOLEAN x; never NULL: NULL
// IS TRUE is false and NULL IS NOT TRUE is true.
func IsBool(x Expr, value, not bool) (Expr, error) {
	if x.Type().ID() != arrow.BOOL && !isNullType(x.Type()) {
		return nil, fmt.Errorf("cannot apply IS %v to %s", strings.ToUpper(fmt.Sprint(value)), typeName(x.Type()))
	}
	x = implicitCast(x, sqltypes.Boolean)
	name := "IS " + strings.ToUpper(fmt.Sprint(value))
	if not {
		name = "IS NOT " + strings.ToUpper(fmt.Sprint(value))
	}
	return &opExpr{name: name, args: []Expr{x}, typ: sqltypes.Boolean, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		return kernels.IsBool(ctx.Alloc, a[0], value, not), nil
	}}, nil
}

// InList builds x [NOT] IN (list...) with SQL NULL rules: true when x
// equals an element, else NULL when x or any element is NULL, else false
// (so 1 IN (2, NULL) is NULL and 1 NOT IN (2, NULL) is NULL too). It is
// the OR of the equalities x = e.
func InList(x Expr, list []Expr, not bool) (Expr, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("IN list is empty")
	}
	if _, isCol := x.(*colExpr); !isCol && len(list) > 1 && len(Columns(x)) > 0 {
		constant := true
		for _, e := range list {
			constant = constant && len(Columns(e)) == 0
		}
		if constant {
			// x is computed (LOWER(channel) IN (...)): evaluate it once,
			// then the comparisons over its values
			in, err := InList(Col(0, x.String(), x.Type()), list, not)
			if err != nil {
				return nil, err
			}
			return &evalOnce{x: x, over: in}, nil
		}
	}
	if in := newInSet(x, list, not); in != nil {
		return in, nil
	}
	var out Expr
	for _, e := range list {
		eq, err := Binary("=", x, e)
		if err != nil {
			return nil, fmt.Errorf("IN: %w", err)
		}
		if out == nil {
			out = eq
		} else if out, err = Binary("OR", out, eq); err != nil {
			return nil, err
		}
	}
	if not {
		return Unary("NOT", out)
	}
	return out, nil
}

// inSetExpr is x [NOT] IN (constants) for an integer, temporal or VARCHAR
// x whose constants need no cast of x: one hash lookup per row instead of
// one comparison per constant. Its values are those of the OR of the
// equalities (see InList).
type inSetExpr struct {
	x   Expr
	not bool
	set *inSet
}

// inSet is the constants of an IN list, converted to x's type.
type inSet struct {
	ints    map[int64]struct{}
	strs    map[string]struct{}
	hasNull bool       // some constant is NULL
	lits    []*litExpr // the constants of x's type, in list order
	list    string     // the constants as SQL, for String
	key     string     // the constants' values, for Key
}

// newInSet returns the hash-set form of x [NOT] IN (list), or nil when
// the list is not all constants x compares with without being cast.
func newInSet(x Expr, list []Expr, not bool) Expr {
	id := x.Type().ID()
	switch id {
	case arrow.INT32, arrow.INT64, arrow.DATE32, arrow.TIMESTAMP, arrow.STRING:
	default:
		return nil
	}
	set := &inSet{}
	if id == arrow.STRING {
		set.strs = make(map[string]struct{}, len(list))
	} else {
		set.ints = make(map[int64]struct{}, len(list))
	}
	var text, key strings.Builder
	for i, e := range list {
		if _, ok := e.(*litExpr); !ok {
			return nil
		}
		l, r, err := comparable("=", x, e)
		if err != nil || l != x {
			return nil // an error InList reports, or x would be cast
		}
		lit, ok := r.(*litExpr)
		if !ok || !arrow.TypeEqual(lit.typ, x.Type()) {
			return nil
		}
		if i > 0 {
			text.WriteString(", ")
		}
		text.WriteString(e.String())
		fmt.Fprintf(&key, "%#v;", lit.val)
		set.lits = append(set.lits, lit)
		switch v := lit.val.(type) {
		case nil:
			set.hasNull = true
		case string:
			set.strs[v] = struct{}{}
		case int32:
			set.ints[int64(v)] = struct{}{}
		case int64:
			set.ints[v] = struct{}{}
		default:
			return nil
		}
	}
	set.list, set.key = text.String(), key.String()
	return &inSetExpr{x: x, not: not, set: set}
}

var _ node = (*inSetExpr)(nil)

func (e *inSetExpr) Type() arrow.DataType { return sqltypes.Boolean }
func (e *inSetExpr) children() []Expr     { return []Expr{e.x} }
func (e *inSetExpr) withChildren(ch []Expr) Expr {
	return &inSetExpr{x: ch[0], not: e.not, set: e.set}
}

func (e *inSetExpr) String() string {
	op := " IN ("
	if e.not {
		op = " NOT IN ("
	}
	return "(" + e.x.String() + op + e.set.list + "))"
}

func (e *inSetExpr) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	x, err := e.x.Eval(ctx, batch)
	if err != nil {
		return nil, err
	}
	defer x.Release()
	n := x.Len()
	b := array.NewBooleanBuilder(ctx.Alloc)
	defer b.Release()
	b.Reserve(n)
	var member func(i int) bool
	switch xs := x.(type) {
	case *array.String:
		member = func(i int) bool { _, ok := e.set.strs[xs.Value(i)]; return ok }
	case *array.Int32:
		member = func(i int) bool { _, ok := e.set.ints[int64(xs.Value(i))]; return ok }
	case *array.Date32:
		member = func(i int) bool { _, ok := e.set.ints[int64(xs.Value(i))]; return ok }
	case *array.Int64:
		member = func(i int) bool { _, ok := e.set.ints[xs.Value(i)]; return ok }
	case *array.Timestamp:
		member = func(i int) bool { _, ok := e.set.ints[int64(xs.Value(i))]; return ok }
	default:
		return nil, fmt.Errorf("IN: unexpected %s values", x.DataType())
	}
	for i := range n {
		switch {
		case x.IsNull(i):
			b.AppendNull()
		case member(i):
			b.UnsafeAppend(!e.not)
		case e.set.hasNull:
			b.AppendNull()
		default:
			b.UnsafeAppend(e.not)
		}
	}
	return b.NewArray(), nil
}

// evalOnce evaluates over, an expression of column 0 only, on the values
// of x: x is computed once however often over reads it.
type evalOnce struct {
	x, over Expr
}

var _ node = (*evalOnce)(nil)

func (e *evalOnce) Type() arrow.DataType { return e.over.Type() }
func (e *evalOnce) String() string       { return e.over.String() }
func (e *evalOnce) children() []Expr     { return []Expr{e.x} }
func (e *evalOnce) withChildren(ch []Expr) Expr {
	return &evalOnce{x: ch[0], over: e.over}
}

func (e *evalOnce) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	v, err := e.x.Eval(ctx, batch)
	if err != nil {
		return nil, err
	}
	one := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: v.DataType(), Nullable: true}}, nil), []arrow.Array{v}, batch.NumRows())
	v.Release()
	defer one.Release()
	return e.over.Eval(ctx, one)
}

// Between builds x [NOT] BETWEEN lo AND hi, inclusive: x >= lo AND x <= hi
// (NOT BETWEEN is its three-valued negation).
func Between(x, lo, hi Expr, not bool) (Expr, error) {
	ge, err := Binary(">=", x, lo)
	if err != nil {
		return nil, fmt.Errorf("BETWEEN: %w", err)
	}
	le, err := Binary("<=", x, hi)
	if err != nil {
		return nil, fmt.Errorf("BETWEEN: %w", err)
	}
	out, err := Binary("AND", ge, le)
	if err != nil || !not {
		return out, err
	}
	return Unary("NOT", out)
}

// ---- CASE and COALESCE ----

// caseExpr evaluates branch values only on the rows that select them, so
// that errors of rows a branch does not produce cannot surface (CASE WHEN
// x = 0 THEN 0 ELSE 100 / x END and CASE WHEN s ~ '^[0-9]+$' THEN CAST(s
// AS INT) END are safe). With coalesce set, conds is empty and each value
// is tried on the rows where the previous ones were NULL.
type caseExpr struct {
	conds    []Expr // searched CASE conditions
	vals     []Expr // THEN values (len(conds)), or COALESCE arguments
	els      Expr   // ELSE value, nil for NULL
	typ      arrow.DataType
	coalesce bool
	narrow   *caseNarrowing // built on first use; nil: not cached
}

// caseNarrowing is a caseExpr over only the columns it reads: each WHEN
// step gathers the rows still undecided, and gathering every column of a
// wide batch (long strings included) cost more than the CASE itself.
type caseNarrowing struct {
	once sync.Once
	cols []int     // the columns read, ascending
	expr *caseExpr // the CASE over a batch of just cols
}

// narrowed returns the CASE over the columns it reads, and those columns
// (nil when it reads every column of a batch of n columns).
func (c *caseExpr) narrowed(ncols int) (*caseExpr, []int) {
	build := func() ([]int, *caseExpr) {
		var cols []int
		for _, e := range c.children() {
			if e != nil {
				cols = append(cols, Columns(e)...)
			}
		}
		slices.Sort(cols)
		cols = slices.Compact(cols)
		if len(cols) == 0 {
			return nil, nil // constants only: nothing to gather but row counts
		}
		mapping := make(map[int]int, len(cols))
		for j, i := range cols {
			mapping[i] = j
		}
		n := *c
		n.narrow = nil
		n.conds, n.vals = make([]Expr, len(c.conds)), make([]Expr, len(c.vals))
		for i, e := range c.conds {
			n.conds[i] = Remap(e, mapping)
		}
		for i, e := range c.vals {
			n.vals[i] = Remap(e, mapping)
		}
		if c.els != nil {
			n.els = Remap(c.els, mapping)
		}
		return cols, &n
	}
	var cols []int
	var e *caseExpr
	if c.narrow == nil {
		cols, e = build()
	} else {
		c.narrow.once.Do(func() { c.narrow.cols, c.narrow.expr = build() })
		cols, e = c.narrow.cols, c.narrow.expr
	}
	if e == nil || len(cols) >= ncols || cols[len(cols)-1] >= ncols {
		return c, nil
	}
	return e, cols
}

var _ node = (*caseExpr)(nil)

func (c *caseExpr) lazy() {}

func (c *caseExpr) Type() arrow.DataType { return c.typ }

func (c *caseExpr) children() []Expr {
	ch := append(append([]Expr{}, c.conds...), c.vals...)
	return append(ch, c.els)
}

func (c *caseExpr) withChildren(ch []Expr) Expr {
	n := *c
	n.narrow = &caseNarrowing{}
	k := len(c.conds)
	n.conds = ch[:k:k]
	n.vals = ch[k : k+len(c.vals) : k+len(c.vals)]
	n.els = ch[len(ch)-1]
	return &n
}

func (c *caseExpr) String() string {
	var sb strings.Builder
	if c.coalesce {
		sb.WriteString("COALESCE(")
		for i, v := range c.vals {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(v.String())
		}
		sb.WriteString(")")
		return sb.String()
	}
	sb.WriteString("CASE")
	for i, w := range c.conds {
		fmt.Fprintf(&sb, " WHEN %s THEN %s", w, c.vals[i])
	}
	if c.els != nil {
		fmt.Fprintf(&sb, " ELSE %s", c.els)
	}
	sb.WriteString(" END")
	return sb.String()
}

// Case builds a CASE expression. With operand nil it is a searched CASE
// (WHEN conditions are BOOLEAN); otherwise WHEN values are compared with
// operand by =. els may be nil (NULL). The result type is the common type
// of the THEN and ELSE values (see commonType).
func Case(operand Expr, whens, thens []Expr, els Expr) (Expr, error) {
	if len(whens) == 0 || len(whens) != len(thens) {
		return nil, fmt.Errorf("CASE needs WHEN ... THEN pairs")
	}
	conds := make([]Expr, len(whens))
	for i, w := range whens {
		if operand != nil {
			eq, err := Binary("=", operand, w)
			if err != nil {
				return nil, fmt.Errorf("CASE: %w", err)
			}
			w = eq
		} else if w.Type().ID() != arrow.BOOL && !isNullType(w.Type()) {
			return nil, fmt.Errorf("CASE WHEN condition must be BOOLEAN, got %s", typeName(w.Type()))
		}
		conds[i] = implicitCast(w, sqltypes.Boolean)
	}
	branches := append([]Expr{}, thens...)
	if els != nil {
		branches = append(branches, els)
	}
	t, err := commonType("CASE", branches)
	if err != nil {
		return nil, err
	}
	vals := make([]Expr, len(thens))
	for i, v := range thens {
		vals[i] = implicitCast(v, t)
	}
	if els != nil {
		els = implicitCast(els, t)
	}
	return &caseExpr{conds: conds, vals: vals, els: els, typ: t, narrow: &caseNarrowing{}}, nil
}

// Coalesce builds COALESCE(args...): the first non-NULL argument, later
// arguments being evaluated only on the rows still NULL.
func Coalesce(args []Expr) (Expr, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("function coalesce expects at least 1 argument")
	}
	t, err := commonType("COALESCE", args)
	if err != nil {
		return nil, err
	}
	vals := make([]Expr, len(args))
	for i, a := range args {
		vals[i] = implicitCast(a, t)
	}
	return &caseExpr{vals: vals, typ: t, coalesce: true, narrow: &caseNarrowing{}}, nil
}

// subset is a batch of some of the rows of the input batch.
type subset struct {
	batch arrow.RecordBatch
	rows  []int32 // input row of each subset row; nil means identity
}

func (s subset) orig(j int32) int32 {
	if s.rows == nil {
		return j
	}
	return s.rows[j]
}

// split returns the sub-batch of s made of rows sel (indexes into s).
func (s subset) take(alloc memory.Allocator, sel []int32) (subset, error) {
	if int64(len(sel)) == s.batch.NumRows() {
		s.batch.Retain()
		return subset{batch: s.batch, rows: s.rows}, nil
	}
	b, err := kernels.TakeBatch(alloc, s.batch, sel)
	if err != nil {
		return subset{}, err
	}
	rows := make([]int32, len(sel))
	for i, j := range sel {
		rows[i] = s.orig(j)
	}
	return subset{batch: b, rows: rows}, nil
}

func (c *caseExpr) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	if e, cols := c.narrowed(int(batch.NumCols())); cols != nil {
		fields := make([]arrow.Field, len(cols))
		arrs := make([]arrow.Array, len(cols))
		for j, i := range cols {
			fields[j], arrs[j] = batch.Schema().Field(i), batch.Column(i)
		}
		narrow := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, batch.NumRows())
		defer narrow.Release()
		return e.eval(ctx, narrow)
	}
	return c.eval(ctx, batch)
}

// infallible reports whether e cannot fail and costs about a comparison
// per row: columns, literals, comparisons, AND/OR/NOT, IS [NOT] NULL and
// IN lists of those. Such expressions can be evaluated on rows that do not
// need them (cheaper than gathering the rows that do).
func infallible(e Expr) bool {
	switch x := e.(type) {
	case *colExpr, *litExpr:
		return true
	case *evalOnce:
		return infallible(x.x) && infallible(x.over)
	case *opExpr:
		switch x.name {
		case "=", "<>", "<", "<=", ">", ">=", "AND", "OR", "NOT", "IS NULL", "IS NOT NULL":
		default:
			return false
		}
		for _, a := range x.args {
			if !infallible(a) {
				return false
			}
		}
		return true
	}
	return false
}

// evalEager evaluates a searched CASE whose conditions are infallible:
// each condition over the whole batch (no gathering of undecided rows),
// then each branch value over the rows that select it, a literal taken as
// is and an infallible value over the whole batch.
func (c *caseExpr) evalEager(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	n := int(batch.NumRows())
	branch := make([]int32, n) // condition chosen, len(conds) for ELSE
	for i := range branch {
		branch[i] = -1
	}
	left := n
	var sel []int32 // rows where a condition is true, read from its bitmap by words
	for k, cond := range c.conds {
		if left == 0 {
			break
		}
		m, err := cond.Eval(ctx, batch)
		if err != nil {
			return nil, err
		}
		if m.Len() != n {
			m.Release()
			return nil, fmt.Errorf("CASE: condition has %d rows, batch %d", m.Len(), n)
		}
		sel = kernels.Selection(m.(*array.Boolean), sel)
		m.Release()
		for _, i := range sel {
			if branch[i] < 0 {
				branch[i] = int32(k)
				left--
			}
		}
	}
	els := int32(len(c.conds))
	if c.els != nil {
		for i := range branch {
			if branch[i] < 0 {
				branch[i] = els
			}
		}
	}
	if isNullType(c.typ) {
		return array.NewNull(n), nil
	}
	counts := make([]int, els+1)
	for _, b := range branch {
		if b >= 0 {
			counts[b]++
		}
	}
	// each branch's value: a literal's one row, a whole-batch array, or
	// an array over the rows selecting it
	const (
		oneRow = iota
		wholeBatch
		gathered
	)
	partOf := make([]int32, els+1)
	mode := make([]int8, els+1)
	var parts []arrow.Array
	defer func() { releaseAll(parts) }()
	for k := int32(0); k <= els; k++ {
		v := c.els
		if k < els {
			v = c.vals[k]
		}
		partOf[k] = -1
		if counts[k] == 0 || v == nil {
			continue
		}
		var part arrow.Array
		switch {
		case isLit(v):
			part, mode[k] = v.(*litExpr).one, oneRow
			part.Retain()
		case infallible(v):
			a, err := v.Eval(ctx, batch)
			if err != nil {
				return nil, err
			}
			part, mode[k] = a, wholeBatch
		default:
			sel := make([]int32, 0, counts[k])
			for i, b := range branch {
				if b == k {
					sel = append(sel, int32(i))
				}
			}
			sub, err := kernels.TakeBatch(ctx.Alloc, batch, sel)
			if err != nil {
				return nil, err
			}
			a, err := v.Eval(ctx, sub)
			sub.Release()
			if err != nil {
				return nil, err
			}
			part, mode[k] = a, gathered
		}
		parts = append(parts, part)
		partOf[k] = int32(len(parts) - 1)
	}
	if len(parts) == 0 {
		return array.MakeArrayOfNull(ctx.Alloc, c.typ, n), nil
	}
	src := make([]int32, n)
	pos := make([]int32, n)
	next := make([]int32, els+1)
	for i, b := range branch {
		if b < 0 || partOf[b] < 0 {
			src[i], pos[i] = -1, -1
			continue
		}
		src[i] = partOf[b]
		switch mode[b] {
		case oneRow:
			pos[i] = 0
		case wholeBatch:
			pos[i] = int32(i)
		default:
			pos[i] = next[b]
			next[b]++
		}
	}
	return kernels.Interleave(ctx.Alloc, c.typ, parts, src, pos)
}

func isLit(e Expr) bool {
	_, ok := e.(*litExpr)
	return ok
}

func (c *caseExpr) eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	if !c.coalesce && allInfallible(c.conds) {
		return c.evalEager(ctx, batch)
	}
	n := int(batch.NumRows())
	src := make([]int32, n)
	pos := make([]int32, n)
	for i := range src {
		src[i] = -1
	}
	var parts []arrow.Array
	defer func() { releaseAll(parts) }()
	batch.Retain()
	cur := subset{batch: batch}
	defer func() { cur.batch.Release() }()

	// decide assigns the rows sel of cur to value part v (positions posOf).
	decide := func(sel []int32, v arrow.Array, posOf func(j int) int32) {
		parts = append(parts, v)
		for j, s := range sel {
			o := cur.orig(s)
			src[o] = int32(len(parts) - 1)
			pos[o] = posOf(j)
		}
	}
	// advance keeps the rows of cur not in sel.
	advance := func(sel []int32) error {
		rest := complement(sel, int(cur.batch.NumRows()))
		next, err := cur.take(ctx.Alloc, rest)
		if err != nil {
			return err
		}
		cur.batch.Release()
		cur = next
		return nil
	}
	steps := len(c.vals)
	for k := 0; k < steps && cur.batch.NumRows() > 0; k++ {
		if c.coalesce {
			v, err := c.vals[k].Eval(ctx, cur.batch)
			if err != nil {
				return nil, err
			}
			sel := validRows(v)
			decide(sel, v, func(j int) int32 { return sel[j] })
			if err := advance(sel); err != nil {
				return nil, err
			}
			continue
		}
		cond, err := c.conds[k].Eval(ctx, cur.batch)
		if err != nil {
			return nil, err
		}
		sel := kernels.Selection(cond.(*array.Boolean), nil)
		cond.Release()
		if len(sel) == 0 {
			continue
		}
		sub, err := cur.take(ctx.Alloc, sel)
		if err != nil {
			return nil, err
		}
		v, err := c.vals[k].Eval(ctx, sub.batch)
		sub.batch.Release()
		if err != nil {
			return nil, err
		}
		decide(sel, v, func(j int) int32 { return int32(j) })
		if err := advance(sel); err != nil {
			return nil, err
		}
	}
	if c.els != nil && cur.batch.NumRows() > 0 {
		v, err := c.els.Eval(ctx, cur.batch)
		if err != nil {
			return nil, err
		}
		all := complement(nil, int(cur.batch.NumRows()))
		decide(all, v, func(j int) int32 { return int32(j) })
	}
	if isNullType(c.typ) {
		return array.NewNull(n), nil
	}
	if len(parts) == 0 {
		return array.MakeArrayOfNull(ctx.Alloc, c.typ, n), nil
	}
	return kernels.Interleave(ctx.Alloc, c.typ, parts, src, pos)
}

func allInfallible(es []Expr) bool {
	for _, e := range es {
		if !infallible(e) {
			return false
		}
	}
	return true
}

// complement returns the indexes in [0, n) not in the sorted sel.
func complement(sel []int32, n int) []int32 {
	out := make([]int32, 0, n-len(sel))
	k := 0
	for i := 0; i < n; i++ {
		if k < len(sel) && sel[k] == int32(i) {
			k++
			continue
		}
		out = append(out, int32(i))
	}
	return out
}

// validRows returns the indexes of the non-NULL rows of a.
func validRows(a arrow.Array) []int32 {
	out := make([]int32, 0, a.Len())
	for i := 0; i < a.Len(); i++ {
		if a.IsValid(i) && a.DataType().ID() != arrow.NULL {
			out = append(out, int32(i))
		}
	}
	return out
}

// ---- LIKE ----

type likeExpr struct {
	x, pattern Expr
	not, ci    bool
	compiled   *kernels.LikePattern // set when the pattern is a constant
}

var _ node = (*likeExpr)(nil)

func (l *likeExpr) Type() arrow.DataType { return sqltypes.Boolean }
func (l *likeExpr) children() []Expr     { return []Expr{l.x, l.pattern} }
func (l *likeExpr) withChildren(ch []Expr) Expr {
	e, err := Like(ch[0], ch[1], l.not, l.ci)
	if err != nil { // cannot happen: the pattern was valid or not constant
		return &likeExpr{x: ch[0], pattern: ch[1], not: l.not, ci: l.ci}
	}
	return e
}

func (l *likeExpr) String() string {
	op := "LIKE"
	if l.ci {
		op = "ILIKE"
	}
	if l.not {
		op = "NOT " + op
	}
	return "(" + l.x.String() + " " + op + " " + l.pattern.String() + ")"
}

// Like builds x [NOT] LIKE pattern (ILIKE when caseInsensitive): % matches
// any characters, _ one character, backslash escapes the next character. A
// constant pattern is compiled once, here (so a pattern ending with a
// backslash is an error now); NULL in gives NULL.
func Like(x, pattern Expr, not, caseInsensitive bool) (Expr, error) {
	for _, e := range []Expr{x, pattern} {
		if e.Type().ID() != arrow.STRING && !isNullType(e.Type()) {
			return nil, fmt.Errorf("cannot apply LIKE to %s and %s", typeName(x.Type()), typeName(pattern.Type()))
		}
	}
	x, pattern = implicitCast(x, sqltypes.Varchar), implicitCast(pattern, sqltypes.Varchar)
	e := &likeExpr{x: x, pattern: pattern, not: not, ci: caseInsensitive}
	if v, ok := IsConst(pattern); ok && v != nil {
		p, err := kernels.CompileLike(v.(string), caseInsensitive)
		if err != nil {
			return nil, err
		}
		e.compiled = p
	}
	return e, nil
}

func (l *likeExpr) Eval(ctx *Context, batch arrow.RecordBatch) (arrow.Array, error) {
	n := int(batch.NumRows())
	xa, err := l.x.Eval(ctx, batch)
	if err != nil {
		return nil, err
	}
	defer xa.Release()
	pa, err := evalOperand(ctx, batch, l.pattern)
	if err != nil {
		return nil, err
	}
	defer pa.Release()
	xs, ps := xa.(*array.String), pa.(*array.String)
	p := l.compiled
	last := ""
	return kernels.MapBool(ctx.Alloc, n, []arrow.Array{xa, pa}, func(i int) (bool, bool, error) {
		if l.compiled == nil {
			if pat := ps.Value(kernels.Broadcast(ps, n, i)); p == nil || pat != last {
				var err error
				if p, err = kernels.CompileLike(pat, l.ci); err != nil {
					return false, false, err
				}
				last = pat
			}
		}
		return p.Match(xs.Value(i)) != l.not, true, nil
	})
}
