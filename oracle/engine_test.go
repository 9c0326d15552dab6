package oracle

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/plan/sql"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

// discardDeadLetter drops dead-letter records: the oracle models which rows
// the engine drops, it does not read why.
type discardDeadLetter struct{}

func (discardDeadLetter) DeadLetter(context.Context, arrowexec.DeadLetterRecord) error { return nil }

// runEngine compiles script (stream declarations and one query printing to
// stdout) in-process with its files in dir and runs it to the end of its
// bounded inputs at the given batch size (0: the default). It returns the
// JSON lines the query printed. Arrow memory is checked: a leak is an error.
func runEngine(dir, script string, batchSize int) ([]string, error) {
	stmts, err := sql.Parse(script)
	if err != nil {
		return nil, err
	}
	overrides := map[string]string{}
	if batchSize > 0 {
		overrides["batch_size"] = strconv.Itoa(batchSize)
	}
	p, err := plan.CompileStatements(stmts, arrowexec.DefaultSettings(), overrides)
	if err != nil {
		return nil, err
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	var out bytes.Buffer
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	conns.RegisterSink("stdout", sinks.StdoutFactory(&out))
	topo, err := p.Build(plan.BuildEnv{
		Connectors: conns,
		Resources:  resource.NewManager(mem, p.Settings.MemoryLimitBytes()),
		BaseDir:    dir,
		DeadLetter: func(string) arrowexec.DeadLetter { return discardDeadLetter{} },
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topo.Run(ctx); err != nil {
		return nil, err
	}
	if n := mem.CurrentAlloc(); n != 0 {
		return nil, &leakError{n}
	}
	var rows []string
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		rows = append(rows, sc.Text())
	}
	return rows, sc.Err()
}

type leakError struct{ n int }

func (e *leakError) Error() string { return strconv.Itoa(e.n) + " bytes of Arrow memory not released" }
