package ferris_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

// Fault-tolerance tests through plan.Compile, Build and Topology.Run with
// real connectors: failure strategies over a file with malformed records,
// a sink that fails then recovers, and a query exceeding its memory limit
// while another completes.

// badInput writes n JSON lines, every 10th malformed (alternately a wrong
// type in volume and not JSON at all), and returns the good ids.
func badInput(t *testing.T, dir string, n int) (good []int64) {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= n; i++ {
		switch {
		case i%20 == 10:
			fmt.Fprintf(&b, "{\"id\":%d,\"volume\":\"many\"}\n", i)
		case i%20 == 0:
			fmt.Fprintf(&b, "not json %d\n", i)
		default:
			fmt.Fprintf(&b, "{\"id\":%d,\"volume\":%d}\n", i, i*10)
			good = append(good, int64(i))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "trades.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return good
}

// outputIDs reads the id of every line of a JSON-lines file.
func outputIDs(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var ids []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct{ ID int64 }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		ids = append(ids, row.ID)
	}
	return ids
}

// deadLetters reads a dead-letter file.
func deadLetters(t *testing.T, path string) []arrowexec.DeadLetterRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []arrowexec.DeadLetterRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r arrowexec.DeadLetterRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// flakyDeadLetter fails its first n records transiently.
type flakyDeadLetter struct {
	next arrowexec.DeadLetter
	n    atomic.Int64
}

func (d *flakyDeadLetter) DeadLetter(ctx context.Context, r arrowexec.DeadLetterRecord) error {
	if d.n.Add(-1) >= 0 {
		return arrowexec.Transient(errors.New("dead-letter sink unavailable"))
	}
	return d.next.DeadLetter(ctx, r)
}

// faultRun compiles and runs src in dir with the file dead-letter sink
// dlq (wrapped by wrapDL when set) and the extra connectors.
func faultRun(t *testing.T, dir, src string, wrapDL func(arrowexec.DeadLetter) arrowexec.DeadLetter,
	extra func(*arrowexec.Connectors)) (*arrowexec.Topology, error) {
	t.Helper()
	var logs bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	p, err := plan.Compile(src, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	if extra != nil {
		extra(conns)
	}
	file := sinks.NewDeadLetterFile(filepath.Join(dir, "dlq.jsonl"))
	var dl arrowexec.DeadLetter = file
	if wrapDL != nil {
		dl = wrapDL(file)
	}
	topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, p.Settings.MemoryLimitBytes()),
		BaseDir: dir, DeadLetter: func(string) arrowexec.DeadLetter { return dl },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = topo.Run(ctx)
	if cerr := file.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	return topo, err
}

const tradesDDL = `CREATE STREAM trades (id BIGINT, volume BIGINT) WITH (connector = 'file', path = 'trades.jsonl', batch_size = '16'%s);
`

func TestFailureStrategies(t *testing.T) {
	cases := []struct {
		name       string
		set        string // SET statements
		sourceOpt  string // extra source options
		queryOpt   string // extra query options
		flakyDL    int64  // dead-letter failures before it works
		wantErr    bool
		wantDead   int
		wantSkip   int64
		wantRetry  int64
		wantStrict string
	}{
		{name: "default is dead_letter", wantDead: 20},
		{name: "dead_letter", queryOpt: ", failure_strategy = 'dead_letter'", wantDead: 20},
		{name: "log_and_continue", queryOpt: ", failure_strategy = 'log_and_continue'", wantSkip: 20},
		{name: "fail", queryOpt: ", failure_strategy = 'fail'", wantErr: true},
		{name: "retry_with_backoff", queryOpt: ", failure_strategy = 'retry_with_backoff', initial_delay = '1ms'",
			sourceOpt: ", initial_delay = '1ms'", flakyDL: 2, wantDead: 20, wantRetry: 2},
		{name: "setting", set: "SET failure_strategy = 'log_and_continue';\n", wantSkip: 20},
		{name: "source option wins", sourceOpt: ", failure_strategy = 'log_and_continue'", queryOpt: ", failure_strategy = 'fail'", wantSkip: 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			good := badInput(t, dir, 200)
			src := c.set + fmt.Sprintf(tradesDDL, c.sourceOpt) +
				"CREATE STREAM big AS SELECT id, volume FROM trades WITH (connector = 'file', path = 'out.jsonl'" + c.queryOpt + ");"
			var wrap func(arrowexec.DeadLetter) arrowexec.DeadLetter
			if c.flakyDL > 0 {
				wrap = func(dl arrowexec.DeadLetter) arrowexec.DeadLetter {
					f := &flakyDeadLetter{next: dl}
					f.n.Store(c.flakyDL)
					return f
				}
			}
			topo, err := faultRun(t, dir, src, wrap, nil)
			st := topo.SourceStats("trades")
			if c.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				msg := err.Error()
				if !errors.Is(err, arrowexec.ErrData) || !strings.Contains(msg, `source "trades" (correlation id `) ||
					!strings.Contains(msg, `bad record from trades (trades.jsonl) at line 10: field volume: expected BIGINT, found "many" (failure_strategy = fail)`) {
					t.Fatalf("error %v", err)
				}
				if ids := outputIDs(t, filepath.Join(dir, "out.jsonl")); len(ids) > 9 {
					t.Fatalf("%d rows written past the first bad record", len(ids))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids := outputIDs(t, filepath.Join(dir, "out.jsonl"))
			slices.Sort(ids)
			if !slices.Equal(ids, good) {
				t.Fatalf("output has %d rows, want the %d good ones", len(ids), len(good))
			}
			dead := deadLetters(t, filepath.Join(dir, "dlq.jsonl"))
			if len(dead) != c.wantDead || st.DeadLettered.Load() != int64(c.wantDead) {
				t.Fatalf("%d dead letters (%d counted), want %d", len(dead), st.DeadLettered.Load(), c.wantDead)
			}
			if st.Skipped.Load() != c.wantSkip || st.RetriesTotal.Load() != c.wantRetry {
				t.Fatalf("skipped %d, retries %d; want %d, %d", st.Skipped.Load(), st.RetriesTotal.Load(), c.wantSkip, c.wantRetry)
			}
			if len(dead) > 0 {
				r := dead[0]
				if r.Query != "big" || r.Source != "trades (trades.jsonl)" || r.Position != "line 10" || r.Field != "volume" ||
					r.Reason != `expected BIGINT, found "many"` || r.Raw != `{"id":10,"volume":"many"}` || r.Time.IsZero() {
					t.Fatalf("first dead letter %+v", r)
				}
			}
		})
	}
}

// flakyFileSink is the file sink failing its first writes transiently.
type flakyFileSink struct {
	arrowexec.Sink
	failures *atomic.Int64
}

func (s *flakyFileSink) Write(ctx context.Context, m arrowexec.Message) error {
	if s.failures.Add(-1) >= 0 {
		return arrowexec.Transient(errors.New("disk briefly unavailable"))
	}
	return s.Sink.Write(ctx, m)
}

// TestFlakySinkRetried: a sink failing its first writes transiently gets
// every row once; the retries are counted on the query.
func TestFlakySinkRetried(t *testing.T) {
	dir := t.TempDir()
	good := badInput(t, dir, 400)
	var failures atomic.Int64
	failures.Store(3)
	flaky := func(c *arrowexec.Connectors) {
		c.RegisterSink("flaky", func(spec arrowexec.SinkSpec) (arrowexec.Sink, error) {
			s, err := sinks.NewFile(spec)
			return &flakyFileSink{Sink: s, failures: &failures}, err
		})
	}
	src := fmt.Sprintf(tradesDDL, "") + `CREATE STREAM big AS SELECT id, volume FROM trades
WITH (connector = 'flaky', path = 'out.jsonl', max_retries = '5', initial_delay = '1ms', max_delay = '4ms', failure_threshold = '10');`
	topo, err := faultRun(t, dir, src, nil, flaky)
	if err != nil {
		t.Fatal(err)
	}
	ids := outputIDs(t, filepath.Join(dir, "out.jsonl"))
	slices.Sort(ids)
	if !slices.Equal(ids, good) {
		t.Fatalf("output has %d rows, want %d", len(ids), len(good))
	}
	q := topo.Queries[0]
	if q.Stats.RetriesTotal.Load() != 3 || q.Stats.Breaker() != arrowexec.BreakerClosed {
		t.Fatalf("retries %d, breaker %s", q.Stats.RetriesTotal.Load(), q.Stats.Breaker())
	}
	if b, ok := q.Sinks[0].(arrowexec.BreakerReporter); !ok || b.Retries() != 3 {
		t.Fatal("the sink does not report its retries")
	}
}

// TestMemoryLimitFailsOnlyThatQuery: with max_query_memory_mb, a query
// whose state outgrows it fails with ErrMemoryLimit (after waiting
// memory_wait_ms for memory to be released), naming itself; another query
// of the same pipeline reading the same source completes with exact
// results, and every byte is returned.
func TestMemoryLimitFailsOnlyThatQuery(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	const n = 100000
	for i := range n {
		fmt.Fprintf(&b, "{\"id\":%d,\"volume\":%d}\n", i, i%7)
	}
	if err := os.WriteFile(filepath.Join(dir, "trades.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `SET max_query_memory_mb = 1;
SET memory_wait_ms = 20;
SET batch_size = 1024;
CREATE STREAM trades (id BIGINT, volume BIGINT) WITH (connector = 'file', path = 'trades.jsonl');
CREATE STREAM per_id AS SELECT id, COUNT(*) AS n FROM trades GROUP BY id EMIT FINAL
WITH (connector = 'file', path = 'per_id.jsonl');
CREATE STREAM sevens AS SELECT id, volume FROM trades WHERE id % 1000 = 7
WITH (connector = 'file', path = 'sevens.jsonl');`
	topo, err := faultRun(t, dir, src, nil, nil)
	if err == nil || !errors.Is(err, resource.ErrMemoryLimit) {
		t.Fatalf("got %v, want the memory limit", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, `query "per_id" (operator `) || !strings.Contains(msg, "(max_query_memory_mb)") || strings.Contains(msg, "sevens") {
		t.Fatalf("error %q", msg)
	}
	states := map[string]arrowexec.QueryState{}
	for _, q := range topo.Queries {
		states[q.Name] = arrowexec.QueryState(q.Stats.State.Load())
	}
	if states["per_id"] != arrowexec.QueryFailed || states["sevens"] != arrowexec.QueryFinished {
		t.Fatalf("states %v", states)
	}
	ids := outputIDs(t, filepath.Join(dir, "sevens.jsonl"))
	if len(ids) != n/1000 {
		t.Fatalf("sevens has %d rows, want %d", len(ids), n/1000)
	}
	for i, id := range ids {
		if id != int64(i*1000+7) {
			t.Fatalf("row %d: id %d", i, id)
		}
	}
}
