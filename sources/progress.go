package sources

import "github.com/ferrisstreams/ferris/arrowexec"

var _ arrowexec.RowTotaler = (*generator)(nil)

// TotalRows implements arrowexec.RowTotaler: the rows option of a bounded
// generator, -1 for an unbounded one. rows never changes after
// construction, so it is safe for concurrent use.
func (g *generator) TotalRows() int64 {
	if g.rows > 0 {
		return g.rows
	}
	return -1
}
