package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/server"
)

// This file holds what ferris run shows while and after it runs: the
// progress line, the closing summary, the optional metrics listener, the
// tracing setup, and the report of ferris explain --analyze.

// startTelemetry sets up tracing from the OTEL_* variables (off unless
// OTEL_TRACES_EXPORTER says otherwise); stop flushes pending spans.
func startTelemetry(ctx context.Context, stderr io.Writer) (tel *server.Telemetry, stop func(), err error) {
	cfg := server.TracingFromEnv(os.Getenv)
	cfg.Writer = stderr
	tel, err = server.NewTelemetry(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return tel, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			fmt.Fprintf(stderr, "ferris: flushing traces: %v\n", err)
		}
	}, nil
}

// Count is the number of records written to every dead-letter file so far.
func (d *deadLetters) Count() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, f := range d.files {
		n += f.Count()
	}
	return n
}

// runView is the one pipeline of ferris run, as the metrics collector sees
// it.
type runView struct {
	name    string
	topo    *arrowexec.Topology
	dl      *deadLetters
	mgr     *resource.Manager
	started time.Time
	state   atomic.Value // string
}

func (v *runView) MetricsPipelines() []server.PipelineView {
	state, _ := v.state.Load().(string)
	return []server.PipelineView{{Name: v.name, Topology: v.topo, State: state, DeadLettered: v.dl.Count(), Started: v.started}}
}

func (v *runView) MemoryManager() *resource.Manager { return v.mgr }

// serveRunMetrics serves /metrics and /debug/pprof for ferris run on addr
// until the returned stop is called.
func serveRunMetrics(addr, token string, v *runView, stderr io.Writer) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	one := &atomic.Int64{}
	one.Store(1)
	srv := &http.Server{Handler: server.MetricsHandler(v, server.ServiceCounters{Registered: one}, token), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Fprintf(stderr, "ferris: metrics on http://%s/metrics\n", l.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressInterval is how often the progress line is redrawn.
const progressInterval = 250 * time.Millisecond

// runCounters are the live totals of a topology the progress line and the
// summary show.
type runCounters struct {
	rows, total, late, dead int64
	watermark               arrowexec.Watermark
}

func countersOf(topo *arrowexec.Topology, dl *deadLetters) runCounters {
	c := runCounters{total: -1, watermark: arrowexec.FinalWatermark, dead: dl.Count()}
	known := true
	for _, s := range topo.Sources {
		if st := topo.SourceStats(s.Stream); st != nil {
			c.rows += st.RowsIn.Load()
		}
		rt, ok := arrowexec.SourceAs[arrowexec.RowTotaler](s.Op)
		if !ok || rt.TotalRows() < 0 {
			known = false
			continue
		}
		c.total = max(c.total, 0) + rt.TotalRows()
	}
	if !known || len(topo.Sources) == 0 {
		c.total = -1
	}
	for _, q := range topo.Queries {
		c.watermark = min(c.watermark, q.Stats.Watermark.Load())
		for _, o := range q.Operators {
			c.late += o.Late()
		}
	}
	if len(topo.Queries) == 0 {
		c.watermark = arrowexec.NoWatermark
	}
	return c
}

// progressLine renders one progress line (no newline).
func progressLine(c runCounters, rate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ferris: %d", c.rows)
	if c.total > 0 {
		fmt.Fprintf(&b, " of %d rows (%.0f%%)", c.total, 100*float64(c.rows)/float64(c.total))
	} else {
		b.WriteString(" rows")
	}
	fmt.Fprintf(&b, ", %.0f rows/s, watermark %s, %d late, %d dead-lettered", rate, arrowexec.FormatWatermark(c.watermark), c.late, c.dead)
	return b.String()
}

// showProgress redraws the progress line on w every progressInterval
// until stop is closed, then erases it; done is closed when it has.
func showProgress(w io.Writer, topo *arrowexec.Topology, dl *deadLetters, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	lastRows, lastT := int64(0), time.Now()
	rate := 0.0
	for {
		select {
		case <-stop:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-tick.C:
			c := countersOf(topo, dl)
			if dt := now.Sub(lastT).Seconds(); dt > 0 {
				r := float64(c.rows-lastRows) / dt
				rate = 0.5*rate + 0.5*r // smooth the jitter of batch boundaries
				if lastRows == 0 {
					rate = r
				}
			}
			lastRows, lastT = c.rows, now
			fmt.Fprint(w, "\r\033[K"+progressLine(c, rate))
		}
	}
}

// summary is the closing paragraph of ferris run.
func summary(topo *arrowexec.Topology, dl *deadLetters, dead map[string]int64, elapsed time.Duration, mgr *resource.Manager) string {
	c := countersOf(topo, dl)
	var b strings.Builder
	fmt.Fprintf(&b, "ferris: %d rows read from %d sources in %s", c.rows, len(topo.Sources), elapsed.Round(time.Millisecond))
	if secs := elapsed.Seconds(); secs > 0 && c.rows > 0 {
		fmt.Fprintf(&b, " (%.0f rows/s)", float64(c.rows)/secs)
	}
	b.WriteString(";")
	for _, q := range topo.Queries {
		fmt.Fprintf(&b, " query %s: %d rows out, %s;", q.Name, q.Stats.RowsOut.Load(), arrowexec.QueryState(q.Stats.State.Load()))
	}
	var byStrategy [4]int64
	for _, q := range topo.Queries {
		for _, o := range q.Operators {
			byStrategy[0] += o.LateDropped.Load()
			byStrategy[1] += o.LateDeadLettered.Load()
			byStrategy[2] += o.LateRedirected.Load()
			byStrategy[3] += o.LateUpdated.Load()
		}
	}
	fmt.Fprintf(&b, " %d late rows", c.late)
	if c.late > 0 {
		var parts []string
		for i, what := range []string{"dropped", "dead-lettered", "counted in the next window", "updated a window"} {
			if byStrategy[i] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", byStrategy[i], what))
			}
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	b.WriteString(";")
	for path, n := range dead {
		fmt.Fprintf(&b, " %d bad records written to dead-letter file %s;", n, path)
	}
	fmt.Fprintf(&b, " watermark at the end %s", arrowexec.FormatWatermark(c.watermark))
	if mgr != nil {
		fmt.Fprintf(&b, "; peak memory %s", mib(mgr.Peak()))
	}
	if cs := &topo.CheckpointStats; topo.Checkpoints != nil && cs.Completed.Load()+cs.Failed.Load() > 0 {
		fmt.Fprintf(&b, "; %d checkpoints (last %s in %s)", cs.Completed.Load(), mib(cs.LastBytes.Load()),
			time.Duration(cs.LastNanos.Load()).Round(time.Millisecond))
		if n := cs.Failed.Load(); n > 0 {
			fmt.Fprintf(&b, ", %d failed", n)
		}
	}
	if p := topo.Profile(); p.Bottleneck != "" {
		fmt.Fprintf(&b, "; %s", p.Verdict)
	}
	b.WriteString(".")
	return wrap(b.String(), 100)
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(text) {
		if i > 0 {
			if n+1+len(w) > width {
				b.WriteString("\n  ")
				n = 2
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// runOptions are what ferris run and ferris explain --analyze differ in.
type runOptions struct {
	metricsAddr string // "" or "-": no listener
	token       string
	progress    string // auto, always or never
	duration    time.Duration
	analyze     bool // print the profile instead of rows
	// correlationID ties the run's spans together.
	correlationID string
}

// progressWanted decides whether to draw the progress line.
func progressWanted(mode string, stderr io.Writer) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return isTerminal(stderr)
}

// startProgress starts the progress line when wanted; the returned stop
// erases it and waits.
func startProgress(mode string, stderr io.Writer, topo *arrowexec.Topology, dl *deadLetters) func() {
	if !progressWanted(mode, stderr) {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go showProgress(stderr, topo, dl, stop, done)
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}
