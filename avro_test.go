package ferris_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	hamba "github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/plan"
	"github.com/ferrisstreams/ferris/plan/sql"
	"github.com/ferrisstreams/ferris/schemaregistry"
	"github.com/ferrisstreams/ferris/sinks"
	kafkasink "github.com/ferrisstreams/ferris/sinks/kafka"
	"github.com/ferrisstreams/ferris/sources"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
)

// Writer schemas of the topic, in the order a producer moves through them.
const (
	// v1: the schema the stream was written for.
	avroTradeV1 = `{"type":"record","name":"Trade","namespace":"test","fields":[
 {"name":"ticker","type":"string"},
 {"name":"volume","type":"long"},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	// v2 is compatible: fields reordered, a new optional field, volume
	// narrowed to int, price with a smaller scale, ts in microseconds.
	avroTradeV2 = `{"type":"record","name":"Trade","namespace":"test","fields":[
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"venue","type":["null","string"],"default":null},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":1}},
 {"name":"ticker","type":"string"},
 {"name":"volume","type":"int"}]}`
	// v3 is incompatible: volume became a string.
	avroTradeV3 = `{"type":"record","name":"Trade","namespace":"test","fields":[
 {"name":"ticker","type":"string"},
 {"name":"volume","type":"string"},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
)

type avroTradeV1Rec struct {
	Ticker string    `avro:"ticker"`
	Volume int64     `avro:"volume"`
	Price  *big.Rat  `avro:"price"`
	TS     time.Time `avro:"ts"`
}

type avroTradeV2Rec struct {
	TS     time.Time `avro:"ts"`
	Venue  *string   `avro:"venue"`
	Price  *big.Rat  `avro:"price"`
	Ticker string    `avro:"ticker"`
	Volume int32     `avro:"volume"`
}

type avroTradeV3Rec struct {
	Ticker string    `avro:"ticker"`
	Volume string    `avro:"volume"`
	Price  *big.Rat  `avro:"price"`
	TS     time.Time `avro:"ts"`
}

// TestAvroKafkaWindowedQuery: Avro records produced through the schema
// registry (franz-go's sr client and serde) are read from Kafka by a
// tumbling-window query. Mid-stream the producer moves to a compatible
// writer schema, which is read, and for a few records to an incompatible
// one, which is dead-lettered whole with the reason and its position. The
// windows are written as Avro to another topic and read back by a second
// pipeline, then checked against sums computed here from the produced
// events.
func TestAvroKafkaWindowedQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "trades", "windows"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	srv := httptest.NewServer(schemaregistry.New())
	defer srv.Close()

	// The producer: register each writer schema, encode through the serde.
	rcl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	var serde sr.Serde
	for _, w := range []struct {
		text string
		v    any
	}{{avroTradeV1, avroTradeV1Rec{}}, {avroTradeV2, avroTradeV2Rec{}}, {avroTradeV3, avroTradeV3Rec{}}} {
		id, err := rcl.RegisterSchema(ctx, "trades-value", sr.Schema{Schema: w.text}, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		s := hamba.MustParse(w.text)
		serde.Register(id, w.v, sr.EncodeFn(func(v any) ([]byte, error) { return hamba.Marshal(s, v) }))
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("trades"))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()

	// 300 events, 100 ms apart: three 10-second windows. Events 100-199
	// use v2; after event 150 come three v3 records.
	type key struct {
		window string
		ticker string
	}
	type agg struct {
		n      int64
		volume int64
		cents  int64 // SUM(price) in cents
	}
	want := map[key]agg{}
	base := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	venue := "XNAS"
	var badValues [][]byte
	var badOffsets []int64
	var offset int64
	send := func(v any) []byte {
		b, err := serde.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		offset++
		return b
	}
	for i := range 300 {
		ticker := []string{"AAPL", "MSFT", "JPM"}[i%3]
		volume := int64(1 + i%17)
		cents := int64(10000 + 10*i) // a multiple of 10: exact at v2's scale 1
		ts := base.Add(time.Duration(i) * 100 * time.Millisecond)
		k := key{ts.Truncate(10 * time.Second).Format(time.RFC3339), ticker}
		a := want[k]
		want[k] = agg{a.n + 1, a.volume + volume, a.cents + cents}
		if i >= 100 && i < 200 {
			send(avroTradeV2Rec{TS: ts, Venue: &venue, Price: big.NewRat(cents, 100), Ticker: ticker, Volume: int32(volume)})
		} else {
			send(avroTradeV1Rec{Ticker: ticker, Volume: volume, Price: big.NewRat(cents, 100), TS: ts})
		}
		if i == 150 {
			for j := range 3 {
				badOffsets = append(badOffsets, offset)
				badValues = append(badValues, send(avroTradeV3Rec{Ticker: "BAD", Volume: fmt.Sprint("lots", j), Price: big.NewRat(1, 1), TS: ts}))
			}
		}
	}

	// The windows go to topic windows as Avro (the sink registers its
	// schema), then a second pipeline reads them back, its columns taken
	// from that schema.
	dir := t.TempDir()
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	kafkasrc.Register(conns, kafkasrc.Config{Brokers: cluster.ListenAddrs(), SchemaRegistry: srv.URL})
	kafkasink.Register(conns, kafkasrc.Config{Brokers: cluster.ListenAddrs(), SchemaRegistry: srv.URL})
	dl := sinks.NewDeadLetterFile(filepath.Join(dir, "dead.jsonl"))
	runPipeline(t, ctx, conns, dir, dl, `CREATE STREAM trades (ticker VARCHAR NOT NULL, volume BIGINT NOT NULL, price DECIMAL(12,2), ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH (connector = 'kafka', topic = 'trades', format = 'avro', end_offset = 'latest', batch_size = '64');
CREATE STREAM windows AS SELECT window_start, ticker, COUNT(*) AS n, SUM(volume) AS volume, SUM(price) AS price
FROM trades GROUP BY ticker WINDOW TUMBLING (INTERVAL '10' SECOND)
WITH (connector = 'kafka', topic = 'windows', format = 'avro');`)
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, ctx, conns, dir, nil, `CREATE STREAM windows WITH (connector = 'kafka', topic = 'windows', format = 'avro', end_offset = 'latest');
CREATE STREAM back AS SELECT window_start, ticker, n, volume, price FROM windows WITH (connector = 'file', path = 'out.jsonl');`)

	got := map[key]agg{}
	for _, line := range readLines(t, filepath.Join(dir, "out.jsonl")) {
		var r struct {
			WindowStart string      `json:"window_start"`
			Ticker      string      `json:"ticker"`
			N, Volume   int64       `json:"-"`
			Price       json.Number `json:"price"`
		}
		var nums struct {
			N      int64 `json:"n"`
			Volume int64 `json:"volume"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if err := json.Unmarshal([]byte(line), &nums); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		ws, err := time.Parse(time.RFC3339, r.WindowStart)
		if err != nil {
			t.Fatalf("%s: window_start: %v", line, err)
		}
		k := key{ws.UTC().Format(time.RFC3339), r.Ticker}
		if _, dup := got[k]; dup {
			t.Fatalf("window %v emitted twice", k)
		}
		got[k] = agg{nums.N, nums.Volume, centsOf(t, string(r.Price))}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("windows\n%v\nwant\n%v", got, want)
	}

	var dead []arrowexec.DeadLetterRecord
	for _, line := range readLines(t, dl.Path()) {
		var d arrowexec.DeadLetterRecord
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, d)
	}
	if len(dead) != len(badValues) {
		t.Fatalf("%d dead letters, want %d: %+v", len(dead), len(badValues), dead)
	}
	for i, d := range dead {
		raw, err := base64.StdEncoding.DecodeString(d.Raw)
		if err != nil || d.RawEncoding != "base64" || !slices.Equal(raw, badValues[i]) {
			t.Errorf("dead letter %d: raw %q (%s) is not the record produced", i, d.Raw, d.RawEncoding)
		}
		if wantPos := fmt.Sprintf("partition 0 offset %d", badOffsets[i]); d.Position != wantPos || d.Source != "trades (kafka topic trades)" {
			t.Errorf("dead letter %d at %s / %s, want %s", i, d.Source, d.Position, wantPos)
		}
		if d.Field != "volume" || d.Reason != "writer schema test.Trade: Avro string cannot be read as BIGINT" {
			t.Errorf("dead letter %d: field %q reason %q", i, d.Field, d.Reason)
		}
	}
}

// runPipeline compiles src, with the columns of streams declaring none
// from their connector, and runs it to the end of its bounded inputs.
func runPipeline(t *testing.T, ctx context.Context, conns *arrowexec.Connectors, dir string, dl arrowexec.DeadLetter, src string) {
	t.Helper()
	stmts, err := sql.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.DeclareColumns(ctx, stmts, conns, dir); err != nil {
		t.Fatal(err)
	}
	p, err := plan.CompileStatements(stmts, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	env := plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, 0), BaseDir: dir}
	if dl != nil {
		env.DeadLetter = func(string) arrowexec.DeadLetter { return dl }
	}
	topo, err := p.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// centsOf reads a decimal with at most two fractional digits as cents.
func centsOf(t *testing.T, s string) int64 {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("price %q is not a number", s)
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() {
		t.Fatalf("price %q has more than two fractional digits", s)
	}
	return r.Num().Int64()
}

// TestAvroColumnsFromRegistry: a Kafka stream with format avro that
// declares no columns gets them from the latest schema of subject
// "<topic>-value": nested records flattened with dotted names, a union
// with null nullable, logical types mapped; the query reads them.
func TestAvroColumnsFromRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	srv := httptest.NewServer(schemaregistry.New())
	defer srv.Close()
	const text = `{"type":"record","name":"Order","fields":[
 {"name":"id","type":"long"},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"ship","type":{"type":"record","name":"Ship","fields":[{"name":"city","type":"string"},{"name":"note","type":["null","string"]}]}},
 {"name":"tags","type":{"type":"array","items":"string"}}]}`
	type ship struct {
		City string  `avro:"city"`
		Note *string `avro:"note"`
	}
	type order struct {
		ID     int64     `avro:"id"`
		Amount *big.Rat  `avro:"amount"`
		Day    time.Time `avro:"day"`
		Ship   ship      `avro:"ship"`
		Tags   []string  `avro:"tags"`
	}
	rcl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	id, err := rcl.RegisterSchema(ctx, "orders-value", sr.Schema{Schema: text}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	s := hamba.MustParse(text)
	var serde sr.Serde
	serde.Register(id, order{}, sr.EncodeFn(func(v any) ([]byte, error) { return hamba.Marshal(s, v) }))
	pcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	fragile := "fragile"
	for _, o := range []order{
		{ID: 1, Amount: big.NewRat(1999, 100), Day: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), Ship: ship{"Oslo", &fragile}, Tags: []string{"a"}},
		{ID: 2, Amount: big.NewRat(-5, 100), Day: time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), Ship: ship{"Lima", nil}},
	} {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: serde.MustEncode(o)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	src := fmt.Sprintf(`CREATE STREAM orders WITH (connector = 'kafka', topic = 'orders', format = 'avro', schema_registry = '%s', end_offset = 'latest');
CREATE STREAM out AS SELECT id, amount * 2 AS twice, day, "ship.city" AS city, "ship.note" IS NULL AS no_note FROM orders
WITH (connector = 'file', path = 'out.jsonl');`, srv.URL)
	stmts, err := sql.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	conns := &arrowexec.Connectors{}
	sources.Register(conns)
	sinks.Register(conns)
	kafkasrc.Register(conns, kafkasrc.Config{Brokers: cluster.ListenAddrs()})
	if err := plan.DeclareColumns(ctx, stmts, conns, dir); err != nil {
		t.Fatal(err)
	}
	p, err := plan.CompileStatements(stmts, arrowexec.DefaultSettings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, f := range p.Relation("orders").Declared.Fields() {
		cols = append(cols, fmt.Sprintf("%s %s %v", f.Name, sqltypes.Name(f.Type), f.Nullable))
	}
	if want := []string{"id BIGINT false", "amount DECIMAL(9,2) false", "day DATE false", "ship.city VARCHAR false", "ship.note VARCHAR true"}; !slices.Equal(cols, want) {
		t.Fatalf("columns %q, want %q", cols, want)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	topo, err := p.Build(plan.BuildEnv{Connectors: conns, Resources: resource.NewManager(mem, 0), BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, filepath.Join(dir, "out.jsonl"))
	want := []string{
		`{"id":1,"twice":39.98,"day":"2024-01-02","city":"Oslo","no_note":false}`,
		`{"id":2,"twice":-0.10,"day":"1999-12-31","city":"Lima","no_note":true}`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("output\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A subject the registry does not have is an error at the stream.
	stmts, err = sql.Parse(fmt.Sprintf(`SELECT 1;
CREATE STREAM none WITH (connector = 'kafka', topic = 'none', format = 'avro', schema_registry = '%s');`, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	err = plan.DeclareColumns(ctx, stmts, conns, dir)
	if err == nil || !strings.HasPrefix(err.Error(), `line 2, column 15: columns of "none": schema registry: latest schema of subject none-value: schema not found`) {
		t.Fatalf("got %v", err)
	}
}
