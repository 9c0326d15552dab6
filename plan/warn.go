package plan

import (
	"fmt"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// This file holds the warnings of a pipeline: what compiles and runs but
// may not do what its author meant. `ferris validate` and `ferris run`
// print them.

// warnProcessingTime warns when the query q, bound from sel, windows a
// stream without event time: its windows then hold the rows that arrive
// in the same wall-clock interval. Over a file (or other bounded source)
// that depends on how fast it is read, so the output differs between runs.
func (p *Pipeline) warnProcessingTime(q *Query, sel *ast.Select) {
	if sel.Window == nil || !processingTimeWindow(q.Plan) {
		return
	}
	r := lateRelation(q.Plan)
	if r == nil {
		return
	}
	msg := fmt.Sprintf("query %s windows %s %q by processing time (the wall clock as rows arrive): it has no event time", q.Name, r.noun(), r.Name)
	if root := p.rootSource(r); root != nil && boundedSource(root) {
		from := fmt.Sprintf("%s %q", root.noun(), root.Name)
		if path := root.Options["path"]; path != "" {
			from = "file " + path
		}
		msg = fmt.Sprintf("query %s windows %s %q by processing time: it has no event time, so a window holds the rows read from %s during its wall-clock interval; the output depends on how fast they are read and is not reproducible", q.Name, r.noun(), r.Name, from)
	}
	p.Warnings = append(p.Warnings, errorf(sel.Window.At, "warning: %s. Declare an event time: WATERMARK FOR col AS col - INTERVAL '5' SECOND, or event_time = 'col'", msg))
}

// processingTimeWindow reports whether n windows rows by processing time.
func processingTimeWindow(n Node) bool {
	switch n := n.(type) {
	case *Aggregate:
		if n.Window != nil && n.TimeCol < 0 {
			return true
		}
	case *Over:
		if n.Window != nil && n.Window != wholeInput && n.TimeCol < 0 {
			return true
		}
	}
	for _, c := range n.Children() {
		if processingTimeWindow(c) {
			return true
		}
	}
	return false
}

// rootSource is the source stream or table r is read from: r itself,
// or for a derived stream the first source its query scans.
func (p *Pipeline) rootSource(r *Relation) *Relation {
	for r != nil && r.Kind == DerivedStream {
		var next *Relation
		for _, q := range p.Queries {
			if q.Output == r.Name {
				next = lateRelation(q.Plan)
			}
		}
		r = next
	}
	return r
}
