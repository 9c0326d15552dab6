// Command ferris is the FerrisStreams binary: it runs, explains and validates
// streaming SQL pipelines.
//
//	ferris run FILE.sql        run a pipeline to the end of its bounded inputs
//	ferris explain FILE.sql    print the logical and physical plans
//	ferris validate FILE.sql   check a pipeline; exit 1 with its errors
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	kafkasink "github.com/ferrisstreams/ferris/sinks/kafka"
	"github.com/ferrisstreams/ferris/sources"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
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
  ferris validate [flags] FILE.sql   check a pipeline; exit 1 listing every error with line and column

flags:
  --set name=value   override an engine setting (repeatable); see 'ferris settings'
  --config FILE      read settings from FILE (lines of name = value)
  --http-addr, --metrics-addr, --flight-addr ADDR, --token T, --data-dir DIR   for ferris server and dev
  --kafka-addr ADDR  for ferris dev (default 127.0.0.1:9092)

  ferris settings    list the engine settings and their current values
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := flag.NewFlagSet("ferris "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sets := setFlags{}
	fs.Var(sets, "set", "override an engine setting: name=value (repeatable)")
	configFile := fs.String("config", "", "settings file (name = value lines)")
	var svc serviceFlags
	fs.StringVar(&svc.httpAddr, "http-addr", "127.0.0.1:8080", "server: HTTP API address (port 0: any free port)")
	fs.StringVar(&svc.metricsAddr, "metrics-addr", "127.0.0.1:9091", "server: /metrics and /debug/pprof address; - disables")
	fs.StringVar(&svc.flightAddr, "flight-addr", "127.0.0.1:8815", "server: Arrow Flight (gRPC) export of streams; - disables")
	fs.StringVar(&svc.token, "token", "", "server: bearer token the API and metrics require (default $FERRIS_TOKEN; empty: none)")
	fs.StringVar(&svc.kafkaAddr, "kafka-addr", "127.0.0.1:9092", "dev: address of the in-process Kafka-compatible broker")
	fs.StringVar(&svc.dataDir, "data-dir", ".", "server: folder relative paths of pipelines resolve against")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	settings := arrowexec.DefaultSettings()
	if *configFile != "" {
		if err := loadConfig(&settings, *configFile); err != nil {
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
		fmt.Fprint(stdout, settings.String())
		return 0
	}
	switch cmd {
	case "run", "explain", "validate":
	case "server", "dev":
		for k, v := range sets {
			if err := settings.Set(k, v); err != nil {
				fmt.Fprintf(stderr, "ferris: --set %s: %v\n", k, err)
				return 2
			}
		}
		return serve(ctx, cmd, svc, settings, fs.Args(), stdout, stderr)
	case "bench":
		fmt.Fprintf(stderr, "ferris %s: not implemented yet in this build\n", cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "ferris: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "ferris %s: want exactly one FILE.sql\n", cmd)
		return 2
	}
	path := fs.Arg(0)
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "ferris: %v\n", err)
		return 1
	}
	p, err := plan.Compile(string(src), settings, sets)
	if err != nil {
		printErrors(stderr, path, err)
		return 1
	}
	switch cmd {
	case "explain":
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
	return runPipeline(ctx, p, path, stdout, stderr)
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

// connectorsFor registers every connector of the binary: Kafka clients
// default to kafka's brokers (then $KAFKA_BROKERS), and the stdout sink
// writes to stdout.
func connectorsFor(kafka kafkasrc.Config) func(stdout io.Writer) *arrowexec.Connectors {
	return func(stdout io.Writer) *arrowexec.Connectors {
		conns := &arrowexec.Connectors{}
		sources.Register(conns)
		sinks.Register(conns)
		kafkasrc.Register(conns, kafka)
		kafkasink.Register(conns, kafka)
		conns.RegisterSink("stdout", sinks.StdoutFactory(stdout))
		return conns
	}
}

func runPipeline(ctx context.Context, p *plan.Pipeline, path string, stdout, stderr io.Writer) int {
	env, dl := newBuildEnv(p, path, stdout)
	topo, err := p.Build(env)
	if err != nil {
		printErrors(stderr, path, err)
		return 1
	}
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
		fmt.Fprintln(stderr, "ferris: interrupted, draining (press Ctrl-C again to stop at once)")
		topo.Stop()
		if _, ok := <-sig; ok {
			cancel()
		}
	}()
	start := time.Now()
	runErr := topo.Run(ctx)
	elapsed := time.Since(start)
	dead := dl.Close()

	var in int64
	for _, s := range topo.Sources {
		if st := topo.SourceStats(s.Stream); st != nil {
			in += st.RowsIn.Load()
		}
	}
	fmt.Fprintf(stderr, "ferris: %d rows read from %d sources in %s", in, len(topo.Sources), elapsed.Round(time.Millisecond))
	if secs := elapsed.Seconds(); secs > 0 && in > 0 {
		fmt.Fprintf(stderr, " (%.0f rows/s)", float64(in)/secs)
	}
	fmt.Fprintln(stderr)
	for _, q := range topo.Queries {
		fmt.Fprintf(stderr, "ferris: query %s: %d rows out, %s\n", q.Name, q.Stats.RowsOut.Load(), arrowexec.QueryState(q.Stats.State.Load()))
	}
	for p, n := range dead {
		fmt.Fprintf(stderr, "ferris: %d bad records written to dead-letter file %s\n", n, p)
	}
	if runErr != nil && !(interrupted.Load() && errors.Is(runErr, context.Canceled)) {
		printErrors(stderr, path, runErr)
		return 1
	}
	return 0
}
