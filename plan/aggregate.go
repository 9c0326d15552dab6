package plan

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
)

// AggCall is one aggregate function call: its spec and argument (nil for
// COUNT(*)), and its name in the aggregate's output.
type AggCall struct {
	Spec agg.Spec
	Arg  expr.Expr
	Name string
}

// Aggregate groups its input by Keys (and by window when Window is set)
// and computes Aggs. Its output columns are: the keys, then window_start
// and window_end (windowed), then revision (late_data = update_previous),
// then one column per aggregate.
type Aggregate struct {
	Input    Node
	Keys     []expr.Expr
	KeyNames []string
	Aggs     []AggCall
	Window   *arrowexec.WindowSpec
	// TimeCol and WMCol are the input's event-time and row-watermark
	// columns (-1 for processing time).
	TimeCol, WMCol int
	// EmitChanges emits updated groups as input arrives; otherwise results
	// are emitted when the watermark closes a window (or at end of input).
	EmitChanges bool
	Late        arrowexec.LateDataSpec
	schema      *arrow.Schema
}

func newAggregate(a *Aggregate) *Aggregate {
	var fields []arrow.Field
	for i, k := range a.Keys {
		fields = append(fields, arrow.Field{Name: a.KeyNames[i], Type: k.Type(), Nullable: true})
	}
	if a.Window != nil {
		fields = append(fields,
			arrow.Field{Name: "window_start", Type: sqltypes.Timestamp},
			arrow.Field{Name: "window_end", Type: sqltypes.Timestamp})
		if a.Late.Strategy == "update_previous" {
			fields = append(fields, arrow.Field{Name: "revision", Type: sqltypes.BigInt})
		}
	}
	for _, c := range a.Aggs {
		t, _ := agg.ResultType(c.Spec) // checked when the call was bound
		fields = append(fields, arrow.Field{Name: c.Name, Type: t, Nullable: true})
	}
	a.schema = arrow.NewSchema(fields, nil)
	return a
}

func (a *Aggregate) Schema() *arrow.Schema { return a.schema }
func (a *Aggregate) Children() []Node      { return []Node{a.Input} }
func (a *Aggregate) EventTime() int        { return -1 }

// firstAggColumn is the output index of the first aggregate.
func (a *Aggregate) firstAggColumn() int { return len(a.schema.Fields()) - len(a.Aggs) }

func (a *Aggregate) describe() string {
	var b strings.Builder
	b.WriteString("Aggregate")
	if a.Window != nil {
		fmt.Fprintf(&b, " %s", a.Window)
	}
	if len(a.Keys) > 0 {
		keys := make([]string, len(a.Keys))
		for i, k := range a.Keys {
			keys[i] = k.String()
		}
		fmt.Fprintf(&b, " GROUP BY %s", strings.Join(keys, ", "))
	}
	calls := make([]string, len(a.Aggs))
	for i, c := range a.Aggs {
		calls[i] = c.Name
	}
	fmt.Fprintf(&b, " [%s]", strings.Join(calls, ", "))
	switch {
	case a.EmitChanges:
		b.WriteString(" EMIT CHANGES")
	case a.Window == nil:
		b.WriteString(" EMIT FINAL")
	}
	if a.Window != nil {
		if a.TimeCol < 0 {
			b.WriteString(" processing-time")
		} else {
			fmt.Fprintf(&b, " event-time late_data=%s", a.Late.Strategy)
		}
	}
	return b.String()
}

// aggContext binds expressions over an aggregate's output: aggregate calls
// become its aggregate columns, expressions equal to a GROUP BY key its key
// columns, window_start/window_end its window columns.
type aggContext struct {
	input     *scope // the aggregate's input
	keys      []expr.Expr
	keyText   []string
	windowed  bool
	revision  bool
	calls     []AggCall
	callText  []string
	callTypes []arrow.DataType
	aliases   map[string]ast.Expr
}

// firstAgg is the output index of aggregate 0.
func (c *aggContext) firstAgg() int {
	n := len(c.keys)
	if c.windowed {
		n += 2
		if c.revision {
			n++
		}
	}
	return n
}

// bind handles the nodes the aggregate context resolves itself; ok is false
// for nodes the generic binder should recurse into.
func (c *aggContext) bind(e ast.Expr, sc *scope) (out expr.Expr, ok bool, err error) {
	text := sql.Format(e)
	for i, k := range c.keyText {
		if k == text {
			return expr.Col(i, text, c.keys[i].Type()), true, nil
		}
	}
	switch e := e.(type) {
	case *ast.FuncCall:
		if e.Over != nil || !aggregateNames[e.Name] {
			return nil, false, nil
		}
		return c.bindCall(e, text)
	case *ast.ColumnRef:
		if c.windowed && e.Qualifier == "" {
			switch e.Name {
			case "window_start", "_window_start":
				return expr.Col(len(c.keys), e.Name, sqltypes.Timestamp), true, nil
			case "window_end", "_window_end":
				return expr.Col(len(c.keys)+1, e.Name, sqltypes.Timestamp), true, nil
			case "revision":
				if c.revision {
					return expr.Col(len(c.keys)+2, e.Name, sqltypes.BigInt), true, nil
				}
			}
		}
		in, err := c.input.resolve(e)
		if err == nil {
			if idx, isCol := expr.ColumnIndex(in); isCol {
				for i, k := range c.keys {
					if kc, kIsCol := expr.ColumnIndex(k); kIsCol && kc == idx {
						return expr.Col(i, e.Name, k.Type()), true, nil
					}
				}
			}
			return nil, true, errorf(e.At, "column %q must appear in the GROUP BY clause or be used in an aggregate function", e.Name)
		}
		if a, isAlias := c.aliases[e.Name]; isAlias && e.Qualifier == "" {
			delete(c.aliases, e.Name) // an alias may not refer to itself
			defer func() { c.aliases[e.Name] = a }()
			out, err := bindExpr(a, sc)
			return out, true, err
		}
		return nil, true, err
	}
	return nil, false, nil
}

func (c *aggContext) bindCall(f *ast.FuncCall, text string) (expr.Expr, bool, error) {
	for i, t := range c.callText {
		if t == text {
			return expr.Col(c.firstAgg()+i, text, c.callTypes[i]), true, nil
		}
	}
	spec := agg.Spec{Func: f.Name, Distinct: f.Distinct}
	var arg expr.Expr
	switch {
	case f.Star && f.Name == "count":
		spec.Func = "count_star"
	case f.Star:
		return nil, true, errorf(f.At, "%s(*) is only valid for COUNT", strings.ToUpper(f.Name))
	case len(f.Args) != 1:
		return nil, true, errorf(f.At, "%s takes one argument, got %d", strings.ToUpper(f.Name), len(f.Args))
	default:
		inner := *c.input
		inner.agg = nil
		inner.inAggregate = true
		var err error
		if arg, err = bindExpr(f.Args[0], &inner); err != nil {
			return nil, true, err
		}
		spec.Input = arg.Type()
	}
	t, err := agg.ResultType(spec)
	if err != nil {
		return nil, true, at(f.At, err)
	}
	c.calls = append(c.calls, AggCall{Spec: spec, Arg: arg, Name: text})
	c.callText = append(c.callText, text)
	c.callTypes = append(c.callTypes, t)
	return expr.Col(c.firstAgg()+len(c.calls)-1, text, t), true, nil
}

// hasAggregate reports whether e calls an aggregate function (outside OVER).
func hasAggregate(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Expr) bool {
		if f, ok := n.(*ast.FuncCall); ok && f.Over == nil && aggregateNames[f.Name] {
			found = true
		}
		return !found
	})
	return found
}

// bindAggregate builds Aggregate → [Filter HAVING] → Project for an
// aggregating SELECT over input (already filtered by WHERE).
func (b *selectBinder) bindAggregate(sel *ast.Select, input Node, sc *scope, items []ast.SelectItem) (Node, []string, error) {
	ctx := &aggContext{input: sc, aliases: map[string]ast.Expr{}}
	for _, it := range items {
		if it.Alias != nil && !it.Star {
			ctx.aliases[it.Alias.Name] = it.Expr
		}
	}
	a := &Aggregate{Input: input, TimeCol: input.EventTime(), WMCol: wmIndex(input.Schema())}
	if a.TimeCol < 0 {
		a.WMCol = -1
	}
	for _, g := range sel.GroupBy {
		kexpr := g
		name := ""
		if ref, ok := g.(*ast.ColumnRef); ok {
			name = ref.Name
			columnsOnly := *sc
			columnsOnly.aliases = nil
			if _, err := columnsOnly.resolve(ref); err != nil {
				alias, isAlias := ctx.aliases[ref.Name]
				if !isAlias || ref.Qualifier != "" {
					return nil, nil, err
				}
				kexpr = alias
			}
		}
		if hasAggregate(kexpr) {
			return nil, nil, errorf(g.Position(), "aggregate functions are not allowed in GROUP BY")
		}
		k, err := bindExpr(kexpr, sc)
		if err != nil {
			return nil, nil, err
		}
		if name == "" {
			name = sql.Format(kexpr)
		}
		ctx.keys = append(ctx.keys, k)
		ctx.keyText = append(ctx.keyText, sql.Format(kexpr))
		a.Keys = append(a.Keys, k)
		a.KeyNames = append(a.KeyNames, name)
	}
	if sel.Window != nil {
		w, err := bindWindow(sel.Window)
		if err != nil {
			return nil, nil, err
		}
		a.Window = w
		ctx.windowed = true
		a.Late = b.lateData(input)
		ctx.revision = a.Late.Strategy == "update_previous"
	}
	switch sel.Emit {
	case "CHANGES":
		if b.inSubquery {
			return nil, nil, errorf(sel.At, "EMIT CHANGES in a subquery: a subquery's result is used once complete")
		}
		if a.Window != nil && a.Window.Kind == arrowexec.Session {
			return nil, nil, notSupported(sel.At, "EMIT CHANGES with WINDOW SESSION")
		}
		a.EmitChanges = true
	case "FINAL":
		if a.Window != nil {
			return nil, nil, errorf(sel.At, "EMIT FINAL is the default for windowed aggregations; remove it")
		}
	default:
		a.EmitChanges = a.Window == nil && !b.inSubquery // un-windowed GROUP BY emits changes by default; a subquery's once, at the end
	}

	post := &scope{agg: ctx}
	var exprs []expr.Expr
	var names []string
	for i, it := range items {
		if it.Star {
			return nil, nil, errorf(it.At, "SELECT * is not allowed in an aggregation; list the GROUP BY columns and aggregates")
		}
		e, err := bindExpr(it.Expr, post)
		if err != nil {
			return nil, nil, err
		}
		name := implicitName(it.Expr, i)
		if it.Alias != nil {
			name = it.Alias.Name
		}
		exprs = append(exprs, e)
		names = append(names, name)
	}
	var having expr.Expr
	if sel.Having != nil {
		h, err := bindExpr(sel.Having, post)
		if err != nil {
			return nil, nil, err
		}
		if having, err = predicate(sel.Having.Position(), "HAVING", h); err != nil {
			return nil, nil, err
		}
	}
	a.Aggs = ctx.calls
	var node Node = newAggregate(a)
	if having != nil {
		node = &Filter{Input: node, Pred: having}
	}
	return newProject(node, exprs, names), names, nil
}

// bindWindow reads TUMBLING(size), SLIDING(size, advance) or SESSION(gap).
func bindWindow(w *ast.WindowSpec) (*arrowexec.WindowSpec, error) {
	want := map[string]int{"TUMBLING": 1, "SLIDING": 2, "HOPPING": 2, "SESSION": 1}[w.Kind]
	if want == 0 {
		return nil, errorf(w.At, "unknown window kind %s (TUMBLING, SLIDING, SESSION)", w.Kind)
	}
	if len(w.Args) != want {
		return nil, errorf(w.At, "%s takes %d interval argument(s), got %d", w.Kind, want, len(w.Args))
	}
	ms := make([]int64, len(w.Args))
	for i, a := range w.Args {
		lit, ok := a.(*ast.Literal)
		if !ok || lit.Kind != ast.IntervalLit {
			return nil, errorf(a.Position(), "%s needs interval literals like INTERVAL '1' MINUTE or 1m", w.Kind)
		}
		v, err := intervalMillis(lit)
		if err != nil {
			return nil, err
		}
		if v <= 0 {
			return nil, errorf(a.Position(), "window interval must be positive")
		}
		ms[i] = v
	}
	spec := &arrowexec.WindowSpec{Size: ms[0]}
	switch w.Kind {
	case "TUMBLING":
		spec.Kind, spec.Advance = arrowexec.Tumbling, ms[0]
	case "SLIDING", "HOPPING":
		spec.Kind, spec.Advance = arrowexec.Sliding, ms[1]
		if ms[1] > ms[0] {
			return nil, errorf(w.Args[1].Position(), "SLIDING advance %dms is larger than its size %dms", ms[1], ms[0])
		}
		if ms[0]%ms[1] != 0 {
			return nil, errorf(w.Args[1].Position(), "SLIDING size must be a multiple of its advance")
		}
	case "SESSION":
		spec.Kind, spec.Gap, spec.Size = arrowexec.Session, ms[0], 0
	}
	return spec, nil
}

// lateData is the late-data handling of windows over input: the option of
// the stream it reads, else the engine setting.
func (b *selectBinder) lateData(input Node) arrowexec.LateDataSpec {
	strategy, allowed := inheritedLateData(input)
	if strategy == "" {
		strategy = b.p.Settings.LateData
	}
	return arrowexec.LateDataSpec{Strategy: strategy, AllowedLateness: allowed}
}
