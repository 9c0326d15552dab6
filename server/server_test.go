package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
)

const tradesDDL = `CREATE STREAM trades (ticker VARCHAR, price DECIMAL(10,2), volume BIGINT)
WITH (connector = 'file', path = 'trades.jsonl', format = 'json');`

// startServer runs a server on free ports over a data folder holding
// trades.jsonl, with every engine allocation checked.
func startServer(t *testing.T, token string, maxConns int) (*Server, string) {
	t.Helper()
	return startServerWith(t, token, maxConns, nil)
}

// startServerWith is startServer with tracing through tel (nil: none).
func startServerWith(t *testing.T, token string, maxConns int, tel *Telemetry) (*Server, string) {
	t.Helper()
	return startServerConfig(t, func(c *Config) { c.Token, c.MaxConnections, c.Telemetry = token, maxConns, tel })
}

// startServerConfig is startServer with the configuration changed by edit.
func startServerConfig(t *testing.T, edit func(*Config)) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	lines := []string{
		`{"ticker":"AAPL","price":191.34,"volume":1500}`,
		`{"ticker":"MSFT","price":410.10,"volume":200}`,
		`{"ticker":"AAPL","price":"oops","volume":10}`,
		`{"ticker":"NVDA","price":880.05,"volume":3000}`,
	}
	if err := os.WriteFile(filepath.Join(dir, "trades.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	settings := arrowexec.DefaultSettings()
	cfg := Config{
		HTTPAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", FlightAddr: "127.0.0.1:0", Grace: 5 * time.Second,
		Registry: RegistryConfig{
			Settings: settings, DataDir: dir, Resources: resource.NewManager(alloc, 0),
			Connectors: testConnectors,
		},
	}
	edit(&cfg)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Error(err)
		}
		alloc.AssertSize(t, 0)
	})
	return s, dir
}

// testConnectors are the connectors of test servers: files, generators,
// Kafka (tests name their brokers) and stdout.
func testConnectors(stdout io.Writer) *arrowexec.Connectors {
	c := &arrowexec.Connectors{}
	sources.Register(c)
	sinks.Register(c)
	kafkasrc.Register(c, kafkasrc.Config{})
	c.RegisterSink("stdout", sinks.StdoutFactory(stdout))
	return c
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func register(name, sql string) string {
	b, _ := json.Marshal(map[string]string{"name": name, "sql": sql})
	return string(b)
}

// waitState polls a pipeline until it leaves "running".
func (c client) waitState(name string) PipelineStatus {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := c.do("GET", "/queries/"+name, "")
		if code != http.StatusOK {
			c.t.Fatalf("GET /queries/%s: %d %s", name, code, body)
		}
		var st PipelineStatus
		if err := json.Unmarshal(body, &st); err != nil {
			c.t.Fatal(err)
		}
		if st.State != "running" {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("pipeline %s still running: %s", name, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPipelineLifecycleOverHTTP(t *testing.T) {
	s, dir := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}

	code, body := c.do("POST", "/queries", register("big", tradesDDL+`
CREATE STREAM big_trades AS SELECT ticker, price * volume AS notional FROM trades WHERE volume > 1000
WITH (connector = 'file', path = 'out/big.jsonl', format = 'json');`))
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	st := c.waitState("big")
	if st.State != "finished" || st.RowsIn != 3 || st.RowsOut != 2 || st.DeadLettered != 1 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Queries) != 1 || st.Queries[0].Watermark != "+inf" {
		t.Fatalf("queries %+v", st.Queries)
	}
	out, err := os.ReadFile(filepath.Join(dir, "out/big.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"ticker\":\"AAPL\",\"notional\":287010.00}\n{\"ticker\":\"NVDA\",\"notional\":2640150.00}\n"
	if string(out) != want {
		t.Fatalf("sink file:\n%s\nwant:\n%s", out, want)
	}
	dead, err := os.ReadFile(filepath.Join(dir, "big.dead_letter.jsonl"))
	if err != nil || !strings.Contains(string(dead), `"field":"price"`) || !strings.Contains(string(dead), "line 3") {
		t.Fatalf("dead letters %s (%v)", dead, err)
	}

	// The stream declared by "big" is readable by a later pipeline.
	if code, body := c.do("POST", "/queries", register("again", `CREATE STREAM small AS SELECT ticker FROM trades WHERE volume < 1000
WITH (connector = 'file', path = 'out/small.jsonl');`)); code != http.StatusCreated {
		t.Fatalf("POST again: %d %s", code, body)
	}
	if st := c.waitState("again"); st.RowsOut != 1 {
		t.Fatalf("again: %+v", st)
	}

	if code, _ := c.do("POST", "/queries", register("big", "SELECT 1 FROM trades;")); code != http.StatusConflict {
		t.Fatalf("duplicate name: %d", code)
	}
	if code, body := c.do("POST", "/queries", register("redeclare", tradesDDL+" SELECT * FROM trades;")); code != http.StatusConflict {
		t.Fatalf("redeclared stream: %d %s", code, body)
	}
	code, body = c.do("GET", "/queries", "")
	var all []PipelineStatus
	if err := json.Unmarshal(body, &all); err != nil || code != 200 || len(all) != 2 || all[0].Name != "again" || all[1].Name != "big" {
		t.Fatalf("GET /queries: %d %s", code, body)
	}
	if code, _ := c.do("DELETE", "/queries/big", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := c.do("GET", "/queries/big", ""); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", code)
	}
	if code, _ := c.do("DELETE", "/queries/big", ""); code != http.StatusNotFound {
		t.Fatalf("second DELETE: %d", code)
	}
}

func TestSQLErrorsAre400WithLineAndColumn(t *testing.T) {
	s, _ := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	code, body := c.do("POST", "/queries", register("bad", tradesDDL+"\nSELECT tikcer\nFROM trades;"))
	var resp struct {
		Errors []PositionedError `json:"errors"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || code != http.StatusBadRequest || len(resp.Errors) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	if e := resp.Errors[0]; e.Line != 3 || e.Column != 8 || !strings.Contains(e.Message, `did you mean "ticker"`) {
		t.Fatalf("error %+v", e)
	}
	code, body = c.do("POST", "/queries", register("bad", "SELEC 1;"))
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"line": 1`) {
		t.Fatalf("syntax error: %d %s", code, body)
	}
	for _, bad := range []string{`{"name":"x"}`, `not json`, `{"name":"x","sql":"SELECT 1","extra":1}`} {
		if code, body := c.do("POST", "/queries", bad); code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", bad, code, body)
		}
	}
	if code, _ := c.do("POST", "/queries", register("no spaces", "SELECT 1;")); code != http.StatusBadRequest {
		t.Fatalf("bad name: %d", code)
	}
	huge := register("huge", "SELECT '"+strings.Repeat("x", DefaultMaxBodyBytes)+"';")
	if code, _ := c.do("POST", "/queries", huge); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("huge body: %d", code)
	}
}

func TestBearerToken(t *testing.T) {
	s, _ := startServer(t, "s3cret", 0)
	anon := client{t: t, base: "http://" + s.HTTPAddr.String()}
	if code, _ := anon.do("GET", "/queries", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	wrong := client{t: t, base: anon.base, token: "guess"}
	if code, _ := wrong.do("GET", "/queries", ""); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := anon.do("GET", "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	ok := client{t: t, base: anon.base, token: "s3cret"}
	if code, _ := ok.do("GET", "/queries", ""); code != http.StatusOK {
		t.Fatalf("token: %d", code)
	}
	metrics := client{t: t, base: "http://" + s.MetricsAddr.String()}
	if code, _ := metrics.do("GET", "/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("metrics without token: %d", code)
	}
}

func TestLiveRowsAndMetrics(t *testing.T) {
	s, _ := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	code, body := c.do("POST", "/queries", register("live", `
CREATE STREAM ticks (ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'generator', rows = '0', rate = '2000');
SELECT ticker, volume FROM ticks WHERE volume > 0;`))
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	code, body = c.do("GET", "/streams", "")
	if code != 200 || !strings.Contains(string(body), `"name": "live"`) || !strings.Contains(string(body), `"name": "volume"`) {
		t.Fatalf("streams: %s", body)
	}
	resp, err := http.Get(c.base + "/streams/live/rows?limit=5")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil || row["ticker"] == nil || row["volume"] == nil {
			t.Fatalf("row %q: %v", sc.Text(), err)
		}
		n++
	}
	resp.Body.Close()
	if n != 5 {
		t.Fatalf("%d live rows, want 5", n)
	}
	if code, _ := c.do("GET", "/streams/nope/rows", ""); code != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", code)
	}

	m := client{t: t, base: "http://" + s.MetricsAddr.String()}
	code, body = m.do("GET", "/metrics", "")
	text := string(body)
	for _, want := range []string{
		"ferris_sql_queries_total 1",
		"ferris_active_connections ",
		"ferris_memory_usage_bytes ",
		`ferris_query_running{query="live"} 1`,
		`ferris_query_records_in_total{query="live"}`,
	} {
		if code != 200 || !strings.Contains(text, want) {
			t.Fatalf("metrics lack %q:\n%s", want, text)
		}
	}
	if code, _ := m.do("GET", "/debug/pprof/cmdline", ""); code != 200 {
		t.Fatalf("pprof: %d", code)
	}
}

// TestMaxConnections: max_connections bounds the requests served at once
// without the token; a further one waits for a slot, while health checks
// are served at once.
func TestMaxConnections(t *testing.T) {
	s, _ := startServer(t, "", 1)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	if code, body := c.do("POST", "/queries", register("live", `CREATE STREAM ticks (ticker VARCHAR, volume BIGINT)
WITH (connector = 'generator', rows = '0', rate = '1000');
SELECT ticker FROM ticks;`)); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	// The first request streams rows and holds the one slot.
	first, err := net.Dial("tcp", s.HTTPAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(first, "GET /streams/live/rows HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(first), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("rows: %v %v", resp, err)
	}
	done := make(chan int, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(c.base + "/queries")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		t.Fatalf("second request served (%d) while the first holds the slot", code)
	case <-time.After(300 * time.Millisecond):
	}
	healthy := (&http.Client{Timeout: time.Second})
	if resp, err := healthy.Get(c.base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while the slot is taken: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	first.Close()
	select {
	case code := <-done:
		if code != 200 {
			t.Fatalf("second request: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second request never served after the first closed")
	}
}

// TestHealthzWithAThousandIdleConnections: idle keep-alive connections,
// connections that send nothing and requests whose body never comes, a
// thousand in all (max_connections' default), do not keep health checks and
// clients with the token waiting.
func TestHealthzWithAThousandIdleConnections(t *testing.T) {
	s, _ := startServer(t, "tok", 0)
	addr := s.HTTPAddr.String()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 1000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0: // one request, then idle keep-alive
			fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		case 1: // a body that never comes
			fmt.Fprint(c, "POST /queries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		case 2: // nothing at all
		}
	}
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct{ path, token string }{{"/healthz", ""}, {"/readyz", ""}, {"/queries", "tok"}} {
		req, _ := http.NewRequest("GET", "http://"+addr+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		start := time.Now()
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s with 1000 idle connections: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || time.Since(start) > time.Second {
			t.Fatalf("%s: %d after %v", tc.path, resp.StatusCode, time.Since(start))
		}
	}
}

// TestLiveRowsOutlastTheWriteTimeout: the write timeout bounds ordinary
// responses, not a stream of live rows.
func TestLiveRowsOutlastTheWriteTimeout(t *testing.T) {
	s, _ := startServerConfig(t, func(c *Config) { c.WriteTimeout = 100 * time.Millisecond })
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	if code, body := c.do("POST", "/queries", register("live", `CREATE STREAM ticks (ticker VARCHAR, volume BIGINT)
WITH (connector = 'generator', rows = '0', rate = '50', batch_size = '1', linger_ms = '0');
SELECT ticker FROM ticks;`)); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	start := time.Now()
	resp, err := http.Get(c.base + "/streams/live/rows?limit=25")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	n := 0
	for sc.Scan() {
		n++
	}
	if n != 25 || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("%d rows in %v (%v), want 25 over about 500ms", n, time.Since(start), sc.Err())
	}
}
