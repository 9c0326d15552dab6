package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runBenchCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"bench"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBenchNexmarkJSON(t *testing.T) {
	dir := filepath.Join("..", "..", "bench", "nexmark", "queries")
	code, out, errOut := runBenchCmd(t, "nexmark", "--queries", dir, "--query", "q0,q7", "--events", "20000", "--cores", "1", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON object per query, got %q", out)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"query", "events", "seconds", "events_per_second", "events_per_cpu_second",
			"peak_rss_bytes", "p50_latency_ms", "p99_latency_ms"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no key %s", l, k)
			}
		}
		if m["query"] != []string{"q0", "q7"}[i] || m["events"].(float64) != 20000 || m["events_per_second"].(float64) <= 0 ||
			m["peak_rss_bytes"].(float64) <= 0 || m["rows_out"].(float64) <= 0 || m["cores"].(float64) != 1 {
			t.Errorf("figures: %s", l)
		}
	}
}

func TestBenchTableAllAndWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every query")
	}
	dir := filepath.Join("..", "..", "bench", "nexmark", "queries")
	code, out, errOut := runBenchCmd(t, "nexmark", "--queries", dir, "--events", "5000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "q19") || !strings.Contains(out, "q22") || !strings.Contains(out, "events/CPU-s") {
		t.Errorf("out:\n%s\nerr:\n%s", out, errOut)
	}
	code, out, errOut = runBenchCmd(t, "workloads", "--queries", filepath.Join("..", "..", "bench", "workloads"), "--events", "5000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{"simple_select", "window_aggregation", "join", "pipeline", "p95 ms"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %s in\n%s", w, out)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "ferris bench nexmark"},
		{[]string{"tpch"}, `unknown suite "tpch"`},
		{[]string{"nexmark", "--format", "xml"}, "--format must be table or json"},
		{[]string{"nexmark", "--queries", "nowhere", "--query", "q0"}, "no such file"},
	} {
		code, _, errOut := runBenchCmd(t, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want %q", c.args, code, errOut, c.want)
		}
	}
}

// TestLatencyCause: the batch that moved the watermark is the cause; a
// held-back or final watermark falls back to the newest batch.
func TestLatencyCause(t *testing.T) {
	tr := &latencyTracker{delay: map[string]int64{"bid": 4000}, timeCol: map[string]string{}, streams: map[string][]emission{}, queries: map[string]*queryLatency{}}
	t0 := time.Unix(1000, 0)
	for i := range 40 {
		// batch i holds event times up to 10_000 + 1000*i, emitted at t0 + i ms
		tr.record("bid", 10_000+1000*int64(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	at := func(w int64) time.Duration { return tr.cause(w).Sub(t0) }
	if got := at(10_000 + 1000*30 - 4000); got != 30*time.Millisecond {
		t.Errorf("stateless output of batch 30: cause at %v", got)
	}
	if got := at(10_000 + 1000*30 - 4500); got != 30*time.Millisecond {
		t.Errorf("window closed by batch 30: cause at %v", got)
	}
	for _, w := range []int64{10_000 + 1000*10 - 4000, 0, math.MinInt64, math.MaxInt64} {
		if got := at(w); got != 39*time.Millisecond {
			t.Errorf("watermark %d: cause at %v, want the newest batch", w, got)
		}
	}
}
