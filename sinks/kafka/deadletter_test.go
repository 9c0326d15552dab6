package kafka

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeadLetterTopicPipeline: with SET dead_letter_topic, a pipeline's bad
// records go to that Kafka topic as the JSON records the dead-letter file
// holds; the good rows are processed.
func TestDeadLetterTopicPipeline(t *testing.T) {
	c := newCluster(t, 1, "dlq")
	dir := t.TempDir()
	in := `{"ticker":"AAPL","volume":100}
{"ticker":"MSFT","volume":"lots"}
not json
{"ticker":"JPM","volume":5400}
`
	if err := os.WriteFile(filepath.Join(dir, "trades.jsonl"), []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `SET dead_letter_topic = 'dlq';
CREATE STREAM trades (ticker VARCHAR, volume BIGINT) WITH (connector = 'file', path = 'trades.jsonl');
CREATE STREAM copy AS SELECT ticker, volume FROM trades WITH (connector = 'file', path = 'out.jsonl');`
	p, err := plan.Compile(src, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	Register(conns, kafkasrc.Config{Brokers: c.ListenAddrs()})
	file := sinks.NewDeadLetterFile(filepath.Join(dir, "unused.jsonl"))
	topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, 0), BaseDir: dir,
		CorrelationID: "feedbeef", DeadLetter: func(string) arrowexec.DeadLetter { return file }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := topo.Run(ctx); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if got := string(out); got != "{\"ticker\":\"AAPL\",\"volume\":100}\n{\"ticker\":\"JPM\",\"volume\":5400}\n" {
		t.Fatalf("output %q", got)
	}
	if file.Count() != 0 {
		t.Fatalf("%d records in the dead-letter file", file.Count())
	}
	if n := topo.SourceStats("trades").DeadLettered.Load(); n != 2 {
		t.Fatalf("%d dead-lettered", n)
	}
	recs := consume(t, c, "dlq", 2)
	var got []string
	for _, r := range recs {
		var d arrowexec.DeadLetterRecord
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("%s: %v", r.Value, err)
		}
		if d.Time.IsZero() || time.Since(d.Time) > time.Minute || d.Query != "copy" || string(r.Key) != d.Source {
			t.Errorf("record %s (key %q)", r.Value, r.Key)
		}
		got = append(got, d.Source+"|"+d.Position+"|"+d.Field+"|"+d.Reason+"|"+d.Raw)
	}
	slices.Sort(got)
	want := []string{
		`trades (trades.jsonl)|line 2|volume|expected BIGINT, found "lots"|{"ticker":"MSFT","volume":"lots"}`,
		`trades (trades.jsonl)|line 3||invalid JSON: expected an object|not json`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("dead letters\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDeadLetterTopicNeedsBrokers: a dead-letter topic without brokers is
// a build error.
func TestDeadLetterTopicNeedsBrokers(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "")
	_, err := NewDeadLetterTopic(kafkasrc.Config{}, arrowexec.DeadLetterSpec{Topic: "dlq"})
	if err == nil || !strings.Contains(err.Error(), "no Kafka brokers") {
		t.Fatalf("got %v", err)
	}
}

type recordingDL struct {
	mu   sync.Mutex
	recs []arrowexec.DeadLetterRecord
}

func (d *recordingDL) DeadLetter(_ context.Context, r arrowexec.DeadLetterRecord) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs = append(d.recs, r)
	return nil
}

// TestSinkRefusedRecordIsDeadLettered: a record Kafka refuses (too large)
// is a data error: it goes to the sink's dead-letter handler and the other
// records are delivered.
func TestSinkRefusedRecordIsDeadLettered(t *testing.T) {
	c := newCluster(t, 1, "out")
	mem := checkedAlloc(t)
	dl := &recordingDL{}
	s, err := NewSink(kafkasrc.Config{}, arrowexec.SinkSpec{Name: "out", Schema: tradeSchema, DeadLetter: dl,
		Options: arrowexec.Options{"topic": "out", "brokers": strings.Join(c.ListenAddrs(), ","), "batch_max_bytes": "1024"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	b := tradeBatch(mem, trade{"tech", "AAPL", 1, 1, 0}, trade{"tech", strings.Repeat("X", 2000), 2, 2, 0}, trade{"tech", "MSFT", 3, 3, 0})
	defer b.Release()
	if err := s.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(dl.recs) != 1 || !strings.Contains(dl.recs[0].Reason, "MESSAGE_TOO_LARGE") || !strings.Contains(dl.recs[0].Raw, "XXXX") ||
		dl.recs[0].Source != `kafka sink "out" (topic out)` {
		t.Fatalf("dead letters %+v", dl.recs)
	}
	if got := consume(t, c, "out", 2); len(got) != 2 {
		t.Fatalf("%d records delivered", len(got))
	}
}

// TestSinkResendsAfterTransientFailure: the broker refuses produce requests
// with a retriable error for longer than the delivery timeout; Flush fails
// transiently, the guard retries it, the sink sends the records again, and
// each arrives once.
func TestSinkResendsAfterTransientFailure(t *testing.T) {
	c := newCluster(t, 1, "out")
	mem := checkedAlloc(t)
	var failing atomic.Bool
	failing.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	// Without idempotence (acks = leader) the client gives records up after
	// the delivery timeout; an idempotent producer retries them itself.
	s := newSink(t, c, nil, "delivery_timeout_ms", "1000", "acks", "leader")
	var st arrowexec.FaultStats
	g := arrowexec.NewGuard("sink kafka", arrowexec.RetryPolicy{MaxRetries: 10, InitialDelay: 100 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Multiplier: 2},
		arrowexec.BreakerConfig{}, nil)
	g.Bind(&st)
	gs := arrowexec.GuardSink(s, g, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gs.Open(ctx); err != nil {
		t.Fatal(err)
	}
	b := tradeBatch(mem, trades...)
	defer b.Release()
	if err := gs.Write(ctx, arrowexec.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
	go func() { // the broker recovers once the sink has had to retry
		for st.RetriesTotal.Load() == 0 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		failing.Store(false)
	}()
	start := time.Now()
	if err := gs.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st.RetriesTotal.Load() == 0 {
		t.Fatal("no retry")
	}
	if err := gs.Close(); err != nil {
		t.Fatal(err)
	}
	got := consume(t, c, "out", len(trades))
	if len(got) != len(trades) {
		t.Fatalf("%d records, want %d", len(got), len(trades))
	}
	t.Logf("%d retries, flushed after %v", st.RetriesTotal.Load(), time.Since(start))
}
