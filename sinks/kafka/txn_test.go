package kafka

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readTopic reads topic from the start with the given isolation level until
// it has want records or wait passes, and returns the tickers read (in
// offset order per partition; the test topics have one partition).
func readTopic(t *testing.T, c *kfake.Cluster, topic string, committed bool, want int, wait time.Duration) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []string
	for len(out) < want || want == 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if err := f.Err0(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		f.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			i := strings.Index(v, `"ticker":"`)
			v = v[i+len(`"ticker":"`):]
			out = append(out, v[:strings.IndexByte(v, '"')])
		})
	}
	return out
}

// noOpenTxn fails unless partition 0 of topic has no open transaction: its
// last stable offset (what read_committed readers may reach) is its high
// watermark.
func noOpenTxn(t *testing.T, c *kfake.Cluster, topic, what string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := end.Lookup(topic, 0)
	l, _ := stable.Lookup(topic, 0)
	if e.Err != nil || l.Err != nil || e.Offset != l.Offset {
		t.Fatalf("%s: last stable offset %d (%v), high watermark %d (%v): a transaction is open", what, l.Offset, l.Err, e.Offset, e.Err)
	}
}

func newTxnSink(t *testing.T, c *kfake.Cluster, extra ...string) *txnSink {
	t.Helper()
	s := newSink(t, c, nil, append([]string{"exactly_once", "true", "linger_ms", "0"}, extra...)...)
	ts, ok := s.(*txnSink)
	if !ok {
		t.Fatalf("exactly_once sink is a %T, want *txnSink", s)
	}
	return ts
}

func writeTrades(t *testing.T, s arrowexec.Sink, mem memory.Allocator, tickers ...string) {
	t.Helper()
	var rows []trade
	for _, tk := range tickers {
		rows = append(rows, trade{"tech", tk, 10000, 1, 0})
	}
	b := tradeBatch(mem, rows...)
	defer b.Release()
	if err := s.Write(context.Background(), arrowexec.Message{Batch: b}); err != nil {
		t.Fatal(err)
	}
}

// TestExactlyOnceCommitsAtFlush: without checkpoints, records written are
// on the broker but invisible to read_committed consumers until Flush
// commits their transaction.
func TestExactlyOnceCommitsAtFlush(t *testing.T) {
	c := newCluster(t, 1, "out")
	mem := checkedAlloc(t)
	ctx := context.Background()
	s := newTxnSink(t, c)
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	writeTrades(t, s, mem, "A", "B", "C")
	if err := s.cl.Flush(ctx); err != nil { // on the broker, transaction open
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", false, 3, 5*time.Second); !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Fatalf("read_uncommitted before Flush: %v, want A B C on the broker", got)
	}
	if got := readTopic(t, c, "out", true, 0, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("read_committed before Flush: %v, want nothing", got)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", true, 3, 5*time.Second); !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Fatalf("read_committed after Flush: %v, want A B C", got)
	}
	writeTrades(t, s, mem, "D")
	if err := s.Close(); err != nil { // Close flushes, so commits
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", true, 4, 5*time.Second); !slices.Equal(got, []string{"A", "B", "C", "D"}) {
		t.Fatalf("read_committed after Close: %v, want A B C D", got)
	}
}

// TestExactlyOnceByCheckpoint: with CommitByCheckpoint, output becomes
// visible only with CommitCheckpoint, which records the checkpoint id
// atomically; a run that crashes with an open transaction is fenced by
// the next one, and its records never become visible.
func TestExactlyOnceByCheckpoint(t *testing.T) {
	c := newCluster(t, 1, "out")
	mem := checkedAlloc(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	committed := func(what string, want int64) {
		t.Helper()
		s := newTxnSink(t, c)
		s.CommitByCheckpoint()
		id, err := s.CommittedCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if id != want {
			t.Fatalf("%s: committed checkpoint %d, want %d", what, id, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	a := newTxnSink(t, c)
	a.CommitByCheckpoint()
	if id, err := a.CommittedCheckpoint(ctx); err != nil || id != 0 {
		t.Fatalf("first run: committed checkpoint %d, %v; want 0", id, err)
	}
	if err := a.Open(ctx); err != nil {
		t.Fatal(err)
	}
	writeTrades(t, a, mem, "A", "B", "C")
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", true, 0, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("read_committed after Flush, before the checkpoint commit: %v, want nothing", got)
	}
	if err := a.CommitCheckpoint(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", true, 3, 5*time.Second); !slices.Equal(got, []string{"A", "B", "C"}) {
		t.Fatalf("read_committed after CommitCheckpoint: %v, want A B C", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	committed("after checkpoint 7, from a fresh sink", 7)

	// Run b writes and flushes, then crashes before its next checkpoint
	// commits: its client goes away with the transaction open.
	b := newTxnSink(t, c)
	b.CommitByCheckpoint()
	if id, err := b.CommittedCheckpoint(ctx); err != nil || id != 7 {
		t.Fatalf("second run: committed checkpoint %d, %v; want 7", id, err)
	}
	if err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	writeTrades(t, b, mem, "X", "Y")
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", false, 5, 5*time.Second); len(got) != 5 {
		t.Fatalf("read_uncommitted: %v, want the 2 uncommitted records on the broker too", got)
	}
	b.cl.Close() // the crash: no EndTransaction
	b.closed = true

	// Run c recovers: the crashed transaction is aborted, checkpoint 7
	// is still the last committed, and c's own output follows A B C.
	cs := newTxnSink(t, c)
	cs.CommitByCheckpoint()
	if id, err := cs.CommittedCheckpoint(ctx); err != nil || id != 7 {
		t.Fatalf("after the crash: committed checkpoint %d, %v; want 7", id, err)
	}
	if err := cs.Open(ctx); err != nil {
		t.Fatal(err)
	}
	noOpenTxn(t, c, "out", "after the recovering run opened")
	writeTrades(t, cs, mem, "D")
	if err := cs.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cs.CommitCheckpoint(ctx, 8); err != nil {
		t.Fatal(err)
	}
	if got := readTopic(t, c, "out", true, 4, 5*time.Second); !slices.Equal(got, []string{"A", "B", "C", "D"}) {
		t.Fatalf("read_committed after recovery: %v, want A B C D (never X, Y)", got)
	}
	if got := readTopic(t, c, "out", true, 5, time.Second); len(got) != 4 {
		t.Fatalf("read_committed after recovery: %v, want exactly A B C D", got)
	}
	// A checkpoint with no output since the last one still advances the
	// marker.
	if err := cs.CommitCheckpoint(ctx, 9); err != nil {
		t.Fatal(err)
	}
	// Close with an open transaction aborts it: not committed, not
	// pending (read_committed readers are not held up).
	writeTrades(t, cs, mem, "Z")
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	noOpenTxn(t, c, "out", "after Close")
	if got := readTopic(t, c, "out", true, 5, time.Second); len(got) != 4 {
		t.Fatalf("read_committed after Close: %v, want A B C D", got)
	}
	committed("after an empty checkpoint 9 and a Close", 9)
}

// TestExactlyOnceOptions checks the options and that a sink without
// exactly_once is not transactional.
func TestExactlyOnceOptions(t *testing.T) {
	c := newCluster(t, 1, "out")
	if _, ok := newSink(t, c, nil).(arrowexec.TransactionalSink); ok {
		t.Fatal("a sink without exactly_once is a TransactionalSink")
	}
	s := newTxnSink(t, c)
	if s.txnID != "ferris.out.out" || s.checkpointGroup() != "ferris.out.out.checkpoints" || s.txnTimeout != DefaultTransactionTimeout {
		t.Fatalf("defaults: id %q, timeout %v", s.txnID, s.txnTimeout)
	}
	s = newTxnSink(t, c, "transactional_id", "p1-out", "transaction_timeout_ms", "90000")
	if s.txnID != "p1-out" || s.txnTimeout != 90*time.Second {
		t.Fatalf("set: id %q, timeout %v", s.txnID, s.txnTimeout)
	}
	for _, tc := range []struct{ opts []string }{
		{[]string{"exactly_once", "yes"}},
		{[]string{"transactional_id", "x"}},
		{[]string{"exactly_once", "true", "acks", "leader"}},
		{[]string{"exactly_once", "true", "transaction_timeout_ms", "5"}},
		{[]string{"exactly_once", "true", "transactional_id", " "}},
	} {
		o := arrowexec.Options{"connector": "kafka", "topic": "out", "brokers": strings.Join(c.ListenAddrs(), ",")}
		for i := 0; i+1 < len(tc.opts); i += 2 {
			o[tc.opts[i]] = tc.opts[i+1]
		}
		if _, err := NewSink(kafkasrc.Config{}, arrowexec.SinkSpec{Name: "out", Schema: tradeSchema, Options: o}); err == nil {
			t.Errorf("%v: no error", tc.opts)
		}
	}
}

// TestExactlyOnceDeliveryFailureAborts: a record that cannot be delivered
// aborts the transaction and fails the sink for good (permanent, not
// retried into the transaction), and nothing becomes visible.
func TestExactlyOnceDeliveryFailureAborts(t *testing.T) {
	c := newCluster(t, 1, "out")
	mem := checkedAlloc(t)
	s := newTxnSink(t, c, "delivery_timeout_ms", "1000")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	writeTrades(t, s, mem, "A")
	if err := s.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A record for a topic that does not exist fails in the same
	// transaction.
	s.cl.Produce(ctx, &kgo.Record{Topic: "absent", Value: []byte("x")}, s.delivered)
	err := s.Flush(ctx)
	if err == nil || ctx.Err() != nil || arrowexec.Classify(err) != arrowexec.ClassPermanent || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("Flush: %v (%v), want a permanent abort", err, arrowexec.Classify(err))
	}
	b := tradeBatch(mem, trade{"tech", "B", 1, 1, 0})
	defer b.Release()
	if err := s.Write(ctx, arrowexec.Message{Batch: b}); err == nil {
		t.Fatal("Write after an aborted transaction succeeded")
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close did not report the failure")
	}
	if got := readTopic(t, c, "out", true, 0, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("read_committed: %v, want nothing", got)
	}
	noOpenTxn(t, c, "out", "after the abort")
}
