package plan

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
)

// Join joins two inputs on equality keys (see arrowexec.JoinOp for the
// execution semantics). Its output columns are the visible columns of
// Left, then those of Right, then window_start and window_end for a
// windowed join, then, when it has event time, the hidden row-watermark
// column.
//
// Event time of the output: the left input's event-time column for INNER
// and LEFT joins (for INNER the right one is equally valid, and either may
// be selected), the right input's for RIGHT joins, window_start for a
// windowed FULL join; an un-windowed FULL join has none (either side may be
// NULL). A stream–table join keeps the stream's event time.
type Join struct {
	At          ast.Pos
	Left, Right Node
	Kind        arrowexec.JoinKind
	// LeftKeys[i] = RightKeys[i], over each input; same types.
	LeftKeys, RightKeys []expr.Expr
	KeyText             []string
	// Residual is the rest of the ON condition over the visible columns of
	// Left then Right (nil: none).
	Residual     expr.Expr
	ResidualText string
	// LeftTime and RightTime are the event-time columns the join uses
	// (-1: processing time).
	LeftTime, RightTime int
	Bound               *arrowexec.JoinBound
	BoundText           string
	Window              int64 // tumbling window of a windowed join (ms)
	TTL                 int64 // state_ttl of an otherwise unbounded join (ms)
	// Table is -1 for a stream–stream join, else the input that is a
	// table; TableKey are its primary key columns (in that input).
	Table      int
	TableName  string
	TableKey   []int
	TableFirst bool

	// binding state
	conds        []ast.Expr // ON conditions and WHERE conjuncts pushed here
	within       ast.Expr
	sc, lsc, rsc *scope
	leftName     string
	rightName    string

	schema     *arrow.Schema
	eventTime  int
	eventTimes []int
}

func (j *Join) Schema() *arrow.Schema { return j.schema }
func (j *Join) Children() []Node      { return []Node{j.Left, j.Right} }
func (j *Join) EventTime() int        { return j.eventTime }

// nLeft is the number of visible columns of the left input.
func (j *Join) nLeft() int  { return len(visibleFields(j.Left.Schema())) }
func (j *Join) nRight() int { return len(visibleFields(j.Right.Schema())) }

func (j *Join) kindText() string {
	if j.Table >= 0 {
		return j.Kind.String() + " stream–table"
	}
	return j.Kind.String()
}

func (j *Join) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Join %s ON [%s]", j.kindText(), strings.Join(j.KeyText, ", "))
	switch {
	case j.Table >= 0:
		fmt.Fprintf(&b, " table %s (latest row per primary key", j.TableName)
		if j.TableFirst {
			b.WriteString(", loaded first")
		}
		b.WriteString(")")
	default:
		if j.Bound != nil {
			fmt.Fprintf(&b, " interval %s", j.BoundText)
		}
		if j.Window > 0 {
			fmt.Fprintf(&b, " window TUMBLING(%s)", kernels.FormatInterval(j.Window))
		}
		if j.Bound == nil && j.Window == 0 {
			fmt.Fprintf(&b, " state_ttl %s", kernels.FormatInterval(j.TTL))
		}
	}
	if j.Residual != nil {
		fmt.Fprintf(&b, " residual %s", j.ResidualText)
	}
	return b.String()
}

// physical describes the operator Build creates.
func (j *Join) physical() string {
	var b strings.Builder
	switch {
	case j.Table >= 0:
		fmt.Fprintf(&b, "HashJoin %s stream–table with %s keys [%s] (vectorised hash probe of the table's latest rows; no stream state", j.Kind, j.TableName, strings.Join(j.KeyText, ", "))
		if j.TableFirst {
			b.WriteString("; bounded table read to its end first")
		}
		b.WriteString(")")
	default:
		kind := "IntervalJoin"
		switch {
		case j.Bound == nil && j.Window > 0:
			kind = "WindowJoin"
		case j.Bound == nil:
			kind = "TTLJoin"
		}
		fmt.Fprintf(&b, "%s %s keys [%s]", kind, j.Kind, strings.Join(j.KeyText, ", "))
		hold := int64(0)
		if j.Bound != nil {
			fmt.Fprintf(&b, " bound %s", j.BoundText)
			hold = max(j.Bound.Hi, -j.Bound.Lo, 0)
		}
		if j.Window > 0 {
			fmt.Fprintf(&b, " window TUMBLING(%s)", kernels.FormatInterval(j.Window))
			if j.Bound == nil {
				hold = j.Window - 1
			} else {
				hold = min(hold, j.Window-1)
			}
		}
		if j.Bound == nil && j.Window == 0 {
			fmt.Fprintf(&b, " state_ttl %s", kernels.FormatInterval(j.TTL))
			hold = j.TTL
		}
		fmt.Fprintf(&b, " (inputs read concurrently; vectorised hash build/probe; state evicted by watermark; output watermark = min of inputs - %s)", kernels.FormatInterval(hold))
	}
	if j.Residual != nil {
		fmt.Fprintf(&b, " residual %s", j.ResidualText)
	}
	return b.String()
}

// setSchema computes the output schema and event-time columns.
func (j *Join) setSchema() {
	nL, nR := j.nLeft(), j.nRight()
	var fields []arrow.Field
	for _, f := range visibleFields(j.Left.Schema()) {
		fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
	}
	for _, f := range visibleFields(j.Right.Schema()) {
		fields = append(fields, arrow.Field{Name: f.Name, Type: f.Type, Nullable: true})
	}
	j.eventTime, j.eventTimes = -1, nil
	switch {
	case j.Table == 1 && j.LeftTime >= 0:
		j.eventTime = j.LeftTime
	case j.Table == 0 && j.RightTime >= 0:
		j.eventTime = nL + j.RightTime
	case j.Table < 0 && j.LeftTime >= 0 && j.RightTime >= 0:
		switch j.Kind {
		case arrowexec.InnerJoin:
			j.eventTime = j.LeftTime
			j.eventTimes = []int{nL + j.RightTime}
		case arrowexec.LeftJoin:
			j.eventTime = j.LeftTime
		case arrowexec.RightJoin:
			j.eventTime = nL + j.RightTime
		}
		if j.Window > 0 {
			if j.eventTime < 0 {
				j.eventTime = nL + nR
			} else {
				j.eventTimes = append(j.eventTimes, nL+nR)
			}
		}
	}
	if j.eventTime >= 0 {
		j.eventTimes = append([]int{j.eventTime}, j.eventTimes...)
	}
	if j.Window > 0 {
		fields = append(fields,
			arrow.Field{Name: "window_start", Type: sqltypes.Timestamp},
			arrow.Field{Name: "window_end", Type: sqltypes.Timestamp})
	}
	if j.eventTime >= 0 {
		fields = append(fields, arrow.Field{Name: arrowexec.RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	}
	j.schema = arrow.NewSchema(fields, nil)
}

// isEventTimeColumn reports whether column c of n's output carries event
// time that a projection may keep: n's event-time column, or for an INNER
// or windowed join, any of its valid event-time columns.
func isEventTimeColumn(n Node, c int) bool {
	if c < 0 {
		return false
	}
	if c == n.EventTime() {
		return true
	}
	return slices.Contains(eventTimesOf(n), c)
}

// eventTimesOf are the output columns of n that are valid event times.
func eventTimesOf(n Node) []int {
	switch n := n.(type) {
	case *Join:
		return n.eventTimes
	case *Filter:
		return eventTimesOf(n.Input)
	}
	if et := n.EventTime(); et >= 0 {
		return []int{et}
	}
	return nil
}

// ---- binding ----

// bindJoin binds `left JOIN right ON ...`: the inputs, the combined scope
// and the ON conditions. The join is finished (conditions classified,
// bounds checked) by finishJoins, once the query's WHERE and WINDOW are
// known.
func (b *selectBinder) bindJoin(f *ast.Join) (Node, *scope, error) {
	if f.Kind == "CROSS" {
		return nil, nil, notSupported(f.At, "CROSS JOIN (and comma joins)")
	}
	left, lsc, err := b.bindFrom(f.Left)
	if err != nil {
		return nil, nil, err
	}
	right, rsc, err := b.bindFrom(f.Right)
	if err != nil {
		return nil, nil, err
	}
	kind := map[string]arrowexec.JoinKind{"INNER": arrowexec.InnerJoin, "LEFT": arrowexec.LeftJoin,
		"RIGHT": arrowexec.RightJoin, "FULL": arrowexec.FullJoin}[f.Kind]
	j := &Join{At: f.At, Left: left, Right: right, Kind: kind, LeftTime: -1, RightTime: -1, Table: -1,
		lsc: lsc, rsc: rsc, within: f.Within, leftName: fromName(f.Left), rightName: fromName(f.Right)}
	nL := len(visibleFields(left.Schema()))
	sc := &scope{owner: "the joined streams"}
	sc.cols = append(sc.cols, lsc.cols...)
	for _, c := range rsc.cols {
		c.index += nL
		sc.cols = append(sc.cols, c)
	}
	j.sc = sc
	j.setSchema()
	if f.On != nil {
		if hasAggregate(f.On) {
			return nil, nil, errorf(f.On.Position(), "aggregate functions are not allowed in ON")
		}
		for _, c := range splitAnd(f.On) {
			if err := b.pushOn(j, c); err != nil {
				return nil, nil, err
			}
		}
	}
	return j, sc, nil
}

func fromName(f ast.FromItem) string {
	switch f := f.(type) {
	case *ast.TableRef:
		return f.Name.Name
	case *ast.SubqueryRef:
		if f.Alias != nil {
			return f.Alias.Name
		}
		return "subquery"
	}
	return "join"
}

func splitAnd(e ast.Expr) []ast.Expr {
	if bin, ok := e.(*ast.Binary); ok && bin.Op == "AND" {
		return append(splitAnd(bin.L), splitAnd(bin.R)...)
	}
	return []ast.Expr{e}
}

func andAll(list []ast.Expr) ast.Expr {
	var out ast.Expr
	for _, e := range list {
		if out == nil {
			out = e
			continue
		}
		out = &ast.Binary{At: out.Position(), Op: "AND", OpAt: e.Position(), L: out, R: e}
	}
	return out
}

// sides binds c over the join's inputs and reports which it reads.
func (j *Join) sides(c ast.Expr) (expr.Expr, bool, bool, error) {
	plain := *j.sc
	plain.aliases = nil
	e, err := bindExpr(c, &plain)
	if err != nil {
		return nil, false, false, err
	}
	nL := j.nLeft()
	usesL, usesR := false, false
	for _, col := range expr.Columns(e) {
		if col < nL {
			usesL = true
		} else {
			usesR = true
		}
	}
	return e, usesL, usesR, nil
}

// pushOn places one ON condition: a condition on the non-preserved side
// alone filters that input; anything else is a condition of the join.
func (b *selectBinder) pushOn(j *Join, c ast.Expr) error {
	_, usesL, usesR, err := j.sides(c)
	if err != nil {
		return err
	}
	switch {
	case usesL && !usesR && !j.Kind.Preserves(0):
		return b.pushToInput(j, 0, c)
	case usesR && !usesL && !j.Kind.Preserves(1):
		return b.pushToInput(j, 1, c)
	}
	j.conds = append(j.conds, c)
	return nil
}

// pushWhere tries to move a WHERE conjunct into the join: to an input it
// alone reads, or into the join condition of an INNER join. A conjunct
// that rejects NULLs of a side turns an outer join that pads that side
// with NULLs into one that does not (SQL semantics: the padded rows would
// be filtered out). keep reports that the conjunct stays in WHERE.
func (b *selectBinder) pushWhere(j *Join, c ast.Expr) (keep bool, err error) {
	_, usesL, usesR, err := j.sides(c)
	if err != nil {
		return true, nil // e.g. a select alias: bound (or reported) by WHERE itself
	}
	if strictPredicate(c, j.sc) {
		if usesL {
			j.Kind = dropPreserved(j.Kind, 1)
		}
		if usesR {
			j.Kind = dropPreserved(j.Kind, 0)
		}
	}
	switch {
	case usesL && !usesR && !j.Kind.Preserves(1):
		return false, b.pushToInput(j, 0, c)
	case usesR && !usesL && !j.Kind.Preserves(0):
		return false, b.pushToInput(j, 1, c)
	case usesL && usesR && j.Kind == arrowexec.InnerJoin:
		j.conds = append(j.conds, c)
		return false, nil
	}
	return true, nil
}

// dropPreserved makes side s of kind not preserved.
func dropPreserved(k arrowexec.JoinKind, s int) arrowexec.JoinKind {
	switch {
	case s == 0 && k == arrowexec.LeftJoin, s == 1 && k == arrowexec.RightJoin:
		return arrowexec.InnerJoin
	case s == 0 && k == arrowexec.FullJoin:
		return arrowexec.RightJoin
	case s == 1 && k == arrowexec.FullJoin:
		return arrowexec.LeftJoin
	}
	return k
}

// pushToInput filters input s of j by c (a condition on its columns only).
func (b *selectBinder) pushToInput(j *Join, s int, c ast.Expr) error {
	child, sc := &j.Left, j.lsc
	if s == 1 {
		child, sc = &j.Right, j.rsc
	}
	if cj, ok := (*child).(*Join); ok {
		keep, err := b.pushWhere(cj, c)
		if err != nil || !keep {
			return err
		}
	}
	if tableOf(*child) != nil {
		// A table's rows are upserts: a filter below the join would drop
		// an update and leave the row it replaces joinable. The condition
		// is checked against the latest row instead.
		j.conds = append(j.conds, c)
		return nil
	}
	plain := *sc
	plain.aliases = nil
	pred, err := bindExpr(c, &plain)
	if err != nil {
		return err
	}
	if pred, err = predicate(c.Position(), "join condition", pred); err != nil {
		return err
	}
	*child = &Filter{Input: *child, Pred: pred}
	return nil
}

// strictPredicate reports whether c is NULL (so not TRUE) whenever any
// column it reads is NULL: a comparison, BETWEEN, LIKE, IN list or IS NOT
// NULL over columns, literals, arithmetic and casts.
func strictPredicate(c ast.Expr, sc *scope) bool {
	op := func(e ast.Expr) bool { return strictOperand(e, sc) }
	switch e := c.(type) {
	case *ast.Binary:
		switch e.Op {
		case "=", "<>", "<", "<=", ">", ">=":
			return op(e.L) && op(e.R)
		}
	case *ast.Between:
		return op(e.X) && op(e.Lo) && op(e.Hi)
	case *ast.Like:
		return op(e.X) && op(e.Pattern)
	case *ast.InList:
		for _, x := range e.List {
			if !op(x) {
				return false
			}
		}
		return op(e.X)
	case *ast.IsNull:
		return e.Not && op(e.X)
	}
	return false
}

func strictOperand(e ast.Expr, sc *scope) bool {
	switch e := e.(type) {
	case *ast.ColumnRef:
		plain := *sc
		plain.aliases = nil
		_, err := plain.resolve(e)
		return err == nil
	case *ast.Literal:
		return true
	case *ast.Binary:
		switch e.Op {
		case "+", "-", "*", "/", "%", "||":
			return strictOperand(e.L, sc) && strictOperand(e.R, sc)
		}
	case *ast.Unary:
		return e.Op != "NOT" && strictOperand(e.X, sc)
	case *ast.Cast:
		return strictOperand(e.X, sc)
	}
	return false
}

// finishJoins completes the join of a query's FROM: WHERE conjuncts move
// into it where they may, a WINDOW clause makes it a windowed join, and
// every join's condition is classified and checked. It returns the query
// with what is left of its WHERE (and without its WINDOW when the window
// was only the join's).
func (b *selectBinder) finishJoins(input Node, sel *ast.Select, sc *scope) (Node, *ast.Select, error) {
	j, ok := input.(*Join)
	if !ok {
		return input, sel, nil
	}
	cp := *sel
	if sel.Where != nil {
		var keep []ast.Expr
		for _, c := range splitAnd(sel.Where) {
			if hasAggregate(c) || hasWindowCall(c) {
				keep = append(keep, c)
				continue
			}
			k, err := b.pushWhere(j, c)
			if err != nil {
				return nil, nil, err
			}
			if k {
				keep = append(keep, c)
			}
		}
		cp.Where = andAll(keep)
	}
	if sel.Window != nil && tableSide(j) < 0 {
		w, err := bindWindow(sel.Window)
		if err != nil {
			return nil, nil, err
		}
		if w.Kind != arrowexec.Tumbling {
			return nil, nil, errorf(sel.Window.At, "a windowed JOIN takes WINDOW TUMBLING (...): both sides' rows must fall in the same window")
		}
		if isJoin(j.Left) || isJoin(j.Right) {
			return nil, nil, notSupported(sel.Window.At, "WINDOW on a query joining more than two streams")
		}
		j.Window = w.Size
		aggregating := len(sel.GroupBy) > 0 || sel.Having != nil
		for _, it := range sel.Items {
			aggregating = aggregating || it.Expr != nil && (hasAggregate(it.Expr) || hasWindowCall(it.Expr))
		}
		if !aggregating {
			cp.Window = nil // the window was the join's alone
		}
	}
	if err := b.finish(j); err != nil {
		return nil, nil, err
	}
	if j.Window > 0 {
		n := j.nLeft() + j.nRight()
		sc.cols = append(sc.cols,
			scopeCol{name: "window_start", typ: sqltypes.Timestamp, index: n},
			scopeCol{name: "window_end", typ: sqltypes.Timestamp, index: n + 1})
	}
	return j, &cp, nil
}

func hasWindowCall(e ast.Expr) bool {
	found := false
	ast.Inspect(e, func(n ast.Expr) bool {
		if f, ok := n.(*ast.FuncCall); ok && f.Over != nil {
			found = true
		}
		return !found
	})
	return found
}

func isJoin(n Node) bool {
	for {
		switch x := n.(type) {
		case *Join:
			return true
		case *Filter:
			n = x.Input
		default:
			return false
		}
	}
}

func innerJoinOf(n Node) *Join {
	for {
		switch x := n.(type) {
		case *Join:
			return x
		case *Filter:
			n = x.Input
		default:
			return nil
		}
	}
}

// tableOf returns the table relation n reads, if n is (a filter or
// projection of) a scan of a CREATE TABLE source.
func tableOf(n Node) *Relation {
	for {
		switch x := n.(type) {
		case *Scan:
			if x.Relation.Kind == SourceTable {
				return x.Relation
			}
			return nil
		case *Filter:
			n = x.Input
		case *Project:
			n = x.Input
		default:
			return nil
		}
	}
}

func tableSide(j *Join) int {
	switch {
	case tableOf(j.Left) != nil:
		return 0
	case tableOf(j.Right) != nil:
		return 1
	}
	return -1
}

// finish classifies the join's conditions (equality keys, time bound,
// residual), settles its kind of state bound and checks it.
func (b *selectBinder) finish(j *Join) error {
	for _, c := range []Node{j.Left, j.Right} {
		if cj := innerJoinOf(c); cj != nil {
			if err := b.finish(cj); err != nil {
				return err
			}
		}
	}
	nL := j.nLeft()
	lrel, rrel := tableOf(j.Left), tableOf(j.Right)
	switch {
	case lrel != nil && rrel != nil:
		return notSupported(j.At, fmt.Sprintf("a JOIN of two tables (%s and %s)", lrel.Name, rrel.Name))
	case lrel != nil:
		j.Table, j.TableName = 0, lrel.Name
	case rrel != nil:
		j.Table, j.TableName = 1, rrel.Name
	}
	if j.Table >= 0 && j.Kind.Preserves(j.Table) {
		return notSupported(j.At, fmt.Sprintf("%s JOIN that keeps every row of table %s (the table must be the looked-up side)", j.Kind, j.TableName))
	}

	var tb timeBound
	if j.Table < 0 {
		tb = timeBound{lo: math.MinInt64, hi: math.MaxInt64, lcol: -1, rcol: -1,
			lts: eventTimesOf(j.Left), rts: eventTimesOf(j.Right), nL: nL}
	}
	var residual []ast.Expr
	for _, c := range j.conds {
		// an equality of the two event times both bounds the join and
		// makes a hash key
		bound := j.Table < 0 && tb.add(j, c)
		key, err := b.addKey(j, c)
		if err != nil {
			return err
		}
		if !bound && !key {
			residual = append(residual, c)
		}
	}
	if len(j.LeftKeys) == 0 {
		return errorf(j.At, "JOIN of %s and %s needs an equality condition between them (ON %s.col = %s.col): cross joins are not supported", j.leftName, j.rightName, j.leftName, j.rightName)
	}
	if j.within != nil {
		lit, ok := j.within.(*ast.Literal)
		if !ok || lit.Kind != ast.IntervalLit {
			return errorf(j.within.Position(), "WITHIN takes an interval literal like INTERVAL '5' MINUTE")
		}
		ms, err := intervalMillis(lit)
		if err != nil {
			return err
		}
		if ms < 0 {
			return errorf(lit.At, "WITHIN interval must not be negative")
		}
		if j.Table >= 0 {
			return errorf(j.within.Position(), "WITHIN bounds a join of two streams; %s is a table", j.TableName)
		}
		if len(tb.lts) == 0 || len(tb.rts) == 0 {
			return errorf(j.within.Position(), "WITHIN needs event time on both sides of the join (WATERMARK FOR ... or event_time = '...')")
		}
		if tb.lcol < 0 {
			tb.lcol, tb.rcol = tb.lts[0], tb.rts[0]
			tb.setText(j)
		}
		tb.lo, tb.hi = max(tb.lo, -ms), min(tb.hi, ms)
	}
	if len(residual) > 0 {
		plain := *j.sc
		plain.aliases = nil
		text := make([]string, len(residual))
		for i, c := range residual {
			e, err := bindExpr(c, &plain)
			if err != nil {
				return err
			}
			if e, err = predicate(c.Position(), "join condition", e); err != nil {
				return err
			}
			if j.Residual == nil {
				j.Residual = e
			} else if j.Residual, err = expr.Binary("AND", j.Residual, e); err != nil {
				return at(c.Position(), err)
			}
			text[i] = sql.Format(c)
		}
		j.ResidualText = strings.Join(text, " AND ")
	}

	if j.Table >= 0 {
		s := 1 - j.Table
		stream := []Node{j.Left, j.Right}[s]
		if s == 0 {
			j.LeftTime = stream.EventTime()
		} else {
			j.RightTime = stream.EventTime()
		}
		rel := []*Relation{lrel, rrel}[j.Table]
		tschema := []Node{j.Left, j.Right}[j.Table].Schema()
		for _, k := range rel.PrimaryKey {
			idx := -1
			for i, f := range visibleFields(tschema) {
				if f.Name == k {
					idx = i
				}
			}
			if idx < 0 {
				return errorf(j.At, "table %s: its primary key column %s is not selected", rel.Name, k)
			}
			j.TableKey = append(j.TableKey, idx)
		}
		j.TableFirst = boundedSource(rel)
		j.setSchema()
		return nil
	}

	if tb.lo > math.MinInt64 && tb.hi < math.MaxInt64 {
		if tb.lo > tb.hi {
			return errorf(j.At, "the time bound of JOIN %s and %s is empty: %s must be at least %s and at most %s",
				j.leftName, j.rightName, tb.text, kernels.FormatInterval(tb.lo), kernels.FormatInterval(tb.hi))
		}
		j.Bound = &arrowexec.JoinBound{Lo: tb.lo, Hi: tb.hi}
		j.BoundText = fmt.Sprintf("%s IN [%s, %s]", tb.text, kernels.FormatInterval(tb.lo), kernels.FormatInterval(tb.hi))
		j.LeftTime, j.RightTime = tb.lcol, tb.rcol
	} else {
		if len(tb.lts) > 0 {
			j.LeftTime = tb.lts[0]
		}
		if len(tb.rts) > 0 {
			j.RightTime = tb.rts[0]
		}
		if tb.lcol >= 0 { // a one-sided bound: keep it as a condition
			for _, c := range tb.conds {
				e, _, _, err := j.sides(c)
				if err != nil {
					return err
				}
				if j.Residual == nil {
					j.Residual, j.ResidualText = e, sql.Format(c)
				} else {
					if j.Residual, err = expr.Binary("AND", j.Residual, e); err != nil {
						return err
					}
					j.ResidualText += " AND " + sql.Format(c)
				}
			}
		}
	}
	if j.Bound == nil && j.Window == 0 {
		j.TTL = b.stateTTL
		if j.TTL == 0 {
			j.TTL = max(streamTTL(j.Left), streamTTL(j.Right))
		}
		if j.TTL == 0 {
			hint := ""
			switch {
			case len(tb.lts) == 0:
				hint = fmt.Sprintf(" (%s has no event time, so its columns cannot bound the join: declare WATERMARK FOR col AS col - INTERVAL ... or event_time = 'col')", j.leftName)
			case len(tb.rts) == 0:
				hint = fmt.Sprintf(" (%s has no event time, so its columns cannot bound the join: declare WATERMARK FOR col AS col - INTERVAL ... or event_time = 'col')", j.rightName)
			}
			return errorf(j.At, "JOIN of streams %s and %s has no time bound, so its state would grow without limit: "+
				"bound it in ON or WHERE (e.g. %s.ts BETWEEN %s.ts AND %s.ts + INTERVAL '1' HOUR), with WITHIN INTERVAL '5' MINUTE, "+
				"with a WINDOW TUMBLING (...) clause (both rows in the same window), or set WITH (state_ttl = '1h') on the query or a joined stream%s",
				j.leftName, j.rightName, j.rightName, j.leftName, j.leftName, hint)
		}
	}
	j.setSchema()
	return nil
}

// boundedSource reports whether a relation's connector ends (a file, a
// generator with a row count, a Nexmark stream with an event count, a
// Kafka read up to end_offset), so it can be read completely first.
func boundedSource(r *Relation) bool {
	switch r.Options["connector"] {
	case "file":
		return true
	case "generator":
		return r.Options["rows"] != "0"
	case "nexmark":
		n, ok := r.Options["events"]
		return ok && n != "0"
	case "kafka":
		return strings.EqualFold(r.Options["end_offset"], "latest")
	}
	return false
}

// streamTTL is the largest state_ttl option of the streams n reads (ms).
func streamTTL(n Node) int64 {
	if s, ok := n.(*Scan); ok {
		if v, ok := s.Relation.Options["state_ttl"]; ok {
			d, err := ParseDuration(v)
			if err == nil {
				return d.Milliseconds()
			}
		}
		return 0
	}
	var ttl int64
	for _, c := range n.Children() {
		ttl = max(ttl, streamTTL(c))
	}
	return ttl
}

// addKey recognises `left expr = right expr` as a pair of join keys.
func (b *selectBinder) addKey(j *Join, c ast.Expr) (bool, error) {
	bin, ok := c.(*ast.Binary)
	if !ok || bin.Op != "=" {
		return false, nil
	}
	l, lL, lR, err := j.sides(bin.L)
	if err != nil {
		return false, err
	}
	r, rL, rR, err := j.sides(bin.R)
	if err != nil {
		return false, err
	}
	text := sql.Format(bin.L) + " = " + sql.Format(bin.R)
	switch {
	case lL && !lR && rR && !rL:
	case rL && !rR && lR && !lL:
		l, r = r, l
		text = sql.Format(bin.R) + " = " + sql.Format(bin.L)
	default:
		return false, nil
	}
	nL := j.nLeft()
	shift := map[int]int{}
	for _, col := range expr.Columns(r) {
		shift[col] = col - nL
	}
	r = expr.Remap(r, shift)
	t, err := commonKeyType(l.Type(), r.Type())
	if err != nil {
		return false, at(bin.OpAt, err)
	}
	if l, err = expr.Cast(l, t); err != nil {
		return false, at(bin.OpAt, err)
	}
	if r, err = expr.Cast(r, t); err != nil {
		return false, at(bin.OpAt, err)
	}
	j.LeftKeys = append(j.LeftKeys, l)
	j.RightKeys = append(j.RightKeys, r)
	j.KeyText = append(j.KeyText, text)
	return true, nil
}

// commonKeyType is the type two join keys are hashed and compared in.
func commonKeyType(a, b arrow.DataType) (arrow.DataType, error) {
	switch {
	case arrow.TypeEqual(a, b):
		return a, nil
	case a.ID() == arrow.NULL:
		return b, nil
	case b.ID() == arrow.NULL:
		return a, nil
	case sqltypes.IsNumeric(a) && sqltypes.IsNumeric(b):
		if a.ID() == arrow.FLOAT64 || b.ID() == arrow.FLOAT64 {
			return sqltypes.Double, nil
		}
		da, _ := sqltypes.DecimalOf(a)
		db, _ := sqltypes.DecimalOf(b)
		if a.ID() != arrow.DECIMAL128 && b.ID() != arrow.DECIMAL128 {
			return sqltypes.BigInt, nil
		}
		scale := max(da.Scale, db.Scale)
		digits := max(da.Precision-da.Scale, db.Precision-db.Scale)
		return sqltypes.Decimal(min(digits+scale, sqltypes.MaxDecimalPrecision), scale), nil
	case a.ID() == arrow.STRING && (b.ID() == arrow.TIMESTAMP || b.ID() == arrow.DATE32):
		return b, nil
	case b.ID() == arrow.STRING && (a.ID() == arrow.TIMESTAMP || a.ID() == arrow.DATE32):
		return a, nil
	case a.ID() == arrow.DATE32 && b.ID() == arrow.TIMESTAMP, a.ID() == arrow.TIMESTAMP && b.ID() == arrow.DATE32:
		return sqltypes.Timestamp, nil
	}
	return nil, fmt.Errorf("cannot join %s with %s", sqltypes.Name(a), sqltypes.Name(b))
}

// timeBound collects the interval bound lo <= t_right - t_left <= hi from
// comparisons between the two sides' event-time columns.
type timeBound struct {
	lo, hi     int64
	lcol, rcol int   // the time columns the bound uses (-1: none yet)
	lts, rts   []int // the event-time columns of each side
	nL         int
	text       string
	conds      []ast.Expr
}

// term reads `col [± interval]` for an event-time column of either side.
func (tb *timeBound) term(j *Join, e ast.Expr) (side, col int, off int64, ok bool) {
	switch e := e.(type) {
	case *ast.ColumnRef:
		plain := *j.sc
		plain.aliases = nil
		x, err := plain.resolve(e)
		if err != nil {
			return 0, 0, 0, false
		}
		c, isCol := expr.ColumnIndex(x)
		switch {
		case !isCol:
			return 0, 0, 0, false
		case c < tb.nL && slices.Contains(tb.lts, c):
			return 0, c, 0, true
		case c >= tb.nL && slices.Contains(tb.rts, c-tb.nL):
			return 1, c - tb.nL, 0, true
		}
	case *ast.Binary:
		if e.Op != "+" && e.Op != "-" {
			return 0, 0, 0, false
		}
		if lit, isLit := e.R.(*ast.Literal); isLit && lit.Kind == ast.IntervalLit {
			ms, err := intervalMillis(lit)
			if err != nil {
				return 0, 0, 0, false
			}
			if e.Op == "-" {
				ms = -ms
			}
			s, c, o, ok := tb.term(j, e.L)
			return s, c, o + ms, ok
		}
		if lit, isLit := e.L.(*ast.Literal); isLit && lit.Kind == ast.IntervalLit && e.Op == "+" {
			ms, err := intervalMillis(lit)
			if err != nil {
				return 0, 0, 0, false
			}
			s, c, o, ok := tb.term(j, e.R)
			return s, c, o + ms, ok
		}
	}
	return 0, 0, 0, false
}

// cmp adds the constraint `a op b` if a and b are time terms of
// different sides; it reports whether it did.
func (tb *timeBound) cmp(j *Join, op string, a, b ast.Expr, apply bool) bool {
	sa, ca, oa, ok := tb.term(j, a)
	if !ok {
		return false
	}
	sb, cb, ob, ok := tb.term(j, b)
	if !ok || sa == sb {
		return false
	}
	lcol, rcol := ca, cb
	if sa == 1 {
		lcol, rcol = cb, ca
	}
	if tb.lcol >= 0 && (lcol != tb.lcol || rcol != tb.rcol) {
		return false // a second pair of time columns: a plain condition
	}
	// with d = t_right - t_left: left+oa op right+ob  <=>  oa-ob op d,
	// and right+oa op left+ob  <=>  d op ob-oa.
	var k int64
	if sa == 0 {
		k = oa - ob
		op = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}[op] // k op d  <=>  d op' k
	} else {
		k = ob - oa
	}
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	switch op {
	case "<":
		hi = k - 1
	case "<=":
		hi = k
	case ">":
		lo = k + 1
	case ">=":
		lo = k
	case "=":
		lo, hi = k, k
	default:
		return false
	}
	if apply {
		if tb.lcol < 0 {
			tb.lcol, tb.rcol = lcol, rcol
			tb.setText(j)
		}
		tb.lo, tb.hi = max(tb.lo, lo), min(tb.hi, hi)
	}
	return true
}

// setText names the bound's time difference for explain output.
func (tb *timeBound) setText(j *Join) {
	tb.text = fmt.Sprintf("%s - %s", columnText(j.sc, tb.nL+tb.rcol), columnText(j.sc, tb.lcol))
}

// columnText is a scope column as it can be written: qualifier.name.
func columnText(sc *scope, idx int) string {
	for _, c := range sc.cols {
		if c.index == idx {
			if len(c.qualifiers) > 0 {
				return c.qualifiers[0] + "." + c.name
			}
			return c.name
		}
	}
	return fmt.Sprintf("#%d", idx)
}

// add takes c as part of the time bound if it is a comparison or BETWEEN
// of the two sides' event-time columns (plus or minus interval literals).
func (tb *timeBound) add(j *Join, c ast.Expr) bool {
	ok := false
	switch e := c.(type) {
	case *ast.Binary:
		ok = tb.cmp(j, e.Op, e.L, e.R, true)
	case *ast.Between:
		if !e.Not && tb.cmp(j, ">=", e.X, e.Lo, false) && tb.cmp(j, "<=", e.X, e.Hi, false) {
			ok = tb.cmp(j, ">=", e.X, e.Lo, true) && tb.cmp(j, "<=", e.X, e.Hi, true)
		}
	}
	if ok {
		tb.conds = append(tb.conds, c)
	}
	return ok
}

// queryStateTTL takes the state_ttl option out of a query's WITH options.
func queryStateTTL(with []ast.Option) (int64, []ast.Option, error) {
	var rest []ast.Option
	var ttl int64
	for _, o := range with {
		if o.Key.Name != "state_ttl" {
			rest = append(rest, o)
			continue
		}
		d, err := ParseDuration(o.Value)
		if err != nil {
			return 0, nil, errorf(o.ValueAt, "option state_ttl: %v", err)
		}
		if d <= 0 {
			return 0, nil, errorf(o.ValueAt, "option state_ttl must be positive")
		}
		ttl = d.Milliseconds()
	}
	return ttl, rest, nil
}

// ---- rewrites ----

func (j *Join) clone() *Join {
	c := *j
	return &c
}

func (j *Join) fold() (Node, error) {
	c := j.clone()
	var err error
	if c.Left, err = fold(j.Left); err != nil {
		return nil, err
	}
	if c.Right, err = fold(j.Right); err != nil {
		return nil, err
	}
	c.LeftKeys = make([]expr.Expr, len(j.LeftKeys))
	c.RightKeys = make([]expr.Expr, len(j.RightKeys))
	for i := range j.LeftKeys {
		if c.LeftKeys[i], err = expr.Fold(j.LeftKeys[i]); err != nil {
			return nil, err
		}
		if c.RightKeys[i], err = expr.Fold(j.RightKeys[i]); err != nil {
			return nil, err
		}
	}
	if j.Residual != nil {
		if c.Residual, err = expr.Fold(j.Residual); err != nil {
			return nil, err
		}
		if v, ok := expr.IsConst(c.Residual); ok && v == true {
			c.Residual, c.ResidualText = nil, ""
		}
	}
	c.setSchema()
	return c, nil
}

func (j *Join) pushFilters() Node {
	c := j.clone()
	c.Left, c.Right = pushFilters(j.Left), pushFilters(j.Right)
	c.setSchema()
	return c
}

// prune narrows the inputs to the columns the join and its parent need.
func (j *Join) prune(needed []int) (Node, map[int]int) {
	nL, nR := j.nLeft(), j.nRight()
	var needL, needR []int
	for _, c := range needed {
		switch {
		case c < nL:
			needL = append(needL, c)
		case c < nL+nR:
			needR = append(needR, c-nL)
		}
	}
	for _, k := range j.LeftKeys {
		needL = union(needL, expr.Columns(k))
	}
	for _, k := range j.RightKeys {
		needR = union(needR, expr.Columns(k))
	}
	if j.Residual != nil {
		for _, c := range expr.Columns(j.Residual) {
			if c < nL {
				needL = union(needL, []int{c})
			} else {
				needR = union(needR, []int{c - nL})
			}
		}
	}
	if j.LeftTime >= 0 {
		needL = union(needL, []int{j.LeftTime})
	}
	if j.RightTime >= 0 {
		needR = union(needR, []int{j.RightTime})
	}
	switch j.Table {
	case 0:
		needL = union(needL, j.TableKey)
	case 1:
		needR = union(needR, j.TableKey)
	}
	left, mL := prune(j.Left, union(needL, nil))
	right, mR := prune(j.Right, union(needR, nil))
	c := j.clone()
	c.Left, c.Right = left, right
	nL2 := len(visibleFields(left.Schema()))
	nR2 := len(visibleFields(right.Schema()))
	c.LeftKeys = make([]expr.Expr, len(j.LeftKeys))
	c.RightKeys = make([]expr.Expr, len(j.RightKeys))
	for i := range j.LeftKeys {
		c.LeftKeys[i] = expr.Remap(j.LeftKeys[i], mL)
		c.RightKeys[i] = expr.Remap(j.RightKeys[i], mR)
	}
	out := map[int]int{}
	for old, nw := range mL {
		if old < nL {
			out[old] = nw
		}
	}
	for old, nw := range mR {
		if old < nR {
			out[nL+old] = nL2 + nw
		}
	}
	if j.Residual != nil {
		c.Residual = expr.Remap(j.Residual, out)
	}
	if j.LeftTime >= 0 {
		c.LeftTime = mL[j.LeftTime]
	}
	if j.RightTime >= 0 {
		c.RightTime = mR[j.RightTime]
	}
	if j.Table >= 0 {
		m := []map[int]int{mL, mR}[j.Table]
		c.TableKey = make([]int, len(j.TableKey))
		for i, k := range j.TableKey {
			c.TableKey[i] = m[k]
		}
	}
	c.setSchema()
	extra := j.schema.NumFields() - nL - nR // window columns and row watermark
	for i := 0; i < extra; i++ {
		out[nL+nR+i] = nL2 + nR2 + i
	}
	return c, out
}

// ---- physical ----

func (b *opBuilder) buildJoin(j *Join) (arrowexec.Operator, error) {
	left, err := b.build(j.Left)
	if err != nil {
		return nil, err
	}
	right, err := b.build(j.Right)
	if err != nil {
		_ = left.Close()
		return nil, err
	}
	cfg := arrowexec.JoinConfig{
		Query: b.node.Name, Kind: j.Kind,
		Keys:     [2][]expr.Expr{j.LeftKeys, j.RightKeys},
		Residual: j.Residual,
		Time:     [2]int{j.LeftTime, j.RightTime},
		WM:       [2]int{wmIndex(j.Left.Schema()), wmIndex(j.Right.Schema())},
		Bound:    j.Bound, Window: j.Window, TTL: j.TTL,
		Table: j.Table, TableKey: j.TableKey, TableFirst: j.TableFirst,
		EventTime: j.eventTime >= 0,
		Schema:    j.schema,
	}
	if j.Table < 0 && b.pipe != nil && independent(b.pipe, j.Left, j.Right) {
		// Watermark alignment: the faster input waits for the slower one
		// (see arrowexec.JoinOp). Only for inputs fed by different
		// sources: pausing one side of a self-join, or of a join whose
		// sides share an upstream, could hold back the other side too.
		cfg.Align = arrowexec.DefaultJoinAlign
	}
	op, err := arrowexec.NewJoin(b.alloc, left, right, cfg)
	if err != nil {
		_ = left.Close()
		_ = right.Close()
		return nil, at(j.At, err)
	}
	return op, nil
}

// independent reports whether plans a and b read no common source stream
// or table, directly or through derived streams.
func independent(p *Pipeline, a, b Node) bool {
	sa, sb := map[string]bool{}, map[string]bool{}
	p.sourcesOf(a, sa, map[string]bool{})
	p.sourcesOf(b, sb, map[string]bool{})
	for r := range sa {
		if sb[r] {
			return false
		}
	}
	return true
}

// sourcesOf adds to into the source streams and tables plan n reads,
// following derived streams to the queries that produce them.
func (p *Pipeline) sourcesOf(n Node, into, seen map[string]bool) {
	if s, ok := n.(*Scan); ok {
		r := s.Relation
		if r.Kind != DerivedStream {
			into[r.Name] = true
			return
		}
		if seen[r.Name] {
			return
		}
		seen[r.Name] = true
		for _, q := range p.Queries {
			if q.Output == r.Name {
				p.sourcesOf(q.Plan, into, seen)
			}
		}
		return
	}
	for _, c := range n.Children() {
		p.sourcesOf(c, into, seen)
	}
}
