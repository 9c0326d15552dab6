package plan

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan/ast"
)

// DeclareColumns fills in the columns of every source statement declaring
// none from its connector's columns factory
// (arrowexec.Connectors.RegisterColumns), so that CompileStatements sees
// them declared; it may do I/O (the Kafka source asks the schema
// registry). Statements whose connector gives no columns are left as they
// are, and CompileStatements reports them. Relative paths in options
// resolve against baseDir (as BuildEnv.BaseDir). conns may be nil.
func DeclareColumns(ctx context.Context, stmts []ast.Statement, conns *arrowexec.Connectors, baseDir string) error {
	if conns == nil {
		return nil
	}
	var errs []error
	for _, st := range stmts {
		s, ok := st.(*ast.CreateSource)
		if !ok || len(s.Columns) > 0 {
			continue
		}
		opts, err := optionMap(s.With)
		if err != nil {
			continue // reported by CompileStatements
		}
		f := conns.Columns(opts["connector"])
		if f == nil {
			continue
		}
		fields, err := f(ctx, opts, baseDir)
		if err != nil {
			errs = append(errs, &Error{Pos: s.Name.At, Msg: fmt.Sprintf("columns of %q: %v", s.Name.Name, err), Err: err})
			continue
		}
		for _, fl := range fields {
			s.Columns = append(s.Columns, ast.ColumnDef{
				Name: ast.Ident{At: s.Name.At, Name: fl.Name}, Type: typeName(fl.Type, s.Name.At), NotNull: !fl.Nullable,
			})
		}
	}
	return errors.Join(errs...)
}

// typeName is the SQL type name of t as the parser gives it, e.g. DECIMAL
// with parameters 18 and 4.
func typeName(t arrow.DataType, at ast.Pos) ast.TypeName {
	name := sqltypes.Name(t)
	tn := ast.TypeName{At: at, Name: name}
	if i := strings.IndexByte(name, '('); i > 0 {
		tn.Name = name[:i]
		for _, p := range strings.Split(strings.TrimSuffix(name[i+1:], ")"), ",") {
			n, _ := strconv.Atoi(strings.TrimSpace(p))
			tn.Params = append(tn.Params, n)
		}
	}
	return tn
}
