package server

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsDoc checks that docs/observability.md lists every metric the
// Collector serves, and that no page of docs/ (nor the README) names a
// metric it does not serve: metric names are an interface and the page
// must not drift from the code.
func TestMetricsDoc(t *testing.T) {
	ch := make(chan *prometheus.Desc, 100)
	NewCollector(nil, ServiceCounters{}).Describe(ch)
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	served := map[string]bool{}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		served[m[1]] = true
	}
	if len(served) < 30 {
		t.Fatalf("the collector describes only %d metrics", len(served))
	}

	b, err := os.ReadFile("../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `ferris_") {
			for _, m := range regexp.MustCompile("`(ferris_[a-z_]+)").FindAllStringSubmatch(line, -1) {
				table[m[1]] = true
			}
		}
	}
	for name := range served {
		if !table[name] {
			t.Errorf("docs/observability.md: metric %s is served but missing from the metrics table", name)
		}
	}

	pages, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`\bferris_[a-z_]+[a-z]\b`)
	for _, p := range append(pages, "../README.md") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range named.FindAllString(string(b), -1) {
			if !served[name] {
				t.Errorf("%s names metric %s, which the server does not serve", p, name)
			}
		}
	}
}
