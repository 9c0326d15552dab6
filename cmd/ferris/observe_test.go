package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
)

func TestExplainAnalyze(t *testing.T) {
	code, out, errOut := ferris(t, "explain", "--analyze", "../../examples/quickstart.sql")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"source trades: 40 of 40 rows", "query select_1:", "Project", "Filter",
		"Inlet trades (waiting for input)", "rows in", "share", "peak state", "sinks", "\nbottleneck: ", "throughput is bound by the"} {
		if !strings.Contains(out, want) {
			t.Fatalf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"ticker"`) {
		t.Fatalf("explain --analyze printed the rows:\n%s", out)
	}
	if !strings.Contains(errOut, "rows read") {
		t.Fatalf("no summary: %s", errOut)
	}
}

// writePipeline writes sql to a file in a fresh folder.
func writePipeline(t *testing.T, sql string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.sql")
	if err := os.WriteFile(path, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunShowsProgressAndSummary(t *testing.T) {
	path := writePipeline(t, `CREATE STREAM trades (ticker VARCHAR, volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '1' SECOND)
WITH (connector = 'generator', rows = '800', rate = '1000', seed = '3', batch_size = '50');
SELECT ticker, COUNT(*) AS n, window_start FROM trades GROUP BY ticker WINDOW TUMBLING (INTERVAL '10' SECOND);`)
	code, _, errOut := ferris(t, "run", "--progress", "always", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	progress := regexp.MustCompile(`\r\x1b\[Kferris: \d+ of 800 rows \(\d+%\), \d+ rows/s, watermark (-inf|\d{4}-[^,]+), \d+ late, \d+ dead-lettered`)
	if !progress.MatchString(errOut) {
		t.Fatalf("no progress line: %q", errOut)
	}
	for _, want := range []string{"800 rows read from 1 sources", "query select_1:", "0 late rows", "watermark at the end +inf", "peak memory", "bottleneck:"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("summary lacks %q: %s", want, errOut)
		}
	}
	// Not a terminal: no progress line unless asked.
	if _, _, errOut := ferris(t, "run", path); strings.Contains(errOut, "\r") {
		t.Fatalf("progress drawn on a non-terminal: %q", errOut)
	}
	if code, _, _ := ferris(t, "run", "--progress", "sometimes", path); code != 2 {
		t.Fatalf("bad --progress accepted: %d", code)
	}
}

func TestProgressLine(t *testing.T) {
	got := progressLine(runCounters{rows: 250, total: 1000, late: 3, dead: 1, watermark: 1704067205000}, 1234.4)
	want := "ferris: 250 of 1000 rows (25%), 1234 rows/s, watermark 2024-01-01T00:00:05.000Z, 3 late, 1 dead-lettered"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := progressLine(runCounters{rows: 7, total: -1, watermark: arrowexec.NoWatermark}, 0); !strings.HasPrefix(got, "ferris: 7 rows, 0 rows/s, watermark -inf") {
		t.Fatalf("unknown total: %q", got)
	}
}

func TestRunServesMetricsWhenAsked(t *testing.T) {
	path := writePipeline(t, `CREATE STREAM trades (ticker VARCHAR, volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'generator', rows = '0', rate = '500');
SELECT ticker, volume FROM trades WHERE volume > 0;`)
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"run", "--metrics-addr", "127.0.0.1:0", "--duration", "3s", path}, &stdout, &stderr)
	}()
	url := announced(t, &stderr, `metrics on (http://\S+/metrics)`)
	var text string
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(text, `ferris_query_records_out_total{query="p"} 1`); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(body)
		if regexp.MustCompile(`ferris_query_records_out_total\{query="p"\} [1-9]`).MatchString(text) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rows counted:\n%s", text)
		}
	}
	for _, want := range []string{"ferris_sql_queries_total 1", `ferris_query_running{query="p"} 1`, "ferris_cpu_usage_percent", `ferris_operator_records_out_total{operator="select_1/2:Filter",query="p"}`} {
		if !strings.Contains(text, want) {
			t.Fatalf("metrics lack %q:\n%s", want, text)
		}
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("--duration did not stop the run")
	}
	// Without --metrics-addr ferris run opens no listener.
	if strings.Count(stderr.String(), "metrics on") != 1 {
		t.Fatalf("stderr: %s", stderr.String())
	}
}
