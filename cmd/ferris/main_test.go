package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ferris(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestQuickstartRuns(t *testing.T) {
	code, out, errOut := ferris(t, "run", "../../examples/quickstart.sql")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatalf("no output; stderr: %s", errOut)
	}
	for _, l := range lines {
		var row struct {
			Ticker    string      `json:"ticker"`
			Price     json.Number `json:"price"`
			Volume    int64       `json:"volume"`
			Notional  json.Number `json:"notional"`
			SizeClass string      `json:"size_class"`
			TradeTime string      `json:"trade_time"`
		}
		dec := json.NewDecoder(strings.NewReader(l))
		dec.UseNumber()
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		if row.Volume <= 1000 {
			t.Fatalf("filter let through %q", l)
		}
		if want := "large"; row.Volume >= 5000 {
			want = "block"
			if row.SizeClass != want {
				t.Fatalf("size class wrong in %q", l)
			}
		} else if row.SizeClass != want {
			t.Fatalf("size class wrong in %q", l)
		}
		// price has scale 4, notional = price * volume exactly, scale 4.
		if p := row.Price.String(); len(p) < 6 || p[len(p)-5] != '.' {
			t.Fatalf("price %s not printed with scale 4", p)
		}
		if !strings.HasSuffix(row.TradeTime, "Z") || len(row.TradeTime) != len("2024-01-01T00:00:00.000Z") {
			t.Fatalf("trade_time %q not RFC 3339 ms UTC", row.TradeTime)
		}
	}
	if !strings.Contains(errOut, "rows read") {
		t.Fatalf("no summary on stderr: %s", errOut)
	}
	// Deterministic: the same seed gives the same output.
	_, again, _ := ferris(t, "run", "../../examples/quickstart.sql")
	if again != out {
		t.Fatal("quickstart output differs between runs")
	}
	// And the same at batch size 1.
	_, small, _ := ferris(t, "run", "--set", "batch_size=1", "../../examples/quickstart.sql")
	if small != out {
		t.Fatal("quickstart output differs at batch_size=1")
	}
}

func TestExamplesValidateAndExplain(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.sql")
	if len(files) < 2 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		if code, out, errOut := ferris(t, "validate", f); code != 0 || !strings.Contains(out, "ok") {
			t.Errorf("validate %s: exit %d %s %s", f, code, out, errOut)
		}
		code, out, errOut := ferris(t, "explain", f)
		if code != 0 || !strings.Contains(out, "physical plan:") || !strings.Contains(out, "optimised plan:") {
			t.Errorf("explain %s: exit %d %s %s", f, code, out, errOut)
		}
	}
}

// Nexmark q19 (Flink's two queries: the ranking is fused into the query
// filtering it) is planned as an updating top-N, and so is the same over
// an unbounded generator (events = 0); a ranking read otherwise over that
// unbounded input is refused with its position.
func TestExplainQ19TopN(t *testing.T) {
	src, err := os.ReadFile("../../bench/nexmark/queries/q19.sql")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unbounded := filepath.Join(dir, "q19u.sql")
	if err := os.WriteFile(unbounded, []byte(strings.Replace(string(src), "events = '100000'", "events = '0'", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"../../bench/nexmark/queries/q19.sql", unbounded} {
		code, out, errOut := ferris(t, "explain", f)
		if code != 0 || !strings.Contains(out, "TopN 10 per partition, updating") || strings.Contains(out, "WindowFunctions") {
			t.Errorf("explain %s: exit %d\n%s\n%s", f, code, out, errOut)
		}
	}
	// the ranking read by a query that is not a top-N is refused, with its
	// position
	twoQueries := filepath.Join(dir, "ranked.sql")
	if err := os.WriteFile(twoQueries, []byte(`CREATE STREAM bid (auction BIGINT, price BIGINT, date_time TIMESTAMP,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND) WITH (connector = 'nexmark', kind = 'bid', events = '0');
CREATE STREAM ranked AS SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid;
SELECT * FROM ranked WHERE rn <= 10 OR price > 100;
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := ferris(t, "explain", twoQueries)
	if code == 0 || !strings.Contains(errOut, twoQueries+": line 3, column 97: an unbounded stream can only be ordered by its event time") {
		t.Errorf("explain of the two-query form over an unbounded stream: exit %d\n%s", code, errOut)
	}
}

// Nexmark q9 (a windowed ROW_NUMBER in its own stream, read by rownum =
// 1) is fused into its reader, which keeps one row per auction and window.
func TestExplainQ9WindowedTopN(t *testing.T) {
	code, out, errOut := ferris(t, "explain", "../../bench/nexmark/queries/q9.sql")
	if code != 0 || !strings.Contains(out, "top 1 per partition and window (rows beyond rank 1 pruned") || strings.Contains(out, "query q9_ranked") {
		t.Errorf("explain q9: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.sql")
	src := `CREATE STREAM trades (ticker VARCHAR, price DECIMAL(18,4)) WITH (connector = 'generator');
SELECT tickr FROM trades;
SELECT price FROM trade;
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := ferris(t, "validate", path)
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		path + `: line 2, column 8: unknown column "tickr" in stream "trades" (did you mean "ticker"?)`,
		path + `: line 3, column 19: unknown stream "trade" (did you mean "trades"?)`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("missing %q in:\n%s", want, errOut)
		}
	}
}

func TestRunPipelineWithFilesAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	data := `{"ticker":"AAPL","price":191.34,"volume":1200}
{"ticker":"BAD","price":"x","volume":5}
{"ticker":"JPM","price":170.1,"volume":5400}
`
	sql := `SET batch_size = 2;
CREATE STREAM trades (ticker VARCHAR, price DECIMAL(18,4), volume BIGINT)
WITH (connector = 'file', path = 'in/trades.jsonl', format = 'json');
CREATE STREAM big AS SELECT ticker, price * volume AS notional FROM trades WHERE volume > 1000
WITH (connector = 'file', path = 'out/big.csv', format = 'csv');
`
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	os.WriteFile(filepath.Join(dir, "in", "trades.jsonl"), []byte(data), 0o644)
	os.WriteFile(filepath.Join(dir, "p.sql"), []byte(sql), 0o644)
	code, out, errOut := ferris(t, "run", filepath.Join(dir, "p.sql"))
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out", "big.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "ticker,notional\nAAPL,229608.0000\nJPM,918540.0000\n"; string(got) != want {
		t.Fatalf("csv output:\n%s\nwant:\n%s", got, want)
	}
	dead, err := os.ReadFile(filepath.Join(dir, "p.dead_letter.jsonl"))
	if err != nil {
		t.Fatalf("no dead-letter file: %v (stderr %s)", err, errOut)
	}
	if !strings.Contains(string(dead), `"line 2"`) || !strings.Contains(string(dead), `"field":"price"`) {
		t.Fatalf("dead letter: %s", dead)
	}
	if !strings.Contains(errOut, "1 bad records written to dead-letter file") {
		t.Fatalf("summary does not report the dead letter: %s", errOut)
	}
}

func TestUsageAndUnknownCommand(t *testing.T) {
	if code, _, _ := ferris(t, "frobnicate"); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	if code, out, _ := ferris(t, "--help"); code != 0 || !strings.Contains(out, "ferris run") {
		t.Fatal("help")
	}
	if code, _, _ := ferris(t, "run", "/nonexistent.sql"); code != 1 {
		t.Fatal("missing file should exit 1")
	}
	if code, out, _ := ferris(t, "settings", "--set", "batch_size=7"); code != 0 || !strings.Contains(out, "batch_size=7") {
		t.Fatalf("settings: %s", out)
	}
}

// TestWindowsExample checks examples/windows.sql against results computed
// by hand from examples/trades.jsonl (see the comments in the example).
func TestWindowsExample(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"windows.sql", "trades.jsonl"} {
		data, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	if code, _, errOut := ferris(t, "run", filepath.Join(dir, "windows.sql")); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := map[string]string{
		"sector_5s.jsonl": `{"sector":"tech","trades":2,"volume":1500,"avg_price":282.925000,"window_start":"2024-01-01T00:00:00.000Z","window_end":"2024-01-01T00:00:05.000Z"}
{"sector":"finance","trades":2,"volume":6401,"avg_price":277.552500,"window_start":"2024-01-01T00:00:00.000Z","window_end":"2024-01-01T00:00:05.000Z"}
{"sector":"energy","trades":1,"volume":2500,"avg_price":99.870000,"window_start":"2024-01-01T00:00:00.000Z","window_end":"2024-01-01T00:00:05.000Z"}
{"sector":"tech","trades":1,"volume":800,"avg_price":495.220000,"window_start":"2024-01-01T00:00:05.000Z","window_end":"2024-01-01T00:00:10.000Z"}
{"sector":"energy","trades":1,"volume":15000,"avg_price":146.030000,"window_start":"2024-01-01T00:00:05.000Z","window_end":"2024-01-01T00:00:10.000Z"}
`,
		"volume_4s.jsonl": `{"trades":2,"volume":1500,"window_start":"2023-12-31T23:59:58.000Z","window_end":"2024-01-01T00:00:02.000Z"}
{"trades":4,"volume":9400,"window_start":"2024-01-01T00:00:00.000Z","window_end":"2024-01-01T00:00:04.000Z"}
{"trades":4,"volume":9701,"window_start":"2024-01-01T00:00:02.000Z","window_end":"2024-01-01T00:00:06.000Z"}
{"trades":3,"volume":16801,"window_start":"2024-01-01T00:00:04.000Z","window_end":"2024-01-01T00:00:08.000Z"}
{"trades":1,"volume":15000,"window_start":"2024-01-01T00:00:06.000Z","window_end":"2024-01-01T00:00:10.000Z"}
`,
		// tech 0.5 s and 1.0 s share a session (gap 1.5 s), 5.0 s starts
		// another; finance 2.25 s and 4.0 s are 1.75 s apart: two sessions.
		// All close at end of input, ordered by end.
		"sector_bursts.jsonl": `{"sector":"tech","trades":2,"volume":1500,"window_start":"2024-01-01T00:00:00.500Z","window_end":"2024-01-01T00:00:02.500Z"}
{"sector":"finance","trades":1,"volume":5400,"window_start":"2024-01-01T00:00:02.250Z","window_end":"2024-01-01T00:00:03.750Z"}
{"sector":"energy","trades":1,"volume":2500,"window_start":"2024-01-01T00:00:03.000Z","window_end":"2024-01-01T00:00:04.500Z"}
{"sector":"finance","trades":1,"volume":1001,"window_start":"2024-01-01T00:00:04.000Z","window_end":"2024-01-01T00:00:05.500Z"}
{"sector":"tech","trades":1,"volume":800,"window_start":"2024-01-01T00:00:05.000Z","window_end":"2024-01-01T00:00:06.500Z"}
{"sector":"energy","trades":1,"volume":15000,"window_start":"2024-01-01T00:00:06.125Z","window_end":"2024-01-01T00:00:07.625Z"}
`,
	}
	for f, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, "out", f))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != w {
			t.Errorf("%s:\n%s\nwant:\n%s", f, got, w)
		}
	}
}

// TestFinancialPipelineExample runs the three-stage pipeline: every
// alert written must carry the signal its price and moving average imply,
// the per-signal counts on stdout must match the file, and the output must
// not depend on batch size.
func TestFinancialPipelineExample(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("../../examples/financial_pipeline.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "financial_pipeline.sql")
	os.WriteFile(path, data, 0o644)
	var first string
	for _, bs := range []string{"4096", "7"} {
		code, out, errOut := ferris(t, "run", "--set", "batch_size="+bs, path)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		alerts, err := os.ReadFile(filepath.Join(dir, "out/price_alerts.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(alerts)), "\n") {
			var a struct {
				Price  float64 `json:"price"`
				MA20   float64 `json:"ma_20"`
				Signal string  `json:"signal"`
			}
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatal(err)
			}
			want := "NORMAL"
			if a.Price > a.MA20*1.005 {
				want = "BREAKOUT"
			} else if a.Price < a.MA20*0.995 {
				want = "BREAKDOWN"
			}
			if a.Signal != want || want == "NORMAL" {
				t.Fatalf("alert %s: signal should be %s", line, want)
			}
			counts[a.Signal]++
		}
		if len(counts) != 2 {
			t.Fatalf("alerts %v: want both signals", counts)
		}
		for sig, n := range counts {
			if !strings.Contains(out, fmt.Sprintf(`{"signal":"%s","alerts":%d,`, sig, n)) {
				t.Fatalf("stdout %q lacks %d %s alerts", out, n, sig)
			}
		}
		os.Remove(filepath.Join(dir, "out/price_alerts.jsonl"))
		if first == "" {
			first = string(alerts)
		} else if string(alerts) != first {
			t.Fatal("alerts differ between batch sizes")
		}
	}
}

// A windowed query over a stream without event time runs on processing
// time: validate and run warn about it, plainly for a file, whose output is
// then not reproducible. An event-time stream gets no warning.
func TestWarnsOfProcessingTimeWindows(t *testing.T) {
	dir := t.TempDir()
	sql := `CREATE STREAM trades (ticker VARCHAR, volume BIGINT, ts TIMESTAMP)
WITH (connector = 'file', path = 'trades.jsonl', format = 'json');
SELECT ticker, SUM(volume) AS v FROM trades GROUP BY ticker WINDOW TUMBLING (10s);
CREATE STREAM gen (ticker VARCHAR, volume BIGINT) WITH (connector = 'generator', rows = '0');
CREATE STREAM d AS SELECT ticker, volume FROM gen;
CREATE STREAM counts AS SELECT ticker, COUNT(*) AS n FROM d GROUP BY ticker WINDOW TUMBLING (10s);
CREATE STREAM timed (ticker VARCHAR, ts TIMESTAMP, WATERMARK FOR ts AS ts)
WITH (connector = 'file', path = 'trades.jsonl', format = 'json');
SELECT ticker, COUNT(*) AS n FROM timed GROUP BY ticker WINDOW TUMBLING (10s);
`
	path := filepath.Join(dir, "p.sql")
	os.WriteFile(path, []byte(sql), 0o644)
	os.WriteFile(filepath.Join(dir, "trades.jsonl"), []byte(`{"ticker":"A","volume":1,"ts":"2024-01-01T00:00:00Z"}`+"\n"), 0o644)
	fileWarning := path + `: line 3, column 61: warning: query select_1 windows stream "trades" by processing time: it has no event time, so a window holds the rows read from file trades.jsonl during its wall-clock interval; the output depends on how fast they are read and is not reproducible.`
	code, out, errOut := ferris(t, "validate", path)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("validate: exit %d %s %s", code, out, errOut)
	}
	for _, want := range []string{fileWarning,
		path + `: line 6, column 77: warning: query counts windows stream "d" by processing time (the wall clock as rows arrive): it has no event time.`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate: missing %q in:\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, "warning:"); n != 2 {
		t.Errorf("validate: %d warnings, want 2 (none for the event-time stream):\n%s", n, errOut)
	}
	os.WriteFile(path, []byte(strings.Join(strings.Split(sql, "\n")[:3], "\n")), 0o644)
	code, _, errOut = ferris(t, "run", path)
	if code != 0 || !strings.Contains(errOut, fileWarning) {
		t.Errorf("run: exit %d, want the warning in stderr:\n%s", code, errOut)
	}
}
