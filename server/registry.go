package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/plan/ast"
	"github.com/ferrisstreams/ferris/plan/sql"
	"github.com/ferrisstreams/ferris/sinks"
)

// Errors of Registry operations, for errors.Is.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
	ErrBadName  = errors.New("bad pipeline name")
)

// SQLError is a pipeline whose SQL does not compile: every error found,
// each with its position when it has one.
type SQLError struct {
	Errors []PositionedError
}

// PositionedError is one SQL error; Line and Column are 0 when the error
// has no position.
type PositionedError struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func (e *SQLError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, pe := range e.Errors {
		msgs[i] = pe.Message
		if pe.Line > 0 {
			msgs[i] = fmt.Sprintf("line %d, column %d: %s", pe.Line, pe.Column, pe.Message)
		}
	}
	return fmt.Sprint(msgs)
}

// newSQLError splits a (joined) compile error into positioned errors.
func newSQLError(err error) *SQLError {
	var out SQLError
	var walk func(error)
	walk = func(err error) {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *plan.Error
		var se *sql.Error
		switch {
		case errors.As(err, &pe) && pe.Pos.Line > 0:
			out.Errors = append(out.Errors, PositionedError{Line: pe.Pos.Line, Column: pe.Pos.Col, Message: pe.Msg})
		case errors.As(err, &se):
			out.Errors = append(out.Errors, PositionedError{Line: se.Pos.Line, Column: se.Pos.Col, Message: se.Msg})
		default:
			out.Errors = append(out.Errors, PositionedError{Message: err.Error()})
		}
	}
	walk(err)
	return &out
}

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	Settings arrowexec.Settings // engine settings every pipeline starts from
	// DataDir is where relative paths of pipelines (files, dead letters,
	// state) resolve; paths in SQL outside it and AllowPaths are refused.
	DataDir string
	// Connectors registers the connectors a pipeline may use; stdout is
	// where the stdout sink writes.
	Connectors func(stdout io.Writer) *arrowexec.Connectors
	// Resources accounts memory of every pipeline (max_memory_mb).
	Resources *resource.Manager
	// Tracer, when set, traces registrations (parse, plan, build) and the
	// pipelines' batches.
	Tracer arrowexec.Tracer
	// Logf, when set, receives the pipelines' notes (checkpoints).
	Logf func(format string, args ...any)
	// AllowPaths are folders besides DataDir that paths in SQL may name
	// (see Confinement); AllowBrokers, when not empty, are the only
	// brokers the option brokers may name.
	AllowPaths, AllowBrokers []string
	// Logger, when set, receives one line per registration (or refusal),
	// end, failure (with the stacks of panics) and removal of a pipeline,
	// with its correlation id.
	Logger *slog.Logger
}

// Registry holds the running pipelines of a server. Each registered
// pipeline (one or more statements) is compiled and runs as its own
// topology. Source streams declared by a running pipeline may be read by
// pipelines registered later: their declarations are included when those
// compile (each reader gets its own connector instance and, for Kafka, its
// own consumer group: readerDecl). A bare SELECT's
// results are exported as a stream named after the pipeline (or
// "pipeline.select_N" when it has several), readable live through taps.
// It is safe for concurrent use.
type Registry struct {
	cfg     RegistryConfig
	confine Confinement

	mu        sync.Mutex
	pipelines map[string]*Pipeline
	closed    bool
	wg        sync.WaitGroup

	// compiling, when set (by tests), is called while a registration
	// compiles its pipeline.
	compiling func()

	// Counters for metrics: pipelines registered, registrations refused,
	// pipelines that failed.
	registered, rejected, failed atomic.Int64
}

// Pipeline is one registered pipeline.
type Pipeline struct {
	Name    string
	SQL     string
	Created time.Time
	// CorrelationID ties the pipeline's spans and logs to the request
	// that registered it (X-Correlation-ID, or generated).
	CorrelationID string

	plan    *plan.Pipeline
	decls   []*ast.CreateSource // the source streams it declares
	topo    *arrowexec.Topology
	dl      *sinks.DeadLetterFile
	cancel  context.CancelFunc
	done    chan struct{}
	err     error           // set before done is closed
	streams map[string]bool // the streams it defines (not those it borrows)
}

// NewRegistry returns an empty registry.
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Resources == nil {
		cfg.Resources = resource.NewManager(nil, cfg.Settings.MemoryLimitBytes())
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "."
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	confine := Confinement{Roots: append([]string{cfg.DataDir}, cfg.AllowPaths...), Brokers: cfg.AllowBrokers}
	return &Registry{cfg: cfg, confine: confine, pipelines: map[string]*Pipeline{}}
}

var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// Register compiles and starts a pipeline. Its errors are ErrBadName,
// ErrExists, a *SQLError for SQL that does not compile or names a path or
// broker it may not (see Confinement), or a connector error from building
// it.
func (r *Registry) Register(name, text string) (*Pipeline, error) {
	return r.RegisterContext(context.Background(), name, text, "")
}

// RegisterContext is Register with a context (its span, if any, is the
// parent of the registration's spans) and a correlation id ("" generates
// one) that the pipeline's spans and status carry.
func (r *Registry) RegisterContext(ctx context.Context, name, text, correlationID string) (p *Pipeline, err error) {
	if correlationID == "" {
		correlationID = newCorrelationID()
	}
	ctx, end := r.span(ctx, "ferris.pipeline.register", []arrowexec.Attr{
		{Key: "ferris.pipeline", Value: name}, {Key: "ferris.correlation_id", Value: correlationID}})
	defer func() {
		if err != nil {
			r.rejected.Add(1)
			r.cfg.Logger.Warn("pipeline refused", "pipeline", name, "correlation_id", correlationID, "error", err)
		} else {
			r.registered.Add(1) // logged by register, before the pipeline starts
		}
		end(err)
	}()
	return r.register(ctx, name, text, correlationID)
}

// span starts a span through the configured Tracer, if any.
func (r *Registry) span(ctx context.Context, name string, attrs []arrowexec.Attr) (context.Context, func(error)) {
	if r.cfg.Tracer == nil {
		return ctx, func(error) {}
	}
	return r.cfg.Tracer.StartSpan(ctx, name, attrs)
}

func (r *Registry) register(ctx context.Context, name, text, correlationID string) (*Pipeline, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("%w %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or '_'", ErrBadName, name)
	}
	_, endParse := r.span(ctx, "ferris.sql.parse", nil)
	stmts, err := sql.Parse(text)
	if err != nil {
		err := newSQLError(err)
		endParse(err)
		return nil, err
	}
	endParse(nil)
	// Streams declaring no columns take them from their connector (the
	// schema registry, for Avro over Kafka): it is I/O, done without the lock.
	if err := plan.DeclareColumns(ctx, stmts, r.cfg.Connectors(io.Discard), r.cfg.DataDir); err != nil {
		return nil, newSQLError(err)
	}
	// Compiling a large statement takes a while: it runs without the lock,
	// over a snapshot of the other pipelines' declarations, and the result
	// is registered only if nothing it relied on changed meanwhile.
	own := map[string]bool{}
	var decls []*ast.CreateSource
	for _, st := range stmts {
		switch s := st.(type) {
		case *ast.CreateSource:
			own[s.Name.Name] = true
			decls = append(decls, s)
		case *ast.CreateAs:
			own[s.Name.Name] = true
		}
	}
	r.mu.Lock()
	lenders, err := r.checkNewLocked(name, own)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var all []ast.Statement
	borrowed := map[string]bool{}
	for _, op := range lenders {
		for _, d := range op.decls {
			all = append(all, readerDecl(d, name))
			borrowed[d.Name.Name] = true
		}
	}
	all = append(all, stmts...)
	_, endPlan := r.span(ctx, "ferris.plan.compile", nil)
	if r.compiling != nil {
		r.compiling()
	}
	p, err := plan.CompileStatements(all, r.cfg.Settings, nil)
	if err != nil {
		err := newSQLError(err)
		endPlan(err)
		return nil, err
	}
	endPlan(nil)
	if err := r.confine.check(p, stmts, r.cfg.Settings, borrowed); err != nil {
		return nil, err
	}
	pl := &Pipeline{Name: name, SQL: text, Created: time.Now().UTC(), CorrelationID: correlationID,
		plan: p, decls: decls, done: make(chan struct{}), streams: map[string]bool{}}
	_, endBuild := r.span(ctx, "ferris.plan.build", nil)
	if err := r.build(pl); err != nil {
		endBuild(err)
		return nil, err
	}
	endBuild(nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	now, err := r.checkNewLocked(name, own)
	if err == nil && !slices.Equal(now, lenders) {
		err = fmt.Errorf("the pipelines declaring streams changed while %q compiled; register it again: %w", name, ErrExists)
	}
	if err != nil {
		pl.topo.Discard()
		return nil, err
	}
	for _, s := range pl.topo.Streams() {
		if borrowed[s] {
			continue
		}
		for other, op := range r.pipelines {
			if op.streams[s] {
				pl.topo.Discard()
				return nil, fmt.Errorf("stream %q is already defined by pipeline %q: %w", s, other, ErrExists)
			}
		}
		pl.streams[s] = true
	}
	r.pipelines[name] = pl
	// Logged before it starts: a pipeline that fails at once logs its
	// failure after its registration.
	r.cfg.Logger.Info("pipeline registered", "pipeline", name, "correlation_id", correlationID)
	r.start(pl)
	return pl, nil
}

// readerDecl is the declaration of a stream borrowed from another pipeline
// as pipeline reader compiles it: a consumer group (group_id) becomes the
// reader's own, "<group_id>.<reader>", so that every reader sees every
// record and commits its own offsets instead of sharing the partitions of
// the declaring pipeline's group.
func readerDecl(d *ast.CreateSource, reader string) *ast.CreateSource {
	i := slices.IndexFunc(d.With, func(o ast.Option) bool { return o.Key.Name == "group_id" })
	if i < 0 || strings.TrimSpace(d.With[i].Value) == "" {
		return d
	}
	c := *d
	c.With = slices.Clone(d.With)
	c.With[i].Value = strings.TrimSpace(d.With[i].Value) + "." + reader
	return &c
}

// checkNewLocked checks that a pipeline name, defining the streams own,
// may be registered now, and returns the pipelines whose declared source
// streams it can read, in name order. r.mu is held.
func (r *Registry) checkNewLocked(name string, own map[string]bool) ([]*Pipeline, error) {
	if r.closed {
		return nil, errors.New("server is shutting down")
	}
	if _, ok := r.pipelines[name]; ok {
		return nil, fmt.Errorf("pipeline %q %w", name, ErrExists)
	}
	var lenders []*Pipeline
	for _, pname := range r.namesLocked() {
		op := r.pipelines[pname]
		for _, d := range op.decls {
			if own[d.Name.Name] {
				return nil, fmt.Errorf("stream %q is already declared by pipeline %q (read it without declaring it again): %w", d.Name.Name, pname, ErrExists)
			}
		}
		if len(op.decls) > 0 {
			lenders = append(lenders, op)
		}
	}
	return lenders, nil
}

// build makes the topology of pl; bare SELECTs become exported streams.
func (r *Registry) build(pl *Pipeline) error {
	pl.dl = sinks.NewDeadLetterFile(filepath.Join(r.cfg.DataDir, pl.Name+".dead_letter.jsonl"))
	env := plan.BuildEnv{
		Connectors:  r.cfg.Connectors(io.Discard),
		Resources:   r.cfg.Resources,
		BaseDir:     r.cfg.DataDir,
		QueryPrefix: pl.Name + "/",
		Instrument:  true,
		Tracer:      r.cfg.Tracer,
		// The run's errors carry the registration's correlation id.
		CorrelationID: pl.CorrelationID,
		DeadLetter: func(path string) arrowexec.DeadLetter {
			if path == "" {
				return pl.dl
			}
			if !filepath.IsAbs(path) {
				path = filepath.Join(r.cfg.DataDir, path)
			}
			return sinks.NewDeadLetterFile(path)
		},
	}
	// The pipeline's own max_memory_mb bounds its queries and sources
	// together, within the server's.
	r.cfg.Resources.SetGroupLimit(env.QueryPrefix, pl.plan.Settings.MemoryLimitBytes())
	topo, err := pl.plan.Build(env)
	if err != nil {
		_ = pl.dl.Close()
		return newSQLError(err)
	}
	var bare []*arrowexec.QueryNode
	for _, q := range topo.Queries {
		if q.Output == "" {
			bare = append(bare, q)
		}
	}
	for _, q := range bare {
		q.Output = pl.Name + "." + q.Name
		if len(bare) == 1 && pl.plan.Relation(pl.Name) == nil {
			q.Output = pl.Name
		}
	}
	topo.TraceAttrs = []arrowexec.Attr{{Key: "ferris.pipeline", Value: pl.Name}, {Key: "ferris.correlation_id", Value: pl.CorrelationID}}
	var logf func(string, ...any)
	if l := r.cfg.Logf; l != nil {
		logf = func(format string, args ...any) { l("pipeline %s: "+format, append([]any{pl.Name}, args...)...) }
	}
	topo.Checkpoints = pl.plan.Settings.Checkpoints(r.cfg.DataDir, pl.Name, logf)
	pl.topo = topo
	return nil
}

func (r *Registry) start(pl *Pipeline) {
	ctx, cancel := context.WithCancel(context.Background())
	pl.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		err := run(ctx, pl.topo)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		log := r.cfg.Logger.With("pipeline", pl.Name, "correlation_id", pl.CorrelationID)
		if err != nil {
			r.failed.Add(1)
			attrs := []any{"error", err}
			if stacks := panicStacks(err); stacks != "" {
				attrs = append(attrs, "stack", stacks)
			}
			log.Error("pipeline failed", attrs...)
		} else {
			log.Info("pipeline ended")
		}
		pl.err = err
		_ = pl.dl.Close()
		close(pl.done)
	}()
}

// run runs topo; a panic that escapes it is its error.
func run(ctx context.Context, topo *arrowexec.Topology) (err error) {
	defer arrowexec.RecoverPanic(&err)
	return topo.Run(ctx)
}

// panicStacks returns the stacks of the panics in err, one after another.
func panicStacks(err error) string {
	var b strings.Builder
	var walk func(error)
	walk = func(err error) {
		if pe, ok := err.(*arrowexec.PanicError); ok {
			b.Write(pe.Stack)
			return
		}
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return b.String()
}

// Get returns the named pipeline.
func (r *Registry) Get(name string) (*Pipeline, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pipelines[name]
	if !ok {
		return nil, fmt.Errorf("pipeline %q %w", name, ErrNotFound)
	}
	return p, nil
}

// List returns the pipelines in name order.
func (r *Registry) List() []*Pipeline {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Pipeline, 0, len(r.pipelines))
	for _, n := range r.namesLocked() {
		out = append(out, r.pipelines[n])
	}
	return out
}

func (r *Registry) namesLocked() []string {
	names := make([]string, 0, len(r.pipelines))
	for n := range r.pipelines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Remove stops the named pipeline (draining in-flight batches for at most
// grace, then cancelling) and forgets it, checkpoints included: a pipeline
// registered again under its name starts from scratch. (Shutdown keeps
// them: registered again after a restart, a pipeline resumes.)
func (r *Registry) Remove(name string, grace time.Duration) error {
	r.mu.Lock()
	p, ok := r.pipelines[name]
	if ok {
		delete(r.pipelines, name)
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("pipeline %q %w", name, ErrNotFound)
	}
	p.stop(grace)
	r.cfg.Logger.Info("pipeline removed", "pipeline", p.Name, "correlation_id", p.CorrelationID)
	return arrowexec.RemoveCheckpoints(p.topo.Checkpoints)
}

// stop drains the pipeline, cancelling it if it does not end within grace.
func (p *Pipeline) stop(grace time.Duration) {
	p.topo.Stop()
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cancel()
		<-p.done
	}
}

// Shutdown stops every pipeline (see Remove) and refuses new ones.
func (r *Registry) Shutdown(grace time.Duration) {
	r.mu.Lock()
	r.closed = true
	ps := make([]*Pipeline, 0, len(r.pipelines))
	for _, p := range r.pipelines {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	wg.Wait()
	r.wg.Wait()
}

// Stream finds the pipeline producing a stream (its own sources, derived
// streams and exported SELECTs).
func (r *Registry) Stream(stream string) (*Pipeline, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pipelines {
		if p.streams[stream] {
			return p, nil
		}
	}
	return nil, fmt.Errorf("stream %q %w", stream, ErrNotFound)
}

// Topology returns the running topology (for taps).
func (p *Pipeline) Topology() *arrowexec.Topology { return p.topo }

// Done is closed when the pipeline has ended.
func (p *Pipeline) Done() <-chan struct{} { return p.done }

// Err is the error the pipeline ended with (nil while running or after a
// clean end).
func (p *Pipeline) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// MetricsPipelines implements MetricsSource.
func (r *Registry) MetricsPipelines() []PipelineView {
	ps := r.List()
	out := make([]PipelineView, 0, len(ps))
	for _, p := range ps {
		state := "running"
		select {
		case <-p.done:
			state = "finished"
			if p.err != nil {
				state = "failed"
			}
		default:
		}
		out = append(out, PipelineView{Name: p.Name, Topology: p.topo, State: state,
			DeadLettered: p.dl.Count(), Started: p.Created, MemoryPrefix: p.Name + "/"})
	}
	return out
}

// MemoryManager implements MetricsSource.
func (r *Registry) MemoryManager() *resource.Manager { return r.cfg.Resources }

// Counters returns the registry's counters for metrics; active counts open
// API connections.
func (r *Registry) Counters(active *atomic.Int64) ServiceCounters {
	return ServiceCounters{Active: active, Registered: &r.registered, Rejected: &r.rejected, Failed: &r.failed}
}

// newCorrelationID returns 16 random hex digits.
func newCorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
