package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
)

// spanTracer is an arrowexec.Tracer that samples everything and remembers
// each span's name and links; span ids are sequence numbers.
type spanTracer struct {
	mu    sync.Mutex
	spans []struct {
		name  string
		links []string
	}
}

type spanID struct{}

func (s *spanTracer) StartSpan(ctx context.Context, name string, _ []arrowexec.Attr, links ...string) (context.Context, func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, struct {
		name  string
		links []string
	}{name, links})
	return context.WithValue(ctx, spanID{}, len(s.spans)), func(error) {}
}

func (s *spanTracer) Recording(ctx context.Context) bool { return ctx.Value(spanID{}) != nil }

func (s *spanTracer) Traceparent(ctx context.Context) string {
	id, ok := ctx.Value(spanID{}).(int)
	if !ok {
		return ""
	}
	return fmt.Sprintf("00-%032x-%016x-01", 7, id)
}

// TestTraceparentThroughKafka: the source links a span per batch to the
// traceparent headers of its records, and the sink writes the traceparent
// of the write's span on every record.
func TestTraceparentThroughKafka(t *testing.T) {
	c := newCluster(t, 1, "in", "out")
	mem := checkedAlloc(t)
	upstream := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "in", Value: []byte(fmt.Sprintf(`{"ticker":"T","volume":%d}`, i)),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(upstream)}}})
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pcl.Close()

	tr := &spanTracer{}
	var cs arrowexec.Connectors
	cfg := kafkasrc.Config{Brokers: c.ListenAddrs()}
	kafkasrc.Register(&cs, cfg)
	Register(&cs, cfg)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
		{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
	}, nil)
	srcF, _ := cs.Source("kafka")
	src, err := srcF(arrowexec.SourceSpec{Name: "trades", Schema: schema, Alloc: mem, BatchSize: 4, Tracer: tr,
		Options: arrowexec.Options{"topic": "in", "end_offset": "latest", "linger_ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	sinkF, _ := cs.Sink("kafka")
	snk, err := sinkF(arrowexec.SinkSpec{Name: "copy", Schema: schema, Alloc: mem, Tracer: tr,
		Options: arrowexec.Options{"topic": "out", "linger_ms": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	q := &arrowexec.QueryNode{Name: "copy", Sinks: []arrowexec.Sink{snk}}
	in := arrowexec.NewInlet(schema, 4)
	q.Inputs = []arrowexec.Subscription{{Stream: "trades", Inlet: in}}
	q.Root = q.Instrument(in, "Inlet", "trades", 0)
	topo := &arrowexec.Topology{Sources: []*arrowexec.SourceNode{{Stream: "trades", Op: src}},
		Queries: []*arrowexec.QueryNode{q}, Tracer: tr}
	if err := topo.Run(ctx); err != nil {
		t.Fatal(err)
	}

	sourceSpans := 0
	for _, s := range tr.spans {
		if s.name == "ferris.kafka.source.batch" {
			sourceSpans++
			if len(s.links) != 1 || s.links[0] != upstream {
				t.Fatalf("source batch span links %v, want the producer's traceparent", s.links)
			}
		}
	}
	if sourceSpans < 3 {
		t.Fatalf("%d source batch spans for 10 records in batches of 4", sourceSpans)
	}
	out := consume(t, c, "out", 10)
	for _, r := range out {
		if len(r.Headers) != 1 || r.Headers[0].Key != "traceparent" || len(r.Headers[0].Value) != 55 {
			t.Fatalf("record headers %v", r.Headers)
		}
	}
}

// TestSourceReportsLag: the records not yet returned by the source are
// its consumer lag.
func TestSourceReportsLag(t *testing.T) {
	c := newCluster(t, 2, "in")
	mem := checkedAlloc(t)
	var recs []*kgo.Record
	for i := range 50 {
		recs = append(recs, &kgo.Record{Topic: "in", Partition: 0, Value: []byte(fmt.Sprintf(`{"ticker":"T","volume":%d}`, i))})
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pcl.Close()
	schema := arrow.NewSchema([]arrow.Field{{Name: "ticker", Type: sqltypes.Varchar, Nullable: true}, {Name: "volume", Type: sqltypes.BigInt, Nullable: true}}, nil)
	op, err := kafkasrc.NewSource(kafkasrc.Config{Brokers: c.ListenAddrs()}, arrowexec.SourceSpec{Name: "s", Schema: schema, Alloc: mem, BatchSize: 10,
		Options: arrowexec.Options{"topic": "in", "linger_ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	lr, ok := arrowexec.SourceAs[arrowexec.LagReporter](arrowexec.NewWatermarkAssigner(mem, op, arrowexec.EventTimeConfig{}))
	if !ok {
		t.Fatal("the kafka source is no LagReporter (through a watermark assigner)")
	}
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	var rows int64
	for rows < 20 {
		msg, err := op.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows += msg.Rows()
		msg.Release()
	}
	if lag := lr.Lag(); lag[0] != 50-rows {
		t.Fatalf("lag %v after %d rows, want partition 0: %d", lag, rows, 50-rows)
	}
}
