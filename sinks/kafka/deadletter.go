package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DeadLetterTimeout bounds how long one dead-letter record may take to be
// acknowledged (the client retries meanwhile); a record that takes longer
// fails with a transient error, which the engine retries.
const DeadLetterTimeout = 30 * time.Second

// DeadLetterTopic is a dead-letter sink writing to a Kafka topic (the
// dead_letter_topic option or setting): one record per bad record, its
// value the JSON object sinks.DeadLetterFile writes as a line (the fields
// of arrowexec.DeadLetterRecord, time in RFC 3339 UTC), its key the
// record's source. Each DeadLetter call returns once the record is
// acknowledged (acks = all, idempotent producer), so a record the engine
// has dead-lettered is durable before the source's offsets move past it.
// The client is created by the first record: a clean run never connects.
// It is safe for concurrent use.
type DeadLetterTopic struct {
	what  string
	topic string
	opts  []kgo.Opt
	count atomic.Int64

	mu     sync.Mutex
	cl     *kgo.Client
	closed bool
}

var _ arrowexec.DeadLetterSink = (*DeadLetterTopic)(nil)

// NewDeadLetterTopic returns a dead-letter sink for spec.Topic. Brokers and
// security options come from spec.Options when they are a kafka stream's
// or sink's options, else from cfg (then $KAFKA_BROKERS), as for the Kafka
// connectors (kafkasrc.ClientOptions). It does not connect.
func NewDeadLetterTopic(cfg kafkasrc.Config, spec arrowexec.DeadLetterSpec) (*DeadLetterTopic, error) {
	what := fmt.Sprintf("dead-letter topic %s", spec.Topic)
	conn := arrowexec.Options{}
	if spec.Options["connector"] == "kafka" {
		for k, v := range spec.Options {
			if slices.Contains(kafkasrc.ClientOptionNames, k) {
				conn[k] = v
			}
		}
	}
	opts, err := kafkasrc.ClientOptions(cfg, what, spec.BaseDir, conn)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.DefaultProduceTopic(spec.Topic), kgo.RecordDeliveryTimeout(DeadLetterTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	return &DeadLetterTopic{what: what, topic: spec.Topic, opts: opts}, nil
}

// Topic is the topic records go to.
func (d *DeadLetterTopic) Topic() string { return d.topic }

// Count is the number of records acknowledged.
func (d *DeadLetterTopic) Count() int64 { return d.count.Load() }

func (d *DeadLetterTopic) client() (*kgo.Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%s: closed", d.what)
	}
	if d.cl == nil {
		cl, err := kgo.NewClient(d.opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.what, err)
		}
		d.cl = cl
	}
	return d.cl, nil
}

// DeadLetter implements arrowexec.DeadLetter: it produces rec and waits for
// its acknowledgement. A zero rec.Time is set to now. Errors are marked
// with their class (markDelivery: a missing topic is permanent): a
// transient one is retried by the engine's failure strategy.
func (d *DeadLetterTopic) DeadLetter(ctx context.Context, rec arrowexec.DeadLetterRecord) error {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return fmt.Errorf("%s: %w", d.what, err)
	}
	value := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	cl, err := d.client()
	if err != nil {
		return err
	}
	r := &kgo.Record{Topic: d.topic, Key: []byte(rec.Source), Value: value}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("%s: %w", d.what, markDelivery(d.topic, err))
	}
	d.count.Add(1)
	return nil
}

// Close closes the client (every record was acknowledged by DeadLetter).
// It is idempotent; records arriving afterwards are an error.
func (d *DeadLetterTopic) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.cl != nil {
		d.cl.Close()
		d.cl = nil
	}
	return nil
}
