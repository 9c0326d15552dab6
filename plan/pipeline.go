// Package plan turns SQL text into runnable pipelines: it parses (plan/sql),
// binds names and types against the declared streams, builds and rewrites
// logical plans, and builds arrowexec operator topologies from them.
package plan

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
)

// Pipeline is a compiled pipeline file: its settings, the relations it
// declares and the continuous queries it runs, in file order.
type Pipeline struct {
	Settings  arrowexec.Settings
	Relations []*Relation
	Queries   []*Query
	// Warnings are positioned errors (*Error) about what compiles but may
	// not do what was meant (warn.go), in statement order.
	Warnings []error
}

// Query is one continuous query.
type Query struct {
	Name    string
	At      ast.Pos
	Logical Node // as bound
	Plan    Node // after rewrites; what runs
	// Output is the stream this query defines (CREATE STREAM x AS ...), or
	// "" for a bare SELECT.
	Output string
	// Sink is where rows go: nil for an internal stream.
	Sink *SinkDef
	// Options are its WITH options: the sink's, and the fault-tolerance
	// options a query may have without a sink (fault.go).
	Options arrowexec.Options
}

// SinkDef is a sink connector and its options.
type SinkDef struct {
	Connector string
	Options   arrowexec.Options
}

// Relation returns the named relation or nil.
func (p *Pipeline) Relation(name string) *Relation {
	for _, r := range p.Relations {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Compile parses and plans a pipeline. base holds the settings from lower
// precedence layers (defaults, config file, environment); SET statements
// apply on top, then overrides (the --set flags). All errors found are
// returned joined, each naming its line and column.
func Compile(src string, base arrowexec.Settings, overrides map[string]string) (*Pipeline, error) {
	stmts, err := sql.Parse(src)
	if err != nil {
		return nil, err
	}
	return CompileStatements(stmts, base, overrides)
}

// CompileStatements is Compile for parsed statements.
func CompileStatements(stmts []ast.Statement, base arrowexec.Settings, overrides map[string]string) (*Pipeline, error) {
	p := &Pipeline{Settings: base}
	var errs []error
	for _, st := range stmts {
		if s, ok := st.(*ast.Set); ok {
			if err := p.Settings.Set(s.Name.Name, s.Value); err != nil {
				errs = append(errs, at(s.At, err))
			}
		}
	}
	for k, v := range overrides {
		if err := p.Settings.Set(k, v); err != nil {
			errs = append(errs, fmt.Errorf("--set %s: %w", k, err))
		}
	}
	if err := streamCycles(stmts); err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	selects := 0
	fusable := fusableRankings(stmts) // topn.go
	fused := map[string]*ast.Select{}
	reader := func(sel *ast.Select) *ast.Select {
		if t, ok := sel.From.(*ast.TableRef); ok && fused[t.Name.Name] != nil {
			if r := fuseReader(sel, t.Name.Name, fused[t.Name.Name]); r != nil {
				return r
			}
		}
		return sel
	}
	for _, st := range stmts {
		var err error
		switch s := st.(type) {
		case *ast.CreateSource:
			err = p.addSource(s)
		case *ast.CreateAs:
			nq, nr, nw := len(p.Queries), len(p.Relations), len(p.Warnings)
			err = p.addQuery(s.Name.Name, s.At, reader(s.Query), s.With, true, s.Table)
			if fusable[s.Name.Name] && (isStreamOrder(err) || err == nil && (ranksWholeInput(p.Queries[nq].Plan) || windowedRanking(s.Query))) {
				p.Queries, p.Relations, p.Warnings = p.Queries[:nq], p.Relations[:nr], p.Warnings[:nw]
				fused[s.Name.Name], err = s.Query, nil
			}
		case *ast.SelectStatement:
			selects++
			err = p.addQuery(fmt.Sprintf("select_%d", selects), s.Query.At, reader(s.Query), s.With, false, false)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// streamCycles reports the derived streams and tables that read each other
// in a cycle, one error per cycle naming it (s1 -> s2 -> s1) at the
// reference in its first statement that starts it; nil when there is none.
func streamCycles(stmts []ast.Statement) error {
	type edge struct {
		to string
		at ast.Pos
	}
	deps := map[string][]edge{}
	var order []string
	sources := map[string]bool{} // a name defined twice is reported by declare
	for _, st := range stmts {
		switch c := st.(type) {
		case *ast.CreateAs:
			order = append(order, c.Name.Name)
			deps[c.Name.Name] = nil
		case *ast.CreateSource:
			sources[c.Name.Name] = true
		}
	}
	for name := range sources {
		delete(deps, name)
	}
	for _, st := range stmts {
		if c, ok := st.(*ast.CreateAs); ok && !sources[c.Name.Name] {
			tableRefs(c.Query, func(t *ast.TableRef) {
				if _, derived := deps[t.Name.Name]; derived {
					deps[c.Name.Name] = append(deps[c.Name.Name], edge{t.Name.Name, t.Name.At})
				}
			})
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []edge // the walk from a root; path[i].to is its i-th stream
	var errs []error
	var visit func(name string)
	visit = func(name string) {
		state[name] = onPath
		for _, e := range deps[name] {
			switch state[e.to] {
			case unseen:
				path = append(path, e)
				visit(e.to)
				path = path[:len(path)-1]
			case onPath:
				i := len(path) - 1
				for path[i].to != e.to {
					i--
				}
				cycle := append(slices.Clone(path[i+1:]), e)
				names := []string{e.to}
				for _, c := range cycle {
					names = append(names, c.to)
				}
				errs = append(errs, errorf(cycle[0].at, "streams read each other in a cycle: %s (a stream can read only streams defined before it)", strings.Join(names, " -> ")))
			}
		}
		state[name] = done
	}
	for _, name := range order {
		if _, derived := deps[name]; derived && state[name] == unseen {
			path = []edge{{to: name}}
			visit(name)
		}
	}
	return errors.Join(errs...)
}

func (p *Pipeline) declare(name ast.Ident) error {
	if old := p.Relation(name.Name); old != nil {
		return errorf(name.At, "%s %q is already defined at %s", old.noun(), name.Name, old.At)
	}
	return nil
}

func (p *Pipeline) addSource(s *ast.CreateSource) error {
	if err := p.declare(s.Name); err != nil {
		return err
	}
	r := &Relation{Name: s.Name.Name, Kind: SourceStream, At: s.At, Options: arrowexec.Options{}}
	if s.Table {
		r.Kind = SourceTable
	}
	if len(s.Columns) == 0 {
		return errorf(s.Name.At, "%s %q declares no columns", r.noun(), r.Name)
	}
	fields := make([]arrow.Field, len(s.Columns))
	seen := map[string]bool{}
	for i, c := range s.Columns {
		if seen[c.Name.Name] {
			return errorf(c.Name.At, "column %q declared twice", c.Name.Name)
		}
		seen[c.Name.Name] = true
		t, err := bindType(c.Type)
		if err != nil {
			return err
		}
		fields[i] = arrow.Field{Name: c.Name.Name, Type: t, Nullable: !c.NotNull && !c.PrimaryKey}
		if c.PrimaryKey {
			r.PrimaryKey = append(r.PrimaryKey, c.Name.Name)
		}
	}
	for _, k := range s.PrimaryKey {
		if !seen[k.Name] {
			return errorf(k.At, "PRIMARY KEY column %q is not declared%s", k.Name, suggest(k.Name, fieldNames(fields)))
		}
		r.PrimaryKey = append(r.PrimaryKey, k.Name)
	}
	r.Declared = arrow.NewSchema(fields, nil)
	if len(r.PrimaryKey) > 0 && !s.Table {
		return errorf(s.At, "PRIMARY KEY is only valid on CREATE TABLE")
	}
	opts, err := optionMap(s.With)
	if err != nil {
		return err
	}
	r.Options = opts
	if _, ok := opts["connector"]; !ok {
		return errorf(s.Name.At, "%s %q needs WITH (connector = ...): one of file, generator, kafka", r.noun(), r.Name)
	}
	if err := validateSourceOptions(r, s.With); err != nil {
		return err
	}
	if s.Watermark != nil {
		if err := bindWatermark(r, s.Watermark); err != nil {
			return err
		}
	}
	r.RawRecords = keepsRawRecords(r, p.Settings.LateData)
	finishSchema(r)
	p.Relations = append(p.Relations, r)
	return nil
}

// bindWatermark reads `WATERMARK FOR col AS col [- INTERVAL ...]`.
func bindWatermark(r *Relation, w *ast.WatermarkDef) error {
	idx := r.Declared.FieldIndices(w.Column.Name)
	if len(idx) == 0 {
		return errorf(w.Column.At, "unknown column %q in %s %q%s", w.Column.Name, r.noun(), r.Name, suggest(w.Column.Name, fieldNames(r.Declared.Fields())))
	}
	if t := r.Declared.Field(idx[0]).Type; t.ID() != arrow.TIMESTAMP && t.ID() != arrow.INT64 {
		return errorf(w.Column.At, "WATERMARK FOR column %q must be TIMESTAMP (or BIGINT epoch), not %s", w.Column.Name, sqltypes.Name(t))
	}
	if ev, ok := r.Options["event_time"]; ok && ev != w.Column.Name {
		return errorf(w.At, "WATERMARK FOR %s conflicts with option event_time = %q", w.Column.Name, ev)
	}
	r.EventTime = w.Column.Name
	isCol := func(e ast.Expr) bool {
		c, ok := e.(*ast.ColumnRef)
		return ok && c.Name == w.Column.Name
	}
	switch e := w.Expr.(type) {
	case *ast.ColumnRef:
		if isCol(e) {
			return nil
		}
	case *ast.Binary:
		if lit, ok := e.R.(*ast.Literal); ok && e.Op == "-" && isCol(e.L) && lit.Kind == ast.IntervalLit {
			ms, err := intervalMillis(lit)
			if err != nil {
				return err
			}
			r.Time.DelayMS = ms
			return nil
		}
	}
	return errorf(w.Expr.Position(), "WATERMARK expression must be %s or %s - INTERVAL '...' unit", w.Column.Name, w.Column.Name)
}

func fieldNames(fields []arrow.Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	return out
}

func optionMap(with []ast.Option) (arrowexec.Options, error) {
	opts := arrowexec.Options{}
	for _, o := range with {
		if _, dup := opts[o.Key.Name]; dup {
			return nil, errorf(o.Key.At, "option %q given twice", o.Key.Name)
		}
		opts[o.Key.Name] = o.Value
	}
	return opts, nil
}

func (p *Pipeline) addQuery(name string, pos ast.Pos, sel *ast.Select, with []ast.Option, named, table bool) error {
	if named {
		if err := p.declare(ast.Ident{At: pos, Name: name}); err != nil {
			return err
		}
		if table {
			return notSupported(pos, "CREATE TABLE ... AS SELECT")
		}
	}
	b := &selectBinder{p: p}
	ttl, with, err := queryStateTTL(with)
	if err != nil {
		return err
	}
	b.stateTTL = ttl
	logical, err := b.bindSelect(sel)
	if err != nil {
		return err
	}
	opts, err := optionMap(with)
	if err != nil {
		return err
	}
	if err := validateSinkOptions(with); err != nil {
		return err
	}
	optimized, err := optimize(logical)
	if err != nil {
		return at(pos, err)
	}
	q := &Query{Name: name, At: pos, Logical: logical, Plan: optimized, Options: opts}
	if conn, ok := opts["connector"]; ok {
		q.Sink = &SinkDef{Connector: conn, Options: opts}
	} else if o := nonFaultOption(with); o != nil {
		return errorf(o.Key.At, "sink options need connector = ... (file, stdout, kafka)")
	}
	if named {
		q.Output = name
		r := &Relation{Name: name, Kind: DerivedStream, Schema: q.Plan.Schema(), At: pos, Options: opts}
		if et := q.Plan.EventTime(); et >= 0 {
			r.EventTime = q.Plan.Schema().Field(et).Name
			r.LateData, r.AllowedLatenessMS = inheritedLateData(q.Plan)
		}
		p.Relations = append(p.Relations, r)
	} else if q.Sink == nil {
		q.Sink = &SinkDef{Connector: "stdout", Options: arrowexec.Options{"connector": "stdout", "format": "json"}}
	}
	p.warnProcessingTime(q, sel)
	p.Queries = append(p.Queries, q)
	return nil
}

type selectBinder struct {
	p *Pipeline
	// stateTTL is the query's state_ttl option (ms; 0: none), which
	// bounds the state of joins without a time bound (see join.go).
	stateTTL int64
	// inSubquery binds a subquery (subquery.go): aggregates emit once at
	// the end, a table read directly keeps its latest row per key.
	inSubquery bool
	// topN is the rank filter the SELECT being bound offers the derived
	// table it reads (topn.go); the derived table's bindSelect takes it.
	topN *topNHint
}

func (b *selectBinder) bindSelect(sel *ast.Select) (Node, error) {
	switch {
	case sel.Union != nil:
		return nil, notSupported(sel.Union.At, "UNION")
	case sel.Distinct:
		return nil, notSupported(sel.At, "SELECT DISTINCT")
	case len(sel.OrderBy) > 0:
		return nil, notSupported(sel.OrderBy[0].Expr.Position(), "ORDER BY over a stream (outside a window)")
	}
	hint := b.topN // offered by the query reading this one
	b.topN = nil
	if !b.inSubquery { // a subquery's rows are its final ones: it ranks a bounded input at its end
		b.topN = topNFilter(sel)
	}
	input, sc, err := b.bindFrom(sel.From)
	b.topN = nil
	if err != nil {
		return nil, err
	}
	if s, ok := input.(*Scan); ok && b.inSubquery && s.Relation.Kind == SourceTable && len(s.Relation.PrimaryKey) > 0 {
		input = latestRows(s) // subquery.go
	}
	if input, sel, err = b.finishJoins(input, sel, sc); err != nil { // joins take WHERE conjuncts and WINDOW
		return nil, err
	}
	sc.aliases = map[string]ast.Expr{}
	aggregating := sel.Window != nil || len(sel.GroupBy) > 0 || sel.Having != nil
	for _, it := range sel.Items {
		if it.Alias != nil && !it.Star {
			sc.aliases[it.Alias.Name] = it.Expr
		}
		aggregating = aggregating || (it.Expr != nil && hasAggregate(it.Expr))
	}
	over := firstOver(sel.Items) // window functions (see over.go)
	if over != nil {
		if len(sel.GroupBy) > 0 || sel.Having != nil || (aggregating && sel.Window == nil) || hasAggregateItem(sel.Items) {
			return nil, notSupported(over.At, "window functions in an aggregating query (GROUP BY, HAVING or aggregate functions)")
		}
		aggregating = false // a WINDOW clause groups the window functions' rows
	}
	if err := checkSubqueryPlacement(sel, aggregating || over != nil); err != nil {
		return nil, err
	}
	if !aggregating && sel.Emit != "" {
		return nil, errorf(sel.At, "EMIT %s applies to aggregations (GROUP BY, aggregate functions or a WINDOW)", sel.Emit)
	}

	node := input
	if sel.Where != nil {
		if f := firstOver([]ast.SelectItem{{Expr: sel.Where}}); f != nil {
			return nil, errorf(f.At, "window functions are not allowed in WHERE (it filters rows before window functions are computed); compute %s in a CREATE STREAM ... AS stage and filter that stream", strings.ToUpper(f.Name))
		}
		if hasAggregate(sel.Where) {
			return nil, errorf(sel.Where.Position(), "aggregate functions are not allowed in WHERE; use HAVING")
		}
		if hasSubquery(sel.Where) { // semi, anti, mark and lookup joins: subquery.go
			if node, err = b.bindWhereSubqueries(node, sel.Where, sc); err != nil {
				return nil, err
			}
		} else {
			pred, err := bindExpr(sel.Where, sc)
			if err != nil {
				return nil, err
			}
			if pred, err = predicate(sel.Where.Position(), "WHERE", pred); err != nil {
				return nil, err
			}
			node = &Filter{Input: node, Pred: pred}
		}
	}

	var names []string
	var namePos []ast.Pos
	if over != nil {
		if node, names, namePos, err = b.bindOver(sel, node, sc, hint); err != nil {
			return nil, err
		}
	} else if aggregating {
		if node, names, err = b.bindAggregate(sel, node, sc, sel.Items); err != nil {
			return nil, err
		}
		for _, it := range sel.Items {
			namePos = append(namePos, it.At)
		}
	} else {
		if node, err = b.bindItemSubqueries(node, sel.Items, sc); err != nil { // subquery.go
			return nil, err
		}
		var exprs []expr.Expr
		for i, item := range sel.Items {
			if item.Star {
				n := 0
				for _, c := range sc.cols {
					if item.StarQualifier != "" && !containsFold(c.qualifiers, item.StarQualifier) {
						continue
					}
					exprs = append(exprs, expr.Col(c.index, c.name, c.typ))
					names = append(names, c.name)
					namePos = append(namePos, item.At)
					n++
				}
				if n == 0 && item.StarQualifier != "" {
					return nil, errorf(item.At, "unknown stream or alias %q", item.StarQualifier)
				}
				continue
			}
			e, err := bindExpr(item.Expr, sc)
			if err != nil {
				return nil, err
			}
			name := implicitName(item.Expr, i)
			if item.Alias != nil {
				name = item.Alias.Name
			}
			exprs = append(exprs, e)
			names = append(names, name)
			namePos = append(namePos, item.At)
		}
		node = newProject(node, exprs, names)
	}
	seen := map[string]bool{}
	for i, n := range names {
		if seen[n] {
			return nil, errorf(namePos[i], "duplicate output column %q; rename one with AS", n)
		}
		seen[n] = true
	}
	if sel.Limit != nil {
		lit, ok := sel.Limit.(*ast.Literal)
		n, err := strconv.ParseInt(litValue(lit), 10, 64)
		if !ok || lit.Kind != ast.NumberLit || err != nil || n < 0 {
			return nil, errorf(sel.Limit.Position(), "LIMIT must be a non-negative integer")
		}
		node = &Limit{Input: node, N: n}
	}
	return node, nil
}

func litValue(l *ast.Literal) string {
	if l == nil {
		return ""
	}
	return l.Value
}

// implicitName names an unaliased select item: a column keeps its name, a
// function call takes the function's, a cast its operand's; anything else
// is expr_<position>.
func implicitName(e ast.Expr, i int) string {
	switch e := e.(type) {
	case *ast.ColumnRef:
		return e.Name
	case *ast.FuncCall:
		return e.Name
	case *ast.Cast:
		return implicitName(e.X, i)
	}
	return fmt.Sprintf("expr_%d", i+1)
}

func (b *selectBinder) bindFrom(from ast.FromItem) (Node, *scope, error) {
	switch f := from.(type) {
	case nil:
		return &Values{}, &scope{}, nil
	case *ast.TableRef:
		r := b.p.Relation(f.Name.Name)
		if r == nil {
			var names []string
			for _, r := range b.p.Relations {
				names = append(names, r.Name)
			}
			return nil, nil, errorf(f.Name.At, "unknown stream %q%s", f.Name.Name, suggest(f.Name.Name, names))
		}
		quals := []string{r.Name}
		if f.Alias != nil {
			quals = []string{f.Alias.Name}
		}
		sc := &scope{owner: fmt.Sprintf("%s %q", r.noun(), r.Name)}
		for i, fld := range visibleFields(r.Schema) {
			sc.cols = append(sc.cols, scopeCol{qualifiers: quals, name: fld.Name, typ: fld.Type, index: i})
		}
		return newScan(r, nil), sc, nil
	case *ast.SubqueryRef:
		inner, err := b.bindSelect(f.Query)
		if err != nil {
			return nil, nil, err
		}
		var quals []string
		owner := "subquery"
		if f.Alias != nil {
			quals = []string{f.Alias.Name}
			owner = fmt.Sprintf("subquery %q", f.Alias.Name)
		}
		sc := &scope{owner: owner}
		for i, fld := range visibleFields(inner.Schema()) {
			sc.cols = append(sc.cols, scopeCol{qualifiers: quals, name: fld.Name, typ: fld.Type, index: i})
		}
		return inner, sc, nil
	case *ast.Join:
		return b.bindJoin(f)
	}
	return nil, nil, errorf(from.Position(), "unsupported FROM item %T", from)
}

// inheritedLateData is the late-data handling of the first source under n
// that sets one (lateRelation).
func inheritedLateData(n Node) (string, int64) {
	if r := lateRelation(n); r != nil {
		return r.LateData, r.AllowedLatenessMS
	}
	return "", 0
}

// lateRelation is the stream whose late rows an operator over n sees: the
// first stream scanned under n that sets late_data or allowed_lateness,
// else the first stream scanned (nil: none).
func lateRelation(n Node) *Relation {
	var first *Relation
	var walk func(n Node) *Relation
	walk = func(n Node) *Relation {
		if s, ok := n.(*Scan); ok {
			if first == nil {
				first = s.Relation
			}
			if s.Relation.LateData != "" || s.Relation.AllowedLatenessMS != 0 {
				return s.Relation
			}
			return nil
		}
		for _, c := range n.Children() {
			if r := walk(c); r != nil {
				return r
			}
		}
		return nil
	}
	if r := walk(n); r != nil {
		return r
	}
	return first
}

// predicate checks that e, the condition of clause at pos, is BOOLEAN. An
// untyped NULL (WHERE NULL) becomes a BOOLEAN NULL: it keeps no row.
func predicate(pos ast.Pos, clause string, e expr.Expr) (expr.Expr, error) {
	switch e.Type().ID() {
	case arrow.BOOL:
		return e, nil
	case arrow.NULL:
		return expr.Lit(nil, sqltypes.Boolean), nil
	}
	return nil, errorf(pos, "%s must be BOOLEAN, not %s", clause, sqltypes.Name(e.Type()))
}
