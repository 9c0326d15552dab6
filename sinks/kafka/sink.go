// Package kafka is the Kafka sink connector of FerrisStreams, built on
// franz-go: every row becomes one record of a topic, its value encoded like
// a line of the file sink (JSON object or CSV record) and its key built from
// the row's key columns. Connection and security options are parsed by
// sources/kafka.ClientOptions, shared with the Kafka source.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources/avro"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultDeliveryTimeout bounds how long a record may wait to be
// acknowledged before it fails (Kafka's delivery.timeout.ms default).
const DefaultDeliveryTimeout = 2 * time.Minute

// sinkOptions are the options of the kafka sink beyond the common ones and
// kafkasrc.ClientOptionNames.
var sinkOptions = append([]string{"topic", "key", "compression", "linger_ms", "batch_max_bytes", "acks", "delivery_timeout_ms",
	"exactly_once", "transactional_id", "transaction_timeout_ms"}, kafkasrc.RegistryOptionNames...)

// Register adds the "kafka" sink connector and the "kafka" dead-letter
// connector (dead_letter_topic, deadletter.go) to c; cfg supplies default
// brokers (as for the source).
func Register(c *arrowexec.Connectors, cfg kafkasrc.Config) {
	c.RegisterSink("kafka", func(spec arrowexec.SinkSpec) (arrowexec.Sink, error) {
		return NewSink(cfg, spec)
	})
	c.RegisterDeadLetter("kafka", func(spec arrowexec.DeadLetterSpec) (arrowexec.DeadLetterSink, error) {
		return NewDeadLetterTopic(cfg, spec)
	})
}

// NewSink is the factory of the "kafka" sink connector. It validates the
// options; Open connects.
//
// Options:
//   - topic (required).
//   - brokers and the security options: see kafkasrc.ClientOptions.
//   - format = json (default) | csv | avro: the record value is the row rendered
//     exactly as a line of the file sink (sinks.JSONEncoder, or
//     sinks.CSVEncoder with ',' and no header), without a trailing
//     newline; with avro, an Avro record in the Confluent wire format whose
//     writer schema (avro.WriterSchema, a record named after the query) Open
//     registers under subject "<topic>-value" in schema_registry (default
//     kafkasrc.Config.SchemaRegistry; authentication and TLS as for the
//     source, kafkasrc.RegistryOptionNames).
//   - key: comma-separated columns that make the record key, overriding
//     spec.Key (the GROUP BY columns or PRIMARY KEY). See recordKey for the
//     encoding.
//   - compression = lz4 (default) | none | gzip | snappy | zstd. lz4 is the
//     default for its speed at a useful ratio; every Kafka client since
//     0.10 reads it.
//   - linger_ms: how long the client waits to fill a batch (franz-go
//     default 10 ms); batch_max_bytes: the largest record batch (franz-go
//     default about 1 MB).
//   - acks = all (default; the idempotent producer is enabled, so retries
//     never duplicate or reorder records) | leader (1) | none (0); the
//     latter two disable idempotence.
//   - delivery_timeout_ms (default 120000): a record not acknowledged by
//     then fails, and Flush reports it. A record for a topic the brokers
//     do not know fails by then too, permanently (markDelivery).
//   - exactly_once = false (default) | true: write through Kafka
//     transactions (txn.go); the sink returned is then a *txnSink, an
//     arrowexec.TransactionalSink. transactional_id (default: derived from
//     the query name and the topic, see defaultTransactionalID) and
//     transaction_timeout_ms (default 60000) apply with it; acks must be
//     all. A record that fails or is refused aborts the transaction and
//     fails the sink (it is neither sent again nor dead-lettered).
//
// With a Tracer (tracing on), each record carries a W3C traceparent header
// naming the span of the write (the context's span), so consumers can link
// to the batch that produced it; otherwise records have no headers.
func NewSink(cfg kafkasrc.Config, spec arrowexec.SinkSpec) (arrowexec.Sink, error) {
	what := fmt.Sprintf("kafka sink %q", spec.Name)
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{what}, args...)...)
	}
	known := append(append(append([]string(nil), arrowexec.CommonSinkOptions...), kafkasrc.ClientOptionNames...), sinkOptions...)
	if err := spec.Options.CheckKnown("kafka", known...); err != nil {
		return nil, errorf("%w", err)
	}
	o := spec.Options
	topic := strings.TrimSpace(o["topic"])
	if topic == "" {
		return nil, errorf("option topic is required")
	}
	opts, err := kafkasrc.ClientOptions(cfg, what, spec.BaseDir, o)
	if err != nil {
		return nil, err
	}
	s := &sink{spec: spec, what: what, topic: topic, deliveryTimeout: DefaultDeliveryTimeout}
	opts = append(opts, kgo.DefaultProduceTopic(topic))

	switch s.format = strings.ToLower(o["format"]); s.format {
	case "":
		s.format = "json"
	case "json", "csv":
	case "avro":
		urls := o["schema_registry"]
		if strings.TrimSpace(urls) == "" {
			urls = cfg.SchemaRegistry
		}
		if strings.TrimSpace(urls) == "" {
			return nil, errorf("format avro needs option schema_registry")
		}
		if s.avroSchema, s.avroOrder, err = avro.WriterSchema(spec.Name, spec.Schema); err != nil {
			return nil, errorf("%w", err)
		}
		if s.registry, err = kafkasrc.RegistryClient(urls, o, spec.BaseDir); err != nil {
			return nil, errorf("%w", err)
		}
	default:
		return nil, errorf("format %q not supported (json, csv, avro)", o["format"])
	}

	keyNames := spec.Key
	if v, ok := o["key"]; ok {
		keyNames = nil
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keyNames = append(keyNames, k)
			}
		}
	}
	for _, name := range keyNames {
		i := columnIndex(spec.Schema, name)
		if i < 0 {
			return nil, errorf("key column %q is not a column of the output (%s)", name, columnNames(spec.Schema))
		}
		s.keyCols = append(s.keyCols, i)
	}

	codec := kgo.Lz4Compression()
	switch c := strings.ToLower(o["compression"]); c {
	case "", "lz4":
	case "none":
		codec = kgo.NoCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil, errorf("option compression: expected none, gzip, snappy, lz4 or zstd, found %q", o["compression"])
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))

	if v := o["linger_ms"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errorf("option linger_ms: expected an integer >= 0, found %q", v)
		}
		opts = append(opts, kgo.ProducerLinger(time.Duration(n)*time.Millisecond))
	}
	if v := o["batch_max_bytes"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1024 {
			return nil, errorf("option batch_max_bytes: expected an integer >= 1024, found %q", v)
		}
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(n)))
	}
	if v := o["delivery_timeout_ms"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1000 { // franz-go's minimum
			return nil, errorf("option delivery_timeout_ms: expected an integer >= 1000, found %q", v)
		}
		s.deliveryTimeout = time.Duration(n) * time.Millisecond
	}
	opts = append(opts, kgo.RecordDeliveryTimeout(s.deliveryTimeout))
	switch a := strings.ToLower(o["acks"]); a {
	case "", "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader", "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "none", "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, errorf("option acks: expected all, leader (1) or none (0), found %q", o["acks"])
	}
	if err := s.parseExactlyOnce(o); err != nil {
		return nil, err
	}
	if s.exactlyOnce {
		opts = append(opts, kgo.TransactionalID(s.txnID), kgo.TransactionTimeout(s.txnTimeout))
		s.opts = opts
		return &txnSink{s}, nil
	}
	s.opts = opts
	return s, nil
}

// columnIndex finds a column by name, exactly first, then ignoring case.
func columnIndex(sc *arrow.Schema, name string) int {
	for i, f := range sc.Fields() {
		if f.Name == name {
			return i
		}
	}
	for i, f := range sc.Fields() {
		if strings.EqualFold(f.Name, name) {
			return i
		}
	}
	return -1
}

func columnNames(sc *arrow.Schema) string {
	names := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// sink is the kafka sink. Write and Flush are driven by one goroutine; the
// delivery callbacks run on the client's goroutine.
type sink struct {
	spec            arrowexec.SinkSpec
	what            string
	topic           string
	format          string
	keyCols         []int
	deliveryTimeout time.Duration
	opts            []kgo.Opt

	// Transactions (exactly_once, txn.go).
	exactlyOnce  bool
	txnID        string
	txnTimeout   time.Duration
	byCheckpoint bool     // commit only in CommitCheckpoint
	fenced       bool     // the producer ID is initialised: older producers are fenced
	inTxn        bool     // a transaction is open (begun by a Write with rows)
	aborted      error    // why the open transaction was aborted (sticky)
	topicID      [16]byte // of topic, for TxnOffsetCommit v6

	cl   *kgo.Client
	json *sinks.JSONEncoder
	csv  sinks.CSVEncoder
	// format avro: the writer schema, registered by Open.
	avroSchema string
	avroOrder  []int
	registry   *avro.RegistryClient
	avro       *avro.Encoder
	opened     bool
	closed     bool

	mu  sync.Mutex
	err error // the first permanent delivery error
	// resend holds records that failed transiently (timed out, out of
	// the client's retries): they are produced again by the next Write
	// or Flush, which the engine retries (at-least-once). cause is why
	// the first of them failed.
	resend []*kgo.Record
	cause  error
	// refused holds records the broker refused (too large, invalid): data
	// errors, handed to spec.DeadLetter (the query's failure strategy).
	refused []refusedRecord
}

type refusedRecord struct {
	r   *kgo.Record
	err error
}

var _ arrowexec.Sink = (*sink)(nil)

func (s *sink) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{s.what}, args...)...)
}

// Open creates the producer client. Brokers are contacted by the first
// Write, except with exactly_once: then Open initialises the transactional
// producer, which fences any earlier producer with the same transactional
// id and aborts its open transaction.
func (s *sink) Open(ctx context.Context) error {
	if s.opened {
		return s.errorf("opened twice")
	}
	s.opened = true
	if err := s.newClient(); err != nil {
		return err
	}
	s.json = sinks.NewJSONEncoder(s.spec.Schema)
	s.csv = sinks.CSVEncoder{Delim: ','}
	if s.format == "avro" {
		id, err := s.registry.Register(ctx, s.topic+"-value", s.avroSchema)
		if err != nil {
			return s.errorf("%w", err)
		}
		s.avro = avro.NewEncoder(id, s.avroOrder)
	}
	if s.exactlyOnce {
		return s.fence(ctx)
	}
	return nil
}

// newClient creates the client once (CommittedCheckpoint may have created
// it before Open).
func (s *sink) newClient() error {
	if s.cl != nil {
		return nil
	}
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return s.errorf("%w", err)
	}
	s.cl = cl
	return nil
}

// pending returns the first permanent delivery error, if any.
func (s *sink) pending() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// delivered sorts failed records by class (kafkasrc.MarkError): transient
// ones are kept to be sent again, refused ones to be dead-lettered (when
// the sink has a dead-letter handler), others fail the sink.
func (s *sink) delivered(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	err = markDelivery(r.Topic, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exactlyOnce {
		// A record lost from a transaction cannot be sent again into
		// it, nor dead-lettered: the transaction is aborted (settle).
		if s.err == nil {
			s.err = s.errorf("delivery to topic %s partition %d failed: %w", r.Topic, r.Partition, err)
		}
		return
	}
	switch arrowexec.Classify(err) {
	case arrowexec.ClassTransient:
		if errors.Is(err, kgo.ErrClientClosed) {
			break
		}
		s.resend = append(s.resend, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers})
		if s.cause == nil {
			s.cause = fmt.Errorf("topic %s partition %d: %w", r.Topic, r.Partition, err)
		}
		return
	case arrowexec.ClassData:
		if s.spec.DeadLetter != nil {
			s.refused = append(s.refused, refusedRecord{r, err})
			return
		}
	}
	if s.err == nil {
		s.err = s.errorf("delivery to topic %s partition %d failed: %w", r.Topic, r.Partition, err)
	}
}

// markDelivery marks the error a record failed with by its class
// (kafkasrc.MarkError), except that a topic the brokers do not know is a
// permanent error naming it: the client gave up on it after its metadata
// retries or the delivery timeout, and waiting does not create it (brokers
// that create topics on first use, as the dev broker does, never say so).
func markDelivery(topic string, err error) error {
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
		return arrowexec.Permanent(fmt.Errorf("topic %s does not exist (the brokers do not create it on first use): %w", topic, err))
	}
	return kafkasrc.MarkError(err)
}

// settle runs on the driving goroutine: it returns a permanent delivery
// error, dead-letters refused records and, with resend, produces again the
// records that failed transiently.
func (s *sink) settle(ctx context.Context, resend bool) error {
	s.mu.Lock()
	perr, refused := s.err, s.refused
	s.refused = nil
	var again []*kgo.Record
	if resend {
		again, s.resend, s.cause = s.resend, nil, nil
	}
	s.mu.Unlock()
	if perr != nil {
		if s.exactlyOnce {
			return s.abort(ctx, perr)
		}
		return perr
	}
	for _, f := range refused {
		err := s.spec.DeadLetter.DeadLetter(ctx, arrowexec.DeadLetterRecord{
			Source: fmt.Sprintf("%s (topic %s)", s.what, f.r.Topic), Position: fmt.Sprintf("partition %d", f.r.Partition),
			Reason: "refused by Kafka: " + f.err.Error(), Raw: string(f.r.Value),
		})
		if err != nil {
			return s.errorf("%w", err)
		}
	}
	pctx := context.WithoutCancel(ctx)
	for _, r := range again {
		s.cl.Produce(pctx, r, s.delivered)
	}
	return nil
}

// Write hands every row of msg to the producer as one record and returns
// without waiting for acknowledgements (Flush waits). It returns the first
// delivery error of an earlier record, if one failed meanwhile. It does not
// retain the batch: record values and keys are copies. While the client's
// buffer is full (franz-go's MaxBufferedRecords), Write blocks until
// records are acknowledged or fail; cancelling ctx does not abort records
// already handed over.
func (s *sink) Write(ctx context.Context, msg arrowexec.Message) error {
	if s.cl == nil || s.closed {
		return s.errorf("write on a sink that is not open")
	}
	if err := s.settle(ctx, true); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := msg.Batch
	if b == nil || b.NumRows() == 0 {
		return nil
	}
	n := int(b.NumRows())
	// One buffer for all values and one for all keys; records slice them.
	var vals, keys []byte
	valEnd := make([]int, n)
	keyEnd := make([]int, n)
	hasKey := make([]bool, n)
	for i := range n {
		switch s.format {
		case "csv":
			vals = s.csv.AppendRow(vals, b, i)
		case "avro":
			vals = s.avro.AppendRow(vals, b, i)
		default:
			vals = s.json.AppendRow(vals, b, i)
		}
		valEnd[i] = len(vals)
		if len(s.keyCols) > 0 {
			keys, hasKey[i] = appendKey(keys, b, s.keyCols, i)
			keyEnd[i] = len(keys)
		}
	}
	if err := s.begin(); err != nil {
		return err
	}
	pctx := context.WithoutCancel(ctx)
	headers := s.traceHeaders(ctx)
	vs, ks := 0, 0
	for i := range n {
		r := &kgo.Record{Topic: s.topic, Value: vals[vs:valEnd[i]:valEnd[i]], Headers: headers}
		if hasKey[i] {
			r.Key = keys[ks:keyEnd[i]:keyEnd[i]]
		}
		vs, ks = valEnd[i], keyEnd[i]
		s.cl.Produce(pctx, r, s.delivered)
	}
	return nil
}

// appendKey appends the key of row i built from cols and reports whether
// the row has a key (false: a nil key).
//
// Key encoding: with one key column, the key is that column's value as
// JSON would render it but without quotes around text: a VARCHAR is its
// bytes as they are (`AAPL`), a number its digits (`42`, `191.3400`), a
// TIMESTAMP `2024-01-01T00:00:05.000Z`; a NULL value gives a nil key. With
// several key columns, the key is a JSON array of their JSON values, in
// the order the columns were named: `["tech","AAPL"]`, `[null,42]`.
// Without key columns every record has a nil key, and the client spreads
// such records over the partitions (franz-go's sticky uniform-bytes
// partitioner); keyed records go to the partition Kafka's Java client
// would choose (murmur2 of the key).
func appendKey(dst []byte, b arrow.RecordBatch, cols []int, i int) ([]byte, bool) {
	if len(cols) == 1 {
		col := b.Column(cols[0])
		if col.IsNull(i) || col.DataType().ID() == arrow.NULL {
			return dst, false
		}
		switch a := col.(type) {
		case *array.String:
			return append(dst, a.Value(i)...), true
		case *array.LargeString:
			return append(dst, a.Value(i)...), true
		}
		start := len(dst)
		dst = sinks.AppendJSONValue(dst, col, i)
		if n := len(dst); n-start >= 2 && dst[start] == '"' && dst[n-1] == '"' { // TIMESTAMP, DATE
			copy(dst[start:], dst[start+1:n-1])
			dst = dst[:n-2]
		}
		return dst, true
	}
	dst = append(dst, '[')
	for k, c := range cols {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = sinks.AppendJSONValue(dst, b.Column(c), i)
	}
	return append(dst, ']'), true
}

// Flush waits until every record written so far is acknowledged or has
// failed, and returns the first delivery error (naming topic and
// partition), or ctx's error if ctx ends first. Records fail at the latest
// after delivery_timeout_ms. Records that failed transiently are kept and
// the error is marked transient (arrowexec.ErrTransient): the next Write
// or Flush (the engine's retry) produces them again. Records Kafka refused
// go to the dead-letter handler.
//
// With exactly_once, Flush makes the records durable in the open
// transaction and, unless the sink commits by checkpoint, commits it.
func (s *sink) Flush(ctx context.Context) error {
	if s.cl == nil || s.closed {
		return nil
	}
	if s.exactlyOnce {
		return s.flushTxn(ctx, !s.byCheckpoint)
	}
	if err := s.settle(ctx, true); err != nil {
		return err
	}
	if err := s.cl.Flush(ctx); err != nil {
		return s.errorf("flush: %w", err)
	}
	if err := s.settle(ctx, false); err != nil {
		return err
	}
	s.mu.Lock()
	n, cause := len(s.resend), s.cause
	s.mu.Unlock()
	if n > 0 {
		return arrowexec.Transient(s.errorf("%d records not delivered, to be sent again: %w", n, cause))
	}
	return nil
}

// Close flushes (waiting at most about the delivery timeout) and closes
// the client; records still unacknowledged then are failed. It is
// idempotent and returns the first delivery error. With exactly_once and
// checkpoints, the open transaction is aborted instead of flushed: its
// records are not covered by a checkpoint, and the next run writes them
// again.
func (s *sink) Close() error {
	if s.closed {
		return nil
	}
	if s.cl == nil {
		s.closed = true
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.deliveryTimeout+30*time.Second)
	var err error
	if s.exactlyOnce && s.byCheckpoint {
		err = s.pending()
		if s.inTxn && s.aborted == nil {
			_ = s.abort(ctx, errors.New("closed before the next checkpoint"))
		}
	} else {
		err = s.Flush(ctx)
	}
	cancel()
	s.closed = true
	s.cl.Close()
	return err
}

// traceHeaders returns the headers every record of a write carries: the
// W3C traceparent of the span in ctx, when tracing is on and there is one.
// Records share the slice (the client only reads it).
func (s *sink) traceHeaders(ctx context.Context) []kgo.RecordHeader {
	if s.spec.Tracer == nil {
		return nil
	}
	tp := s.spec.Tracer.Traceparent(ctx)
	if tp == "" {
		return nil
	}
	return []kgo.RecordHeader{{Key: kafkasrc.TraceparentHeader, Value: []byte(tp)}}
}
