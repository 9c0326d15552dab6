// Command ferris is the FerrisStreams binary: it runs, explains and validates
// streaming SQL pipelines.
//
//	ferris run FILE.sql        run a pipeline to the end of its bounded inputs
//	ferris explain FILE.sql    print the logical and physical plans
//	ferris explain --analyze FILE.sql  run it and print where time and memory went
//	ferris validate FILE.sql   check a pipeline; exit 1 with its errors
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/plan/sql"
	"github.com/ferrisstreams/ferris/server"
	"github.com/ferrisstreams/ferris/sinks"
	kafkasink "github.com/ferrisstreams/ferris/sinks/kafka"
	"github.com/ferrisstreams/ferris/sources"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/ferrisstreams/ferris/sources/nexmark"
)

const usage = `ferris — streaming SQL on Apache Arrow

usage:
  ferris run      [flags] FILE.sql   run a pipeline until its bounded inputs end (Ctrl-C drains and stops)
  ferris server   [flags] [FILE.sql ...]  serve the HTTP API (127.0.0.1:8080), metrics (127.0.0.1:9091)
                                     and Arrow Flight (127.0.0.1:8815),
                                     running the given pipelines and those POSTed to /queries
  ferris dev      [flags] [FILE.sql ...]  ferris server plus an in-process Kafka-compatible broker
                                     on 127.0.0.1:9092 that kafka streams use unless they name brokers
  ferris explain  [flags] FILE.sql   print each query's logical, optimised and physical plan
  ferris explain --analyze [--duration D] FILE.sql
                                     run the pipeline (stdout output discarded; to the end of bounded
                                     inputs, for D, or until Ctrl-C) and print per-operator rows,
                                     batches, time share, memory and the bottleneck
  ferris validate [flags] FILE.sql   check a pipeline; exit 1 listing every error with line and column
  ferris bench nexmark|workloads [flags] run the Nexmark queries or the reference workloads and print
                                     events/s, events per CPU-second, peak RSS and latency
                                     ('ferris bench' lists its flags)

flags ('ferris COMMAND --help' lists a command's own; they may also follow FILE.sql):
  --set name=value   override an engine setting (repeatable); see 'ferris settings'
  --config FILE      read settings from FILE (lines of name = value)
  FERRIS_TOKEN=T     ferris server and dev: the bearer token the API, metrics and Flight require
                     (the environment, not --token T: a flag shows in ps)
  --http-addr, --metrics-addr, --flight-addr ADDR, --data-dir DIR   for ferris server and dev
  --allow-path DIR   server, dev: another folder SQL may name paths under (repeatable)
  --allow-brokers H:P,...  server, dev: the only Kafka brokers SQL may name
  --kafka-addr ADDR  for ferris dev (default 127.0.0.1:9092)
  --registry-addr ADDR  for ferris dev: schema registry (default 127.0.0.1:8081; - disables)
  --metrics-addr ADDR  ferris run: serve /metrics and /debug/pprof while it runs (default: none)
  --progress auto|always|never  ferris run: the progress line on stderr (auto: when it is a terminal)
  --duration D       ferris run and explain --analyze: stop (draining) after D, e.g. 30s

Tracing (OpenTelemetry) is off unless OTEL_TRACES_EXPORTER=otlp (endpoint and protocol from the
standard OTEL_EXPORTER_OTLP_* variables) or console; OTEL_TRACES_SAMPLER[_ARG] pick the sampler.

  ferris settings    list the engine settings, their current values and what each does
  ferris version     print the module version, VCS revision and Go version
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// setFlags collects repeated --set name=value flags.
type setFlags map[string]string

func (s setFlags) String() string { return fmt.Sprint(map[string]string(s)) }
func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want name=value, got %q", v)
	}
	s[strings.TrimSpace(k)] = strings.TrimSpace(val)
	return nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	switch cmd {
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprint(stdout, versionText(debug.ReadBuildInfo()))
		return 0
	}
	fs, f := commandFlags(cmd, stderr)
	if fs == nil {
		fmt.Fprintf(stderr, "ferris: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	files, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		printCommandUsage(stdout, fs)
		return 0
	}
	if err != nil { // the flag package printed the error
		printCommandUsage(stderr, fs)
		return 2
	}
	sets, svc, ro := f.sets, f.svc, f.ro
	switch ro.progress {
	case "auto", "always", "never":
	default:
		fmt.Fprintf(stderr, "ferris: --progress %q: want auto, always or never\n", ro.progress)
		return 2
	}
	settings := arrowexec.DefaultSettings()
	if cmd == "server" || cmd == "dev" {
		// Pipelines posted by clients are bounded by default.
		settings.MaxMemoryMB = server.DefaultMemoryLimitMB()
	}
	if f.configFile != "" {
		if err := loadConfig(&settings, f.configFile); err != nil {
			fmt.Fprintf(stderr, "ferris: %v\n", err)
			return 2
		}
	}
	if err := settings.ApplyEnv(os.Environ()); err != nil {
		fmt.Fprintf(stderr, "ferris: %v\n", err)
		return 2
	}
	if cmd == "settings" {
		for k, v := range sets {
			if err := settings.Set(k, v); err != nil {
				fmt.Fprintf(stderr, "ferris: %v\n", err)
				return 2
			}
		}
		printSettings(stdout, &settings)
		fmt.Fprintf(stdout, "# ferris server and dev: max_memory_mb defaults to %.0f%% of memory (%d here); a pipeline's SET max_memory_mb bounds it within that\n",
			server.DefaultMemoryShare*100, server.DefaultMemoryLimitMB())
		return 0
	}
	if cmd == "server" || cmd == "dev" {
		for k, v := range sets {
			if err := settings.Set(k, v); err != nil {
				fmt.Fprintf(stderr, "ferris: --set %s: %v\n", k, err)
				return 2
			}
		}
		return serve(ctx, cmd, svc, settings, files, stdout, stderr)
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "ferris %s: want exactly one FILE.sql\n", cmd)
		return 2
	}
	path := files[0]
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "ferris: %v\n", err)
		return 1
	}
	executes := cmd == "run" || cmd == "explain" && f.analyze
	var tel *server.Telemetry
	if executes {
		t, stopTelemetry, err := startTelemetry(ctx, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "ferris: %v\n", err)
			return 2
		}
		defer stopTelemetry()
		tel = t
	}
	ro.token = os.Getenv("FERRIS_TOKEN")
	ro.analyze = f.analyze
	ro.correlationID = newRunID()
	_, endPlan := startSpan(ctx, tel, "ferris.plan.compile", []arrowexec.Attr{
		{Key: "ferris.pipeline", Value: pipelineName(path)}, {Key: "ferris.correlation_id", Value: ro.correlationID}})
	p, err := compileDeclaring(ctx, string(src), settings, sets, connectorsFor(kafkasrc.Config{})(io.Discard), filepath.Dir(path))
	endPlan(err)
	if err != nil {
		printErrors(stderr, path, err)
		return 1
	}
	if cmd == "validate" || executes {
		for _, w := range p.Warnings {
			printErrors(stderr, path, w)
		}
	}
	switch cmd {
	case "explain":
		if f.analyze {
			return runPipeline(ctx, p, path, stdout, stderr, ro, tel)
		}
		fmt.Fprint(stdout, p.Explain())
		return 0
	case "validate":
		// Building checks connector names and options without doing I/O.
		env, dl := newBuildEnv(p, path, stdout)
		topo, err := p.Build(env)
		if err != nil {
			printErrors(stderr, path, err)
			return 1
		}
		topo.Discard()
		dl.Close()
		fmt.Fprintf(stdout, "%s: ok (%d relations, %d queries)\n", path, len(p.Relations), len(p.Queries))
		return 0
	}
	return runPipeline(ctx, p, path, stdout, stderr, ro, tel)
}

// printErrors prints one error per line, prefixed by the file name.
func printErrors(w io.Writer, path string, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printErrors(w, path, e)
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}

func loadConfig(s *arrowexec.Settings, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want name = value", path, i+1)
		}
		if err := s.Set(strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"'`)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
	}
	return nil
}

// deadLetters hands out one dead-letter file per path.
type deadLetters struct {
	mu          sync.Mutex
	defaultPath string
	files       map[string]*sinks.DeadLetterFile
}

func (d *deadLetters) get(path string) arrowexec.DeadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	if path == "" {
		path = d.defaultPath
	}
	f, ok := d.files[path]
	if !ok {
		f = sinks.NewDeadLetterFile(path)
		d.files[path] = f
	}
	return f
}

// Close closes every file and reports how many records each received.
func (d *deadLetters) Close() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := map[string]int64{}
	for path, f := range d.files {
		if n := f.Count(); n > 0 {
			counts[path] = n
		}
		_ = f.Close()
	}
	return counts
}

func newBuildEnv(p *plan.Pipeline, path string, stdout io.Writer) (plan.BuildEnv, *deadLetters) {
	base := filepath.Dir(path)
	dlPath := p.Settings.DeadLetterPath
	if dlPath == "" {
		dlPath = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + ".dead_letter.jsonl"
	}
	if !filepath.IsAbs(dlPath) {
		dlPath = filepath.Join(base, dlPath)
	}
	dl := &deadLetters{defaultPath: dlPath, files: map[string]*sinks.DeadLetterFile{}}
	env := plan.BuildEnv{
		Connectors: connectorsFor(kafkasrc.Config{})(stdout),
		Resources:  resource.NewManager(nil, p.Settings.MemoryLimitBytes()),
		BaseDir:    base,
		DeadLetter: func(path string) arrowexec.DeadLetter {
			if path != "" && !filepath.IsAbs(path) {
				path = filepath.Join(base, path)
			}
			return dl.get(path)
		},
	}
	return env, dl
}

// compileDeclaring is plan.Compile, with the columns of streams declaring
// none taken from their connector first (plan.DeclareColumns).
func compileDeclaring(ctx context.Context, src string, settings arrowexec.Settings, sets map[string]string, conns *arrowexec.Connectors, baseDir string) (*plan.Pipeline, error) {
	stmts, err := sql.Parse(src)
	if err != nil {
		return nil, err
	}
	if err := plan.DeclareColumns(ctx, stmts, conns, baseDir); err != nil {
		return nil, err
	}
	return plan.CompileStatements(stmts, settings, sets)
}

// connectorsFor registers every connector of the binary: Kafka clients
// default to kafka's brokers (then $KAFKA_BROKERS), and the stdout sink
// writes to stdout.
func connectorsFor(kafka kafkasrc.Config) func(stdout io.Writer) *arrowexec.Connectors {
	return func(stdout io.Writer) *arrowexec.Connectors {
		conns := &arrowexec.Connectors{}
		sources.Register(conns)
		nexmark.Register(conns)
		sinks.Register(conns)
		kafkasrc.Register(conns, kafka)
		kafkasink.Register(conns, kafka)
		conns.RegisterSink("stdout", sinks.StdoutFactory(stdout))
		return conns
	}
}

func runPipeline(ctx context.Context, p *plan.Pipeline, path string, stdout, stderr io.Writer, ro runOptions, tel *server.Telemetry) int {
	rowsOut := stdout
	if ro.analyze {
		rowsOut = io.Discard // the report goes to stdout, not the rows
	}
	env, dl := newBuildEnv(p, path, rowsOut)
	env.Instrument = true
	env.Tracer = tel.Tracer()
	env.CorrelationID = ro.correlationID
	name := pipelineName(path)
	_, endBuild := startSpan(ctx, tel, "ferris.plan.build", []arrowexec.Attr{
		{Key: "ferris.pipeline", Value: name}, {Key: "ferris.correlation_id", Value: ro.correlationID}})
	topo, err := p.Build(env)
	endBuild(err)
	if err != nil {
		printErrors(stderr, path, err)
		return 1
	}
	topo.TraceAttrs = []arrowexec.Attr{{Key: "ferris.pipeline", Value: name}, {Key: "ferris.correlation_id", Value: ro.correlationID}}
	topo.Checkpoints = p.Settings.Checkpoints(env.BaseDir, name, func(format string, args ...any) {
		fmt.Fprintf(stderr, "ferris: "+format+"\n", args...)
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer func() { signal.Stop(sig); close(sig) }() // ends the watcher goroutine
	var interrupted atomic.Bool
	go func() {
		if _, ok := <-sig; !ok {
			return
		}
		interrupted.Store(true)
		fmt.Fprintln(stderr, "\rferris: interrupted, draining (press Ctrl-C again to stop at once)")
		topo.Stop()
		if _, ok := <-sig; ok {
			cancel()
		}
	}()
	if ro.duration > 0 {
		timer := time.AfterFunc(ro.duration, topo.Stop)
		defer timer.Stop()
	}
	view := &runView{name: name, topo: topo, dl: dl, mgr: env.Resources, started: time.Now()}
	view.state.Store("running")
	if ro.metricsAddr != "" && ro.metricsAddr != "-" {
		stopMetrics, err := serveRunMetrics(ro.metricsAddr, ro.token, view, stderr)
		if err != nil {
			topo.Discard()
			dl.Close()
			fmt.Fprintf(stderr, "ferris: %v\n", err)
			return 1
		}
		defer stopMetrics()
	}
	stopProgress := startProgress(ro.progress, stderr, topo, dl)
	start := time.Now()
	runErr := topo.Run(ctx)
	if runErr == nil && topo.Checkpoints != nil {
		runErr = topo.CheckpointStats.AllFailed()
	}
	elapsed := time.Since(start)
	stopProgress()
	if runErr != nil {
		view.state.Store("failed")
	} else {
		view.state.Store("finished")
	}
	dead := dl.Close()
	fmt.Fprintln(stderr, summary(topo, dl, dead, elapsed, env.Resources))
	if ro.analyze {
		fmt.Fprintf(stdout, "%s: ran for %s\n\n", path, elapsed.Round(time.Millisecond))
		_ = topo.Profile().WriteText(stdout)
	}
	if runErr != nil && !(interrupted.Load() && errors.Is(runErr, context.Canceled)) {
		printErrors(stderr, path, runErr)
		return 1
	}
	return 0
}

// pipelineName is a pipeline file's base name without its extension.
func pipelineName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// startSpan starts a span when tracing is on.
func startSpan(ctx context.Context, tel *server.Telemetry, name string, attrs []arrowexec.Attr) (context.Context, func(error)) {
	if tel == nil {
		return ctx, func(error) {}
	}
	return tel.StartSpan(ctx, name, attrs)
}

// newRunID returns 16 random hex digits: the correlation id of a run.
func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
