package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Event-time input with one late row (ts 3s arrives after the watermark
// passed 10s) for a tumbling window query.
const eventsJSONL = `{"k":"a","v":1,"ts":"2024-01-01T00:00:00Z"}
{"k":"b","v":2,"ts":"2024-01-01T00:00:05Z"}
{"k":"a","v":3,"ts":"2024-01-01T00:00:12Z"}
{"k":"a","v":4,"ts":"2024-01-01T00:00:25Z"}
{"k":"b","v":5,"ts":"2024-01-01T00:00:03Z"}
{"k":"a","v":6,"ts":"2024-01-01T00:00:30Z"}
`

const windowSQL = `CREATE STREAM ev (k VARCHAR, v BIGINT, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH (connector = 'file', path = 'ev.jsonl', format = 'json', late_data = 'drop');
SELECT k, COUNT(*) AS n, SUM(v) AS total, window_start FROM ev WHERE v > 0
GROUP BY k WINDOW TUMBLING (INTERVAL '10' SECOND);`

// waitFinished polls a pipeline until it is no longer running.
func waitFinished(t *testing.T, c client, name string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := c.do("GET", "/queries/"+name, "")
		var st map[string]any
		if code != 200 || json.Unmarshal(body, &st) != nil {
			t.Fatalf("status %d: %s", code, body)
		}
		if st["state"] != "running" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipeline %s still running: %s", name, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape returns the metrics exposition of s.
func scrape(t *testing.T, s *Server) string {
	t.Helper()
	m := client{t: t, base: "http://" + s.MetricsAddr.String()}
	code, body := m.do("GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, body)
	}
	return string(body)
}

// requireTool finds a command line tool: a test needing it fails on CI
// (CI=true, where .ci/run installs it) and is skipped elsewhere.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found on CI: .ci/run must install the Debian package %s", name, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s); skipping the check it runs", name, pkg)
	}
	return path
}

// startObservedServer runs a server with the window pipeline registered
// and finished, and a live generator pipeline.
func startObservedServer(t *testing.T, tel *Telemetry) (*Server, client) {
	t.Helper()
	s, dir := startServerWith(t, "", 0, tel)
	if err := os.WriteFile(filepath.Join(dir, "ev.jsonl"), []byte(eventsJSONL), 0o644); err != nil {
		t.Fatal(err)
	}
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	if code, body := c.do("POST", "/queries", mustJSON(t, map[string]string{"name": "win", "sql": windowSQL})); code != http.StatusCreated {
		t.Fatalf("POST win: %d %s", code, body)
	}
	if st := waitFinished(t, c, "win"); st["state"] != "finished" {
		t.Fatalf("win: %v", st)
	}
	live := `CREATE STREAM ticks (ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '1' SECOND)
WITH (connector = 'generator', rows = '0', rate = '2000');
SELECT ticker, volume FROM ticks WHERE volume > 0;`
	if code, body := c.do("POST", "/queries", mustJSON(t, map[string]string{"name": "live", "sql": live})); code != http.StatusCreated {
		t.Fatalf("POST live: %d %s", code, body)
	}
	// A Kafka pipeline (in-process cluster) for the consumer lag.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "trades"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("trades"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 20 {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf(`{"ticker":"T%d","volume":%d}`, i%3, i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pcl.Close()
	kafkaSQL := fmt.Sprintf(`CREATE STREAM kt (ticker VARCHAR, volume BIGINT)
WITH (connector = 'kafka', topic = 'trades', brokers = '%s', linger_ms = '0');
SELECT ticker, volume FROM kt;`, cluster.ListenAddrs()[0])
	if code, body := c.do("POST", "/queries", mustJSON(t, map[string]string{"name": "fromkafka", "sql": kafkaSQL})); code != http.StatusCreated {
		t.Fatalf("POST fromkafka: %d %s", code, body)
	}
	// Let the live pipelines produce something.
	deadline := time.Now().Add(10 * time.Second)
	produced := regexp.MustCompile(`ferris_query_records_out_total\{query="live"\} [1-9]`)
	lag := regexp.MustCompile(`ferris_kafka_consumer_lag_records\{partition="\d",query="fromkafka",stream="kt"\} 0`)
	for text := scrape(t, s); !produced.MatchString(text) || !lag.MatchString(text); text = scrape(t, s) {
		if time.Now().After(deadline) {
			t.Fatal("live pipeline produced nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, c
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetricsExpositionIsCompleteAndPassesPromtool(t *testing.T) {
	s, c := startObservedServer(t, nil)
	if code, _ := c.do("POST", "/queries", `{"name": "bad", "sql": "SELEC 1"}`); code != http.StatusBadRequest {
		t.Fatalf("bad SQL: %d", code)
	}
	text := scrape(t, s)
	for _, want := range []string{
		// The reference names.
		"ferris_sql_queries_total 3",
		`ferris_sql_query_errors_total{phase="compile"} 1`,
		`ferris_sql_query_errors_total{phase="run"} 0`,
		`ferris_sql_query_duration_seconds_bucket{query="win",le="0.0001"}`,
		`ferris_streaming_operations_total{operation="read",query="win"} 1`,
		`ferris_streaming_throughput_rps{query="live"}`,
		"ferris_cpu_usage_percent ",
		"ferris_memory_usage_bytes ",
		"ferris_active_connections ",
		// Per pipeline.
		`ferris_query_records_in_total{query="win"} 6`,
		`ferris_query_batches_in_total{query="win"} 1`,
		`ferris_query_late_records_total{query="win",strategy="drop"} 1`,
		`ferris_query_late_records_total{query="win",strategy="dead_letter"} 0`,
		`ferris_query_dead_lettered_total{query="win"} 0`,
		`ferris_query_watermark_lag_seconds{query="win"} 0`,
		`ferris_query_watermark_seconds{query="live"}`,
		`ferris_query_watermark_lag_seconds{query="live"}`,
		`ferris_query_state_bytes{query="win"}`,
		`ferris_query_circuit_breaker_state{query="win"} 0`,
		`ferris_query_retries_total{query="win"} 0`,
		`ferris_sink_write_duration_seconds_count{query="live",sink="select_1"}`,
		"ferris_memory_limit_bytes ",
		"ferris_memory_reserved_bytes ",
		// Per operator.
		`ferris_operator_records_in_total{operator="select_1/2:WindowAggregate",query="win"} 6`,
		`ferris_operator_records_out_total{operator="select_1/0:Inlet",query="win"} 6`,
		`ferris_operator_records_out_total{operator="select_1/1:Filter",query="win"} 6`,
		`ferris_operator_busy_seconds_total{operator="select_1/2:WindowAggregate",query="win"}`,
		`ferris_operator_state_bytes{operator="select_1/2:WindowAggregate",query="win"}`,
		`ferris_query_input_wait_seconds_total{query="live"}`,
		`ferris_kafka_offset_resets_total{query="fromkafka",stream="kt"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Fatalf("exposition:\n%s", text)
	}

	promtool := requireTool(t, "promtool", "prometheus")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestProfileEndpoint(t *testing.T) {
	_, c := startObservedServer(t, nil)
	code, body := c.do("GET", "/queries/win/profile", "")
	if code != 200 {
		t.Fatalf("profile: %d %s", code, body)
	}
	var p struct {
		Queries []struct {
			Name      string
			Operators []struct {
				Name    string
				RowsIn  int64 `json:"rows_in"`
				RowsOut int64 `json:"rows_out"`
				Share   float64
			}
		}
		Bound, Verdict string
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Queries) != 1 || len(p.Queries[0].Operators) < 3 || p.Queries[0].Operators[0].Name != "Project" ||
		!strings.HasPrefix(p.Verdict, "bottleneck: ") || p.Bound == "" {
		t.Fatalf("profile: %s", body)
	}
	code, body = c.do("GET", "/queries/win/profile?format=text", "")
	if code != 200 || !strings.Contains(string(body), "WindowAggregate") || !strings.Contains(string(body), "bottleneck: ") {
		t.Fatalf("text profile: %d %s", code, body)
	}
	if code, _ := c.do("GET", "/queries/nope/profile", ""); code != 404 {
		t.Fatalf("unknown pipeline: %d", code)
	}
}

func TestTracingSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := NewTelemetry(context.Background(), TracingConfig{SpanExporter: exp, Synchronous: true, Sampler: "always_on"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	s, dir := startServerWith(t, "", 0, tel)
	if err := os.WriteFile(filepath.Join(dir, "ev.jsonl"), []byte(eventsJSONL), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.HTTPAddr.String()
	post := func(body, cid string) *http.Response {
		req, _ := http.NewRequest("POST", base+"/queries", strings.NewReader(body))
		req.Header.Set("X-Correlation-ID", cid)
		req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post(mustJSON(t, map[string]string{"name": "win", "sql": windowSQL}), "req-42")
	if resp.StatusCode != 201 || resp.Header.Get("X-Correlation-ID") != "req-42" {
		t.Fatalf("POST: %d, correlation id %q", resp.StatusCode, resp.Header.Get("X-Correlation-ID"))
	}
	waitFinished(t, client{t: t, base: base}, "win")
	if resp := post(`{"name": "bad", "sql": "SELECT k FROM ev;\nSELECT nope FROM ev;"}`, "req-43"); resp.StatusCode != 400 {
		t.Fatalf("bad SQL: %d", resp.StatusCode)
	}

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, sp := range spans {
		byName[sp.Name] = append(byName[sp.Name], sp)
	}
	regs := byName["ferris.pipeline.register"]
	if len(regs) != 2 {
		t.Fatalf("%d register spans (spans: %v)", len(regs), names(spans))
	}
	reg := regs[0]
	if reg.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("registration not in the caller's trace: %s", reg.SpanContext.TraceID())
	}
	if attr(reg, "ferris.correlation_id") != "req-42" || attr(reg, "ferris.pipeline") != "win" {
		t.Fatalf("register attributes %v", reg.Attributes)
	}
	for _, child := range []string{"ferris.sql.parse", "ferris.plan.compile", "ferris.plan.build"} {
		if len(byName[child]) == 0 || byName[child][0].Parent.SpanID() != reg.SpanContext.SpanID() {
			t.Fatalf("no %s span under the registration (spans: %v)", child, names(spans))
		}
	}
	bad := regs[1]
	if bad.Status.Code != codes.Error || attr(bad, "ferris.sql.line") != "2" || len(bad.Events) == 0 {
		t.Fatalf("failed registration span: status %v attrs %v events %d", bad.Status, bad.Attributes, len(bad.Events))
	}

	batches := byName["ferris.query.batch"]
	if len(batches) == 0 {
		t.Fatalf("no batch spans (spans: %v)", names(spans))
	}
	b := batches[0]
	if attr(b, "ferris.pipeline") != "win" || attr(b, "ferris.correlation_id") != "req-42" || attr(b, "ferris.query") != "select_1" || attr(b, "ferris.sql.line") != "4" {
		t.Fatalf("batch attributes %v", b.Attributes)
	}
	ops := byName["ferris.operator WindowAggregate"]
	if len(ops) == 0 {
		t.Fatalf("no operator spans (spans: %v)", names(spans))
	}
	parents := map[string]bool{}
	for _, sp := range batches {
		parents[sp.SpanContext.SpanID().String()] = true
	}
	for _, sp := range byName["ferris.operator Project"] {
		if !parents[sp.Parent.SpanID().String()] {
			t.Fatal("root operator span is not a child of a batch span")
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func TestSamplerConfiguration(t *testing.T) {
	for _, c := range []struct{ name, arg, want string }{
		{"", "", "FerrisBatchSampler{TraceIDRatioBased{0.01}}"},
		{"", "0.5", "FerrisBatchSampler{TraceIDRatioBased{0.5}}"},
		{"always_on", "", "AlwaysOnSampler"},
		{"parentbased_traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
	} {
		s, err := samplerFor(c.name, c.arg)
		if err != nil || !strings.Contains(s.Description(), c.want) {
			t.Errorf("%q %q: %v %v", c.name, c.arg, s, err)
		}
	}
	for _, bad := range [][2]string{{"sometimes", ""}, {"traceidratio", "2"}} {
		if _, err := samplerFor(bad[0], bad[1]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	cfg := TracingFromEnv(func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "always_off"}[k]
	})
	if cfg.Exporter != "otlp" || cfg.Protocol != "grpc" || cfg.Sampler != "always_off" {
		t.Fatalf("from env: %+v", cfg)
	}
	if tel, err := NewTelemetry(context.Background(), TracingConfig{}); tel != nil || err != nil || tel.Tracer() != nil {
		t.Fatalf("tracing must be off by default: %v %v", tel, err)
	}
	var buf bytes.Buffer
	tel, err := NewTelemetry(context.Background(), TracingConfig{Exporter: "console", Writer: &buf, Synchronous: true, Sampler: "always_on"})
	if err != nil {
		t.Fatal(err)
	}
	_, end := tel.StartSpan(context.Background(), "ferris.test", nil)
	end(nil)
	if err := tel.Shutdown(context.Background()); err != nil || !strings.Contains(buf.String(), `"Name":"ferris.test"`) {
		t.Fatalf("console exporter: %v %s", err, buf.String())
	}
	if _, err := NewTelemetry(context.Background(), TracingConfig{Exporter: "zipkin"}); err == nil {
		t.Fatal("unknown exporter accepted")
	}
}

var metricName = regexp.MustCompile(`\bferris_[a-z0-9_]+`)
