package ferris_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers gives each top-level package its rank; a package may import only
// packages of a strictly lower rank, or its own tree. kernels ← arrowexec ←
// plan, sources ← sinks ← server ← cmd (docs/design.md, "Layers and
// packages"; sinks may use sources, e.g. the Kafka sink shares the Kafka
// source's client options).
var layers = map[string]int{
	"kernels":        0,
	"schemaregistry": 0,
	"arrowexec":      1,
	"plan":           2,
	"sources":        2,
	"sinks":          3,
	"server":         4,
	"bench":          5,
	"cmd":            5,
}

const module = "github.com/ferrisstreams/ferris/"

func TestImportsPointOneWay(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		top := strings.Split(filepath.ToSlash(path), "/")[0]
		rank, ok := layers[top]
		if !ok {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module) {
				if rank <= 1 && (strings.Contains(p, "prometheus") || strings.Contains(p, "opentelemetry")) {
					t.Errorf("%s imports %s: kernels and arrowexec report through hooks, not metrics libraries", path, p)
				}
				continue
			}
			dep := strings.Split(strings.TrimPrefix(p, module), "/")[0]
			if dep == top {
				continue
			}
			depRank, known := layers[dep]
			// Tests may also use siblings of their layer (a sink test reads
			// back through a source), never a higher layer.
			isTest := strings.HasSuffix(path, "_test.go")
			if !known || depRank > rank || (depRank == rank && !isTest) {
				t.Errorf("%s imports %s: %s (layer %d) may not depend on %s", path, p, top, rank, dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
