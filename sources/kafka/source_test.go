package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// recorder is a DeadLetter that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	recs []arrowexec.DeadLetterRecord
}

func (r *recorder) DeadLetter(_ context.Context, rec arrowexec.DeadLetterRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}

func newCluster(t *testing.T, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes recs synchronously, each to its Partition.
func produce(t *testing.T, c *kfake.Cluster, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

func field(name string, t arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable}
}

var sysFields = []arrow.Field{
	field(KeyColumn, sqltypes.Varchar, true),
	field(PartitionColumn, sqltypes.Int, false),
	field(OffsetColumn, sqltypes.BigInt, false),
	field(TimestampColumn, sqltypes.Timestamp, false),
}

// newSource builds a kafka source over the cluster; extra are option
// name/value pairs.
func newSource(t *testing.T, c *kfake.Cluster, mem memory.Allocator, schema *arrow.Schema, dl arrowexec.DeadLetter, extra ...string) *source {
	t.Helper()
	o := arrowexec.Options{"connector": "kafka", "brokers": strings.Join(c.ListenAddrs(), ",")}
	for i := 0; i+1 < len(extra); i += 2 {
		o[extra[i]] = extra[i+1]
	}
	op, err := NewSource(Config{}, arrowexec.SourceSpec{Name: "s", Schema: schema, Options: o, Alloc: mem, DeadLetter: dl, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return op.(*source)
}

// renderRow renders row i as "v1|v2|..." with NULL as "null".
func renderRow(rec arrow.RecordBatch, i int) string {
	parts := make([]string, rec.NumCols())
	for c, col := range rec.Columns() {
		switch a := col.(type) {
		case *array.Timestamp:
			if !a.IsNull(i) {
				parts[c] = time.UnixMilli(int64(a.Value(i))).UTC().Format("2006-01-02T15:04:05.000Z")
				continue
			}
		case *array.Decimal128:
			if !a.IsNull(i) {
				parts[c] = a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
				continue
			}
		}
		parts[c] = col.ValueStr(i)
		if col.IsNull(i) {
			parts[c] = "null"
		}
	}
	return strings.Join(parts, "|")
}

// readResult is what a drain saw.
type readResult struct {
	rows       []string
	partitions [][]int32 // Partitions() after each Next
	batches    int
}

// drain reads src (already open) to io.EOF, checking the message
// contract: batches of the declared schema, NoWatermark, one partition per
// batch matching Message.Partition (when partCol >= 0).
func drain(t *testing.T, src *source, partCol int) (readResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var res readResult
	for {
		msg, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			res.partitions = append(res.partitions, slices.Clone(src.Partitions()))
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.partitions = append(res.partitions, slices.Clone(src.Partitions()))
		if msg.Watermark != arrowexec.NoWatermark {
			t.Errorf("watermark %d, want NoWatermark", msg.Watermark)
		}
		if msg.Batch == nil {
			if msg.Partition != 0 {
				t.Errorf("heartbeat with partition %d", msg.Partition)
			}
			continue
		}
		res.batches++
		if !msg.Batch.Schema().Equal(src.Schema()) {
			t.Errorf("batch schema %s, want %s", msg.Batch.Schema(), src.Schema())
		}
		if partCol >= 0 {
			pc := msg.Batch.Column(partCol).(*array.Int32)
			for i := range pc.Len() {
				if pc.Value(i) != msg.Partition {
					t.Errorf("row of partition %d in a message of partition %d", pc.Value(i), msg.Partition)
				}
			}
		}
		for i := range int(msg.Batch.NumRows()) {
			res.rows = append(res.rows, renderRow(msg.Batch, i))
		}
		msg.Release()
	}
}

func open(t *testing.T, src *source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
}

var ts0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// TestBoundedJSON reads JSON records of a 3-partition topic to its end.
func TestBoundedJSON(t *testing.T) {
	c := newCluster(t, 3, "trades")
	var recs []*kgo.Record
	var want []string
	offsets := map[int32]int{}
	for i := range 40 {
		p := int32(i % 3)
		var key []byte
		keyText := "null"
		if i%5 != 0 {
			key = fmt.Appendf(nil, "k%d", i)
			keyText = string(key)
		}
		ts := ts0.Add(time.Duration(i) * time.Second)
		price := "null"
		val := fmt.Sprintf(`{"id":%d,"ticker":"T%d"`, i, i%4)
		if i%7 != 0 {
			price = fmt.Sprintf("%d.50", i)
			val += fmt.Sprintf(`,"price":%s`, price)
		}
		val += `,"extra":{"x":[1,2]}}`
		recs = append(recs, &kgo.Record{Topic: "trades", Partition: p, Key: key, Value: []byte(val), Timestamp: ts})
		want = append(want, fmt.Sprintf("%d|T%d|%s|%s|%d|%d|%s", i, i%4, price, keyText, p, offsets[p], ts.Format("2006-01-02T15:04:05.000Z")))
		offsets[p]++
	}
	produce(t, c, recs...)

	mem := checkedAlloc(t)
	schema := arrow.NewSchema(append([]arrow.Field{
		field("id", sqltypes.BigInt, false),
		field("ticker", sqltypes.Varchar, true),
		field("price", sqltypes.Decimal(10, 2), true),
	}, sysFields...), nil)
	src := newSource(t, c, mem, schema, nil, "topic", "trades", "end_offset", "latest", "batch_size", "4", "linger_ms", "0")
	defer src.Close()
	open(t, src)
	if got := src.Partitions(); !slices.Equal(got, []int32{0, 1, 2}) {
		t.Errorf("Partitions after Open = %v", got)
	}
	res, err := drain(t, src, 4)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.rows)
	slices.Sort(want)
	if !slices.Equal(res.rows, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(res.rows, "\n"), strings.Join(want, "\n"))
	}
	if res.batches < 12 {
		t.Errorf("%d batches, want at least 12 (batch_size 4)", res.batches)
	}
	// Partitions shrink to empty, never grow.
	prev := 3
	for _, ps := range res.partitions {
		if len(ps) > prev {
			t.Errorf("partitions grew: %v", res.partitions)
		}
		prev = len(ps)
	}
	if last := res.partitions[len(res.partitions)-1]; len(last) != 0 {
		t.Errorf("partitions at the end = %v", last)
	}
	if _, err := src.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the end: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestBoundedEmptyAndLatest: an empty topic and start_offset = latest end
// at once.
func TestBoundedEmptyAndLatest(t *testing.T) {
	c := newCluster(t, 2, "empty", "full")
	produce(t, c, &kgo.Record{Topic: "full", Value: []byte(`{"a":1}`)})
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	for _, tc := range []struct{ topic, start string }{{"empty", "earliest"}, {"full", "latest"}} {
		src := newSource(t, c, mem, schema, nil, "topic", tc.topic, "end_offset", "latest", "start_offset", tc.start)
		open(t, src)
		res, err := drain(t, src, -1)
		if err != nil || len(res.rows) != 0 {
			t.Errorf("%s: rows %v, err %v", tc.topic, res.rows, err)
		}
		src.Close()
	}
}

// TestBadRecords sends bad records to the dead letter with their position.
func TestBadRecords(t *testing.T) {
	c := newCluster(t, 2, "t")
	produce(t, c,
		&kgo.Record{Topic: "t", Partition: 0, Value: []byte(`{"id":1,"name":"a"}`)},
		&kgo.Record{Topic: "t", Partition: 0, Value: []byte(`{"id":"x","name":"b"}`)},
		&kgo.Record{Topic: "t", Partition: 1, Value: []byte(`{"id":2`)},
		&kgo.Record{Topic: "t", Partition: 1, Value: []byte(`{"id":3,"name":"` + strings.Repeat("z", 300) + `"}`)},
		&kgo.Record{Topic: "t", Partition: 1, Value: []byte(`{"name":"no id"}`)},
		&kgo.Record{Topic: "t", Partition: 1, Value: nil},
		&kgo.Record{Topic: "t", Partition: 1, Value: []byte(`{"id":4,"name":"d"}` + "\n")},
	)
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("id", sqltypes.BigInt, false), field("name", sqltypes.Varchar, true)}, nil)
	dl := &recorder{}
	src := newSource(t, c, mem, schema, dl, "topic", "t", "end_offset", "latest", "max_record_bytes", "100")
	defer src.Close()
	open(t, src)
	res, err := drain(t, src, -1)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.rows)
	if want := []string{`1|a`, `4|d`}; !slices.Equal(res.rows, want) {
		t.Errorf("rows %q, want %q", res.rows, want)
	}
	got := map[string]arrowexec.DeadLetterRecord{}
	for _, r := range dl.recs {
		got[r.Position] = r
		if r.Source != "s (kafka topic t)" {
			t.Errorf("dead letter source %q", r.Source)
		}
	}
	checks := []struct{ pos, field, reason, raw string }{
		{"partition 0 offset 1", "id", `expected BIGINT, found "x"`, `{"id":"x","name":"b"}`},
		{"partition 1 offset 0", "", "invalid JSON", `{"id":2`},
		{"partition 1 offset 1", "", "longer than max_record_bytes (100)", `{"id":3,"name":"zzz`},
		{"partition 1 offset 2", "id", "missing value for NOT NULL column id", `{"name":"no id"}`},
		{"partition 1 offset 3", "", "no value", ""},
	}
	if len(dl.recs) != len(checks) {
		t.Errorf("%d dead letters, want %d: %+v", len(dl.recs), len(checks), dl.recs)
	}
	for _, ch := range checks {
		r, ok := got[ch.pos]
		if !ok {
			t.Errorf("no dead letter at %s", ch.pos)
			continue
		}
		if r.Field != ch.field || !strings.Contains(r.Reason, ch.reason) || !strings.HasPrefix(r.Raw, ch.raw) {
			t.Errorf("dead letter at %s = %+v, want field %q reason ~%q raw %q...", ch.pos, r, ch.field, ch.reason, ch.raw)
		}
	}
	if r := got["partition 1 offset 1"]; len(r.Raw) > badRawPrefix {
		t.Errorf("over-long record kept %d bytes", len(r.Raw))
	}
}

// TestBadRecordNoDeadLetter: without a dead-letter sink the first bad
// record stops the source with its position.
func TestBadRecordNoDeadLetter(t *testing.T) {
	c := newCluster(t, 1, "t")
	produce(t, c,
		&kgo.Record{Topic: "t", Value: []byte(`{"id":1}`)},
		&kgo.Record{Topic: "t", Value: []byte(`{"id":1.5}`)},
	)
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("id", sqltypes.BigInt, true)}, nil)
	src := newSource(t, c, mem, schema, nil, "topic", "t", "end_offset", "latest")
	defer src.Close()
	open(t, src)
	_, err := drain(t, src, -1)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`kafka source "s"`, "topic t", "partition 0 offset 1", "field id", "expected BIGINT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestCSVAndRaw reads the csv and raw formats.
func TestCSVAndRaw(t *testing.T) {
	c := newCluster(t, 1, "t")
	produce(t, c,
		&kgo.Record{Topic: "t", Key: []byte("a"), Value: []byte("1,\"x, \"\"y\"\"\",2.5\r\n")},
		&kgo.Record{Topic: "t", Value: []byte("2,,")},
		&kgo.Record{Topic: "t", Value: []byte("oops,z,1")},
		&kgo.Record{Topic: "t", Value: []byte("3,\"multi\nline\",0")},
	)
	mem := checkedAlloc(t)

	csvSchema := arrow.NewSchema([]arrow.Field{
		field("n", sqltypes.BigInt, true), field(KeyColumn, sqltypes.Varchar, true),
		field("s", sqltypes.Varchar, true), field("d", sqltypes.Double, true),
	}, nil)
	dl := &recorder{}
	src := newSource(t, c, mem, csvSchema, dl, "topic", "t", "end_offset", "latest", "format", "csv")
	open(t, src)
	res, err := drain(t, src, -1)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`1|a|x, "y"|2.5`, `2|null|null|null`, "3|null|multi\nline|0"}
	if !slices.Equal(res.rows, want) {
		t.Errorf("csv rows %q, want %q", res.rows, want)
	}
	if len(dl.recs) != 1 || dl.recs[0].Field != "n" || dl.recs[0].Position != "partition 0 offset 2" {
		t.Errorf("csv dead letters %+v", dl.recs)
	}

	rawSchema := arrow.NewSchema(append([]arrow.Field{field("line", sqltypes.Varchar, true)}, sysFields[1:3]...), nil)
	src = newSource(t, c, mem, rawSchema, nil, "topic", "t", "end_offset", "latest", "format", "raw")
	open(t, src)
	res, err = drain(t, src, 1)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"1,\"x, \"\"y\"\"\",2.5\r\n|0|0", "2,,|0|1", "oops,z,1|0|2", "3,\"multi\nline\",0|0|3"}
	if !slices.Equal(res.rows, want) {
		t.Errorf("raw rows %q, want %q", res.rows, want)
	}
}

// TestHeartbeat: an unbounded read of an empty topic returns watermark-only
// messages at least every HeartbeatInterval, and honours ctx.
func TestHeartbeat(t *testing.T) {
	c := newCluster(t, 2, "quiet")
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	src := newSource(t, c, mem, schema, nil, "topic", "quiet")
	defer src.Close()
	open(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 3 {
		start := time.Now()
		msg, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Batch != nil || msg.Watermark != arrowexec.NoWatermark || msg.Partition != 0 {
			t.Errorf("message %d: %v partition %d", i, msg, msg.Partition)
		}
		if d := time.Since(start); d > arrowexec.HeartbeatInterval+500*time.Millisecond {
			t.Errorf("heartbeat %d after %v", i, d)
		}
		if got := src.Partitions(); !slices.Equal(got, []int32{0, 1}) {
			t.Errorf("Partitions = %v", got)
		}
	}
	// A record arriving now is returned by an unbounded read.
	produce(t, c, &kgo.Record{Topic: "quiet", Partition: 1, Value: []byte(`{"a":7}`)})
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Batch != nil {
			if msg.Partition != 1 || renderRow(msg.Batch, 0) != "7" {
				t.Errorf("got %s from partition %d", renderRow(msg.Batch, 0), msg.Partition)
			}
			msg.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record not returned")
		}
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	for {
		_, err := src.Next(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("after cancel: %v", err)
			}
			break
		}
	}
}

// TestGroupResume reads part of a topic in a consumer group, commits, and
// resumes in a new source: every row exactly once.
func TestGroupResume(t *testing.T) {
	c := newCluster(t, 3, "g")
	var recs []*kgo.Record
	for i := range 60 {
		recs = append(recs, &kgo.Record{Topic: "g", Partition: int32(i % 3), Value: fmt.Appendf(nil, `{"id":%d}`, i)})
	}
	produce(t, c, recs...)
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("id", sqltypes.BigInt, false), field(PartitionColumn, sqltypes.Int, false)}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	seen := map[string]int{}
	src := newSource(t, c, mem, schema, nil, "topic", "g", "group_id", "grp", "batch_size", "5", "linger_ms", "0")
	open(t, src)
	if src.Mark() == nil {
		t.Fatal("Mark is nil with a group")
	}
	rows := 0
	var mark any
	for rows < 30 {
		msg, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mark = src.Mark()
		if msg.Batch == nil {
			continue
		}
		for i := range int(msg.Batch.NumRows()) {
			seen[renderRow(msg.Batch, i)]++
			rows++
		}
		msg.Release()
	}
	if err := src.Commit(ctx, mark); err != nil {
		t.Fatal(err)
	}
	if err := src.Commit(ctx, mark); err != nil { // an old mark again: ignored
		t.Fatal(err)
	}
	src.Close()

	src = newSource(t, c, mem, schema, nil, "topic", "g", "group_id", "grp", "end_offset", "latest", "batch_size", "5", "linger_ms", "0")
	open(t, src)
	res, err := drain(t, src, 1)
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.rows {
		seen[r]++
	}
	if len(res.rows) == 0 || len(res.rows) >= 60 {
		t.Errorf("second reader read %d rows", len(res.rows))
	}
	for i := range 60 {
		r := fmt.Sprintf("%d|%d", i, i%3)
		if seen[r] != 1 {
			t.Errorf("row %s seen %d times", r, seen[r])
		}
	}
}

// TestGroupRebalance: a second member joins mid-read. Each member commits
// after every batch, as the engine does once rows are durable; together
// they read every row exactly once.
func TestGroupRebalance(t *testing.T) {
	c := newCluster(t, 4, "rb")
	const n = 400
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "rb", Partition: int32(i % 4), Value: fmt.Appendf(nil, `{"id":%d}`, i)})
	}
	produce(t, c, recs...)
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("id", sqltypes.BigInt, false)}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var mu sync.Mutex
	seen := map[string]int{}
	read := map[string]int{}
	total := 0
	// member reads to the end, committing after every message, then closes.
	member := func(name string, s *source, started chan<- struct{}) error {
		defer s.Close()
		for {
			msg, err := s.Next(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := s.Commit(ctx, s.Mark()); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if msg.Batch != nil {
				mu.Lock()
				for i := range int(msg.Batch.NumRows()) {
					seen[renderRow(msg.Batch, i)]++
				}
				read[name] += int(msg.Batch.NumRows())
				total += int(msg.Batch.NumRows())
				if total >= 30 && started != nil {
					close(started)
					started = nil
				}
				mu.Unlock()
				msg.Release()
			}
			time.Sleep(2 * time.Millisecond) // leave time for the rebalance
		}
	}
	mk := func() *source {
		s := newSource(t, c, mem, schema, nil, "topic", "rb", "group_id", "g2", "end_offset", "latest", "batch_size", "2", "linger_ms", "0")
		s.clientOpts = append(s.clientOpts, kgo.HeartbeatInterval(50*time.Millisecond))
		if os.Getenv("KGO_DEBUG") != "" {
			s.clientOpts = append(s.clientOpts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") })))
		}
		open(t, s)
		return s
	}
	errs := make(chan error, 2)
	started := make(chan struct{})
	go func() { errs <- member("a", mk(), started) }()
	select {
	case <-started:
	case err := <-errs:
		t.Fatalf("a ended before b started: %v", err)
	}
	go func() { errs <- member("b", mk(), nil) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	t.Logf("a read %d rows, b %d", read["a"], read["b"])
	if read["b"] == 0 {
		t.Log("b read nothing: the rebalance came after a finished")
	}
	for i := range n {
		if r := fmt.Sprint(i); seen[r] != 1 {
			t.Errorf("row %s seen %d times", r, seen[r])
		}
	}
}

// TestOptionErrors checks factory errors.
func TestOptionErrors(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	t.Setenv("KAFKA_BROKERS", "")
	cases := []struct {
		opts   arrowexec.Options
		schema *arrow.Schema
		want   string
	}{
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "colour": "red"}, schema, `unknown option "colour"`},
		{arrowexec.Options{"brokers": "x:1"}, schema, "option topic is required"},
		{arrowexec.Options{"topic": "t"}, schema, "no Kafka brokers"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "start_offset": "middle"}, schema, "start_offset"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "end_offset": "never"}, schema, "end_offset"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "format": "protobuf"}, schema, `format "protobuf" not supported`},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "format": "avro"}, schema, "format avro needs option schema_registry"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "format": "avro", "schema_registry": "http://127.0.0.1:1"},
			arrow.NewSchema([]arrow.Field{field("d", sqltypes.Interval, true)}, nil), `column "d": type INTERVAL not supported by format avro`},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "format": "raw"}, schema, "format raw needs exactly one VARCHAR"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "batch_size": "0"}, schema, "batch_size"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "security_protocol": "tls"}, schema, "security_protocol"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "security_protocol": "sasl_plaintext"}, schema, "sasl_username and sasl_password"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "security_protocol": "sasl_plaintext", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"}, schema, "sasl_mechanism"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "sasl_username": "u"}, schema, "needs security_protocol sasl"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "ssl_skip_verify": "true"}, schema, "needs security_protocol ssl"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1", "security_protocol": "ssl", "ssl_ca_location": "/nonexistent.pem"}, schema, "ssl_ca_location"},
		{arrowexec.Options{"topic": "t", "brokers": "x:1"}, arrow.NewSchema([]arrow.Field{field(OffsetColumn, sqltypes.Varchar, true)}, nil), "system column _offset must be BIGINT"},
	}
	for _, tc := range cases {
		_, err := NewSource(Config{}, arrowexec.SourceSpec{Name: "s", Schema: tc.schema, Options: tc.opts})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
	// Brokers from the config, then from the environment.
	if _, err := NewSource(Config{Brokers: []string{"x:1"}}, arrowexec.SourceSpec{Name: "s", Schema: schema, Options: arrowexec.Options{"topic": "t"}}); err != nil {
		t.Errorf("config brokers: %v", err)
	}
	t.Setenv("KAFKA_BROKERS", "y:2")
	if _, err := NewSource(Config{}, arrowexec.SourceSpec{Name: "s", Schema: schema, Options: arrowexec.Options{"topic": "t"}}); err != nil {
		t.Errorf("env brokers: %v", err)
	}
	var cs arrowexec.Connectors
	Register(&cs, Config{})
	if _, err := cs.Source("kafka"); err != nil {
		t.Error(err)
	}
}

// TestMissingTopic: Open names a topic that does not exist.
func TestMissingTopic(t *testing.T) {
	c := newCluster(t, 1, "present")
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	src := newSource(t, c, mem, schema, nil, "topic", "absent")
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.Open(ctx)
	if err == nil || !strings.Contains(err.Error(), "topic absent does not exist") {
		t.Errorf("Open: %v", err)
	}
	if _, err := src.Next(ctx); err == nil {
		t.Error("Next after a failed Open succeeded")
	}
}

// TestSASL connects with SCRAM-SHA-256 to a cluster that requires it.
func TestSASL(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "ferris", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: "ferris", Pass: "s3cret"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(`{"a":1}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	src := newSource(t, c, mem, schema, nil, "topic", "t", "end_offset", "latest",
		"security_protocol", "SASL_PLAINTEXT", "sasl_mechanism", "SCRAM-SHA-256", "sasl_username", "ferris", "sasl_password", "s3cret")
	defer src.Close()
	open(t, src)
	res, err := drain(t, src, -1)
	if err != nil || !slices.Equal(res.rows, []string{"1"}) {
		t.Errorf("rows %v err %v", res.rows, err)
	}
}

// TestCommitAfterClose: the engine commits the last mark after closing a
// source that reached its end; the offsets land in the group.
func TestCommitAfterClose(t *testing.T) {
	c := newCluster(t, 2, "cc")
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "cc", Partition: int32(i % 2), Value: fmt.Appendf(nil, `{"id":%d}`, i)})
	}
	produce(t, c, recs...)
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("id", sqltypes.BigInt, false)}, nil)
	src := newSource(t, c, mem, schema, nil, "topic", "cc", "group_id", "gc", "end_offset", "latest", "linger_ms", "0")
	open(t, src)
	res, err := drain(t, src, -1)
	if err != nil || len(res.rows) != 10 {
		t.Fatalf("rows %v err %v", res.rows, err)
	}
	mark := src.Mark()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.Commit(ctx, mark); err != nil {
		t.Fatal(err)
	}
	checkCommitted(ctx, t, c, "gc", "cc", 2, 5)
}

// checkCommitted checks that group committed offset want in each of the
// first parts partitions of topic.
func checkCommitted(ctx context.Context, t *testing.T, c *kfake.Cluster, group, topic string, parts int32, want int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := range parts {
		if o, ok := offs.Lookup(topic, p); !ok || o.At != want {
			t.Errorf("group %s partition %d committed %+v, want %d", group, p, o, want)
		}
	}
}

// TestRawRecordColumn: a schema ending with arrowexec.RawRecordColumn gets
// each good message value there as it was sent (keys the schema does not
// declare kept); a bad value is dead-lettered and has no row.
func TestRawRecordColumn(t *testing.T) {
	c := newCluster(t, 1, "t")
	values := []string{`{"id":1,"note":"kept","nested":{"x":[1]}}`, `{"id":"bad"}`, "{\"id\":2}\n"}
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: "t", Value: []byte(v), Timestamp: ts0})
	}
	produce(t, c, recs...)
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("id", sqltypes.BigInt, true), field(arrowexec.RawRecordColumn, sqltypes.Varchar, true)}, nil)
	dl := &recorder{}
	src := newSource(t, c, mem, schema, dl, "topic", "t", "end_offset", "latest")
	defer src.Close()
	open(t, src)
	res, err := drain(t, src, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`1|` + values[0], `2|` + values[2]} // the value as sent, its newline too
	if !slices.Equal(res.rows, want) {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(res.rows, "\n"), strings.Join(want, "\n"))
	}
	if len(dl.recs) != 1 || dl.recs[0].Raw != values[1] {
		t.Errorf("dead letters %+v, want the bad value", dl.recs)
	}
}
