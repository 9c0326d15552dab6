package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

// listSQL is a query over a list of n constants: a filter on volume IN
// (...) or, with or set, a projection of the OR of n comparisons (the
// shape a generated query has).
func listSQL(n int, or bool) string {
	var b strings.Builder
	for i := range n {
		switch {
		case or && i > 0:
			b.WriteString(" OR ")
		case i > 0:
			b.WriteString(", ")
		}
		if or {
			b.WriteString("volume = ")
		}
		fmt.Fprintf(&b, "%d", i*7)
	}
	q := fmt.Sprintf("SELECT ticker FROM trades WHERE volume IN (%s);", b.String())
	if or {
		q = fmt.Sprintf("SELECT ticker, %s AS hit FROM trades;", b.String())
	}
	return "CREATE STREAM trades (volume BIGINT, ticker VARCHAR, price DECIMAL(18,4)) WITH (connector = 'generator');\n" + q
}

// BenchmarkCompileInList times compiling and building (not running) a
// query with an IN list (in=n) or an OR chain (or=n) of n constants.
func BenchmarkCompileInList(b *testing.B) {
	for _, or := range []bool{false, true} {
		for _, n := range []int{100, 1000, 10000} {
			name := fmt.Sprintf("in=%d", n)
			if or {
				name = fmt.Sprintf("or=%d", n)
			}
			b.Run(name, func(b *testing.B) {
				src := listSQL(n, or)
				conns := &arrowexec.Connectors{}
				sources.Register(conns)
				sinks.Register(conns)
				b.ReportAllocs()
				for b.Loop() {
					p, err := plan.Compile(src, arrowexec.DefaultSettings(), nil)
					if err != nil {
						b.Fatal(err)
					}
					topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(nil, 0)})
					if err != nil {
						b.Fatal(err)
					}
					topo.Discard()
				}
			})
		}
	}
}
