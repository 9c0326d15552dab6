// Package sql is the hand-written lexer and recursive-descent parser of the
// FerrisStreams SQL dialect. It turns pipeline text into the syntax tree of
// package plan/ast and reports the first syntax error with its line and
// column. Parse and ParseExpr are safe for concurrent use.
package sql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// Error is a syntax error at a position. Parse and ParseExpr return errors
// of type *Error.
type Error struct {
	Pos ast.Pos
	Msg string
}

// Error returns "line L, column C: Msg".
func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
}

// Parse parses a whole pipeline file: statements separated by ';', the last
// ';' optional. Empty input yields no statements.
func Parse(src string) (stmts []ast.Statement, err error) {
	p := newParser(src)
	defer p.recover(&err)
	for {
		for p.acceptOp(";") {
		}
		if p.cur().kind == tEOF {
			return stmts, nil
		}
		p.terms = 0
		stmts = append(stmts, p.statement())
		if !p.acceptOp(";") && p.cur().kind != tEOF {
			p.expected(`";" or end of input`, clauseWords...)
		}
	}
}

// ParseExpr parses a single scalar expression, for tests and tools.
func ParseExpr(src string) (e ast.Expr, err error) {
	p := newParser(src)
	defer p.recover(&err)
	e = p.expr()
	if p.cur().kind != tEOF {
		p.expected("end of input")
	}
	return e, nil
}

// maxDepth bounds expression and query nesting so that hostile input fails
// with an error instead of exhausting the stack.
const maxDepth = 500

// MaxTerms bounds the primary expressions (literals, names, calls,
// parenthesised expressions) of one statement, and so the work of planning
// it: an IN list of n values has n+1.
const MaxTerms = 50000

// reserved are the words that cannot be used as unquoted identifiers.
var reserved = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`select from where group by having order limit
		and or not as on join inner left right full outer cross case when then else
		end in is null between like ilike exists union with emit window create set
		distinct all true false cast interval over within`) {
		reserved[w] = true
	}
}

// clauseWords are suggested when a misspelt word ends a statement early.
var clauseWords = []string{"FROM", "WHERE", "GROUP", "HAVING", "WINDOW", "ORDER",
	"LIMIT", "EMIT", "UNION", "WITH", "JOIN", "ON", "WITHIN"}

// parser is a recursive-descent parser over a token slice. Errors are raised
// by panicking with *Error and recovered in Parse and ParseExpr.
type parser struct {
	toks  []token
	i     int
	depth int
	terms int // primary expressions of the current statement
}

func newParser(src string) *parser { return &parser{toks: lex(src)} }

func (p *parser) recover(err *error) {
	if r := recover(); r != nil {
		e, ok := r.(*Error)
		if !ok {
			panic(r)
		}
		*err = e
	}
}

func (p *parser) cur() token { return p.toks[p.i] }

// peek returns the token n places ahead (clamped to the last token).
func (p *parser) peek(n int) token { return p.toks[min(p.i+n, len(p.toks)-1)] }

func (p *parser) advance() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *parser) enter() {
	if p.depth++; p.depth > maxDepth {
		p.fail(p.cur().pos, "query nested too deeply")
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) fail(pos ast.Pos, format string, args ...any) {
	panic(&Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// expected fails at the current token with "expected WHAT, found TOKEN". If
// the token is a word close to one of hints (a likely misspelling), the
// message names that keyword instead. A pending lexical error wins.
func (p *parser) expected(what string, hints ...string) {
	t := p.cur()
	if t.kind == tError {
		p.fail(t.pos, "%s", t.val)
	}
	if t.kind == tIdent {
		if h := closest(t.val, hints); h != "" {
			what = h
		}
	}
	p.fail(t.pos, "expected %s, found %s", what, describe(t))
}

// describe renders a token for an error message.
func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		if r := []rune(t.raw); len(r) > 40 {
			return "string " + string(r[:37]) + "...'"
		}
		return "string " + t.raw
	}
	return strconv.Quote(t.raw)
}

// closest returns the hint nearest to word if it is a plausible misspelling.
func closest(word string, hints []string) string {
	best, bestD := "", 3
	for _, h := range hints {
		limit := 2
		if len(h) < 4 || len(word) < 4 {
			limit = 1
		}
		if d := editDistance(strings.ToUpper(word), h); d <= limit && d < bestD {
			best, bestD = h, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, bounded to short words.
func editDistance(a, b string) int {
	if len(a) > 20 || len(b) > 20 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (p *parser) isKw(kw string) bool {
	t := p.cur()
	return t.kind == tIdent && t.val == kw
}

func (p *parser) acceptKw(kw string) bool {
	if p.isKw(kw) {
		p.advance()
		return true
	}
	return false
}

func (p *parser) expectKw(kw string) ast.Pos {
	if !p.isKw(kw) {
		up := strings.ToUpper(kw)
		p.expected(up, up)
	}
	return p.advance().pos
}

func (p *parser) isOp(op string) bool {
	t := p.cur()
	return t.kind == tOp && t.val == op
}

func (p *parser) acceptOp(op string) bool {
	if p.isOp(op) {
		p.advance()
		return true
	}
	return false
}

func (p *parser) expectOp(op string) ast.Pos {
	if !p.isOp(op) {
		p.expected(strconv.Quote(op))
	}
	return p.advance().pos
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isName reports whether t can be an identifier.
func isName(t token) bool {
	return t.kind == tQIdent || t.kind == tIdent && !reserved[t.val]
}

// ident parses an identifier; what names it in the error message.
func (p *parser) ident(what string) ast.Ident {
	t := p.cur()
	if !isName(t) {
		p.expected(what)
	}
	p.advance()
	return ast.Ident{At: t.pos, Name: t.val}
}

// optAlias parses `[AS] alias`. Without AS, a word is taken as an alias only
// if the token after it could follow an alias, so that a misspelt keyword
// (FORM, WHER) is reported as such rather than swallowed.
func (p *parser) optAlias() *ast.Ident {
	if p.acceptKw("as") {
		id := p.ident("alias")
		return &id
	}
	if !isName(p.cur()) {
		return nil
	}
	nt := p.peek(1)
	if isName(nt) || nt.kind == tString || nt.kind == tNumber || nt.kind == tDuration ||
		nt.kind == tOp && nt.val == "(" {
		return nil
	}
	id := p.ident("alias")
	return &id
}

// ---- statements ----

func (p *parser) statement() ast.Statement {
	switch {
	case p.isKw("select"):
		s := &ast.SelectStatement{Query: p.query()}
		if p.isKw("with") {
			s.With = p.options()
		}
		return s
	case p.isKw("create"):
		return p.create()
	case p.isKw("set"):
		return p.set()
	}
	p.expected("SELECT, CREATE or SET", "SELECT", "CREATE", "SET")
	return nil
}

// set parses `SET name = value`.
func (p *parser) set() ast.Statement {
	s := &ast.Set{At: p.expectKw("set")}
	s.Name = p.dottedName("setting name")
	if !p.acceptKw("to") {
		p.expectOp("=")
	}
	s.Value, _ = p.optionValue()
	return s
}

// dottedName parses `word[.word...]`, lower-casing unquoted words. Reserved
// words are accepted: the context is unambiguous.
func (p *parser) dottedName(what string) ast.Ident {
	at := p.cur().pos
	var parts []string
	for {
		t := p.cur()
		if t.kind != tIdent && t.kind != tQIdent {
			p.expected(what)
		}
		p.advance()
		parts = append(parts, t.val)
		if !p.acceptOp(".") {
			return ast.Ident{At: at, Name: strings.Join(parts, ".")}
		}
	}
}

// create parses CREATE STREAM|TABLE, either a source or CREATE ... AS.
func (p *parser) create() ast.Statement {
	at := p.expectKw("create")
	table := false
	switch {
	case p.acceptKw("table"):
		table = true
	case p.acceptKw("stream"):
	default:
		p.expected("STREAM or TABLE", "STREAM", "TABLE")
	}
	var ifAt *ast.Pos
	if p.isKw("if") && p.peek(1).kind == tIdent && p.peek(1).val == "not" {
		pos := p.advance().pos
		ifAt = &pos
		p.advance()
		p.expectKw("exists")
	}
	what := "stream name"
	if table {
		what = "table name"
	}
	name := p.ident(what)
	var with []ast.Option
	if p.isKw("with") {
		with = p.options()
	}
	if p.acceptKw("as") {
		if ifAt != nil {
			p.fail(*ifAt, "IF NOT EXISTS is not supported with CREATE ... AS")
		}
		s := &ast.CreateAs{At: at, Table: table, Name: name, Query: p.query(), With: with}
		if p.isKw("with") {
			s.With = append(s.With, p.options()...)
		}
		return s
	}
	s := &ast.CreateSource{At: at, Table: table, IfNotExists: ifAt != nil, Name: name, With: with}
	if with != nil {
		return s // schema-less source: columns come from the connector
	}
	if !p.isOp("(") {
		p.expected(`"(", AS or WITH`, "AS", "WITH")
	}
	p.columns(s)
	if p.isKw("with") {
		s.With = p.options()
	}
	return s
}

// columns parses the parenthesised column list of CREATE STREAM|TABLE.
func (p *parser) columns(s *ast.CreateSource) {
	p.expectOp("(")
	for {
		switch {
		case p.isKw("watermark") && p.peek(1).kind == tIdent && p.peek(1).val == "for":
			if s.Watermark != nil {
				p.fail(p.cur().pos, "duplicate WATERMARK clause")
			}
			w := &ast.WatermarkDef{At: p.advance().pos}
			p.advance()
			w.Column = p.ident("column name")
			p.expectKw("as")
			w.Expr = p.expr()
			s.Watermark = w
		case p.isKw("primary") && p.peek(1).kind == tIdent && p.peek(1).val == "key":
			p.advance()
			p.advance()
			p.expectOp("(")
			for {
				s.PrimaryKey = append(s.PrimaryKey, p.ident("column name"))
				if !p.acceptOp(",") {
					break
				}
			}
			p.expectOp(")")
		default:
			c := ast.ColumnDef{Name: p.ident("column name"), Type: p.typeName()}
			for {
				if p.acceptKw("not") {
					p.expectKw("null")
					c.NotNull = true
				} else if p.acceptKw("null") {
				} else if p.isKw("primary") {
					p.advance()
					p.expectKw("key")
					c.PrimaryKey = true
					s.PrimaryKey = append(s.PrimaryKey, c.Name)
				} else {
					break
				}
			}
			s.Columns = append(s.Columns, c)
		}
		if p.acceptOp(")") {
			return
		}
		if !p.acceptOp(",") {
			p.expected(`"," or ")"`)
		}
	}
}

// typeNames maps accepted type words to their canonical names.
var typeNames = map[string]string{
	"boolean": "BOOLEAN", "bool": "BOOLEAN",
	"int": "INT", "integer": "INT", "int4": "INT",
	"bigint": "BIGINT", "int8": "BIGINT", "long": "BIGINT",
	"double": "DOUBLE", "float": "DOUBLE", "float8": "DOUBLE", "real": "DOUBLE",
	"decimal": "DECIMAL", "numeric": "DECIMAL",
	"varchar": "VARCHAR", "string": "VARCHAR", "text": "VARCHAR", "char": "VARCHAR",
	"timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMP", "date": "DATE", "interval": "INTERVAL",
}

// maxTypeParams is how many (n, ...) parameters a known type accepts.
var maxTypeParams = map[string]int{"DECIMAL": 2, "VARCHAR": 1, "TIMESTAMP": 1,
	"BOOLEAN": 0, "INT": 0, "BIGINT": 0, "DOUBLE": 0, "DATE": 0, "INTERVAL": 0}

// typeName parses a SQL type. Known names are normalised to one of BOOLEAN,
// INT, BIGINT, DOUBLE, DECIMAL, VARCHAR, TIMESTAMP, DATE and INTERVAL
// (INTEGER/INT4 -> INT, INT8/LONG -> BIGINT, DOUBLE PRECISION/FLOAT/FLOAT8/
// REAL -> DOUBLE, NUMERIC -> DECIMAL, STRING/TEXT/CHAR -> VARCHAR, BOOL ->
// BOOLEAN, TIMESTAMPTZ and TIMESTAMP WITH[OUT] TIME ZONE -> TIMESTAMP).
// Other ASCII words are upper-cased and left for the binder to reject, with
// up to two parameters.
func (p *parser) typeName() ast.TypeName {
	t := p.cur()
	name, ok := typeNames[t.val]
	if !ok && t.kind == tIdent && !reserved[t.val] && isASCII(t.val) {
		name, ok = strings.ToUpper(t.val), true
	}
	if t.kind != tIdent || !ok {
		p.expected("type name")
	}
	p.advance()
	tn := ast.TypeName{At: t.pos, Name: name}
	if t.val == "double" {
		p.acceptKw("precision")
	}
	if p.isOp("(") {
		limit, known := maxTypeParams[name]
		if !known {
			limit = 2
		}
		if limit == 0 {
			p.fail(p.cur().pos, "%s takes no parameters", name)
		}
		p.advance()
		for {
			n := p.cur()
			v, err := strconv.Atoi(n.val)
			if n.kind != tNumber || err != nil || v < 0 {
				p.expected("integer type parameter")
			}
			if len(tn.Params) == limit {
				p.fail(n.pos, "%s takes at most %d parameter(s)", name, limit)
			}
			p.advance()
			tn.Params = append(tn.Params, v)
			if !p.acceptOp(",") {
				break
			}
		}
		p.expectOp(")")
	}
	if name == "TIMESTAMP" && (p.isKw("with") || p.isKw("without")) &&
		p.peek(1).kind == tIdent && p.peek(1).val == "time" {
		p.advance()
		p.advance()
		p.expectKw("zone")
	}
	return tn
}

// options parses `WITH (key = value, ...)`.
func (p *parser) options() []ast.Option {
	p.expectKw("with")
	p.expectOp("(")
	var opts []ast.Option
	for {
		var key ast.Ident
		if t := p.cur(); t.kind == tString {
			p.advance()
			key = ast.Ident{At: t.pos, Name: t.val}
		} else {
			key = p.dottedName("option name")
		}
		key.Name = strings.ToLower(key.Name)
		p.expectOp("=")
		o := ast.Option{Key: key}
		o.Value, o.ValueAt = p.optionValue()
		opts = append(opts, o)
		if !p.acceptOp(",") {
			break
		}
	}
	p.expectOp(")")
	return opts
}

// optionValue parses the value of an option or SET: a string (unquoted), a
// number or duration (as written, optionally signed), a word (as written;
// true and false lower-cased) or a quoted identifier.
func (p *parser) optionValue() (string, ast.Pos) {
	t := p.cur()
	sign := ""
	if t.kind == tOp && (t.val == "-" || t.val == "+") {
		if k := p.peek(1).kind; k == tNumber || k == tDuration {
			sign = p.advance().val
			t = p.cur()
		}
	}
	switch t.kind {
	case tString, tQIdent:
		p.advance()
		return t.val, t.pos
	case tNumber, tDuration:
		p.advance()
		return sign + t.raw, t.pos
	case tIdent:
		p.advance()
		if t.val == "true" || t.val == "false" {
			return t.val, t.pos
		}
		return t.raw, t.pos
	}
	p.expected("option value")
	return "", t.pos
}

// ---- queries ----

// query parses a SELECT block and any UNION chain after it.
func (p *parser) query() *ast.Select {
	first := p.selectBlock()
	for last := first; p.acceptKw("union"); last = last.Union {
		if last.UnionAll = p.acceptKw("all"); !last.UnionAll {
			p.acceptKw("distinct")
		}
		last.Union = p.selectBlock()
	}
	return first
}

func (p *parser) selectBlock() *ast.Select {
	p.enter()
	defer p.leave()
	s := &ast.Select{At: p.expectKw("select")}
	if s.Distinct = p.acceptKw("distinct"); !s.Distinct {
		p.acceptKw("all")
	}
	for {
		s.Items = append(s.Items, p.selectItem())
		if !p.acceptOp(",") {
			break
		}
	}
	if p.acceptKw("from") {
		s.From = p.from()
	}
	p.optWindow(s)
	if p.acceptKw("where") {
		s.Where = p.expr()
	}
	p.optWindow(s)
	if p.acceptKw("group") {
		p.expectKw("by")
		for {
			if p.isWindowKind() && p.peek(1).kind == tOp && p.peek(1).val == "(" {
				p.setWindow(s, p.windowSpec(p.cur().pos)) // GROUP BY x, TUMBLING(1m)
			} else {
				s.GroupBy = append(s.GroupBy, p.expr())
			}
			if !p.acceptOp(",") {
				break
			}
		}
	}
	p.optWindow(s)
	if p.acceptKw("having") {
		s.Having = p.expr()
	}
	p.optWindow(s)
	if p.acceptKw("order") {
		p.expectKw("by")
		s.OrderBy = p.orderItems()
	}
	if p.acceptKw("limit") {
		s.Limit = p.expr() // the binder checks for a non-negative integer
	}
	if p.acceptKw("emit") {
		switch {
		case p.acceptKw("changes"):
			s.Emit = "CHANGES"
		case p.acceptKw("final"):
			s.Emit = "FINAL"
		default:
			p.expected("CHANGES or FINAL", "CHANGES", "FINAL")
		}
	}
	return s
}

func (p *parser) selectItem() ast.SelectItem {
	t := p.cur()
	if p.acceptOp("*") {
		return ast.SelectItem{At: t.pos, Star: true}
	}
	if isName(t) && p.peek(1).val == "." && p.peek(1).kind == tOp &&
		p.peek(2).kind == tOp && p.peek(2).val == "*" {
		p.advance()
		p.advance()
		p.advance()
		return ast.SelectItem{At: t.pos, Star: true, StarQualifier: t.val}
	}
	it := ast.SelectItem{At: t.pos, Expr: p.expr()}
	it.Alias = p.optAlias()
	return it
}

func (p *parser) isWindowKind() bool {
	return p.isKw("tumbling") || p.isKw("sliding") || p.isKw("session")
}

// optWindow parses an optional `WINDOW spec` clause, also accepted without
// the WINDOW keyword: `FROM t TUMBLING(1m)`.
func (p *parser) optWindow(s *ast.Select) {
	switch {
	case p.isKw("window"):
		at := p.advance().pos
		p.setWindow(s, p.windowSpec(at))
	case p.isWindowKind() && p.peek(1).kind == tOp && p.peek(1).val == "(":
		p.setWindow(s, p.windowSpec(p.cur().pos))
	}
}

func (p *parser) setWindow(s *ast.Select, w *ast.WindowSpec) {
	if s.Window != nil {
		p.fail(w.At, "duplicate WINDOW clause")
	}
	s.Window = w
}

// windowSpec parses `TUMBLING (size)`, `SLIDING (size, advance)` or
// `SESSION (gap)`; at is the position of WINDOW (or of the kind).
func (p *parser) windowSpec(at ast.Pos) *ast.WindowSpec {
	if !p.isWindowKind() {
		p.expected("TUMBLING, SLIDING or SESSION", "TUMBLING", "SLIDING", "SESSION")
	}
	w := &ast.WindowSpec{At: at, Kind: strings.ToUpper(p.advance().val)}
	p.expectOp("(")
	first := map[string]string{"TUMBLING": "window size", "SLIDING": "window size", "SESSION": "session gap"}[w.Kind]
	if p.isOp(")") {
		p.expected(first)
	}
	w.Args = append(w.Args, p.expr())
	if w.Kind == "SLIDING" {
		if !p.isOp(",") {
			p.expected(`"," and window advance`)
		}
		p.advance()
		w.Args = append(w.Args, p.expr())
	}
	p.expectOp(")")
	return w
}

func (p *parser) orderItems() []ast.OrderItem {
	var items []ast.OrderItem
	for {
		it := ast.OrderItem{Expr: p.expr()}
		if !p.acceptKw("asc") {
			it.Desc = p.acceptKw("desc")
		}
		if p.acceptKw("nulls") {
			first := p.acceptKw("first")
			if !first && !p.acceptKw("last") {
				p.expected("FIRST or LAST", "FIRST", "LAST")
			}
			it.NullsFirst = &first
		}
		items = append(items, it)
		if !p.acceptOp(",") {
			return items
		}
	}
}

// from parses a FROM list with left-associative joins.
func (p *parser) from() ast.FromItem {
	left := p.fromPrimary()
	for {
		kind := ""
		switch {
		case p.acceptOp(","):
			kind = "CROSS"
		case p.acceptKw("cross"):
			kind = "CROSS"
			p.expectKw("join")
		case p.acceptKw("join"):
			kind = "INNER"
		case p.acceptKw("inner"):
			kind = "INNER"
			p.expectKw("join")
		case p.isKw("left") || p.isKw("right") || p.isKw("full"):
			kind = strings.ToUpper(p.advance().val)
			p.acceptKw("outer")
			p.expectKw("join")
		default:
			return left
		}
		j := &ast.Join{At: left.Position(), Kind: kind, Left: left, Right: p.fromPrimary()}
		if kind != "CROSS" {
			p.expectKw("on")
			j.On = p.expr()
		}
		if p.acceptKw("within") {
			j.Within = p.expr()
		}
		left = j
	}
}

func (p *parser) fromPrimary() ast.FromItem {
	if p.isOp("(") {
		p.enter()
		defer p.leave()
		at := p.advance().pos
		if p.isKw("select") {
			q := p.query()
			p.expectOp(")")
			return &ast.SubqueryRef{At: at, Query: q, Alias: p.optAlias()}
		}
		f := p.from()
		p.expectOp(")")
		return f
	}
	name := p.ident("table name")
	return &ast.TableRef{At: name.At, Name: name, Alias: p.optAlias()}
}
