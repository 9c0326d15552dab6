package kafka

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTopologyKafkaToKafka runs a kafka source through a pass-through query
// into a kafka sink with the engine: every record arrives, keyed, and the
// source's consumer group commits the end of the input.
func TestTopologyKafkaToKafka(t *testing.T) {
	c := newCluster(t, 3, "in", "out")
	mem := checkedAlloc(t)
	var want []string
	var recs []*kgo.Record
	for i := range 90 {
		v := fmt.Sprintf(`{"ticker":"T%d","volume":%d}`, i%7, i)
		want = append(want, "T"+fmt.Sprint(i%7)+" "+v)
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 3), Value: []byte(v)})
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

	var cs arrowexec.Connectors
	cfg := kafkasrc.Config{Brokers: c.ListenAddrs()}
	kafkasrc.Register(&cs, cfg)
	Register(&cs, cfg)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
		{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
	}, nil)
	srcF, _ := cs.Source("kafka")
	src, err := srcF(arrowexec.SourceSpec{Name: "trades", Schema: schema, Alloc: mem, BatchSize: 8,
		Options: arrowexec.Options{"topic": "in", "group_id": "e2e", "end_offset": "latest", "linger_ms": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	sinkF, _ := cs.Sink("kafka")
	snk, err := sinkF(arrowexec.SinkSpec{Name: "copy", Schema: schema, Key: []string{"ticker"}, Alloc: mem,
		Options: arrowexec.Options{"topic": "out", "linger_ms": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	in := arrowexec.NewInlet(schema, 4)
	topo := &arrowexec.Topology{
		Sources: []*arrowexec.SourceNode{{Stream: "trades", Op: src}},
		Queries: []*arrowexec.QueryNode{{Name: "copy", Root: in, Inputs: []arrowexec.Subscription{{Stream: "trades", Inlet: in}}, Sinks: []arrowexec.Sink{snk}}},
	}
	if err := topo.Run(ctx); err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, r := range consume(t, c, "out", 90) {
		got = append(got, string(r.Key)+" "+string(r.Value))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("out:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if o, ok := offs.Lookup("in", p); !ok || o.At != 30 {
			t.Errorf("group e2e partition %d committed %+v, want 30", p, o)
		}
	}
}
