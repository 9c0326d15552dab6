package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
)

// RelationKind says where a relation's rows come from.
type RelationKind int

const (
	SourceStream  RelationKind = iota // CREATE STREAM ... WITH (connector = ...)
	SourceTable                       // CREATE TABLE ... WITH (connector = ...)
	DerivedStream                     // CREATE STREAM ... AS SELECT
)

func (k RelationKind) String() string {
	return [...]string{"source stream", "source table", "derived stream"}[k]
}

// Relation is a named stream or table of the catalog.
type Relation struct {
	Name string
	Kind RelationKind
	// Declared is what the connector produces: the declared columns (sources
	// only).
	Declared *arrow.Schema
	// Schema is the schema of the stream's batches: the declared or selected
	// columns and, when the stream has event time, the hidden
	// arrowexec.RowWatermarkColumn last.
	Schema     *arrow.Schema
	At         ast.Pos
	Options    arrowexec.Options
	PrimaryKey []string
	// EventTime is the event-time column ("" for processing time).
	EventTime string
	Time      EventTimeSpec
	// LateData is the late-data strategy of windows over this stream and
	// AllowedLatenessMS how long closed windows accept updates.
	LateData          string
	AllowedLatenessMS int64
	// RawRecords is set when the source keeps each record's original line
	// in the hidden arrowexec.RawRecordColumn (before the row watermark),
	// for the dead-letter records of late rows (keepsRawRecords).
	RawRecords bool
}

// sourceSchema is the schema the source connector produces: Declared, then
// arrowexec.RawRecordColumn when RawRecords.
func (r *Relation) sourceSchema() *arrow.Schema {
	if !r.RawRecords {
		return r.Declared
	}
	return arrow.NewSchema(append(slices.Clone(r.Declared.Fields()), arrow.Field{Name: arrowexec.RawRecordColumn, Type: arrow.BinaryTypes.String, Nullable: true}), nil)
}

// EventTimeSpec is how a source stream's watermark is generated.
type EventTimeSpec struct {
	Strategy    arrowexec.WatermarkStrategy
	DelayMS     int64
	Punctuation string // column name, for the punctuated strategy
	EpochFactor int64  // BIGINT event times are epoch ms (1) or seconds (1000)
	IdleMS      int64  // idle_timeout: a partition silent this long stops holding the watermark (0: never)
}

// eventTimeIndex is the index of the event-time column in Schema, or -1.
func (r *Relation) eventTimeIndex() int {
	if r.EventTime == "" {
		return -1
	}
	if idx := r.Schema.FieldIndices(r.EventTime); len(idx) > 0 {
		return idx[0]
	}
	return -1
}

// wmIndex is the index of the hidden row-watermark column, or -1.
func wmIndex(s *arrow.Schema) int {
	if n := s.NumFields(); n > 0 && s.Field(n-1).Name == arrowexec.RowWatermarkColumn {
		return n - 1
	}
	return -1
}

// visibleFields are a schema's fields without the hidden ones (the row
// watermark, a source's raw records: arrowexec.VisibleColumns).
func visibleFields(s *arrow.Schema) []arrow.Field {
	return s.Fields()[:arrowexec.VisibleColumns(s)]
}

// noun is how errors name the relation: "stream" or "table".
func (r *Relation) noun() string {
	if r.Kind == SourceTable {
		return "table"
	}
	return "stream"
}

// Node is a logical plan operator.
type Node interface {
	Schema() *arrow.Schema
	Children() []Node
	// EventTime is the index of the output column carrying event time, or
	// -1 (processing time). When it is set, the output also carries the
	// hidden row-watermark column last.
	EventTime() int
	describe() string
}

// Scan reads a relation. Columns, when non-nil, lists the relation columns
// the query needs (projection push-down), in output order.
type Scan struct {
	Relation *Relation
	Columns  []int
	schema   *arrow.Schema
}

// Values produces one row with no columns (SELECT without FROM) and ends.
type Values struct{}

// Filter keeps rows where Pred is TRUE.
type Filter struct {
	Input Node
	Pred  expr.Expr
}

// Project computes Exprs, named Names. When its input has event time and
// one of Exprs passes the event-time column through unchanged, the output
// keeps event time: that column, and the row-watermark column appended
// after Exprs.
type Project struct {
	Input     Node
	Exprs     []expr.Expr
	Names     []string
	schema    *arrow.Schema
	eventTime int
}

// Limit passes the first N rows.
type Limit struct {
	Input Node
	N     int64
}

func newScan(r *Relation, cols []int) *Scan {
	s := &Scan{Relation: r, Columns: cols}
	if cols == nil {
		s.schema = r.Schema
	} else {
		fields := make([]arrow.Field, len(cols))
		for i, c := range cols {
			fields[i] = r.Schema.Field(c)
		}
		s.schema = arrow.NewSchema(fields, nil)
	}
	return s
}

func newProject(in Node, exprs []expr.Expr, names []string) *Project {
	p := &Project{Input: in, Exprs: exprs, Names: names, eventTime: -1}
	fields := make([]arrow.Field, len(exprs))
	for i, e := range exprs {
		fields[i] = arrow.Field{Name: names[i], Type: e.Type(), Nullable: true}
		if c, ok := expr.ColumnIndex(e); ok && isEventTimeColumn(in, c) && p.eventTime < 0 {
			p.eventTime = i
		}
	}
	if p.eventTime >= 0 {
		fields = append(fields, arrow.Field{Name: arrowexec.RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	}
	p.schema = arrow.NewSchema(fields, nil)
	return p
}

// physicalExprs are the expressions the operator computes: Exprs, plus the
// row-watermark passthrough when event time is kept.
func (p *Project) physicalExprs() ([]expr.Expr, []string) {
	if p.eventTime < 0 {
		return p.Exprs, p.Names
	}
	wm := wmIndex(p.Input.Schema())
	return append(append([]expr.Expr(nil), p.Exprs...), expr.Col(wm, arrowexec.RowWatermarkColumn, arrow.PrimitiveTypes.Int64)),
		append(append([]string(nil), p.Names...), arrowexec.RowWatermarkColumn)
}

var emptySchema = arrow.NewSchema(nil, nil)

func (s *Scan) Schema() *arrow.Schema    { return s.schema }
func (*Values) Schema() *arrow.Schema    { return emptySchema }
func (f *Filter) Schema() *arrow.Schema  { return f.Input.Schema() }
func (p *Project) Schema() *arrow.Schema { return p.schema }
func (l *Limit) Schema() *arrow.Schema   { return l.Input.Schema() }

func (s *Scan) EventTime() int {
	if s.Columns == nil {
		return s.Relation.eventTimeIndex()
	}
	for i, c := range s.Columns {
		if c == s.Relation.eventTimeIndex() {
			return i
		}
	}
	return -1
}
func (*Values) EventTime() int    { return -1 }
func (f *Filter) EventTime() int  { return f.Input.EventTime() }
func (p *Project) EventTime() int { return p.eventTime }
func (l *Limit) EventTime() int   { return l.Input.EventTime() }

func (*Scan) Children() []Node      { return nil }
func (*Values) Children() []Node    { return nil }
func (f *Filter) Children() []Node  { return []Node{f.Input} }
func (p *Project) Children() []Node { return []Node{p.Input} }
func (l *Limit) Children() []Node   { return []Node{l.Input} }

func (s *Scan) describe() string {
	cols := make([]string, s.schema.NumFields())
	for i, f := range s.schema.Fields() {
		cols[i] = f.Name
	}
	return fmt.Sprintf("Scan %s %s [%s]", s.Relation.noun(), s.Relation.Name, strings.Join(cols, ", "))
}
func (*Values) describe() string   { return "Values (one row)" }
func (f *Filter) describe() string { return "Filter " + f.Pred.String() }
func (p *Project) describe() string {
	items := make([]string, len(p.Exprs))
	for i, e := range p.Exprs {
		items[i] = fmt.Sprintf("%s AS %s %s", e, p.Names[i], sqltypes.Name(e.Type()))
	}
	return "Project " + strings.Join(items, ", ")
}
func (l *Limit) describe() string { return fmt.Sprintf("Limit %d", l.N) }

// FormatTree renders a plan as an indented tree, one node per line.
func FormatTree(n Node) string {
	var b strings.Builder
	var walk func(n Node, depth int)
	walk = func(n Node, depth int) {
		fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), n.describe())
		for _, c := range n.Children() {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

func schemaString(s *arrow.Schema) string {
	parts := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		parts[i] = f.Name + " " + sqltypes.Name(f.Type)
	}
	return strings.Join(parts, ", ")
}
