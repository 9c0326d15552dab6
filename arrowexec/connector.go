package arrowexec

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Options are the WITH (...) options of a statement, keys lower-cased.
type Options map[string]string

// Get returns the option and whether it was set.
func (o Options) Get(key string) (string, bool) {
	v, ok := o[key]
	return v, ok
}

// Keys returns the option names sorted.
func (o Options) Keys() []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// CheckKnown returns an error naming the first option not in known (and the
// connector), so misspelled options are reported instead of ignored.
func (o Options) CheckKnown(connector string, known ...string) error {
	set := make(map[string]bool, len(known))
	for _, k := range known {
		set[k] = true
	}
	for _, k := range o.Keys() {
		if !set[k] {
			sort.Strings(known)
			return fmt.Errorf("unknown option %q for connector %q (known: %s)", k, connector, strings.Join(known, ", "))
		}
	}
	return nil
}

// DeadLetterRecord describes one input record or row that could not be
// processed. It is written as one JSON object per record by the dead-letter
// sink.
type DeadLetterRecord struct {
	Time     time.Time `json:"time"`
	Query    string    `json:"query,omitempty"`
	Source   string    `json:"source"`             // stream name and file/topic
	Position string    `json:"position,omitempty"` // e.g. "line 12" or "partition 0 offset 42"
	Field    string    `json:"field,omitempty"`
	Reason   string    `json:"reason"`
	Raw      string    `json:"raw,omitempty"` // the original record bytes, as text
	// RawEncoding is "base64" when Raw holds a binary record (Avro)
	// base64-encoded, whole.
	RawEncoding string `json:"raw_encoding,omitempty"`
}

// DeadLetter receives records that could not be processed. Implementations
// are safe for concurrent use.
type DeadLetter interface {
	DeadLetter(ctx context.Context, rec DeadLetterRecord) error
}

// SourceSpec is everything a connector needs to open a source.
type SourceSpec struct {
	Name       string        // stream or table name
	Schema     *arrow.Schema // declared columns, in order
	Options    Options       // WITH options (connector-specific keys included)
	BaseDir    string        // folder relative paths resolve against
	BatchSize  int           // rows per batch (engine setting unless overridden)
	Linger     time.Duration // flush a partial batch after this long
	Alloc      memory.Allocator
	DeadLetter DeadLetter
	// Tracer, when set, lets the source trace what it reads (the Kafka
	// source links a span per batch to its records' traceparent headers).
	Tracer Tracer
	// Logger receives what the source notes while it runs (a Kafka source
	// whose offsets the brokers lost); nil: slog.Default().
	Logger *slog.Logger
}

// SinkSpec is everything a connector needs to open a sink.
type SinkSpec struct {
	Name   string        // query / stream name
	Schema *arrow.Schema // schema of the rows written
	// Key names the columns that identify a row's entity (the GROUP BY
	// columns of an aggregate, or a table's PRIMARY KEY); sinks with keyed
	// messages (Kafka) build the message key from them. May be empty.
	Key        []string
	Options    Options
	BaseDir    string
	Alloc      memory.Allocator
	DeadLetter DeadLetter
	// Tracer, when set, lets the sink propagate the span of the write it
	// is given in ctx (the Kafka sink writes a traceparent header).
	Tracer Tracer
}

// Sink consumes the output of a query.
//
// Contract: Open once, then Write for each message in order; Write does not
// take ownership of msg (the caller releases it) and must not retain the
// batch past the call without Retain. Flush makes everything written so far
// durable (or visible, for stdout). Close flushes and releases resources; it
// is idempotent. A Sink is driven by one goroutine.
type Sink interface {
	Open(ctx context.Context) error
	Write(ctx context.Context, msg Message) error
	Flush(ctx context.Context) error
	Close() error
}

// SourceFactory opens a source for a connector. The returned Operator emits
// batches with spec.Schema and returns io.EOF at the end of a bounded input
// (the driver then injects FinalWatermark).
type SourceFactory func(spec SourceSpec) (Operator, error)

// SinkFactory opens a sink for a connector.
type SinkFactory func(spec SinkSpec) (Sink, error)

// ColumnsFactory gives the columns of a source declared without any, from
// what the connector reads (the Kafka source with format avro: the latest
// schema in the schema registry); baseDir is the folder relative paths in
// the options resolve against. It returns no fields and no error when the
// options describe a source that cannot say its columns.
type ColumnsFactory func(ctx context.Context, options Options, baseDir string) ([]arrow.Field, error)

// Connectors maps connector names (the WITH option connector = '...') to
// factories. The zero value is empty; it is not safe for concurrent
// registration.
type Connectors struct {
	sources     map[string]SourceFactory
	sinks       map[string]SinkFactory
	columns     map[string]ColumnsFactory
	deadLetters map[string]DeadLetterFactory // guard.go
}

// RegisterSource adds a source factory under name.
func (c *Connectors) RegisterSource(name string, f SourceFactory) {
	if c.sources == nil {
		c.sources = map[string]SourceFactory{}
	}
	c.sources[name] = f
}

// RegisterSink adds a sink factory under name.
func (c *Connectors) RegisterSink(name string, f SinkFactory) {
	if c.sinks == nil {
		c.sinks = map[string]SinkFactory{}
	}
	c.sinks[name] = f
}

// RegisterColumns adds the columns factory of source connector name.
func (c *Connectors) RegisterColumns(name string, f ColumnsFactory) {
	if c.columns == nil {
		c.columns = map[string]ColumnsFactory{}
	}
	c.columns[name] = f
}

// Columns returns the columns factory of a source connector, nil if it
// has none.
func (c *Connectors) Columns(name string) ColumnsFactory { return c.columns[name] }

// Source returns the factory for a source connector.
func (c *Connectors) Source(name string) (SourceFactory, error) {
	if f, ok := c.sources[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown source connector %q (known: %s)", name, strings.Join(sortedKeys(c.sources), ", "))
}

// Sink returns the factory for a sink connector.
func (c *Connectors) Sink(name string) (SinkFactory, error) {
	if f, ok := c.sinks[name]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("unknown sink connector %q (known: %s)", name, strings.Join(sortedKeys(c.sinks), ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
