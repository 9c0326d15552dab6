package plan

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan/ast"
)

// This file is Build's fault-tolerance part (arrowexec/fault.go): it reads
// the retry, circuit-breaker and failure-strategy options, guards every
// sink and source, picks each pipeline's dead-letter sink (a file, or a
// Kafka topic), applies the memory settings to the queries' allocators, and
// names the run with a correlation id.

func fractionCheck(_ *Relation, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		return fmt.Errorf("want a number between 0 and 1, got %q", v)
	}
	return nil
}

func nonEmptyCheck(_ *Relation, v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// nonFaultOption returns the first option of with that is not a
// fault-tolerance option (those a query takes without a sink), or nil.
func nonFaultOption(with []ast.Option) *ast.Option {
	for i := range with {
		if !slices.Contains(arrowexec.FaultOptions, with[i].Key.Name) {
			return &with[i]
		}
	}
	return nil
}

// faultPolicy reads the retry and circuit-breaker options of a source or
// query (values were checked when the pipeline compiled), defaulting to
// arrowexec.DefaultRetryPolicy and DefaultBreakerConfig.
func faultPolicy(o arrowexec.Options) (arrowexec.RetryPolicy, arrowexec.BreakerConfig) {
	r, b := arrowexec.DefaultRetryPolicy(), arrowexec.DefaultBreakerConfig()
	integer := func(k string, dst *int) {
		if v, ok := o[k]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				*dst = n
			}
		}
	}
	float := func(k string, dst *float64) {
		if v, ok := o[k]; ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				*dst = f
			}
		}
	}
	duration := func(k string, dst *time.Duration) {
		if v, ok := o[k]; ok {
			if d, err := ParseDuration(v); err == nil {
				*dst = d
			}
		}
	}
	integer("max_retries", &r.MaxRetries)
	duration("initial_delay", &r.InitialDelay)
	duration("max_delay", &r.MaxDelay)
	float("multiplier", &r.Multiplier)
	float("jitter", &r.Jitter)
	integer("failure_threshold", &b.FailureThreshold)
	duration("failure_window", &b.FailureWindow)
	duration("open_timeout", &b.OpenTimeout)
	integer("half_open_calls", &b.HalfOpenCalls)
	duration("breaker_max_open", &b.MaxOpen)
	return r, b
}

// faults carries the fault-tolerance setup through one Build.
type faults struct {
	env      BuildEnv
	p        *Pipeline
	topo     *arrowexec.Topology
	topics   map[string]arrowexec.DeadLetter // Kafka dead-letter sinks by topic
	readers  map[string][]*Query             // stream → queries reading it
	allocs   map[string][]*resource.Allocator
	handlers map[*Query]*arrowexec.DataErrors
	errs     []error
}

// newFaults starts the fault-tolerance setup of topo: its correlation id is
// env.CorrelationID or a new one.
func (p *Pipeline) newFaults(env BuildEnv, topo *arrowexec.Topology) *faults {
	topo.CorrelationID = env.CorrelationID
	if topo.CorrelationID == "" {
		topo.CorrelationID = arrowexec.NewCorrelationID()
	}
	return &faults{env: env, p: p, topo: topo, topics: map[string]arrowexec.DeadLetter{},
		readers: map[string][]*Query{}, allocs: map[string][]*resource.Allocator{},
		handlers: map[*Query]*arrowexec.DataErrors{}}
}

// err returns the errors met opening dead-letter sinks.
func (f *faults) err() error { return errors.Join(f.errs...) }

// deadLetter returns the dead-letter sink for the options of a stream or
// query (nil for none): the option dead_letter_topic, else the option
// dead_letter_path (a file), else the setting dead_letter_topic, else the
// pipeline's file (env.DeadLetter). A Kafka topic is opened once per
// pipeline, through the "kafka" dead-letter connector, and closed with
// the topology.
func (f *faults) deadLetter(opts arrowexec.Options) arrowexec.DeadLetter {
	topic := strings.TrimSpace(opts["dead_letter_topic"])
	if topic == "" && opts["dead_letter_path"] == "" {
		topic = f.p.Settings.DeadLetterTopic
	}
	if topic != "" {
		if dl, ok := f.topics[topic]; ok {
			return dl
		}
		factory, err := f.env.Connectors.DeadLetter("kafka")
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("dead_letter_topic %q: %w", topic, err))
			return nil
		}
		sink, err := factory(arrowexec.DeadLetterSpec{Name: strings.TrimSuffix(f.env.QueryPrefix, "/"),
			Topic: topic, Options: opts, BaseDir: f.env.BaseDir})
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("dead_letter_topic %q: %w", topic, err))
			return nil
		}
		f.topo.Own(sink)
		f.topics[topic] = sink
		return sink
	}
	if f.env.DeadLetter == nil {
		return nil
	}
	return f.env.DeadLetter(opts["dead_letter_path"])
}

// strategy resolves a failure strategy: the explicit one, else the
// setting, else dead_letter when there is a dead-letter sink, else fail.
func (f *faults) strategy(explicit string, dl arrowexec.DeadLetter) arrowexec.FailureStrategy {
	if explicit == "" {
		explicit = f.p.Settings.FailureStrategy
	}
	if explicit != "" {
		return arrowexec.FailureStrategy(strings.ToLower(explicit))
	}
	if dl != nil {
		return arrowexec.DeadLetterStrategy
	}
	return arrowexec.FailQuery
}

// dataErrors builds a bad-record handler.
func (f *faults) dataErrors(name string, s arrowexec.FailureStrategy, dl arrowexec.DeadLetter, opts arrowexec.Options) *arrowexec.DataErrors {
	retry, breaker := faultPolicy(opts)
	return &arrowexec.DataErrors{Strategy: s, Sink: dl, Query: name, Logger: f.env.Logger,
		Guard: arrowexec.NewGuard("dead letter", retry, breaker, nil)}
}

// query sets up a built query: its correlation id, memory limit and
// wait, and its bad-row handler (which Filter and Project operators use).
// Call it once node.Root is built.
func (f *faults) query(q *Query, node *arrowexec.QueryNode, alloc *resource.Allocator) {
	node.CorrelationID = f.topo.CorrelationID
	alloc.SetLimit(f.p.Settings.QueryMemoryLimitBytes())
	alloc.SetWait(time.Duration(f.p.Settings.MemoryWaitMS) * time.Millisecond)
	for _, in := range node.Inputs {
		f.readers[in.Stream] = append(f.readers[in.Stream], q)
		f.allocs[in.Stream] = append(f.allocs[in.Stream], alloc)
	}
	dl := f.deadLetter(q.Options)
	h := f.dataErrors(q.Name, f.strategy(q.Options["failure_strategy"], dl), dl, q.Options)
	h.Bind(&node.Stats.FaultStats)
	f.handlers[q] = h
	arrowexec.SetDataErrors(node.Root, h) // with fail too: the error names the row

}

// sinkErrors is the bad-record handler a query's sink gets.
func (f *faults) sinkErrors(q *Query) arrowexec.DeadLetter { return f.handlers[q] }

// sink wraps a query's sink in a guard (retries and circuit breaker from
// the query's options); with retry_with_backoff, batches whose writes
// exhaust their retries are dead-lettered.
func (f *faults) sink(q *Query, node *arrowexec.QueryNode, s arrowexec.Sink) arrowexec.Sink {
	retry, breaker := faultPolicy(q.Options)
	g := arrowexec.NewGuard("sink "+q.Sink.Connector, retry, breaker, nil)
	g.Bind(&node.Stats.FaultStats)
	var failed *arrowexec.DataErrors
	if h := f.handlers[q]; h != nil && h.Strategy == arrowexec.RetryWithBackoff && h.Sink != nil {
		failed = h
	}
	return arrowexec.GuardSink(s, g, failed)
}

// sourceErrors is the bad-record handler of a source: its failure
// strategy is its own failure_strategy option, else the strictest of the
// queries reading it, else the setting, else the default.
func (f *faults) sourceErrors(r *Relation) *arrowexec.DataErrors {
	own := r.Options["failure_strategy"]
	explicit := arrowexec.FailureStrategy(strings.ToLower(own))
	var names []string
	for _, q := range f.readers[r.Name] {
		if own == "" {
			explicit = explicit.Stricter(arrowexec.FailureStrategy(strings.ToLower(q.Options["failure_strategy"])))
		}
		if !slices.Contains(names, q.Name) {
			names = append(names, q.Name)
		}
	}
	dl := f.deadLetter(r.Options)
	return f.dataErrors(strings.Join(names, ","), f.strategy(string(explicit), dl), dl, r.Options)
}

// source returns the fault setup of a source node: a guard for its reads
// (when it can resume) and commits, its bad-record handler, and the
// allocators of its readers for memory backpressure.
func (f *faults) source(r *Relation, alloc *resource.Allocator, h *arrowexec.DataErrors) *arrowexec.SourceFault {
	alloc.SetWait(time.Duration(f.p.Settings.MemoryWaitMS) * time.Millisecond)
	retry, breaker := faultPolicy(r.Options)
	return &arrowexec.SourceFault{
		Guard:      arrowexec.NewGuard("source "+r.Options["connector"], retry, breaker, nil),
		DataErrors: h,
		Readers:    f.allocs[r.Name],
		MemoryWait: time.Duration(f.p.Settings.MemoryWaitMS) * time.Millisecond,
		Logger:     f.env.Logger,
	}
}
