// Package kafka is the Kafka source connector of FerrisStreams, built on
// franz-go. It decodes topic records straight into Arrow record batches
// with the stream's declared schema (JSON objects, CSV records or raw text),
// fills the system columns _key, _partition, _offset and _timestamp from
// record metadata, reports its partitions to the engine's watermark
// assigner (arrowexec.PartitionedSource) and, in a consumer group, commits
// offsets once the engine says the rows are durable (arrowexec.Committer)
// and, for checkpoints, saves and restores the offset of every partition
// after the rows it returned (arrowexec.Checkpointable, checkpoint.go).
//
// ClientOptions, the parsing of brokers and security options, is shared
// with the Kafka sink (package sinks/kafka).
package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/sources"
	"github.com/ferrisstreams/ferris/sources/avro"
)

// System column names: a field of the declared schema with one of these
// names is filled from the record's metadata, not from its value.
const (
	KeyColumn       = "_key"       // VARCHAR: the record key as text, NULL when absent
	PartitionColumn = "_partition" // INT: the partition
	OffsetColumn    = "_offset"    // BIGINT: the offset
	TimestampColumn = "_timestamp" // TIMESTAMP (ms, UTC): the record timestamp
)

// DefaultMaxRecordBytes bounds one record value unless max_record_bytes
// says otherwise; larger records are dead-lettered.
const DefaultMaxRecordBytes = 1 << 20

// sourceOptions are the options of the kafka source beyond the common ones
// and ClientOptionNames.
var sourceOptions = append([]string{"topic", "group_id", "start_offset", "end_offset", "max_record_bytes"}, RegistryOptionNames...)

// RegistryOptionNames are the options of format avro: the schema registry
// URLs, basic authentication, and TLS as for the brokers (ClientOptions).
var RegistryOptionNames = []string{"schema_registry", "schema_registry_user", "schema_registry_password",
	"schema_registry_ssl_ca_location", "schema_registry_ssl_certificate_location", "schema_registry_ssl_key_location",
	"schema_registry_ssl_skip_verify"}

// Register adds the "kafka" source connector to c, with its columns
// factory (Columns); cfg supplies default brokers and schema registry.
func Register(c *arrowexec.Connectors, cfg Config) {
	c.RegisterSource("kafka", func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return NewSource(cfg, spec)
	})
	c.RegisterColumns("kafka", func(ctx context.Context, o arrowexec.Options, baseDir string) ([]arrow.Field, error) {
		return Columns(ctx, cfg, o, baseDir)
	})
}

// Columns gives the columns of a kafka stream with format avro that
// declares none: those of the latest schema of subject "<topic>-value" in
// the schema registry (see avro.Columns for the mapping). For other
// formats it returns nothing.
func Columns(ctx context.Context, cfg Config, o arrowexec.Options, baseDir string) ([]arrow.Field, error) {
	if !strings.EqualFold(o["format"], "avro") {
		return nil, nil
	}
	topic, urls := strings.TrimSpace(o["topic"]), o["schema_registry"]
	if strings.TrimSpace(urls) == "" {
		urls = cfg.SchemaRegistry
	}
	if topic == "" || strings.TrimSpace(urls) == "" {
		return nil, fmt.Errorf("format avro without declared columns needs options topic and schema_registry")
	}
	reg, err := RegistryClient(urls, o, baseDir)
	if err != nil {
		return nil, err
	}
	text, err := reg.Latest(ctx, topic+"-value")
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	return avro.Columns(text)
}

// NewSource is the factory of the "kafka" source connector. It validates
// the options and the schema; it does not connect (Open does).
//
// Options:
//   - topic (required).
//   - brokers and the security options: see ClientOptions.
//   - group_id: consume as this consumer group (partitions are shared with
//     other members, offsets are committed through arrowexec.Committer).
//     Without it every partition of the topic is read directly and nothing
//     is committed.
//   - start_offset = earliest (default) | latest: where to start when the
//     group has no committed offset (always, without a group).
//   - end_offset = none (default: unbounded) | latest: with latest, the end
//     of each partition is recorded at Open and the source returns io.EOF
//     once every partition reached it (a bounded read, for tests and batch
//     re-processing).
//   - format = json (default) | csv | raw | avro. json: each value is one
//     JSON object; csv: one CSV record, fields in the declared column order
//     (system columns excluded), delimiter ','; raw: the value as text in
//     the one VARCHAR column that is not a system column; avro: Avro in the
//     Confluent wire format, its writer schema fetched by id from
//     schema_registry (URLs separated by commas; default
//     Config.SchemaRegistry, one is required) with HTTP basic
//     authentication when schema_registry_user (and
//     schema_registry_password) is set, and TLS options
//     schema_registry_ssl_ca_location, _ssl_certificate_location,
//     _ssl_key_location, _ssl_skip_verify as for the brokers. See package
//     sources/avro for how
//     writer fields resolve to columns.
//   - batch_size, linger_ms: rows per batch and the longest a partial
//     batch of a partition waits for more rows (defaults: the engine's).
//   - max_record_bytes (default 1 MiB): larger values are dead-lettered.
//
// Records are read with isolation level read_committed: records of open or
// aborted transactions are never returned, and the end of a bounded read is
// each partition's last stable offset.
func NewSource(cfg Config, spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
	what := fmt.Sprintf("kafka source %q", spec.Name)
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{what}, args...)...)
	}
	known := append(append(append([]string(nil), arrowexec.CommonSourceOptions...), ClientOptionNames...), sourceOptions...)
	if err := spec.Options.CheckKnown("kafka", known...); err != nil {
		return nil, errorf("%w", err)
	}
	o := spec.Options
	topic := strings.TrimSpace(o["topic"])
	if topic == "" {
		return nil, errorf("option topic is required")
	}
	clientOpts, err := ClientOptions(cfg, what, spec.BaseDir, o)
	if err != nil {
		return nil, err
	}
	s := &source{
		spec: spec, what: what, topic: topic, clientOpts: clientOpts,
		group:     strings.TrimSpace(o["group_id"]),
		dlName:    fmt.Sprintf("%s (kafka topic %s)", spec.Name, topic),
		maxRecord: DefaultMaxRecordBytes,
	}
	s.brokers = &brokerLog{s: s, down: map[string]bool{}}
	switch v := strings.ToLower(o["start_offset"]); v {
	case "", "earliest":
	case "latest":
		s.startLatest = true
	default:
		return nil, errorf("option start_offset: expected earliest or latest, found %q", o["start_offset"])
	}
	switch v := strings.ToLower(o["end_offset"]); v {
	case "", "none":
	case "latest":
		s.bounded = true
	default:
		return nil, errorf("option end_offset: expected none or latest, found %q", o["end_offset"])
	}
	s.batchSize = spec.BatchSize
	if s.batchSize <= 0 {
		s.batchSize = sources.DefaultBatchSize
	}
	if v := o["batch_size"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, errorf("option batch_size: expected an integer >= 1, found %q", v)
		}
		s.batchSize = n
	}
	s.linger = spec.Linger
	if v := o["linger_ms"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errorf("option linger_ms: expected an integer >= 0, found %q", v)
		}
		s.linger = time.Duration(n) * time.Millisecond
	}
	if v := o["max_record_bytes"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, errorf("option max_record_bytes: expected an integer >= 1, found %q", v)
		}
		s.maxRecord = n
	}
	s.maxBuffered = max(4*s.batchSize, 4096)
	s.registry = o["schema_registry"]
	if strings.TrimSpace(s.registry) == "" {
		s.registry = cfg.SchemaRegistry
	}
	s.format = strings.ToLower(o["format"])
	if s.format == "" {
		s.format = "json"
	}
	if err := s.layout(); err != nil {
		return nil, errorf("%w", err)
	}
	return s, nil
}

// layout sorts the declared columns into system columns and payload
// columns and checks their types.
func (s *source) layout() error {
	var payload []arrow.Field
	for i, f := range s.spec.Schema.Fields() {
		var want func(arrow.DataType) bool
		var wantName string
		switch f.Name {
		case KeyColumn:
			want, wantName = func(t arrow.DataType) bool { return t.ID() == arrow.STRING }, "VARCHAR"
		case PartitionColumn:
			want, wantName = func(t arrow.DataType) bool { return t.ID() == arrow.INT32 }, "INT"
		case OffsetColumn:
			want, wantName = func(t arrow.DataType) bool { return t.ID() == arrow.INT64 }, "BIGINT"
		case TimestampColumn:
			want, wantName = func(t arrow.DataType) bool {
				ts, ok := t.(*arrow.TimestampType)
				return ok && ts.Unit == arrow.Millisecond
			}, "TIMESTAMP"
		default:
			payload = append(payload, f)
			s.payloadIdx = append(s.payloadIdx, i)
			continue
		}
		if !want(f.Type) {
			return fmt.Errorf("system column %s must be %s, declared %s", f.Name, wantName, f.Type)
		}
		s.sysIdx = append(s.sysIdx, i)
	}
	s.payloadSchema = arrow.NewSchema(payload, nil)
	switch s.format {
	case "json", "csv":
		// Checked again (and built) at Open; fail early on bad types.
		d, err := sources.NewRecordDecoder(s.payloadSchema, s.format, ',', memory.DefaultAllocator)
		if err != nil {
			return err
		}
		d.Release()
	case "avro":
		if strings.TrimSpace(s.registry) == "" {
			return fmt.Errorf("format avro needs option schema_registry")
		}
		d, err := avro.NewDecoder(s.payloadSchema, nil, memory.DefaultAllocator)
		if err != nil {
			return err
		}
		d.Release()
	case "raw":
		if len(payload) != 1 || payload[0].Type.ID() != arrow.STRING {
			return fmt.Errorf("format raw needs exactly one VARCHAR column besides the system columns (%s, %s, %s, %s), found %d columns",
				KeyColumn, PartitionColumn, OffsetColumn, TimestampColumn, len(payload))
		}
	default:
		return fmt.Errorf("format %q not supported (json, csv, raw, avro)", s.format)
	}
	return nil
}

// payloadDecoder appends record values to the payload columns.
type payloadDecoder interface {
	Append(value []byte) *sources.RecordError
	Reserve(n int)
	NewArrays() []arrow.Array
	Release()
}

// schemaResolver is a payloadDecoder whose values name a schema that must
// be fetched before they are appended (avro).
type schemaResolver interface {
	Resolve(ctx context.Context, value []byte) error
}

var (
	_ payloadDecoder = (*sources.RecordDecoder)(nil)
	_ payloadDecoder = (*avro.Decoder)(nil)
	_ schemaResolver = (*avro.Decoder)(nil)
)

// RegistryClient returns a client of the schema registry at urls (comma
// separated) with the credentials and TLS of the options (see
// RegistryOptionNames; relative paths resolve against baseDir); the Kafka
// sink shares it.
func RegistryClient(urls string, o arrowexec.Options, baseDir string) (*avro.RegistryClient, error) {
	var list []string
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			list = append(list, u)
		}
	}
	var tc *tls.Config
	for _, k := range RegistryOptionNames[3:] {
		if o[k] != "" {
			var err error
			if tc, err = tlsConfig(o, baseDir, "schema_registry_"); err != nil {
				return nil, err
			}
			break
		}
	}
	return avro.NewRegistryClient(list, o["schema_registry_user"], o["schema_registry_password"], tc)
}
