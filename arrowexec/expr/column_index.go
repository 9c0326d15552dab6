package expr

// ColumnIndex reports whether e is a plain column reference, and which
// input column it reads. The planner uses it to push filters through
// projections.
func ColumnIndex(e Expr) (int, bool) {
	c, ok := e.(*colExpr)
	if !ok {
		return 0, false
	}
	return c.index, true
}
