package ast

// Inspect walks the expression tree rooted at e in depth-first order,
// calling f for each expression; when f returns false the children of that
// node are skipped. Subqueries are not entered.
func Inspect(e Expr, f func(Expr) bool) {
	if e == nil || !f(e) {
		return
	}
	var kids []Expr
	switch e := e.(type) {
	case *Binary:
		kids = []Expr{e.L, e.R}
	case *Unary:
		kids = []Expr{e.X}
	case *FuncCall:
		kids = e.Args
	case *Case:
		kids = append(kids, e.Operand, e.Else)
		for _, w := range e.Whens {
			kids = append(kids, w.Cond, w.Result)
		}
	case *Cast:
		kids = []Expr{e.X}
	case *IsNull:
		kids = []Expr{e.X}
	case *IsBool:
		kids = []Expr{e.X}
	case *InList:
		kids = append([]Expr{e.X}, e.List...)
	case *InSubquery:
		kids = []Expr{e.X}
	case *Between:
		kids = []Expr{e.X, e.Lo, e.Hi}
	case *Like:
		kids = []Expr{e.X, e.Pattern}
	}
	for _, k := range kids {
		Inspect(k, f)
	}
}
