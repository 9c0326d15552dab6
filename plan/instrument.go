package plan

import (
	"fmt"
	"strings"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// instrument is opBuilder.build's one hook: when the build environment asks
// for it, every operator built for a plan node is wrapped so its rows,
// batches, time and late rows are counted (arrowexec.QueryNode.Instrument).
// mark is len(b.node.Operators) when build started on n.
func (b *opBuilder) instrument(n Node, mark int, op *arrowexec.Operator, err *error) {
	if !b.instrumented || *err != nil || *op == nil {
		return
	}
	if b.node.Memory == nil {
		b.node.Memory = b.alloc
	}
	name, detail := operatorName(n, *op)
	*op = b.node.Instrument(*op, name, detail, mark)
}

// operatorName names the operator built for n in metrics and profiles:
// a short kind, and what it works on.
func operatorName(n Node, op arrowexec.Operator) (name, detail string) {
	switch n := n.(type) {
	case *Scan:
		if n.Columns != nil {
			return "Scan", n.Relation.Name
		}
		return "Inlet", n.Relation.Name
	case *Filter:
		return "Filter", ""
	case *Project:
		return "Project", ""
	case *Limit:
		return "Limit", fmt.Sprint(n.N)
	case *Values:
		return "Values", ""
	case *Aggregate:
		switch {
		case n.Window != nil && n.Window.Kind == arrowexec.Session:
			return "SessionAggregate", n.Window.String()
		case n.Window != nil:
			return "WindowAggregate", n.Window.String()
		}
		return "HashAggregate", ""
	}
	// Joins, window functions and what comes next: the operator's type.
	t := strings.TrimPrefix(fmt.Sprintf("%T", op), "*arrowexec.")
	return strings.TrimSuffix(t, "Op"), ""
}
