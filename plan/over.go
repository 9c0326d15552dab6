package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
)

// Over evaluates window functions (calls with OVER). Its output columns
// are the input's visible columns, then window_start and window_end (with
// a WINDOW clause), then one column per call, then (un-windowed, over an
// input with event time) the row-watermark column. Un-windowed, rows keep
// their event time; windowed, the output has none (as an aggregate's).
type Over struct {
	Input  Node
	Specs  []arrowexec.OverSpec
	Calls  []arrowexec.OverCall
	Names  []string // per call: its SQL text
	Window *arrowexec.WindowSpec
	// TimeCol and WMCol are the input's event-time and row-watermark
	// columns (-1 for processing time).
	TimeCol, WMCol int
	// Ordered: un-windowed, rows are released in event-time order.
	Ordered bool
	Late    arrowexec.LateDataSpec
	// TopN > 0 makes the node an updating top-N (topn.go): its one call is
	// ROW_NUMBER, filtered above to rn <= TopN; it keeps TopN rows per
	// partition and emits upserts keyed (partition, rank). Its output has
	// no event time.
	TopN int64
	// Prune > 0 (windowed, one ROW_NUMBER call, filtered above to rn <=
	// Prune) keeps only the rows ranked 1..Prune of each partition and
	// window, and emits only those (topn.go, arrowexec OverConfig.TopN).
	Prune  int64
	schema *arrow.Schema
	nVis   int
}

func newOver(o *Over) *Over {
	in := o.Input.Schema()
	fields := append([]arrow.Field(nil), visibleFields(in)...)
	o.nVis = len(fields)
	if o.Window != nil {
		fields = append(fields,
			arrow.Field{Name: "window_start", Type: sqltypes.Timestamp},
			arrow.Field{Name: "window_end", Type: sqltypes.Timestamp})
	}
	for i, c := range o.Calls {
		fields = append(fields, arrow.Field{Name: o.Names[i], Type: c.Type, Nullable: true})
	}
	if o.Window == nil && o.TimeCol >= 0 && o.TopN == 0 {
		fields = append(fields, arrow.Field{Name: arrowexec.RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	}
	o.schema = arrow.NewSchema(fields, nil)
	return o
}

// firstCall is the output index of call 0.
func (o *Over) firstCall() int {
	if o.Window != nil {
		return o.nVis + 2
	}
	return o.nVis
}

func (o *Over) Schema() *arrow.Schema { return o.schema }
func (o *Over) Children() []Node      { return []Node{o.Input} }
func (o *Over) EventTime() int {
	if o.Window != nil || o.TopN > 0 {
		return -1
	}
	return o.Input.EventTime() // visible input columns keep their index
}

func (o *Over) describe() string {
	var b strings.Builder
	b.WriteString("Over")
	if o.Window != nil {
		fmt.Fprintf(&b, " %s", o.Window)
	}
	fmt.Fprintf(&b, " [%s]", strings.Join(o.Names, ", "))
	if o.Prune > 0 {
		fmt.Fprintf(&b, " top %d per partition and window", o.Prune)
	}
	switch {
	case o.TopN > 0:
		fmt.Fprintf(&b, " top %d per partition, updating", o.TopN)
	case o.Window != nil && o.TimeCol < 0:
		b.WriteString(" processing-time")
	case o.Window != nil:
		fmt.Fprintf(&b, " event-time late_data=%s", o.Late.Strategy)
	case o.Ordered:
		fmt.Fprintf(&b, " in event-time order, late_data=%s", o.Late.Strategy)
	default:
		b.WriteString(" in arrival order")
	}
	return b.String()
}

// exprs calls f on every expression of the node (may replace them).
func (o *Over) mapExprs(f func(expr.Expr) (expr.Expr, error)) error {
	var err error
	do := func(e *expr.Expr) {
		if *e != nil && err == nil {
			*e, err = f(*e)
		}
	}
	specs := make([]arrowexec.OverSpec, len(o.Specs))
	for i, s := range o.Specs {
		specs[i].PartitionBy = append([]expr.Expr(nil), s.PartitionBy...)
		specs[i].OrderBy = append([]arrowexec.OverOrder(nil), s.OrderBy...)
		for j := range specs[i].PartitionBy {
			do(&specs[i].PartitionBy[j])
		}
		for j := range specs[i].OrderBy {
			do(&specs[i].OrderBy[j].Expr)
		}
	}
	calls := append([]arrowexec.OverCall(nil), o.Calls...)
	for i := range calls {
		do(&calls[i].Arg)
		do(&calls[i].Default)
	}
	o.Specs, o.Calls = specs, calls
	return err
}

// columns are the input columns the node reads: its expressions', and
// event time with its watermarks.
func (o *Over) columns() []int {
	var need []int
	_ = o.clone().mapExprs(func(e expr.Expr) (expr.Expr, error) {
		need = union(need, expr.Columns(e))
		return e, nil
	})
	if o.TimeCol >= 0 {
		need = union(need, []int{o.TimeCol, o.WMCol})
	}
	return need
}

func (o *Over) clone() *Over {
	c := *o
	return &c
}

// prune narrows the node's input to the pass-through columns in needed
// plus what it reads itself.
func (o *Over) prune(needed []int) (Node, map[int]int) {
	var childNeed []int
	for _, c := range needed {
		if c < o.nVis {
			childNeed = append(childNeed, c)
		}
	}
	childNeed = union(childNeed, o.columns())
	if o.TimeCol >= 0 {
		childNeed = union(childNeed, lateRowColumns(o.Late, o.Input))
	}
	in, m := prune(o.Input, childNeed)
	n := o.clone()
	n.Input = in
	_ = n.mapExprs(func(e expr.Expr) (expr.Expr, error) { return expr.Remap(e, m), nil })
	if o.TimeCol >= 0 {
		n.TimeCol, n.WMCol = m[o.TimeCol], m[o.WMCol]
	}
	n = newOver(n)
	out := map[int]int{}
	for old, nw := range m {
		if old < o.nVis {
			out[old] = nw
		}
	}
	for i := o.nVis; i < o.schema.NumFields(); i++ {
		out[i] = n.nVis + (i - o.nVis)
	}
	return n, out
}

// fold folds the node's expressions.
func (o *Over) fold(in Node) (Node, error) {
	n := o.clone()
	n.Input = in
	if err := n.mapExprs(expr.Fold); err != nil {
		return nil, err
	}
	return newOver(n), nil
}

// hasOver reports whether e calls a window function.
func hasOver(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Expr) bool {
		if f, ok := n.(*ast.FuncCall); ok && f.Over != nil {
			found = true
		}
		return !found
	})
	return found
}

// firstOver returns the first window function call in items, or nil.
func firstOver(items []ast.SelectItem) *ast.FuncCall {
	var over *ast.FuncCall
	for _, it := range items {
		if it.Expr == nil {
			continue
		}
		ast.Inspect(it.Expr, func(e ast.Expr) bool {
			if f, ok := e.(*ast.FuncCall); ok && f.Over != nil && over == nil {
				over = f
			}
			return over == nil
		})
	}
	return over
}

// windowFuncs lists the functions usable with OVER, for error messages.
const windowFuncs = "ROW_NUMBER, RANK, DENSE_RANK, LAG, LEAD, FIRST_VALUE, LAST_VALUE, COUNT, SUM, AVG, MIN, MAX, STDDEV, VARIANCE"

// overContext binds window function calls of one SELECT into an Over
// node's calls and specifications.
type overContext struct {
	input    *scope // the Over node's input
	owner    string
	nVis     int
	windowed bool
	topN     bool // an updating top-N: any ORDER BY (topn.go)
	timeCol  int  // input event-time column, -1 for none
	timeName string
	specText []string
	specs    []arrowexec.OverSpec
	calls    []arrowexec.OverCall
	names    []string
}

func (c *overContext) firstCall() int {
	if c.windowed {
		return c.nVis + 2
	}
	return c.nVis
}

// bind returns the Over node's output column for call f, adding it.
func (c *overContext) bind(f *ast.FuncCall) (expr.Expr, error) {
	text := sql.Format(f)
	for i, t := range c.names {
		if t == text {
			return expr.Col(c.firstCall()+i, text, c.calls[i].Type), nil
		}
	}
	upper := strings.ToUpper(f.Name)
	if f.Distinct {
		return nil, errorf(f.At, "DISTINCT is not supported in window functions")
	}
	for _, a := range f.Args {
		if hasOver(a) {
			return nil, errorf(a.Position(), "window function calls cannot be nested")
		}
		if hasAggregate(a) {
			return nil, errorf(a.Position(), "aggregate functions are not allowed in the arguments of window function %s", upper)
		}
	}
	inner := *c.input
	inner.aliases, inner.agg, inner.over = nil, nil, nil
	args := func(lo, hi int) error {
		if len(f.Args) < lo || len(f.Args) > hi || f.Star {
			want := fmt.Sprintf("%d", lo)
			if hi > lo {
				want = fmt.Sprintf("%d to %d", lo, hi)
			}
			return errorf(f.At, "%s takes %s argument(s)", upper, want)
		}
		return nil
	}
	call := arrowexec.OverCall{Func: f.Name, Frame: arrowexec.OverFrame{Preceding: -1}}
	var err error
	bindArg := func() error {
		if call.Arg, err = bindExpr(f.Args[0], &inner); err != nil {
			return err
		}
		if call.Arg.Type().ID() == arrow.NULL {
			return errorf(f.Args[0].Position(), "the argument of %s needs a type: CAST(NULL AS ...)", upper)
		}
		return nil
	}
	usesFrame := false
	switch f.Name {
	case "row_number", "rank", "dense_rank":
		if err := args(0, 0); err != nil {
			return nil, err
		}
		call.Type = sqltypes.BigInt
	case "lag", "lead":
		if err := args(1, 3); err != nil {
			return nil, err
		}
		if err := bindArg(); err != nil {
			return nil, err
		}
		call.Type = call.Arg.Type()
		call.Offset = 1
		if len(f.Args) > 1 {
			lit, ok := f.Args[1].(*ast.Literal)
			n, perr := strconv.ParseInt(litValue(lit), 10, 64)
			if !ok || lit.Kind != ast.NumberLit || perr != nil || n < 0 || n > 1<<20 {
				return nil, errorf(f.Args[1].Position(), "the offset of %s must be a non-negative integer literal (at most %d)", upper, 1<<20)
			}
			call.Offset = n
		}
		if len(f.Args) > 2 {
			d, err := bindExpr(f.Args[2], &inner)
			if err != nil {
				return nil, err
			}
			if call.Default, err = expr.Cast(d, call.Type); err != nil {
				return nil, errorf(f.Args[2].Position(), "the default of %s: %v", upper, err)
			}
		}
	case "first_value", "last_value":
		if err := args(1, 1); err != nil {
			return nil, err
		}
		if err := bindArg(); err != nil {
			return nil, err
		}
		call.Type = call.Arg.Type()
		usesFrame = true
	case "count", "sum", "avg", "min", "max", "stddev", "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop":
		spec := agg.Spec{Func: f.Name}
		switch {
		case f.Star && f.Name == "count":
			call.Func, spec.Func = "count_star", "count_star"
			if len(f.Args) > 0 {
				return nil, errorf(f.At, "COUNT(*) takes no argument")
			}
		default:
			if err := args(1, 1); err != nil {
				return nil, err
			}
			if err := bindArg(); err != nil {
				return nil, err
			}
			spec.Input = call.Arg.Type()
		}
		switch f.Name {
		case "stddev":
			call.Func = "stddev_samp"
		case "variance":
			call.Func = "var_samp"
		}
		t, err := agg.ResultType(spec)
		if err != nil {
			return nil, at(f.At, err)
		}
		call.Type = t
		usesFrame = true
	default:
		return nil, errorf(f.At, "unknown window function %s (window functions: %s)", upper, windowFuncs)
	}
	spec, err := c.bindSpec(f.Over, &inner)
	if err != nil {
		return nil, err
	}
	call.Spec = spec
	if usesFrame {
		if call.Frame, err = c.bindFrame(f.Over, len(c.specs[spec].OrderBy) > 0); err != nil {
			return nil, err
		}
	} else if f.Over.Frame != nil {
		// SQL ignores frames for ranking and offset functions; so do we,
		// but an unsupported frame is still an error.
		if _, err := c.bindFrame(f.Over, true); err != nil {
			return nil, err
		}
	}
	c.calls = append(c.calls, call)
	c.names = append(c.names, text)
	return expr.Col(c.firstCall()+len(c.calls)-1, text, call.Type), nil
}

// bindSpec binds PARTITION BY and ORDER BY, reusing an identical earlier
// specification.
func (c *overContext) bindSpec(o *ast.OverSpec, sc *scope) (int, error) {
	var spec arrowexec.OverSpec
	var text []string
	for _, p := range o.PartitionBy {
		if hasOver(p) || hasAggregate(p) {
			return 0, errorf(p.Position(), "PARTITION BY may not contain window or aggregate functions")
		}
		e, err := bindExpr(p, sc)
		if err != nil {
			return 0, err
		}
		spec.PartitionBy = append(spec.PartitionBy, e)
		text = append(text, sql.Format(p))
	}
	text = append(text, "|")
	for i, ob := range o.OrderBy {
		if hasOver(ob.Expr) || hasAggregate(ob.Expr) {
			return 0, errorf(ob.Expr.Position(), "ORDER BY of a window may not contain window or aggregate functions")
		}
		e, err := bindExpr(ob.Expr, sc)
		if err != nil {
			return 0, err
		}
		if !c.windowed && !c.topN {
			if err := c.checkStreamOrder(ob, e, i); err != nil {
				return 0, err
			}
		}
		nullsFirst := ob.Desc // PostgreSQL: NULLs sort as larger than every value
		if ob.NullsFirst != nil {
			nullsFirst = *ob.NullsFirst
		}
		spec.OrderBy = append(spec.OrderBy, arrowexec.OverOrder{Expr: e, Desc: ob.Desc, NullsFirst: nullsFirst})
		text = append(text, fmt.Sprintf("%s %v %v", sql.Format(ob.Expr), ob.Desc, nullsFirst))
	}
	key := strings.Join(text, "\x00")
	for i, t := range c.specText {
		if t == key {
			return i, nil
		}
	}
	c.specText = append(c.specText, key)
	c.specs = append(c.specs, spec)
	return len(c.specs) - 1, nil
}

// checkStreamOrder accepts, without a WINDOW clause, only ORDER BY the
// event-time column, ascending: an unbounded stream cannot be sorted by
// anything else.
func (c *overContext) checkStreamOrder(ob ast.OrderItem, e expr.Expr, i int) error {
	text := sql.Format(ob.Expr)
	const hint = "or add a WINDOW clause (e.g. WINDOW TUMBLING (INTERVAL '1' MINUTE)) to order the rows of each window, " +
		"or keep the top N rows of each partition with a derived table filtered by its rank alone: " +
		"SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (...) AS rn FROM ...) WHERE rn <= N (or rn < N, or rn = 1)"
	refuse := func(format string, args ...any) error {
		e := errorf(ob.Expr.Position(), format, args...)
		e.Err = errStreamOrder
		return e
	}
	if c.timeCol < 0 {
		return refuse("an unbounded stream can only be ordered by its event time, and %s has none (declare one with WATERMARK FOR); remove ORDER BY %s %s", c.owner, text, hint)
	}
	col, isCol := expr.ColumnIndex(e)
	switch {
	case i > 0:
		return refuse("an unbounded stream can only be ordered by its event time %s alone; remove ORDER BY item %s, %s", c.timeName, text, hint)
	case !isCol || col != c.timeCol:
		return refuse("an unbounded stream can only be ordered by its event time: use ORDER BY %s instead of %s, %s", c.timeName, text, hint)
	case ob.Desc:
		return refuse("an unbounded stream can only be ordered by its event time ascending: remove DESC, %s", hint)
	}
	return nil
}

// bindFrame reads `ROWS BETWEEN n PRECEDING | UNBOUNDED PRECEDING | CURRENT
// ROW AND CURRENT ROW`. Without a frame: the whole partition when windowed
// and unordered, else ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW.
func (c *overContext) bindFrame(o *ast.OverSpec, ordered bool) (arrowexec.OverFrame, error) {
	fr := o.Frame
	if fr == nil {
		return arrowexec.OverFrame{Preceding: -1, WholePartition: c.windowed && !ordered}, nil
	}
	if fr.Unit != "ROWS" {
		return arrowexec.OverFrame{}, &Error{Pos: fr.At, Err: ErrNotSupported,
			Msg: fmt.Sprintf("%s frames are %v: use ROWS (frames count rows; rows with equal ORDER BY values are not pulled in)", fr.Unit, ErrNotSupported)}
	}
	if fr.End.Kind != "CURRENT ROW" {
		return arrowexec.OverFrame{}, notSupported(fr.At, "a frame ending at "+frameBoundText(fr.End)+" (frames end at CURRENT ROW)")
	}
	switch fr.Start.Kind {
	case "UNBOUNDED PRECEDING":
		return arrowexec.OverFrame{Preceding: -1}, nil
	case "CURRENT ROW":
		return arrowexec.OverFrame{Preceding: 0}, nil
	case "N PRECEDING":
		lit, ok := fr.Start.N.(*ast.Literal)
		n, err := strconv.ParseInt(litValue(lit), 10, 64)
		if !ok || lit.Kind != ast.NumberLit || err != nil || n < 0 || n > 1<<20 {
			return arrowexec.OverFrame{}, errorf(fr.Start.N.Position(), "the frame size must be a non-negative integer literal (at most %d)", 1<<20)
		}
		return arrowexec.OverFrame{Preceding: n}, nil
	}
	return arrowexec.OverFrame{}, notSupported(fr.At, "a frame starting at "+frameBoundText(fr.Start))
}

func frameBoundText(b ast.FrameBound) string {
	if b.N != nil {
		return sql.Format(b.N) + strings.TrimPrefix(b.Kind, "N")
	}
	return b.Kind
}

// bindOver binds a SELECT with window functions (and no GROUP BY or
// aggregates) over input (already filtered by WHERE): an Over node, then
// a Project of the select list.
// errStreamOrder marks the refusal to order an unbounded stream by
// anything but its event time.
var errStreamOrder = errors.New("order of an unbounded stream")

// wholeInput is the window of a bounded input ordered by other than its
// event time: every row of the input, evaluated when it ends.
var wholeInput = &arrowexec.WindowSpec{Kind: arrowexec.Whole}

// bindOver binds the window functions of sel. Without a WINDOW clause an
// unbounded input can only be ordered by its event time; a bounded one (a
// file, a generator with rows, a Kafka read up to end_offset) may be
// ordered by anything: its rows are then sorted when it ends. Either
// way, a derived table whose only window function is ROW_NUMBER and that
// the outer query filters by rank (hint) becomes an updating top-N.
func (b *selectBinder) bindOver(sel *ast.Select, input Node, sc *scope, hint *topNHint) (Node, []string, []ast.Pos, error) {
	n, names, pos, err := b.bindOverIn(sel, input, sc, overStream, 0)
	var pe *Error
	if err != nil && sel.Window == nil && errors.As(err, &pe) && errors.Is(pe.Err, errStreamOrder) {
		r, _ := b.p.unbounded(input)
		if hint != nil {
			ok, terr := topNShape(sel, hint, r != nil)
			if terr != nil {
				return nil, nil, nil, terr
			}
			if ok {
				return b.bindOverIn(sel, input, sc, overTopN, hint.n)
			}
		}
		if r == nil {
			return b.bindOverIn(sel, input, sc, overWhole, 0)
		}
	}
	if err == nil && hint != nil && sel.Window != nil && windowedTopNShape(sel, hint) {
		if p, ok := n.(*Project); ok {
			if o, ok := p.Input.(*Over); ok && o.Window != nil && len(o.Calls) == 1 && o.Calls[0].Func == "row_number" {
				o.Prune = hint.n
			}
		}
	}
	return n, names, pos, err
}

// overMode is how bindOverIn evaluates window functions without a WINDOW
// clause.
type overMode int

const (
	overStream overMode = iota // incrementally, ordered by event time (or not at all)
	overWhole                  // over the whole bounded input, at its end
	overTopN                   // an updating top-N (ROW_NUMBER ... rn <= n)
)

// bindOverIn binds sel's window functions in mode; n is the top-N's N.
func (b *selectBinder) bindOverIn(sel *ast.Select, input Node, sc *scope, mode overMode, n int64) (Node, []string, []ast.Pos, error) {
	whole := mode == overWhole
	ctx := &overContext{input: sc, owner: sc.owner, nVis: len(visibleFields(input.Schema())), timeCol: input.EventTime(), topN: mode == overTopN}
	if ctx.timeCol >= 0 {
		ctx.timeName = input.Schema().Field(ctx.timeCol).Name
	}
	o := &Over{Input: input, TimeCol: input.EventTime(), WMCol: -1}
	if o.TimeCol >= 0 {
		o.WMCol = wmIndex(input.Schema())
	}
	if sel.Window != nil {
		w, err := bindWindow(sel.Window)
		if err != nil {
			return nil, nil, nil, err
		}
		if w.Kind == arrowexec.Session {
			return nil, nil, nil, notSupported(sel.Window.At, "window functions over SESSION windows")
		}
		o.Window = w
		ctx.windowed = true
	} else if whole {
		o.Window, ctx.windowed = wholeInput, true
	}
	post := &scope{cols: append([]scopeCol(nil), sc.cols...), owner: sc.owner, aliases: sc.aliases, over: ctx}
	if ctx.windowed && !whole {
		for i, name := range []string{"window_start", "window_end"} {
			for _, n := range []string{name, "_" + name} {
				if !scopeHas(sc, n) {
					post.cols = append(post.cols, scopeCol{name: n, typ: sqltypes.Timestamp, index: ctx.nVis + i})
				}
			}
		}
	}
	var exprs []expr.Expr
	var names []string
	var pos []ast.Pos
	for i, it := range sel.Items {
		if it.Star {
			for _, c := range sc.cols {
				if it.StarQualifier != "" && !containsFold(c.qualifiers, it.StarQualifier) {
					continue
				}
				exprs = append(exprs, expr.Col(c.index, c.name, c.typ))
				names = append(names, c.name)
				pos = append(pos, it.At)
			}
			continue
		}
		e, err := bindExpr(it.Expr, post)
		if err != nil {
			return nil, nil, nil, err
		}
		name := implicitName(it.Expr, i)
		if it.Alias != nil {
			name = it.Alias.Name
		}
		exprs = append(exprs, e)
		names = append(names, name)
		pos = append(pos, it.At)
	}
	o.Specs, o.Calls, o.Names = ctx.specs, ctx.calls, ctx.names
	if mode == overTopN {
		if len(o.Calls) != 1 || o.Calls[0].Func != "row_number" {
			return nil, nil, nil, fmt.Errorf("top-N: want one ROW_NUMBER call, have %v", o.Names)
		}
		o.TopN, o.TimeCol, o.WMCol = n, -1, -1
		return newProject(newOver(o), exprs, names), names, pos, nil
	}
	for _, s := range o.Specs {
		o.Ordered = o.Ordered || (!ctx.windowed && len(s.OrderBy) > 0)
	}
	if o.Window != nil || o.Ordered {
		o.Late = b.lateData(input)
	}
	if o.Window == nil {
		lead := -1
		for i, c := range o.Calls {
			if c.Func != "lead" {
				continue
			}
			if lead >= 0 && o.Calls[lead].Spec != c.Spec {
				return nil, nil, nil, notSupported(firstOverNamed(sel.Items, o.Names[i]), "LEAD calls with different OVER (...) clauses over an unbounded stream")
			}
			lead = i
		}
	}
	return newProject(newOver(o), exprs, names), names, pos, nil
}

// firstOverNamed is the position of the window call whose text is name.
func firstOverNamed(items []ast.SelectItem, name string) ast.Pos {
	var p ast.Pos
	for _, it := range items {
		if it.Expr == nil {
			continue
		}
		ast.Inspect(it.Expr, func(e ast.Expr) bool {
			if f, ok := e.(*ast.FuncCall); ok && f.Over != nil && p.Line == 0 && sql.Format(f) == name {
				p = f.At
			}
			return p.Line == 0
		})
	}
	return p
}

func scopeHas(sc *scope, name string) bool {
	for _, c := range sc.cols {
		if c.name == name {
			return true
		}
	}
	return false
}

// buildOver makes the operator of an Over node.
func (b *opBuilder) buildOver(n *Over) (arrowexec.Operator, error) {
	if n.TopN > 0 {
		return b.buildTopN(n)
	}
	in, err := b.build(n.Input)
	if err != nil {
		return nil, err
	}
	return arrowexec.NewOver(b.alloc, in, arrowexec.OverConfig{
		Query: b.node.Name, Source: sourceName(n.Input), Specs: n.Specs, Calls: n.Calls,
		Window: n.Window, TimeCol: n.TimeCol, WMCol: n.WMCol, Ordered: n.Ordered,
		Late: n.Late, DeadLetter: b.lateSink(n.Input), TopN: n.Prune, Schema: n.Schema(),
	})
}

// overPhysical describes the operator of an Over node for explain.
func overPhysical(n *Over) string {
	if n.TopN > 0 {
		return topNPhysical(n)
	}
	var b strings.Builder
	b.WriteString("WindowFunctions")
	switch {
	case n.Window != nil && n.Prune > 0:
		fmt.Fprintf(&b, " per %s window, top %d per partition and window (rows beyond rank %d pruned as rows arrive: each window re-ranks its rows once they double and keeps copies of the best; the rest emitted when the window closes)", n.Window, n.Prune, n.Prune)
	case n.Window != nil:
		fmt.Fprintf(&b, " per %s window (rows kept until the window closes, then partitioned, sorted, evaluated)", n.Window)
	case n.Ordered:
		b.WriteString(" incremental, rows released in event-time order at the watermark")
	default:
		b.WriteString(" incremental, in arrival order")
	}
	parts := make([]string, len(n.Calls))
	for i, c := range n.Calls {
		parts[i] = c.Func
		if c.Frame.Preceding >= 0 || c.Frame.WholePartition {
			parts[i] += " " + c.Frame.String()
		}
	}
	fmt.Fprintf(&b, " [%s] (vectorised partition ids, typed per-partition state)", strings.Join(parts, ", "))
	return b.String()
}

// hasAggregateItem reports whether a select item calls an aggregate
// function outside OVER.
func hasAggregateItem(items []ast.SelectItem) bool {
	for _, it := range items {
		if it.Expr != nil && hasAggregate(it.Expr) {
			return true
		}
	}
	return false
}
