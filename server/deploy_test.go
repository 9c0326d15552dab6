package server

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const deployDir = "../deploy"

// dashboardPanel is the part of a Grafana panel the test reads.
type dashboardPanel struct {
	Title   string           `json:"title"`
	Type    string           `json:"type"`
	Panels  []dashboardPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// exposedNames lists the metric families of an exposition (from its TYPE
// lines), histograms also under their _bucket, _sum and _count series.
func exposedNames(text string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+s] = true
				}
			}
		}
	}
	return names
}

// TestDashboardUsesLiveMetrics parses the Grafana dashboard and checks that
// every metric its queries use is in the exposition of a running server.
func TestDashboardUsesLiveMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "grafana/dashboards/ferris.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string           `json:"uid"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	s, _ := startObservedServer(t, nil)
	live := exposedNames(scrape(t, s))

	var panels []dashboardPanel
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			panels = append(panels, p)
		}
	}
	walk(dash.Panels)
	if len(panels) < 10 {
		t.Fatalf("%d panels, want at least 10", len(panels))
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q uses no ferris metric", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !live[n] {
				t.Errorf("%s: metric %s is not exposed by a running server", where, n)
			}
		}
	}
	for _, p := range panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if strings.Contains(v.Definition, "ferris_") {
			check("variable", v.Definition)
		}
	}
	// The panels: throughput, latency, late/dead-lettered,
	// watermark lag, memory, CPU, connections, breaker state, Kafka lag,
	// errors.
	for _, m := range []string{"ferris_streaming_throughput_rps", "ferris_sql_query_duration_seconds_bucket",
		"ferris_query_late_records_total", "ferris_query_dead_lettered_total", "ferris_query_watermark_lag_seconds",
		"ferris_memory_usage_bytes", "ferris_cpu_usage_percent", "ferris_active_connections",
		"ferris_query_circuit_breaker_state", "ferris_kafka_consumer_lag_records", "ferris_sql_query_errors_total"} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestPrometheusConfigs runs promtool check config on the Prometheus
// configurations (and through them the alerting rules), and checks that
// their rules use only metrics the server exposes.
func TestPrometheusConfigs(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	for _, f := range []string{"prometheus.yml", "prometheus.compose.yml"} {
		out, err := exec.Command(promtool, "check", "config", filepath.Join(deployDir, "prometheus", f)).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check config %s: %v\n%s", f, err, out)
		}
	}
	for f, target := range map[string]string{"prometheus.yml": `"127.0.0.1:9091"`, "prometheus.compose.yml": `"ferris:9091"`} {
		data, err := os.ReadFile(filepath.Join(deployDir, "prometheus", f))
		if err != nil || !strings.Contains(string(data), target) {
			t.Errorf("%s does not scrape %s (%v)", f, target, err)
		}
	}
	rules, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := startObservedServer(t, nil)
	live := exposedNames(scrape(t, s))
	for _, n := range metricName.FindAllString(string(rules), -1) {
		if !live[n] {
			t.Errorf("alerts.yml uses %s, which the server does not expose", n)
		}
	}
}
