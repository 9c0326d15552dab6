package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// TestSQLCannotReachOutsideTheDataDir: over the API, every path of SQL
// (sources, sinks, dead letters, state, TLS files) must stay under the data
// folder, symbolic links included; the refusal names the option, the path
// and the SQL position, and nothing is read or written.
func TestSQLCannotReachOutsideTheDataDir(t *testing.T) {
	s, dir := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.jsonl")
	if err := os.WriteFile(secret, []byte(`{"ticker":"SECRET","price":1,"volume":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "missing.jsonl"), filepath.Join(dir, "dangling.jsonl")); err != nil {
		t.Fatal(err)
	}
	n := 0
	source := func(path string) string {
		n++
		return fmt.Sprintf("CREATE STREAM t%d (ticker VARCHAR, price DECIMAL(10,2), volume BIGINT)\nWITH (connector = 'file', path = '%s', format = 'json');\nSELECT * FROM t%d;", n, path, n)
	}
	sink := func(path string) string {
		return tradesDDL + fmt.Sprintf("\nCREATE STREAM o AS SELECT ticker FROM trades\nWITH (connector = 'file', path = '%s');", path)
	}
	cases := []struct {
		name, sql, option, path string
		line, col               int
	}{
		{"passwd", source("/etc/passwd"), "path", "/etc/passwd", 1, 1},
		{"absolute", source(secret), "path", secret, 1, 1},
		{"dotdot_source", source("../" + filepath.Base(outside) + "/secret.jsonl"), "path", "../", 1, 1},
		{"symlink", source("link/secret.jsonl"), "path", "link/secret.jsonl", 1, 1},
		{"dotdot_sink", sink("../escaped.jsonl"), "path", "../escaped.jsonl", 3, 1},
		{"absolute_sink", sink(filepath.Join(outside, "out.jsonl")), "path", filepath.Join(outside, "out.jsonl"), 3, 1},
		{"symlink_sink", sink("link/out.jsonl"), "path", "link/out.jsonl", 3, 1},
		{"dangling_sink", sink("dangling.jsonl"), "path", "dangling.jsonl", 3, 1},
		{"dead_letter", strings.Replace(tradesDDL, "format = 'json'", "format = 'json', dead_letter_path = '/tmp/dl.jsonl'", 1) + "\nSELECT * FROM trades;",
			"dead_letter_path", "/tmp/dl.jsonl", 1, 1},
		{"state_dir", "SET checkpoint_interval_ms = 10;\nSET state_dir = '" + outside + "';\n" + tradesDDL + "\nSELECT * FROM trades;", "state_dir", outside, 2, 1},
		{"ssl", "CREATE STREAM k (v VARCHAR)\nWITH (connector = 'kafka', topic = 't', brokers = '127.0.0.1:1', security_protocol = 'ssl', ssl_ca_location = '/etc/ssl/certs/ca-certificates.crt');\nSELECT * FROM k;",
			"ssl_ca_location", "/etc/ssl/certs/ca-certificates.crt", 1, 1},
	}
	for _, tc := range cases {
		code, body := c.do("POST", "/queries", register(tc.name, tc.sql))
		var resp struct {
			Errors []PositionedError `json:"errors"`
		}
		if err := json.Unmarshal(body, &resp); err != nil || code != http.StatusBadRequest || len(resp.Errors) != 1 {
			t.Errorf("%s: %d %s", tc.name, code, body)
			continue
		}
		e := resp.Errors[0]
		if e.Line != tc.line || e.Column != tc.col || !strings.Contains(e.Message, "option "+tc.option+": ") ||
			!strings.Contains(e.Message, tc.path) || !strings.Contains(e.Message, "not allowed") {
			t.Errorf("%s: error %+v", tc.name, e)
		}
	}
	for _, escaped := range []string{filepath.Join(filepath.Dir(dir), "escaped.jsonl"), filepath.Join(outside, "out.jsonl"), filepath.Join(outside, "missing.jsonl")} {
		if _, err := os.Stat(escaped); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was written (%v)", escaped, err)
		}
	}
	if code, body := c.do("GET", "/queries", ""); code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("refused pipelines were registered: %s", body)
	}

	// Inside the data folder, relative and absolute paths and links that
	// stay inside work.
	if err := os.Symlink("trades.jsonl", filepath.Join(dir, "inner.jsonl")); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"rel": "inner.jsonl", "abs": filepath.Join(dir, "trades.jsonl")} {
		if code, body := c.do("POST", "/queries", register(name, source(path))); code != http.StatusCreated {
			t.Fatalf("%s: %d %s", name, code, body)
		}
		if st := c.waitState(name); st.State != "finished" || st.RowsIn != 3 {
			t.Fatalf("%s: %+v", name, st)
		}
	}
}

// TestAllowedRootsAndBrokers: --allow-path adds a folder SQL may read and
// write; --allow-brokers limits the brokers SQL may name.
func TestAllowedRootsAndBrokers(t *testing.T) {
	dir, shared := t.TempDir(), t.TempDir()
	in := filepath.Join(shared, "in.jsonl")
	if err := os.WriteFile(in, []byte("{\"v\":\"a\"}\n{\"v\":\"b\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	r := NewRegistry(RegistryConfig{
		Settings: arrowexec.DefaultSettings(), DataDir: dir, Resources: resource.NewManager(alloc, 0),
		AllowPaths: []string{shared}, AllowBrokers: []string{"127.0.0.1:9092"},
		Connectors: testConnectors,
	})
	defer r.Shutdown(0)
	out := filepath.Join(shared, "out.jsonl")
	p, err := r.Register("copy", fmt.Sprintf(`CREATE STREAM s (v VARCHAR) WITH (connector = 'file', path = '%s');
CREATE STREAM o AS SELECT v FROM s WITH (connector = 'file', path = '%s');`, in, out))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got, err := os.ReadFile(out); err != nil || string(got) != "{\"v\":\"a\"}\n{\"v\":\"b\"}\n" {
		t.Fatalf("output %q (%v, pipeline %v)", got, err, p.Err())
	}
	kafka := `CREATE STREAM k (v VARCHAR) WITH (connector = 'kafka', topic = 't', brokers = '%s');
SELECT * FROM k;`
	_, err = r.Register("elsewhere", fmt.Sprintf(kafka, "127.0.0.1:9092, 10.0.0.1:9092"))
	if err == nil || !strings.Contains(err.Error(), ErrBrokerNotAllowed.Error()) || !strings.Contains(err.Error(), `"10.0.0.1:9092"`) || !strings.Contains(err.Error(), "line 1, column 1") {
		t.Fatalf("broker 10.0.0.1:9092: %v", err)
	}
}
