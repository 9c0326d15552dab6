package plan

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// BuildEnv is what building a runnable topology needs besides the plan.
type BuildEnv struct {
	Connectors *arrowexec.Connectors
	Resources  *resource.Manager
	// BaseDir is the folder relative paths in WITH options resolve against
	// (the pipeline file's folder).
	BaseDir string
	// DeadLetter returns the dead-letter sink for a path option ("" for the
	// pipeline default).
	DeadLetter func(path string) arrowexec.DeadLetter
	// QueryPrefix is put before query and source names in the resource
	// manager's accounts, so pipelines sharing one manager stay apart.
	QueryPrefix string
	// Instrument wraps every operator to count its rows, batches, time and
	// late rows (QueryNode.Operators; metrics, explain --analyze).
	Instrument bool
	// Tracer, when set, traces batches and is handed to connectors.
	Tracer arrowexec.Tracer
	// CorrelationID names the run in errors (fault.go); "" generates one.
	CorrelationID string
	// Logger receives bad records skipped by log_and_continue and skipped
	// commits (fault.go); nil: text on stderr.
	Logger *slog.Logger
}

// Build instantiates connectors and operators for every query. Nothing is
// opened: the topology does I/O only when it runs. On error, whatever was
// built is closed.
func (p *Pipeline) Build(env BuildEnv) (topo *arrowexec.Topology, err error) {
	topo = &arrowexec.Topology{Resources: env.Resources, Tracer: env.Tracer}
	defer func() {
		if err != nil {
			topo.Discard()
			topo = nil
		}
	}()
	fb := p.newFaults(env, topo) // fault.go: retries, breakers, failure strategies, dead letters
	read := map[string]bool{}
	for _, q := range p.Queries {
		node := &arrowexec.QueryNode{Name: q.Name, Output: q.Output, Line: q.At.Line, Column: q.At.Col}
		topo.Queries = append(topo.Queries, node)
		alloc := env.Resources.Query(env.QueryPrefix + q.Name)
		b := &opBuilder{pipe: p, alloc: alloc, depth: p.Settings.ChannelDepth, node: node, faults: fb, query: q, instrumented: env.Instrument}
		if node.Root, err = b.build(q.Plan); err != nil {
			return topo, at(q.At, fmt.Errorf("query %s: %w", q.Name, err))
		}
		for _, in := range node.Inputs {
			read[in.Stream] = true
		}
		fb.query(q, node, alloc)
		if q.Sink != nil {
			factory, err := env.Connectors.Sink(q.Sink.Connector)
			if err != nil {
				return topo, at(q.At, err)
			}
			sinkSchema := arrow.NewSchema(visibleFields(q.Plan.Schema()), nil)
			if wmIndex(q.Plan.Schema()) >= 0 {
				node.SinkColumns = sinkSchema.NumFields()
			}
			sink, err := factory(arrowexec.SinkSpec{
				Name: q.Name, Schema: sinkSchema, Key: sinkKey(q.Plan), Options: q.Sink.Options,
				BaseDir: env.BaseDir, Alloc: alloc, DeadLetter: fb.sinkErrors(q), Tracer: env.Tracer,
			})
			if err != nil {
				return topo, at(q.At, fmt.Errorf("sink of %s: %w", q.Name, err))
			}
			node.Sinks = append(node.Sinks, fb.sink(q, node, sink))
		}
	}
	for _, r := range p.Relations {
		if r.Kind == DerivedStream {
			continue
		}
		factory, err := env.Connectors.Source(r.Options["connector"])
		if err != nil {
			return topo, at(r.At, err)
		}
		batch := p.Settings.BatchSize
		if v, ok := r.Options["batch_size"]; ok {
			batch, _ = strconv.Atoi(v)
		}
		linger := p.Settings.Linger
		if v, ok := r.Options["linger_ms"]; ok {
			linger, _ = ParseDuration(v)
		}
		alloc := env.Resources.Query(env.QueryPrefix + "source:" + r.Name)
		dataErrors := fb.sourceErrors(r)
		op, err := factory(arrowexec.SourceSpec{
			Name: r.Name, Schema: r.sourceSchema(), Options: r.Options, BaseDir: env.BaseDir,
			BatchSize: batch, Linger: linger, Alloc: alloc,
			DeadLetter: dataErrors, Tracer: env.Tracer, Logger: env.Logger,
		})
		if err != nil {
			return topo, at(r.At, fmt.Errorf("%s %s: %w", r.noun(), r.Name, err))
		}
		if r.EventTime != "" {
			cfg := arrowexec.EventTimeConfig{
				Source:      r.Name,
				TimeColumn:  r.Declared.FieldIndices(r.EventTime)[0],
				EpochFactor: r.Time.EpochFactor,
				Strategy:    r.Time.Strategy,
				Delay:       time.Duration(r.Time.DelayMS) * time.Millisecond,
				IdleTimeout: time.Duration(r.Time.IdleMS) * time.Millisecond,
				DeadLetter:  dataErrors,
			}
			if r.Time.Strategy == arrowexec.Punctuated {
				cfg.Punctuation = r.Declared.FieldIndices(r.Time.Punctuation)[0]
			}
			op = arrowexec.NewWatermarkAssigner(alloc, op, cfg)
		}
		if !read[r.Name] {
			_ = op.Close() // validated, but nobody reads it: never opened
			continue
		}
		topo.Sources = append(topo.Sources, &arrowexec.SourceNode{Stream: r.Name, Op: op, Fault: fb.source(r, alloc, dataErrors)})
	}
	return topo, fb.err()
}

// opBuilder turns one query's logical plan into operators.
type opBuilder struct {
	pipe         *Pipeline
	alloc        *resource.Allocator
	depth        int
	node         *arrowexec.QueryNode
	faults       *faults
	query        *Query
	instrumented bool
	// carry holds, for a Filter under a Project, what it passes on
	carry map[*Filter]filterCarry
}

func (b *opBuilder) build(n Node) (op arrowexec.Operator, err error) {
	defer b.instrument(n, len(b.node.Operators), &op, &err) // instrument.go
	switch n := n.(type) {
	case *Scan:
		in := arrowexec.NewInlet(n.Relation.Schema, b.depth)
		b.node.Inputs = append(b.node.Inputs, arrowexec.Subscription{Stream: n.Relation.Name, Inlet: in})
		if n.Columns == nil {
			return in, nil
		}
		exprs := make([]expr.Expr, len(n.Columns))
		names := make([]string, len(n.Columns))
		for i, c := range n.Columns {
			f := n.Relation.Schema.Field(c)
			exprs[i], names[i] = expr.Col(c, f.Name, f.Type), f.Name
		}
		return arrowexec.NewProject(b.alloc, in, exprs, names), nil
	case *Values:
		return arrowexec.NewValues(), nil
	case *Filter:
		in, err := b.build(n.Input)
		if err != nil {
			return nil, err
		}
		fc := b.carry[n]
		names := make([]string, len(fc.carry))
		for i := range fc.carry {
			names[i] = fmt.Sprintf("_carried%d", i)
		}
		return arrowexec.NewFilterCarrying(b.alloc, in, n.Pred, fc.keep, fc.carry, names)
	case *Project:
		exprs, names := n.physicalExprs()
		if f, ok := n.Input.(*Filter); ok {
			var fc filterCarry
			fc, exprs = carryThrough(f, exprs)
			if b.carry == nil {
				b.carry = map[*Filter]filterCarry{}
			}
			b.carry[f] = fc
		}
		in, err := b.build(n.Input)
		if err != nil {
			return nil, err
		}
		return arrowexec.NewProject(b.alloc, in, exprs, names), nil
	case *Aggregate:
		in, err := b.build(n.Input)
		if err != nil {
			return nil, err
		}
		cfg := arrowexec.AggregateConfig{
			Query: b.node.Name, Source: sourceName(n.Input), Keys: n.Keys, Window: n.Window,
			TimeCol: n.TimeCol, WMCol: n.WMCol, EmitChanges: n.EmitChanges,
			Late: n.Late, DeadLetter: b.lateSink(n.Input), Schema: n.Schema(),
		}
		for _, c := range n.Aggs {
			cfg.Specs = append(cfg.Specs, c.Spec)
			cfg.Args = append(cfg.Args, c.Arg)
		}
		if n.Window != nil && n.Window.Kind == arrowexec.Session {
			return arrowexec.NewSessionAggregate(b.alloc, in, cfg)
		}
		return arrowexec.NewAggregate(b.alloc, in, cfg)
	case *Limit:
		in, err := b.build(n.Input)
		if err != nil {
			return nil, err
		}
		return arrowexec.NewLimit(in, n.N), nil
	case *Join:
		return b.buildJoin(n)
	case *SubqueryJoin:
		return b.buildSubqueryJoin(n)
	case *Over:
		return b.buildOver(n)
	}
	return nil, errors.New("no physical operator for " + n.describe())
}

// lateSink is the dead-letter sink of the late rows an operator over input
// sees: the one of the stream they come from (lateRelation) when it names
// one (dead_letter_path or dead_letter_topic), else the query's, else the
// pipeline's.
func (b *opBuilder) lateSink(input Node) arrowexec.DeadLetter {
	opts := b.query.Options
	if r := lateRelation(input); r != nil && (r.Options["dead_letter_path"] != "" || r.Options["dead_letter_topic"] != "") {
		opts = r.Options
	}
	return b.faults.deadLetter(opts)
}

// physicalTree describes the operators Build creates for a plan.
func physicalTree(n Node, depth int, b *strings.Builder) {
	pad := strings.Repeat("  ", depth)
	switch n := n.(type) {
	case *Scan:
		if n.Columns != nil {
			fmt.Fprintf(b, "%sSelectColumns %v (zero-copy)\n", pad, n.Columns)
			pad += "  "
		}
		fmt.Fprintf(b, "%sInlet %s (bounded channel)\n", pad, n.Relation.Name)
		return
	case *Values:
		fmt.Fprintf(b, "%sValues (one row)\n", pad)
		return
	case *Filter:
		fmt.Fprintf(b, "%sFilterOp %s (vectorised mask, compacting)\n", pad, n.Pred)
		if sh := expr.NewProgram([]expr.Expr{n.Pred}, n.Schema().NumFields()).Shared(); len(sh) > 0 {
			fmt.Fprintf(b, "%s  computed once per batch: %s\n", pad, exprList(sh))
		}
	case *Project:
		fmt.Fprintf(b, "%sProjectOp %d columns (vectorised)\n", pad, len(n.Exprs))
		exprs, _ := n.physicalExprs()
		ncols := n.Input.Schema().NumFields()
		if f, ok := n.Input.(*Filter); ok {
			var fc filterCarry
			fc, exprs = carryThrough(f, exprs)
			if fc.keep != nil {
				ncols = len(fc.keep)
			}
			ncols += len(fc.carry)
			if len(fc.carry) > 0 {
				fmt.Fprintf(b, "%s  reads from the filter: %s\n", pad, exprList(fc.carry))
			}
			if fc.keep != nil {
				fmt.Fprintf(b, "%s  the filter passes on columns %v\n", pad, fc.keep)
			}
		}
		if sh := expr.NewProgram(exprs, ncols).Shared(); len(sh) > 0 {
			fmt.Fprintf(b, "%s  computed once per batch: %s\n", pad, exprList(sh))
		}
	case *Limit:
		fmt.Fprintf(b, "%sLimitOp %d\n", pad, n.N)
	case *Join:
		fmt.Fprintf(b, "%s%s\n", pad, n.physical())
	case *SubqueryJoin:
		fmt.Fprintf(b, "%s%s\n", pad, n.physical())
	case *Over:
		fmt.Fprintf(b, "%s%s\n", pad, overPhysical(n))
	case *Aggregate:
		kind := "HashAggregate (vectorised group ids, typed state vectors)"
		switch {
		case n.Window != nil && n.Window.Kind == arrowexec.Session:
			kind = "SessionAggregate " + n.Window.String() + " (per-row watermarks, per-key session lists, state per session)"
		case n.Window != nil:
			kind = "WindowAggregate " + n.Window.String() + " (per-row watermarks, state per window)"
		}
		fmt.Fprintf(b, "%s%s\n", pad, kind)
	}
	for _, c := range n.Children() {
		physicalTree(c, depth+1, b)
	}
}

// Explain renders the pipeline: settings that differ from the defaults,
// relations, and for each query its logical plan as bound, after rewrites,
// and the physical operators.
func (p *Pipeline) Explain() string {
	var b strings.Builder
	for _, r := range p.Relations {
		if r.Kind == DerivedStream {
			continue
		}
		fmt.Fprintf(&b, "%s %s (%s)", r.Kind, r.Name, schemaString(r.Declared))
		if r.EventTime != "" {
			fmt.Fprintf(&b, " event_time=%s watermark_delay=%dms", r.EventTime, r.Time.DelayMS)
			if r.Time.IdleMS > 0 {
				fmt.Fprintf(&b, " idle_timeout=%dms", r.Time.IdleMS)
			}
		}
		fmt.Fprintf(&b, " connector=%s\n", r.Options["connector"])
	}
	for _, q := range p.Queries {
		fmt.Fprintf(&b, "\nquery %s", q.Name)
		switch {
		case q.Output != "" && q.Sink != nil:
			fmt.Fprintf(&b, " -> stream %s, sink %s", q.Output, q.Sink.Connector)
		case q.Output != "":
			fmt.Fprintf(&b, " -> internal stream %s", q.Output)
		default:
			fmt.Fprintf(&b, " -> sink %s", q.Sink.Connector)
		}
		fmt.Fprintf(&b, "\n  output: %s\n  logical plan:\n%s  optimised plan:\n%s  physical plan:\n",
			schemaString(q.Plan.Schema()), indent(FormatTree(q.Logical), "    "), indent(FormatTree(q.Plan), "    "))
		var phys strings.Builder
		physicalTree(q.Plan, 0, &phys)
		b.WriteString(indent(phys.String(), "    "))
	}
	return b.String()
}

func indent(s, pad string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(pad + l)
		}
	}
	return b.String()
}

// sourceName names the streams a plan reads, for dead-letter records.
func sourceName(n Node) string {
	if s, ok := n.(*Scan); ok {
		return s.Relation.Name
	}
	var names []string
	for _, c := range n.Children() {
		if name := sourceName(c); name != "" {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// exprList joins the expressions' text with ", ".
func exprList(es []expr.Expr) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.String()
	}
	return strings.Join(parts, ", ")
}

// filterCarry is what a Filter under a Project passes on: the input
// columns the projection reads and the values of predicate sub-expressions
// it would compute again (expr.Carry).
type filterCarry struct {
	keep  []int
	carry []expr.Expr
}

// carryThrough plans a Filter under a Project: the projection reads the
// costly values the predicate computes anyway, and the filter compacts only
// the columns the projection reads. It returns the projection's
// expressions over the filter's output.
func carryThrough(f *Filter, exprs []expr.Expr) (filterCarry, []expr.Expr) {
	ncols := f.Schema().NumFields()
	carry, exprs := expr.Carry(f.Pred, exprs, ncols)
	var used []int
	for _, e := range exprs {
		used = append(used, expr.Columns(e)...)
	}
	slices.Sort(used)
	used = slices.Compact(used)
	fc := filterCarry{carry: carry}
	mapping := map[int]int{}
	for _, c := range used {
		if c < ncols {
			mapping[c] = len(fc.keep)
			fc.keep = append(fc.keep, c)
		}
	}
	if len(fc.keep) == 0 || len(fc.keep) == ncols {
		// every column, or none (SELECT 1 ... WHERE p: the batch keeps its
		// columns to keep its row count): pass the input on as it is
		fc.keep = nil
		return fc, exprs
	}
	for i := range carry {
		mapping[ncols+i] = len(fc.keep) + i
	}
	for i, e := range exprs {
		exprs[i] = expr.Remap(e, mapping)
	}
	return fc, exprs
}
