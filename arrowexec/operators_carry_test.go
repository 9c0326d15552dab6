package arrowexec

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestFilterCarrying: a filter computing CAST(v AS VARCHAR) in its
// predicate hands the value to the projection above it as a column,
// computed once per batch, at batch sizes 1, 3 and 100.
func TestFilterCarrying(t *testing.T) {
	for _, size := range []int{1, 3, 100} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		v := expr.Col(0, "v", arrow.PrimitiveTypes.Int64)
		text := func() expr.Expr {
			e, err := expr.Cast(v, sqltypes.Varchar)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		ne, err := expr.Binary("<>", text(), expr.Lit("5", sqltypes.Varchar))
		if err != nil {
			t.Fatal(err)
		}
		pred, err := expr.Binary("AND", ne, greaterThan(t, 2))
		if err != nil {
			t.Fatal(err)
		}
		f, err := NewFilterCarrying(mem, &countSource{alloc: mem, n: 20, size: size}, pred, []int{0}, []expr.Expr{text()}, []string{"t"})
		if err != nil {
			t.Fatal(err)
		}
		if sh := f.Program().Shared(); len(sh) != 1 || sh[0].String() != "CAST(v AS VARCHAR)" {
			t.Fatalf("shared %v", sh)
		}
		if f.Schema().NumFields() != 2 || f.Schema().Field(1).Name != "t" {
			t.Fatalf("schema %v", f.Schema())
		}
		ctx := context.Background()
		var got []string
		for {
			msg, err := f.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg.Batch != nil {
				vs, ts := msg.Batch.Column(0).(*array.Int64), msg.Batch.Column(1).(*array.String)
				for i := 0; i < vs.Len(); i++ {
					if strconv.FormatInt(vs.Value(i), 10) != ts.Value(i) {
						t.Errorf("row %d: %d carried as %q", i, vs.Value(i), ts.Value(i))
					}
					got = append(got, ts.Value(i))
				}
			}
			msg.Release()
		}
		if len(got) != 16 || got[0] != "3" || got[1] != "4" || got[2] != "6" {
			t.Errorf("size %d: rows %v", size, got)
		}
		mem.AssertSize(t, 0)
	}
}
