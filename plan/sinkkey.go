package plan

import "github.com/ferrisstreams/ferris/arrowexec/expr"

// sinkKey names the output columns that identify a row's entity, for sinks
// with keyed messages: the GROUP BY columns of an aggregate that the query
// outputs unchanged (through HAVING filters and plain column projections),
// in GROUP BY order. Windowed results use the same key for every window, so
// a group's windows land in one partition. It is nil when the query is not
// an aggregate or does not output every GROUP BY column. An updating
// top-N (Over with TopN) is keyed by its PARTITION BY columns and rank.
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
		case *Over:
			if t.TopN == 0 || names == nil {
				return nil
			}
			var cols []int // the key's columns of the Over node
			for _, e := range t.Specs[t.Calls[0].Spec].PartitionBy {
				c, ok := expr.ColumnIndex(e)
				if !ok {
					return nil
				}
				cols = append(cols, c)
			}
			return keyNames(append(cols, t.firstCall()), names, index)
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

// keyNames names the output columns that carry the columns cols of the
// node below the projections (index maps output columns to them), or nil
// when one is not output.
func keyNames(cols []int, names []string, index []int) []string {
	key := make([]string, len(cols))
	for k, col := range cols {
		for i, c := range index {
			if c == col && key[k] == "" {
				key[k] = names[i]
			}
		}
		if key[k] == "" {
			return nil
		}
	}
	return key
}
