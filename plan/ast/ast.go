// Package ast is the syntax tree of the FerrisStreams SQL dialect. Every node
// records the position of its first token so later phases can report errors
// as "line L, column C: ...". The parser (package plan/sql) lowers special
// syntax to the general nodes documented here; the tree holds no types and
// resolves no names.
package ast

import "fmt"

// Pos is a 1-based line and column (in runes) in the SQL text.
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Col) }

// Node is any syntax tree node.
type Node interface {
	Position() Pos
}

// Ident is an identifier. Unquoted identifiers are lower-cased by the parser;
// quoted ("Name") ones keep their case.
type Ident struct {
	At   Pos
	Name string
}

func (i Ident) Position() Pos { return i.At }

// ---- statements ----

// Statement is a top-level statement of a pipeline file.
type Statement interface {
	Node
	stmt()
}

// Set is `SET name = value;` (value is the literal text, unquoted).
type Set struct {
	At    Pos
	Name  Ident
	Value string
}

// ColumnDef is one column of CREATE STREAM/TABLE.
type ColumnDef struct {
	Name       Ident
	Type       TypeName
	NotNull    bool
	PrimaryKey bool // column-level PRIMARY KEY
}

// TypeName is a SQL type as written, e.g. DECIMAL(18,4): Name is upper-cased.
type TypeName struct {
	At     Pos
	Name   string
	Params []int
}

// WatermarkDef is `WATERMARK FOR column AS expr`.
type WatermarkDef struct {
	At     Pos
	Column Ident
	Expr   Expr
}

// Option is one `key = value` in WITH (...). Key is lower-cased; Value is the
// literal text (string literals unquoted, numbers and identifiers verbatim).
type Option struct {
	Key     Ident
	Value   string
	ValueAt Pos
}

// CreateSource is `CREATE STREAM|TABLE [IF NOT EXISTS] name (columns...)
// WITH (...)`: a stream or table read from a connector.
type CreateSource struct {
	At          Pos
	Table       bool // CREATE TABLE (changelog / lookup table) rather than STREAM
	IfNotExists bool
	Name        Ident
	Columns     []ColumnDef
	PrimaryKey  []Ident // table-level PRIMARY KEY (a, b); column-level ones are merged in
	Watermark   *WatermarkDef
	With        []Option
}

// CreateAs is `CREATE STREAM|TABLE name AS <query> [EMIT ...] [WITH (...)]`.
// Without a connector option it is an internal stream.
type CreateAs struct {
	At    Pos
	Table bool
	Name  Ident
	Query *Select
	With  []Option
}

// SelectStatement is a bare query in a pipeline; its rows go to stdout.
type SelectStatement struct {
	Query *Select
	With  []Option // optional trailing WITH (sink options)
}

func (s *Set) Position() Pos             { return s.At }
func (s *CreateSource) Position() Pos    { return s.At }
func (s *CreateAs) Position() Pos        { return s.At }
func (s *SelectStatement) Position() Pos { return s.Query.At }
func (*Set) stmt()                       {}
func (*CreateSource) stmt()              {}
func (*CreateAs) stmt()                  {}
func (*SelectStatement) stmt()           {}

// ---- queries ----

// Select is one SELECT block.
type Select struct {
	At       Pos
	Distinct bool
	Items    []SelectItem
	From     FromItem // nil for SELECT without FROM
	Where    Expr
	GroupBy  []Expr
	Window   *WindowSpec // WINDOW clause: after FROM, WHERE or GROUP BY
	Having   Expr
	OrderBy  []OrderItem
	Limit    Expr
	Emit     string // "", "CHANGES" or "FINAL"
	// Union, when set, is the right side of `this UNION [ALL] Union`.
	Union    *Select
	UnionAll bool
}

// SelectItem is one output column. Star is `*` or `t.*` (StarQualifier).
type SelectItem struct {
	At            Pos
	Expr          Expr
	Alias         *Ident
	Star          bool
	StarQualifier string
}

// WindowSpec is `WINDOW TUMBLING (size)`, `SLIDING (size, advance)`,
// `SESSION (gap)`, or the short forms `TUMBLING(1m)`. Kind is upper-case.
type WindowSpec struct {
	At   Pos
	Kind string
	Args []Expr // interval literals
}

// OrderItem is `expr [ASC|DESC] [NULLS FIRST|LAST]`.
type OrderItem struct {
	Expr       Expr
	Desc       bool
	NullsFirst *bool // nil: default
}

// FromItem is a relation in FROM.
type FromItem interface {
	Node
	from()
}

// TableRef names a stream or table, optionally aliased.
type TableRef struct {
	At    Pos
	Name  Ident
	Alias *Ident
}

// SubqueryRef is `(SELECT ...) [AS] alias`.
type SubqueryRef struct {
	At    Pos
	Query *Select
	Alias *Ident
}

// Join is `left [INNER|LEFT|RIGHT|FULL [OUTER]|CROSS] JOIN right [ON cond]
// [WITHIN interval]`. Kind is "INNER", "LEFT", "RIGHT", "FULL" or "CROSS";
// a comma join is CROSS.
type Join struct {
	At     Pos
	Kind   string
	Left   FromItem
	Right  FromItem
	On     Expr
	Within Expr // interval literal or nil
}

func (t *TableRef) Position() Pos    { return t.At }
func (t *SubqueryRef) Position() Pos { return t.At }
func (j *Join) Position() Pos        { return j.At }
func (*TableRef) from()              {}
func (*SubqueryRef) from()           {}
func (*Join) from()                  {}

// ---- expressions ----

// Expr is a scalar expression.
type Expr interface {
	Node
	expr()
}

// ColumnRef is `name` or `qualifier.name`.
type ColumnRef struct {
	At        Pos
	Qualifier string // "" when unqualified
	Name      string
}

// LiteralKind says how to read Literal.Value.
type LiteralKind int

const (
	NumberLit    LiteralKind = iota // Value is the digits as written: 42, 3.14, 1e-3
	StringLit                       // Value is the unescaped text
	BoolLit                         // Value is "true" or "false"
	NullLit                         // NULL
	IntervalLit                     // Value is the quantity ("5", "1.5"), Unit one of MILLISECOND, SECOND, MINUTE, HOUR, DAY
	TimestampLit                    // TIMESTAMP '...': Value is the text
	DateLit                         // DATE '...': Value is the text
)

// Literal is a constant as written. Interval literals `INTERVAL '5' MINUTE`,
// `INTERVAL '5 minutes'` and the short form `5m` all become IntervalLit with
// a normalised Unit.
type Literal struct {
	At    Pos
	Kind  LiteralKind
	Value string
	Unit  string
}

// Binary is a binary operator. Op is one of
// + - * / % || = <> < <= > >= AND OR ("!=" is normalised to "<>").
type Binary struct {
	At   Pos // position of the left operand
	Op   string
	OpAt Pos
	L, R Expr
}

// Unary is `-x`, `+x` or `NOT x` (Op "-", "+", "NOT").
type Unary struct {
	At Pos
	Op string
	X  Expr
}

// FuncCall is a function or aggregate call. Name is lower-cased. Special
// syntax is lowered by the parser:
//
//	EXTRACT(YEAR FROM x)         -> extract('YEAR', x)        (field upper-cased string literal)
//	SUBSTRING(s FROM a [FOR n])  -> substring(s, a[, n])
//	POSITION(a IN b)             -> position(a, b)
//	TRIM([BOTH|LEADING|TRAILING] [c] FROM s) -> btrim|ltrim|rtrim(s[, c]); TRIM(s) -> btrim(s)
//	CURRENT_TIMESTAMP, NOW()     -> current_timestamp()
//	COUNT(*)                     -> count with Star
type FuncCall struct {
	At       Pos
	Name     string
	Args     []Expr
	Star     bool
	Distinct bool
	Over     *OverSpec
}

// OverSpec is `OVER (PARTITION BY ... ORDER BY ... [frame])`.
type OverSpec struct {
	At          Pos
	PartitionBy []Expr
	OrderBy     []OrderItem
	Frame       *Frame
}

// Frame is `ROWS|RANGE BETWEEN start AND end` (or `ROWS start`, end = CURRENT ROW).
type Frame struct {
	At    Pos
	Unit  string // "ROWS" or "RANGE"
	Start FrameBound
	End   FrameBound
}

// FrameBound is UNBOUNDED PRECEDING, n PRECEDING, CURRENT ROW, n FOLLOWING
// or UNBOUNDED FOLLOWING. Kind is one of those words upper-cased with "N"
// for the counted forms: "UNBOUNDED PRECEDING", "N PRECEDING", "CURRENT ROW",
// "N FOLLOWING", "UNBOUNDED FOLLOWING".
type FrameBound struct {
	Kind string
	N    Expr
}

// When is one WHEN ... THEN ... arm of CASE.
type When struct {
	Cond, Result Expr
}

// Case is `CASE [operand] WHEN ... THEN ... [ELSE ...] END`.
type Case struct {
	At      Pos
	Operand Expr // nil for a searched CASE
	Whens   []When
	Else    Expr
}

// Cast is `CAST(x AS type)` or `x::type`.
type Cast struct {
	At   Pos
	X    Expr
	Type TypeName
}

// IsNull is `x IS [NOT] NULL`.
type IsNull struct {
	At  Pos
	X   Expr
	Not bool
}

// IsBool is `x IS [NOT] TRUE|FALSE`.
type IsBool struct {
	At    Pos
	X     Expr
	Not   bool
	Value bool
}

// InList is `x [NOT] IN (a, b, ...)`.
type InList struct {
	At   Pos
	X    Expr
	List []Expr
	Not  bool
}

// InSubquery is `x [NOT] IN (SELECT ...)`.
type InSubquery struct {
	At    Pos
	X     Expr
	Query *Select
	Not   bool
}

// Exists is `[NOT] EXISTS (SELECT ...)`.
type Exists struct {
	At    Pos
	Query *Select
	Not   bool
}

// Subquery is a scalar subquery `(SELECT ...)` used as a value.
type Subquery struct {
	At    Pos
	Query *Select
}

// Between is `x [NOT] BETWEEN lo AND hi`.
type Between struct {
	At     Pos
	X      Expr
	Lo, Hi Expr
	Not    bool
}

// Like is `x [NOT] LIKE|ILIKE pattern`.
type Like struct {
	At      Pos
	X       Expr
	Pattern Expr
	Not     bool
	ILike   bool
}

func (e *ColumnRef) Position() Pos  { return e.At }
func (e *Literal) Position() Pos    { return e.At }
func (e *Binary) Position() Pos     { return e.At }
func (e *Unary) Position() Pos      { return e.At }
func (e *FuncCall) Position() Pos   { return e.At }
func (e *Case) Position() Pos       { return e.At }
func (e *Cast) Position() Pos       { return e.At }
func (e *IsNull) Position() Pos     { return e.At }
func (e *IsBool) Position() Pos     { return e.At }
func (e *InList) Position() Pos     { return e.At }
func (e *InSubquery) Position() Pos { return e.At }
func (e *Exists) Position() Pos     { return e.At }
func (e *Subquery) Position() Pos   { return e.At }
func (e *Between) Position() Pos    { return e.At }
func (e *Like) Position() Pos       { return e.At }
func (*ColumnRef) expr()            {}
func (*Literal) expr()              {}
func (*Binary) expr()               {}
func (*Unary) expr()                {}
func (*FuncCall) expr()             {}
func (*Case) expr()                 {}
func (*Cast) expr()                 {}
func (*IsNull) expr()               {}
func (*IsBool) expr()               {}
func (*InList) expr()               {}
func (*InSubquery) expr()           {}
func (*Exists) expr()               {}
func (*Subquery) expr()             {}
func (*Between) expr()              {}
func (*Like) expr()                 {}
