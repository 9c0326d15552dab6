package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newCluster(t *testing.T, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

var tradeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "sector", Type: sqltypes.Varchar, Nullable: true},
	{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
	{Name: "price", Type: sqltypes.Decimal(18, 4), Nullable: true},
	{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
	{Name: "ts", Type: sqltypes.Timestamp, Nullable: true},
}, nil)

type trade struct {
	sector, ticker string
	price          int64 // in 1/10000
	volume         int64
	ts             int64
}

// tradeBatch builds a batch of tradeSchema; an empty sector is NULL.
func tradeBatch(mem memory.Allocator, rows ...trade) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, tradeSchema)
	defer b.Release()
	for _, r := range rows {
		if r.sector == "" {
			b.Field(0).AppendNull()
		} else {
			b.Field(0).(*array.StringBuilder).Append(r.sector)
		}
		b.Field(1).(*array.StringBuilder).Append(r.ticker)
		b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(r.price))
		b.Field(3).(*array.Int64Builder).Append(r.volume)
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts))
	}
	return b.NewRecordBatch()
}

func newSink(t *testing.T, c *kfake.Cluster, key []string, extra ...string) arrowexec.Sink {
	t.Helper()
	o := arrowexec.Options{"connector": "kafka", "topic": "out", "brokers": strings.Join(c.ListenAddrs(), ",")}
	for i := 0; i+1 < len(extra); i += 2 {
		o[extra[i]] = extra[i+1]
	}
	s, err := NewSink(kafkasrc.Config{}, arrowexec.SinkSpec{Name: "out", Schema: tradeSchema, Key: key, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// consume reads n records of topic from the start.
func consume(t *testing.T, c *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if err := f.Err0(); err != nil {
			t.Fatalf("consume %d of %d: %v", len(out), n, err)
		}
		out = append(out, f.Records()...)
	}
	return out
}

var trades = []trade{
	{"tech", "AAPL", 1913400, 100, 1704067205000},
	{"finance", "BAC", 336440, 1386, 1704067206000},
	{"", "X\"Y", -5000, 7, 0},
}

func TestWriteJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []string
		opts []string
		keys []string // expected, "<nil>" for none
	}{
		{"no key", nil, nil, []string{"<nil>", "<nil>", "<nil>"}},
		{"single key", []string{"ticker"}, []string{"compression", "zstd"}, []string{"AAPL", "BAC", `X"Y`}},
		{"composite key", []string{"sector", "ticker"}, []string{"compression", "none", "linger_ms", "0"}, []string{`["tech","AAPL"]`, `["finance","BAC"]`, `[null,"X\"Y"]`}},
		{"key option overrides", []string{"sector"}, []string{"key", "volume", "compression", "gzip", "acks", "leader"}, []string{"100", "1386", "7"}},
		{"timestamp key, null key", nil, []string{"key", "ts", "compression", "snappy", "batch_max_bytes", "65536"}, []string{"2024-01-01T00:00:05.000Z", "2024-01-01T00:00:06.000Z", "1970-01-01T00:00:00.000Z"}},
		{"null single key", nil, []string{"key", "SECTOR"}, []string{"tech", "finance", "<nil>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, "out")
			mem := checkedAlloc(t)
			s := newSink(t, c, tc.key, tc.opts...)
			ctx := context.Background()
			if err := s.Open(ctx); err != nil {
				t.Fatal(err)
			}
			b1 := tradeBatch(mem, trades[:2]...)
			b2 := tradeBatch(mem, trades[2:]...)
			for _, b := range []arrow.RecordBatch{b1, b2} {
				if err := s.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
					t.Fatal(err)
				}
				b.Release()
			}
			if err := s.Write(ctx, arrowexec.Message{Watermark: 5}); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			recs := consume(t, c, "out", 3)
			want := []string{
				`{"sector":"tech","ticker":"AAPL","price":191.3400,"volume":100,"ts":"2024-01-01T00:00:05.000Z"}`,
				`{"sector":"finance","ticker":"BAC","price":33.6440,"volume":1386,"ts":"2024-01-01T00:00:06.000Z"}`,
				`{"sector":null,"ticker":"X\"Y","price":-0.5000,"volume":7,"ts":"1970-01-01T00:00:00.000Z"}`,
			}
			got := map[string]string{}
			for _, r := range recs {
				k := "<nil>"
				if r.Key != nil {
					k = string(r.Key)
				}
				got[string(r.Value)] = k
			}
			for i, v := range want {
				k, ok := got[v]
				if !ok {
					t.Errorf("no record %s; got %v", v, got)
					continue
				}
				if k != tc.keys[i] {
					t.Errorf("record %s: key %q, want %q", v, k, tc.keys[i])
				}
			}
			// The same key always lands in the same partition.
			if len(tc.key) > 0 {
				parts := map[string]int32{}
				for _, r := range recs {
					if p, ok := parts[string(r.Key)]; ok && p != r.Partition {
						t.Errorf("key %s in partitions %d and %d", r.Key, p, r.Partition)
					}
					parts[string(r.Key)] = r.Partition
				}
			}
		})
	}
}

func TestWriteCSV(t *testing.T) {
	c := newCluster(t, 1, "out")
	mem := checkedAlloc(t)
	s := newSink(t, c, nil, "format", "csv")
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	b := tradeBatch(mem, trades...)
	if err := s.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
	b.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recs := consume(t, c, "out", 3)
	want := []string{
		`tech,AAPL,191.3400,100,2024-01-01T00:00:05.000Z`,
		`finance,BAC,33.6440,1386,2024-01-01T00:00:06.000Z`,
		`,"X""Y",-0.5000,7,1970-01-01T00:00:00.000Z`,
	}
	for i, r := range recs {
		if string(r.Value) != want[i] {
			t.Errorf("record %d = %q, want %q", i, r.Value, want[i])
		}
	}
}

// TestDeliveryError: producing to a cluster that went away fails within the
// delivery timeout instead of hanging, with a transient error (the engine
// retries); the records are kept and sent again by the next Write or Flush,
// and Close reports them if they still fail.
func TestDeliveryError(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "out"))
	if err != nil {
		t.Fatal(err)
	}
	mem := checkedAlloc(t)
	s := newSink(t, c, nil, "delivery_timeout_ms", "1000")
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	b := tradeBatch(mem, trades...)
	defer b.Release()
	if err := s.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Flush(fctx)
	if err == nil || fctx.Err() != nil {
		t.Fatalf("Flush after %v: %v", time.Since(start), err)
	}
	t.Logf("after %v: %v", time.Since(start), err)
	if !strings.Contains(err.Error(), `kafka sink "out"`) || !strings.Contains(err.Error(), "topic out partition") {
		t.Errorf("error %q does not name the sink, topic and partition", err)
	}
	if !errors.Is(err, arrowexec.ErrTransient) {
		t.Errorf("delivery timeout %v is not transient", err)
	}
	if err := s.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
		t.Errorf("Write after a transient delivery error (sends again): %v", err)
	}
	if err := s.Close(); err == nil {
		t.Error("Close did not report the delivery error")
	}
}

// TestMissingTopic: records for a topic that does not exist (the broker
// does not create topics) fail permanently, naming the topic: retrying does
// not create it.
func TestMissingTopic(t *testing.T) {
	c := newCluster(t, 1, "other")
	mem := checkedAlloc(t)
	s := newSink(t, c, nil, "topic", "absent", "delivery_timeout_ms", "1000")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	b := tradeBatch(mem, trades[0])
	defer b.Release()
	if err := s.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Flush(ctx)
	t.Logf("after %v: %v", time.Since(start), err)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "topic absent does not exist") {
		t.Errorf("Flush: %v", err)
	}
	if !errors.Is(err, arrowexec.ErrPermanent) {
		t.Errorf("missing topic %v is not permanent", err)
	}
	start = time.Now()
	if err := s.Close(); err == nil || time.Since(start) > time.Second {
		t.Errorf("Close after %v: %v", time.Since(start), err)
	}
}

func TestSinkOptionErrors(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "")
	cases := []struct {
		opts arrowexec.Options
		key  []string
		want string
	}{
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "colour": "red"}, nil, `unknown option "colour"`},
		{arrowexec.Options{"brokers": "x:1"}, nil, "option topic is required"},
		{arrowexec.Options{"topic": "t"}, nil, "no Kafka brokers"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "format": "parquet"}, nil, `format "parquet"`},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "format": "avro"}, nil, "format avro needs option schema_registry"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "compression": "brotli"}, nil, "compression"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "acks": "some"}, nil, "acks"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "key": "nope"}, nil, `key column "nope"`},
		{arrowexec.Options{"topic": "t", "brokers": "x:1"}, []string{"missing"}, `key column "missing"`},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "linger_ms": "-1"}, nil, "linger_ms"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "batch_max_bytes": "10"}, nil, "batch_max_bytes"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "delivery_timeout_ms": "999"}, nil, "delivery_timeout_ms"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "security_protocol": "sasl_ssl", "sasl_username": "u"}, nil, "sasl_username and sasl_password"},
	}
	for _, tc := range cases {
		_, err := NewSink(kafkasrc.Config{}, arrowexec.SinkSpec{Name: "out", Schema: tradeSchema, Key: tc.key, Options: tc.opts})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := NewSink(kafkasrc.Config{Brokers: []string{"x:1"}}, arrowexec.SinkSpec{Name: "out", Schema: tradeSchema, Options: arrowexec.Options{"topic": "t"}}); err != nil {
		t.Errorf("config brokers: %v", err)
	}
	var cs arrowexec.Connectors
	Register(&cs, kafkasrc.Config{})
	if _, err := cs.Sink("kafka"); err != nil {
		t.Error(err)
	}
}
