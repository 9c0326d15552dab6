package plan

import (
	"slices"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

// optimize applies the logical rewrites, in order: constant folding, filter
// merging and push-down through projections, and projection push-down into
// scans. It never changes the output schema.
func optimize(n Node) (Node, error) {
	n, err := fold(n)
	if err != nil {
		return nil, err
	}
	n = pushFilters(n)
	all := make([]int, n.Schema().NumFields())
	for i := range all {
		all[i] = i
	}
	n, _ = prune(n, all)
	return n, nil
}

// fold replaces constant sub-expressions by literals and removes filters
// that are constantly TRUE.
func fold(n Node) (Node, error) {
	var err error
	switch n := n.(type) {
	case *Filter:
		in, err := fold(n.Input)
		if err != nil {
			return nil, err
		}
		pred, err := expr.Fold(n.Pred)
		if err != nil {
			return nil, err
		}
		if v, ok := expr.IsConst(pred); ok && v == true {
			return in, nil
		}
		return &Filter{Input: in, Pred: pred}, nil
	case *Project:
		in, err := fold(n.Input)
		if err != nil {
			return nil, err
		}
		exprs := make([]expr.Expr, len(n.Exprs))
		for i, e := range n.Exprs {
			if exprs[i], err = expr.Fold(e); err != nil {
				return nil, err
			}
		}
		return newProject(in, exprs, n.Names), nil
	case *Limit:
		in, err := fold(n.Input)
		if err != nil {
			return nil, err
		}
		return &Limit{Input: in, N: n.N}, nil
	case *Aggregate:
		in, err := fold(n.Input)
		if err != nil {
			return nil, err
		}
		a := *n
		a.Input = in
		a.Keys = make([]expr.Expr, len(n.Keys))
		for i, k := range n.Keys {
			if a.Keys[i], err = expr.Fold(k); err != nil {
				return nil, err
			}
		}
		a.Aggs = append([]AggCall(nil), n.Aggs...)
		for i, c := range a.Aggs {
			if c.Arg != nil {
				if a.Aggs[i].Arg, err = expr.Fold(c.Arg); err != nil {
					return nil, err
				}
			}
		}
		return &a, nil
	case *Join:
		return n.fold()
	case *SubqueryJoin:
		return n.fold()
	case *Over:
		in, err := fold(n.Input)
		if err != nil {
			return nil, err
		}
		return n.fold(in)
	}
	return n, err
}

// pushFilters merges adjacent filters and moves filters below projections
// whose columns they only read through plain column references, so rows are
// dropped before expressions are computed for them.
func pushFilters(n Node) Node {
	switch n := n.(type) {
	case *Filter:
		in := pushFilters(n.Input)
		if inner, ok := in.(*Filter); ok {
			and, err := expr.Binary("AND", inner.Pred, n.Pred)
			if err == nil {
				return &Filter{Input: inner.Input, Pred: and}
			}
		}
		if p, ok := in.(*Project); ok {
			repl := map[int]expr.Expr{}
			pushable := true
			for _, c := range expr.Columns(n.Pred) {
				if _, isCol := expr.ColumnIndex(p.Exprs[c]); !isCol {
					pushable = false
					break
				}
				repl[c] = p.Exprs[c]
			}
			if pushable {
				pushed := pushFilters(&Filter{Input: p.Input, Pred: expr.Substitute(n.Pred, repl)})
				return newProject(pushed, p.Exprs, p.Names)
			}
		}
		return &Filter{Input: in, Pred: n.Pred}
	case *Project:
		return newProject(pushFilters(n.Input), n.Exprs, n.Names)
	case *Limit:
		return &Limit{Input: pushFilters(n.Input), N: n.N}
	case *Aggregate:
		a := *n
		a.Input = pushFilters(n.Input)
		return &a
	case *Join:
		return n.pushFilters()
	case *SubqueryJoin:
		return n.pushFilters()
	case *Over: // filters above it stay above it: they see its results
		o := n.clone()
		o.Input = pushFilters(n.Input)
		return newOver(o)
	}
	return n
}

// prune narrows n to the output columns in needed (sorted, distinct) and
// returns the new node and, for each kept old output index, its new index.
func prune(n Node, needed []int) (Node, map[int]int) {
	switch n := n.(type) {
	case *Scan:
		if et := n.EventTime(); et >= 0 && slices.Contains(needed, et) {
			needed = union(needed, []int{wmIndex(n.schema)}) // event time travels with its watermarks
		}
		mapping := make(map[int]int, len(needed))
		cols := make([]int, len(needed))
		for i, c := range needed {
			src := c
			if n.Columns != nil {
				src = n.Columns[c]
			}
			cols[i] = src
			mapping[c] = i
		}
		if len(cols) == n.Relation.Schema.NumFields() && slices.IsSorted(cols) {
			cols = nil // every column, in order
		}
		return newScan(n.Relation, cols), mapping
	case *Values:
		return n, map[int]int{}
	case *Filter:
		// The filter passes its input's columns: the ones its parent needs
		// and the ones its predicate reads.
		in, m := prune(n.Input, union(needed, expr.Columns(n.Pred)))
		return &Filter{Input: in, Pred: expr.Remap(n.Pred, m)}, m
	case *Project:
		var kept, childNeed []int
		for _, c := range needed {
			if c < len(n.Exprs) {
				kept = append(kept, c)
				childNeed = union(childNeed, expr.Columns(n.Exprs[c]))
			}
		}
		if n.eventTime >= 0 && slices.Contains(kept, n.eventTime) {
			childNeed = union(childNeed, []int{wmIndex(n.Input.Schema())})
		}
		in, m := prune(n.Input, childNeed)
		exprs := make([]expr.Expr, len(kept))
		names := make([]string, len(kept))
		out := make(map[int]int, len(kept)+1)
		for i, c := range kept {
			exprs[i] = expr.Remap(n.Exprs[c], m)
			names[i] = n.Names[c]
			out[c] = i
		}
		p := newProject(in, exprs, names)
		if p.eventTime >= 0 {
			out[len(n.Exprs)] = len(kept)
		}
		return p, out
	case *Aggregate:
		need := []int{}
		for _, k := range n.Keys {
			need = union(need, expr.Columns(k))
		}
		for _, c := range n.Aggs {
			if c.Arg != nil {
				need = union(need, expr.Columns(c.Arg))
			}
		}
		if n.TimeCol >= 0 {
			need = union(need, []int{n.TimeCol, n.WMCol})
			need = union(need, lateRowColumns(n.Late, n.Input))
		}
		in, m := prune(n.Input, need)
		a := *n
		a.Input = in
		a.Keys = make([]expr.Expr, len(n.Keys))
		for i, k := range n.Keys {
			a.Keys[i] = expr.Remap(k, m)
		}
		a.Aggs = make([]AggCall, len(n.Aggs))
		for i, c := range n.Aggs {
			a.Aggs[i] = c
			if c.Arg != nil {
				a.Aggs[i].Arg = expr.Remap(c.Arg, m)
			}
		}
		if n.TimeCol >= 0 {
			a.TimeCol, a.WMCol = m[n.TimeCol], m[n.WMCol]
		}
		identity := map[int]int{}
		for i := range n.schema.Fields() {
			identity[i] = i
		}
		return &a, identity
	case *Limit:
		in, m := prune(n.Input, needed)
		return &Limit{Input: in, N: n.N}, m
	case *Join:
		return n.prune(needed)
	case *SubqueryJoin:
		return n.prune(needed)
	case *Over:
		return n.prune(needed)
	}
	identity := map[int]int{}
	for _, c := range needed {
		identity[c] = c
	}
	return n, identity
}

// lateRowColumns are the input columns an event-time operator keeps for
// its late rows beyond those it reads, so that their dead-letter records
// hold the whole record and can be replayed: when late rows may be
// dead-lettered (late_data dead_letter, or update_previous past
// allowed_lateness), the source's original records
// (arrowexec.RawRecordColumn) if it keeps them, else every column of
// input; none otherwise. Other streams keep their projection pushdown.
func lateRowColumns(late arrowexec.LateDataSpec, input Node) []int {
	if late.Strategy != "dead_letter" && late.Strategy != "update_previous" {
		return nil
	}
	if idx := input.Schema().FieldIndices(arrowexec.RawRecordColumn); len(idx) > 0 {
		return idx
	}
	all := make([]int, input.Schema().NumFields())
	for i := range all {
		all[i] = i
	}
	return all
}

func union(a, b []int) []int {
	out := append(append([]int(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
