package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	hamba "github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
)

// devAddrs are the addresses ferris dev announces.
type devAddrs struct{ broker, registry, api string }

// startDev runs ferris dev on free ports until the test ends (then checks
// it exits cleanly) and returns what it announced and its stderr.
func startDev(t *testing.T) (devAddrs, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	stderr := &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"dev", "--kafka-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--metrics-addr", "-", "--flight-addr", "-", "--data-dir", t.TempDir()}, &stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("ferris dev exit %d: %s", c, stderr.String())
		}
	})
	return devAddrs{
		broker:   announced(t, stderr, `dev broker on (\S+)`),
		registry: announced(t, stderr, `schema registry on (http://\S+)`),
		api:      announced(t, stderr, `HTTP API on (http://\S+)`),
	}, stderr
}

// postPipeline registers a pipeline through the HTTP API.
func postPipeline(t *testing.T, api, name, sql string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "sql": sql})
	resp, err := http.Post(api+"/queries", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", name, resp.StatusCode, data)
	}
}

// TestDevBrokerIdlePartitionsAndWindowsOverKafka runs ferris dev, registers
// a windowed pipeline from Kafka to Kafka (its topics are created on first
// use) and produces trades to one partition of the three of its input. With idle_timeout the two silent
// partitions stop holding the watermark back and the window closes while
// the pipeline runs; without it the watermark stays at -inf.
func TestDevBrokerIdlePartitionsAndWindowsOverKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and a server")
	}
	ctx := context.Background()
	dev, stderr := startDev(t)
	broker, api := dev.broker, dev.api

	pipeline := func(name, topic, idle string) string {
		return fmt.Sprintf(`CREATE STREAM %[1]s_trades (ticker VARCHAR, volume BIGINT, ts TIMESTAMP, _partition INT,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH (connector = 'kafka', topic = '%[2]s', group_id = '%[1]s' %[3]s);
CREATE STREAM %[1]s_volumes AS
SELECT ticker, SUM(volume) AS vol, COUNT(*) AS n, MAX(_partition) AS part, window_start
FROM %[1]s_trades GROUP BY ticker WINDOW TUMBLING (INTERVAL '10' SECOND)
WITH (connector = 'kafka', topic = '%[1]s_volumes');`, name, topic, idle)
	}
	for name, sql := range map[string]string{
		"idle": pipeline("idle", "idle", ", idle_timeout = '300ms'"),
		"held": pipeline("held", "held", ""),
	} {
		postPipeline(t, api, name, sql)
	}

	producer, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for _, v := range []string{
		`{"ticker":"AAPL","volume":100,"ts":"2024-01-01T00:00:01Z"}`,
		`{"ticker":"AAPL","volume":50,"ts":"2024-01-01T00:00:05Z"}`,
		`{"ticker":"MSFT","volume":10,"ts":"2024-01-01T00:00:12Z"}`,
	} {
		for _, topic := range []string{"idle", "held"} {
			r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte(v)}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("idle_volumes"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pollCtx, pollCancel := context.WithTimeout(ctx, 30*time.Second)
	defer pollCancel()
	var got []string
	for len(got) == 0 {
		fetches := consumer.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			resp, err := http.Get(api + "/queries/idle")
			if err != nil {
				t.Fatal(err)
			}
			status, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("no window result on idle_volumes: %s\n%s", stderr.String(), status)
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Key)+" "+string(r.Value)) })
	}
	want := `AAPL {"ticker":"AAPL","vol":150,"n":2,"part":0,"window_start":"2024-01-01T00:00:00.000Z"}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("idle_volumes:\n%q\nwant\n%q", got, want)
	}

	// The pipeline without idle_timeout read the same rows, yet two silent
	// partitions hold its watermark at -inf.
	var st struct {
		RowsIn  int64 `json:"rows_in"`
		Queries []struct {
			Watermark string `json:"watermark"`
		} `json:"queries"`
	}
	for deadline := time.Now().Add(20 * time.Second); st.RowsIn < 3; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(api + "/queries/held")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("held read %d rows", st.RowsIn)
		}
	}
	if len(st.Queries) != 1 || st.Queries[0].Watermark != "-inf" {
		t.Fatalf("held watermark %+v, want -inf", st.Queries)
	}
}

// TestDevSchemaRegistry runs ferris dev with its schema registry: a
// producer registers an Avro schema there and writes to the dev broker; a
// pipeline declaring neither columns nor a registry reads the topic (the
// columns come from the registry) and writes Avro to another topic, whose
// records a consumer decodes with the schema the sink registered.
func TestDevSchemaRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and a server")
	}
	ctx := context.Background()
	dev, stderr := startDev(t)
	broker, registry, api := dev.broker, dev.registry, dev.api
	if !strings.HasPrefix(registry, "http://127.0.0.1:") {
		t.Fatalf("registry on %s, want 127.0.0.1", registry)
	}

	rcl, err := sr.NewClient(sr.URLs(registry))
	if err != nil {
		t.Fatal(err)
	}
	const text = `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int"},
 {"name":"item","type":{"type":"record","name":"Item","fields":[{"name":"sku","type":"string"}]}}]}`
	id, err := rcl.RegisterSchema(ctx, "orders-value", sr.Schema{Schema: text}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		SKU string `avro:"sku"`
	}
	type order struct {
		ID   int64 `avro:"id"`
		Qty  int32 `avro:"qty"`
		Item item  `avro:"item"`
	}
	in := hamba.MustParse(text)
	var serde sr.Serde
	serde.Register(id, order{}, sr.EncodeFn(func(v any) ([]byte, error) { return hamba.Marshal(in, v) }))
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("orders"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: serde.MustEncode(order{ID: 7, Qty: 3, Item: item{"X-1"}})}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sql := `CREATE STREAM orders WITH (connector = 'kafka', topic = 'orders', format = 'avro');
CREATE STREAM doubled AS SELECT id, qty * 2 AS qty2, "item.sku" AS sku FROM orders
WITH (connector = 'kafka', topic = 'doubled', format = 'avro');`
	postPipeline(t, api, "avro", sql)

	consumer, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("doubled"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pollCtx, pollCancel := context.WithTimeout(ctx, 30*time.Second)
	defer pollCancel()
	var got []byte
	for got == nil {
		fetches := consumer.PollFetches(pollCtx)
		if pollCtx.Err() != nil {
			t.Fatalf("nothing on topic doubled: %s", stderr.String())
		}
		fetches.EachRecord(func(r *kgo.Record) { got = r.Value })
	}
	if len(got) < 5 || got[0] != 0 {
		t.Fatalf("record %x is not in the Confluent wire format", got)
	}
	ws, err := rcl.SchemaByID(ctx, int(binary.BigEndian.Uint32(got[1:5])))
	if err != nil {
		t.Fatal(err)
	}
	var out struct { // the output columns are nullable
		ID   *int64  `avro:"id"`
		Qty2 *int32  `avro:"qty2"`
		SKU  *string `avro:"sku"`
	}
	if err := hamba.Unmarshal(hamba.MustParse(ws.Schema), got[5:], &out); err != nil {
		t.Fatalf("%v (writer schema %s)", err, ws.Schema)
	}
	if out.ID == nil || *out.ID != 7 || out.Qty2 == nil || *out.Qty2 != 6 || out.SKU == nil || *out.SKU != "X-1" {
		t.Fatalf("read back %s (writer schema %s)", renderJSON(out), ws.Schema)
	}
	subjects, err := rcl.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"doubled-value", "orders-value"}) {
		t.Fatalf("subjects %v, %v", subjects, err)
	}
}

func renderJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
