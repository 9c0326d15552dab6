package plan

import "github.com/ferrisstreams/ferris/arrowexec/expr"

// sinkKey names the output columns that identify a row's entity, for sinks
// with keyed messages: the GROUP BY columns of an aggregate that the query
// outputs unchanged (through HAVING filters and plain column projections),
// in GROUP BY order. Windowed results use the same key for every window, so
// a group's windows land in one partition. It is nil when the query is not
// an aggregate or does not output every GROUP BY column.
func sinkKey(n Node) []string {
	// cols maps output columns of n to column indices of the node below.
	var names []string
	var index []int // per output column of the current node: column of the node below
	for {
		switch t := n.(type) {
		case *Project:
			next := make([]int, len(t.Exprs))
			for i, e := range t.Exprs {
				next[i] = -1
				if c, ok := expr.ColumnIndex(e); ok {
					next[i] = c
				}
			}
			if names == nil {
				names = t.Names
				index = next
			} else {
				for i, c := range index {
					if c >= 0 {
						index[i] = next[c]
					}
				}
			}
			n = t.Input
		case *Filter:
			n = t.Input
		case *Aggregate:
			if names == nil {
				return append([]string(nil), t.KeyNames...)
			}
			key := make([]string, len(t.Keys))
			for k := range t.Keys {
				for i, c := range index {
					if c == k && key[k] == "" {
						key[k] = names[i]
					}
				}
				if key[k] == "" {
					return nil
				}
			}
			return key
		default:
			return nil
		}
	}
}
