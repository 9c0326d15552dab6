package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDevBrokerIdlePartitionsAndWindowsOverKafka runs ferris dev, registers
// a windowed pipeline from Kafka to Kafka (its topics are created on first
// use) and produces trades to one partition of the three of its input. With idle_timeout the two silent
// partitions stop holding the watermark back and the window closes while
// the pipeline runs; without it the watermark stays at -inf.
func TestDevBrokerIdlePartitionsAndWindowsOverKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and a server")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"dev", "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--metrics-addr", "-", "--flight-addr", "-", "--data-dir", t.TempDir()}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("ferris dev exit %d: %s", c, stderr.String())
		}
	}()
	broker := announced(t, &stderr, `dev broker on (\S+)`)
	api := announced(t, &stderr, `HTTP API on (http://\S+)`)

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
