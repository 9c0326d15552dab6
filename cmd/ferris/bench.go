package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
	"github.com/ferrisstreams/ferris/sources/nexmark"
)

const benchUsage = `usage:
  ferris bench nexmark [flags]   run Nexmark queries over the in-process generator
  ferris bench workloads    [flags]   run the reference workloads (simple SELECT, window
                                 aggregation, join, three-stage pipeline)

flags:
  --query q5|all       query (file QUERY.sql in --queries), or all runnable ones (default all)
  --events N           events to generate (nexmark: of every kind; seed: rows per input) (default 10000000)
  --cores N            GOMAXPROCS for the run (default: all cores)
  --format table|json  a table, or one JSON object per query (default table)
  --queries DIR        folder of the Nexmark query files (default bench/nexmark/queries)
  --event-rate N       nexmark first_event_rate: events per second of event time (default 10000)
  --rate N             events per second of wall time (default 0: as fast as possible)
  --batch-size N       rows per source batch (default: the batch_size setting)
  --set name=value     override an engine setting (repeatable)
  --cpuprofile FILE    write a CPU profile of the runs (go tool pprof FILE)
`

// benchResult is one query's figures; its JSON keys are an interface.
type benchResult struct {
	Query              string  `json:"query"`
	Events             int64   `json:"events"`
	Seconds            float64 `json:"seconds"`
	EventsPerSecond    float64 `json:"events_per_second"`
	EventsPerCPUSecond float64 `json:"events_per_cpu_second"`
	PeakRSSBytes       int64   `json:"peak_rss_bytes"`
	P50LatencyMS       float64 `json:"p50_latency_ms"`
	P99LatencyMS       float64 `json:"p99_latency_ms"`
	// P95 is reported for the reference workloads (their target is a P95).
	P95LatencyMS float64 `json:"p95_latency_ms,omitempty"`
	Cores        int     `json:"cores"`
	// RowsOut counts the rows written to sinks.
	RowsOut int64 `json:"rows_out"`
	// LatencyAt names the query whose output the latency is measured at:
	// the last query with a sink that produced rows (or, when none did, the
	// last query that did).
	LatencyAt string `json:"latency_measured_at,omitempty"`
}

type benchFlags struct {
	query, format, queries string
	events                 int64
	cores                  int
	eventRate, rate        int64
	batchSize              int
	sets                   setFlags
	cpuProfile             string
}

// runBench is `ferris bench SUITE [flags]`; it returns the exit code.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(stdout, benchUsage)
			return 0
		}
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	suite := args[0]
	fs := flag.NewFlagSet("ferris bench "+suite, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f benchFlags
	f.sets = setFlags{}
	fs.StringVar(&f.query, "query", "all", "query to run, or all")
	fs.Int64Var(&f.events, "events", 10_000_000, "events to generate")
	fs.IntVar(&f.cores, "cores", 0, "GOMAXPROCS for the run (0: all cores)")
	fs.StringVar(&f.format, "format", "table", "table or json")
	fs.StringVar(&f.queries, "queries", filepath.Join("bench", "nexmark", "queries"), "folder of the Nexmark query files")
	fs.Int64Var(&f.eventRate, "event-rate", 10_000, "events per second of event time")
	fs.Int64Var(&f.rate, "rate", 0, "events per second of wall time (0: as fast as possible)")
	fs.IntVar(&f.batchSize, "batch-size", 0, "rows per source batch (0: the batch_size setting)")
	fs.Var(f.sets, "set", "override an engine setting: name=value (repeatable)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the runs to this file")
	fs.Usage = func() {}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, benchUsage)
			return 0
		}
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferris bench %s: unexpected arguments %v\n", suite, fs.Args())
		return 2
	}
	if f.format != "table" && f.format != "json" {
		fmt.Fprintf(stderr, "ferris bench: --format must be table or json, got %q\n", f.format)
		return 2
	}
	if f.events <= 0 {
		fmt.Fprintln(stderr, "ferris bench: --events must be positive")
		return 2
	}
	if f.cores > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(f.cores))
	}
	settings := arrowexec.DefaultSettings()
	if err := settings.ApplyEnv(os.Environ()); err != nil {
		fmt.Fprintf(stderr, "ferris: %v\n", err)
		return 2
	}
	var jobs []benchJob
	var err error
	switch suite {
	case "nexmark":
		jobs, err = nexmarkJobs(f, stderr)
	case "workloads":
		jobs, err = workloadJobs(f)
	default:
		fmt.Fprintf(stderr, "ferris bench: unknown suite %q\n\n%s", suite, benchUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferris bench: %v\n", err)
		return 2
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "ferris bench: %v\n", err)
			return 2
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(stderr, "ferris bench: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	var results []benchResult
	code := 0
	for _, j := range jobs {
		res, err := runBenchJob(ctx, j, f, settings)
		if err != nil {
			printErrors(stderr, j.name, err)
			code = 1
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results = append(results, res)
		if f.format == "json" {
			b, _ := json.Marshal(res)
			fmt.Fprintln(stdout, string(b))
		}
	}
	if f.format == "table" && len(results) > 0 {
		printBenchTable(stdout, results, suite == "workloads")
	}
	return code
}

// benchJob is one pipeline to measure.
type benchJob struct {
	name string
	sql  string
	// events is what events/s counts: the generated events (nexmark, of
	// every kind) or input rows (seed).
	events int64
	// prepare adjusts the compiled pipeline's source options.
	prepare func(p *plan.Pipeline)
}

// nexmarkJobs lists the queries to run: --query, or every file q*.sql of
// the folder that compiles (the others are reported and skipped).
func nexmarkJobs(f benchFlags, stderr io.Writer) ([]benchJob, error) {
	var names []string
	if f.query == "all" {
		files, err := filepath.Glob(filepath.Join(f.queries, "q*.sql"))
		if err != nil || len(files) == 0 {
			return nil, fmt.Errorf("no query files q*.sql in %s (run from the repository root, or pass --queries)", f.queries)
		}
		for _, file := range files {
			names = append(names, strings.TrimSuffix(filepath.Base(file), ".sql"))
		}
		sort.Slice(names, func(i, j int) bool { return queryNumber(names[i]) < queryNumber(names[j]) })
	} else {
		names = strings.Split(f.query, ",")
	}
	var jobs []benchJob
	for _, name := range names {
		path := filepath.Join(f.queries, name+".sql")
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if f.query == "all" {
			if _, err := plan.Compile(string(src), arrowexec.DefaultSettings(), f.sets); err != nil {
				fmt.Fprintf(stderr, "ferris bench: skipping %s, it does not compile:\n", name)
				printErrors(stderr, path, err)
				continue
			}
		}
		jobs = append(jobs, benchJob{name: name, sql: string(src), events: f.events, prepare: func(p *plan.Pipeline) {
			for _, r := range p.Relations {
				if r.Options["connector"] != "nexmark" {
					continue
				}
				r.Options["events"] = strconv.FormatInt(f.events, 10)
				r.Options["event_rate"] = strconv.FormatInt(f.eventRate, 10)
				r.Options["rate"] = strconv.FormatInt(f.rate, 10)
				if f.batchSize > 0 {
					r.Options["batch_size"] = strconv.Itoa(f.batchSize)
				}
			}
		}})
	}
	return jobs, nil
}

func queryNumber(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "q"))
	if err != nil {
		return math.MaxInt
	}
	return n
}

// runBenchJob compiles and runs one pipeline to the end of its input,
// measuring wall time, process CPU time, peak RSS and latency.
func runBenchJob(ctx context.Context, j benchJob, f benchFlags, settings arrowexec.Settings) (benchResult, error) {
	p, err := plan.Compile(j.sql, settings, f.sets)
	if err != nil {
		return benchResult{}, err
	}
	if j.prepare != nil {
		j.prepare(p)
	}
	dir, err := os.MkdirTemp("", "ferris-bench-")
	if err != nil {
		return benchResult{}, err
	}
	defer os.RemoveAll(dir)

	lat := newLatencyTracker(p)
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	conns.RegisterSource("nexmark", nexmark.Factory(nexmark.WithEmitHook(lat.emitted)))
	conns.RegisterSource("generator", lat.wrapSource(sources.NewGenerator))
	conns.RegisterSink("stdout", func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return discardSink{}, nil })
	topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(nil, p.Settings.MemoryLimitBytes()), BaseDir: dir})
	if err != nil {
		return benchResult{}, err
	}
	// every query's output is measured, after its sinks wrote it
	for _, q := range topo.Queries {
		q.Sinks = append(q.Sinks, &measuredSink{t: lat, query: q.Name, final: len(q.Sinks) > 0})
	}
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	cpu0 := processCPU()
	start := time.Now()
	err = topo.Run(ctx)
	secs := time.Since(start).Seconds()
	cpu := processCPU() - cpu0
	if err != nil {
		return benchResult{}, err
	}
	res := benchResult{
		Query: j.name, Events: j.events, Seconds: secs,
		EventsPerSecond: float64(j.events) / secs, PeakRSSBytes: peakRSS(),
		Cores: runtime.GOMAXPROCS(0),
	}
	if cpu > 0 {
		res.EventsPerCPUSecond = float64(j.events) / cpu.Seconds()
	}
	res.RowsOut, res.P50LatencyMS, res.P95LatencyMS, res.P99LatencyMS, res.LatencyAt = lat.summary(topo)
	return res, nil
}

func printBenchTable(w io.Writer, rs []benchResult, p95 bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "query\tevents\tseconds\tevents/s\tevents/CPU-s\tpeak RSS MiB\tp50 ms\t"
	if p95 {
		head = "workload\trecords\tseconds\trecords/s\trecords/CPU-s\tpeak RSS MiB\tp50 ms\tp95 ms\t"
	}
	fmt.Fprintln(tw, head+"p99 ms\trows out\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%s\t%s\t%.0f\t%.1f\t", r.Query, r.Events, r.Seconds,
			human(r.EventsPerSecond), human(r.EventsPerCPUSecond), float64(r.PeakRSSBytes)/(1<<20), r.P50LatencyMS)
		if p95 {
			fmt.Fprintf(tw, "%.1f\t", r.P95LatencyMS)
		}
		fmt.Fprintf(tw, "%.1f\t%d\t\n", r.P99LatencyMS, r.RowsOut)
	}
	tw.Flush()
	fmt.Fprintf(w, "cores (GOMAXPROCS): %d; events/CPU-s counts user + system CPU of the whole process;\n", rs[0].Cores)
	fmt.Fprintln(w, "latency: from the source batch's emission to the query's output (per output batch)")
	for _, r := range rs {
		if r.LatencyAt != "" && r.LatencyAt != "select_1" {
			fmt.Fprintf(w, "  %s: latency measured at the output of %s\n", r.Query, r.LatencyAt)
		}
	}
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fK", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// processCPU is the user + system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the kernel's peak RSS of the process (Linux: writing
// 5 to /proc/self/clear_refs), so each query of a --query all run reports
// its own peak; elsewhere the peak is the process's so far.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is the process's peak resident set: VmHWM from /proc/self/status
// (which resetPeakRSS resets), else getrusage's ru_maxrss.
func peakRSS() int64 {
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10 // kilobytes on Linux
}

// ---- latency from emission to result ----

// maxLag is how many batches a source may run ahead of a query reading it
// (channel depths and batches in flight) before the watermark-found cause
// of an output is taken for a held-back watermark.
const maxLag = 16

// emission is one source batch: the largest event time in it and the wall
// time its source returned it.
type emission struct {
	maxTime int64
	at      time.Time
}

// latencyTracker measures, for every batch a query outputs, the wall time
// since the source batch that caused it was emitted.
//
// The cause is found by the output's watermark: for a stream with event
// time and out-of-orderness d, the first batch whose largest event time
// reaches watermark + d is the batch that moved the watermark there (for a
// stateless query, the batch its rows came from; for a window, the batch
// that closed it); with several streams, the latest of their causes. An
// operator that holds the watermark back (a join by its time bound or TTL,
// OVER ... ORDER BY by its waiting rows) makes that batch too old; when it
// is more than maxLag batches behind the newest or the watermark is below
// the first batch's (no batch moved it there), or the output has no
// event-time watermark (processing time, end of input), the cause is the
// newest batch emitted, which is exact when the pipeline keeps up (a paced
// --rate run) and otherwise leaves out the time the newest input waited.
// Safe for concurrent use.
type latencyTracker struct {
	delay   map[string]int64  // stream -> out-of-orderness (ms), event-time streams only
	timeCol map[string]string // stream -> event-time column

	mu      sync.Mutex
	streams map[string][]emission
	last    time.Time
	queries map[string]*queryLatency
}

// queryLatency is what one query's output measured.
type queryLatency struct {
	final bool      // the query has a sink
	lat   []float64 // ms, one per output batch
	rows  int64
}

func newLatencyTracker(p *plan.Pipeline) *latencyTracker {
	t := &latencyTracker{delay: map[string]int64{}, timeCol: map[string]string{}, streams: map[string][]emission{}, queries: map[string]*queryLatency{}}
	for _, r := range p.Relations {
		if r.Kind != plan.DerivedStream && r.EventTime != "" {
			t.delay[r.Name] = r.Time.DelayMS
			t.timeCol[r.Name] = r.EventTime
		}
	}
	return t
}

func (t *latencyTracker) emitted(e nexmark.Emission) {
	t.record(e.Stream, e.MaxEventTime, e.At)
}

func (t *latencyTracker) record(stream string, maxTime int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	es := t.streams[stream]
	if n := len(es); n > 0 && es[n-1].maxTime > maxTime {
		maxTime = es[n-1].maxTime // keep the list sorted (out-of-order groups)
	}
	t.streams[stream] = append(es, emission{maxTime, at})
	if at.After(t.last) {
		t.last = at
	}
}

// cause returns the emission time of the batch that caused output with
// watermark w. The caller holds t.mu.
func (t *latencyTracker) cause(w arrowexec.Watermark) time.Time {
	if w == arrowexec.NoWatermark || w == arrowexec.FinalWatermark {
		return t.last
	}
	var at time.Time
	found := false
	for s, d := range t.delay {
		es := t.streams[s]
		i := sort.Search(len(es), func(i int) bool { return es[i].maxTime-d >= w })
		if i < len(es) {
			if len(es)-1-i > maxLag || (i == 0 && es[0].maxTime-d > w) {
				return t.last // held back (below every batch's watermark)
			}
			if !found || es[i].at.After(at) {
				at = es[i].at
			}
			found = true
		}
	}
	if !found {
		return t.last
	}
	return at
}

func (t *latencyTracker) observe(query string, final bool, w arrowexec.Watermark, rows int64) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queries[query]
	if q == nil {
		q = &queryLatency{final: final}
		t.queries[query] = q
	}
	q.rows += rows
	if c := t.cause(w); !c.IsZero() {
		q.lat = append(q.lat, float64(now.Sub(c))/float64(time.Millisecond))
	}
}

// summary returns the rows written to sinks and the p50, p95 and p99
// latencies (nearest rank, ms) of the query they are measured at.
func (t *latencyTracker) summary(topo *arrowexec.Topology) (rows int64, p50, p95, p99 float64, at string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var pick, fallback *queryLatency
	for _, qn := range topo.Queries {
		q := t.queries[qn.Name]
		if q == nil {
			continue
		}
		if q.final {
			rows += q.rows
		}
		if len(q.lat) > 0 {
			fallback = q
			if q.final {
				pick, at = q, qn.Name
			}
		}
	}
	if pick == nil {
		if fallback == nil {
			return rows, 0, 0, 0, ""
		}
		pick = fallback
		for name, q := range t.queries {
			if q == fallback {
				at = name
			}
		}
	}
	s := slices.Clone(pick.lat)
	slices.Sort(s)
	q := func(p float64) float64 { return s[min(len(s)-1, max(0, int(math.Ceil(p*float64(len(s))))-1))] }
	return rows, q(0.50), q(0.95), q(0.99), at
}

// wrapSource records the emissions of a source that has no emit hook,
// with the largest value of the stream's event-time column in each batch.
func (t *latencyTracker) wrapSource(f arrowexec.SourceFactory) arrowexec.SourceFactory {
	return func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		op, err := f(spec)
		if err != nil {
			return nil, err
		}
		col := -1
		if _, ok := t.delay[spec.Name]; ok {
			for i, fl := range spec.Schema.Fields() {
				if fl.Type.ID() == arrow.TIMESTAMP && strings.EqualFold(fl.Name, t.timeCol[spec.Name]) {
					col = i
				}
			}
		}
		return &recordedSource{Operator: op, t: t, stream: spec.Name, timeCol: col}, nil
	}
}

// recordedSource records each batch's emission time and largest event
// time (when it has an event-time column).
type recordedSource struct {
	arrowexec.Operator
	t       *latencyTracker
	stream  string
	timeCol int
}

func (s *recordedSource) Next(ctx context.Context) (arrowexec.Message, error) {
	m, err := s.Operator.Next(ctx)
	if err == nil && m.Batch != nil && m.Batch.NumRows() > 0 {
		maxT := int64(math.MinInt64)
		stream := s.stream
		if s.timeCol >= 0 {
			if a, ok := m.Batch.Column(s.timeCol).(*array.Timestamp); ok {
				for i, v := range a.Values() {
					if a.IsValid(i) {
						maxT = max(maxT, int64(v))
					}
				}
			}
		} else {
			stream += "\x00untimed"
		}
		s.t.record(stream, maxT, time.Now())
	}
	return m, err
}

// measuredSink observes each batch a query outputs.
type measuredSink struct {
	t     *latencyTracker
	query string
	final bool
}

var _ arrowexec.Sink = (*measuredSink)(nil)

func (s *measuredSink) Open(context.Context) error { return nil }

func (s *measuredSink) Write(_ context.Context, m arrowexec.Message) error {
	if m.Rows() > 0 {
		s.t.observe(s.query, s.final, m.Watermark, m.Rows())
	}
	return nil
}

func (s *measuredSink) Flush(context.Context) error { return nil }
func (s *measuredSink) Close() error                { return nil }

// discardSink drops what it is given, as Flink's blackhole connector.
type discardSink struct{}

func (discardSink) Open(context.Context) error                     { return nil }
func (discardSink) Write(context.Context, arrowexec.Message) error { return nil }
func (discardSink) Flush(context.Context) error                    { return nil }
func (discardSink) Close() error                                   { return nil }

// workloadJobs lists the reference workloads: bench/workloads/*.sql (or --queries),
// their generator sources set to --events rows each.
func workloadJobs(f benchFlags) ([]benchJob, error) {
	dir := f.queries
	if dir == filepath.Join("bench", "nexmark", "queries") {
		dir = filepath.Join("bench", "workloads")
	}
	order := []string{"simple_select", "window_aggregation", "join", "pipeline"}
	names := order
	if f.query != "all" {
		names = strings.Split(f.query, ",")
	}
	var jobs []benchJob
	for _, name := range names {
		src, err := os.ReadFile(filepath.Join(dir, name+".sql"))
		if err != nil {
			return nil, fmt.Errorf("%w (run from the repository root, or pass --queries)", err)
		}
		p, err := plan.Compile(string(src), arrowexec.DefaultSettings(), f.sets)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		inputs := int64(0)
		for _, r := range p.Relations {
			if r.Kind != plan.DerivedStream {
				inputs++
			}
		}
		jobs = append(jobs, benchJob{name: name, sql: string(src), events: f.events * inputs, prepare: func(p *plan.Pipeline) {
			for _, r := range p.Relations {
				if r.Options["connector"] != "generator" {
					continue
				}
				r.Options["rows"] = strconv.FormatInt(f.events, 10)
				r.Options["rate"] = strconv.FormatInt(f.rate, 10)
				if f.batchSize > 0 {
					r.Options["batch_size"] = strconv.Itoa(f.batchSize)
				}
			}
		}})
	}
	return jobs, nil
}
