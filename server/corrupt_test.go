package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServerSurvivesMutatedFiles posts pipelines over byte-flipped and
// truncated Arrow, Parquet, JSON and CSV files: the server stays healthy,
// and each pipeline finishes or reports failed with an error naming its
// file.
func TestServerSurvivesMutatedFiles(t *testing.T) {
	s, dir := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	formats := []string{"arrow", "parquet", "json", "csv"}
	// The engine writes the good files from trades.jsonl.
	for _, f := range formats {
		code, body := c.do("POST", "/queries", register("make_"+f, tradesDDL+fmt.Sprintf(`
CREATE STREAM copy AS SELECT ticker, price, volume FROM trades WITH (connector = 'file', path = 'good.%s', format = '%s');`, f, f)))
		if code != http.StatusCreated {
			t.Fatalf("POST: %d %s", code, body)
		}
		if st := c.waitState("make_" + f); st.State != "finished" {
			t.Fatalf("%+v", st)
		}
		c.do("DELETE", "/queries/make_"+f, "")
	}
	n := 250 // per format
	if testing.Short() {
		n = 25
	}
	rng := rand.New(rand.NewPCG(15, 1))
	for _, f := range formats {
		good, err := os.ReadFile(filepath.Join(dir, "good."+f))
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for i := range n {
			data := bytes.Clone(good)
			if rng.IntN(4) == 0 {
				data = data[:rng.IntN(len(data))]
			} else {
				for range 1 + rng.IntN(4) {
					data[rng.IntN(len(data))] ^= byte(1 + rng.IntN(255))
				}
			}
			file := fmt.Sprintf("m%d.%s", i, f)
			if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("m_%s_%d", f, i)
			code, body := c.do("POST", "/queries", register(name, fmt.Sprintf(`CREATE STREAM m (ticker VARCHAR, price DECIMAL(10,2), volume BIGINT)
WITH (connector = 'file', path = '%s', format = '%s');
SELECT ticker, price * volume AS notional FROM m;`, file, f)))
			if code != http.StatusCreated {
				t.Fatalf("POST %s: %d %s", name, code, body)
			}
			switch st := c.waitState(name); st.State {
			case "failed":
				failed++
				if !strings.Contains(st.Error, file) {
					t.Fatalf("%s: error without its file: %s", name, st.Error)
				}
			case "finished":
			default:
				t.Fatalf("%s: %+v", name, st)
			}
			if code, _ := c.do("DELETE", "/queries/"+name, ""); code != http.StatusNoContent {
				t.Fatalf("DELETE %s: %d", name, code)
			}
		}
		if (f == "arrow" || f == "parquet") && failed == 0 {
			t.Fatalf("%s: no corrupt file failed", f)
		}
		t.Logf("%s: %d of %d failed", f, failed, n)
	}
	if code, _ := c.do("GET", "/healthz", ""); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
}

// logBuffer is a log destination safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFailedQueriesFailThePipeline: a pipeline whose queries have all
// failed stops its endless source and reports failed with each query's
// error; registration, failure and removal are logged with the
// correlation id.
func TestFailedQueriesFailThePipeline(t *testing.T) {
	s, _ := startServer(t, "", 0)
	var log logBuffer
	s.Registry.cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	req, err := http.NewRequest("POST", c.base+"/queries", strings.NewReader(register("gen", `
CREATE STREAM ticks (id BIGINT) WITH (connector = 'generator', rows = '0', rate = '100000');
CREATE STREAM a AS SELECT id FROM ticks WITH (connector = 'file', path = '.');
CREATE STREAM b AS SELECT id + 1 AS id FROM ticks WITH (connector = 'file', path = '.');`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Correlation-ID", "cid-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	st := c.waitState("gen")
	if st.State != "failed" {
		t.Fatalf("%+v", st)
	}
	for _, want := range []string{`query "a"`, `query "b"`, "is a directory", "correlation id cid-42"} {
		if !strings.Contains(st.Error, want) {
			t.Fatalf("error %q lacks %q", st.Error, want)
		}
	}
	rows := st.RowsIn
	time.Sleep(100 * time.Millisecond)
	if _, body := c.do("GET", "/queries/gen", ""); !strings.Contains(string(body), fmt.Sprintf(`"rows_in": %d,`, rows)) {
		t.Fatalf("the source went on after the pipeline failed: %s", body)
	}
	if code, _ := c.do("DELETE", "/queries/gen", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 log lines, got:\n%s", log.String())
	}
	for i, want := range []string{`msg="pipeline registered" pipeline=gen correlation_id=cid-42`,
		`msg="pipeline failed" pipeline=gen correlation_id=cid-42 error=`, `msg="pipeline removed" pipeline=gen correlation_id=cid-42`} {
		if !strings.Contains(lines[i], want) {
			t.Fatalf("log line %d: %s\nwant %s", i, lines[i], want)
		}
	}
}

// TestSelectOneFinishes: a SELECT without FROM gives its row and finishes;
// until it starts, its watermark is -inf, not the epoch.
func TestSelectOneFinishes(t *testing.T) {
	s, _ := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	code, body := c.do("POST", "/queries", register("one", "SELECT 1;"))
	if code != http.StatusCreated || strings.Contains(string(body), "1970-01-01") {
		t.Fatalf("POST: %d %s", code, body)
	}
	if st := c.waitState("one"); st.State != "finished" || st.RowsOut != 1 || st.Queries[0].State != "finished" || st.Queries[0].Watermark != "+inf" {
		t.Fatalf("%+v", st)
	}
}

// TestFailedQueryShowsItsError: while the other query of its pipeline
// runs, a failed query reports its error.
func TestFailedQueryShowsItsError(t *testing.T) {
	s, _ := startServer(t, "", 0)
	c := client{t: t, base: "http://" + s.HTTPAddr.String()}
	code, body := c.do("POST", "/queries", register("half", `
CREATE STREAM ticks (id BIGINT) WITH (connector = 'generator', rows = '0', rate = '1000');
CREATE STREAM bad AS SELECT id FROM ticks WITH (connector = 'file', path = '.');
SELECT id FROM ticks;`))
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st PipelineStatus
		_, body := c.do("GET", "/queries/half", "")
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		if q := st.Queries[0]; q.Name == "bad" && q.State == "failed" {
			if st.State != "running" || !strings.Contains(q.Error, `query "bad"`) || !strings.Contains(q.Error, "is a directory") || st.Queries[1].Error != "" {
				t.Fatalf("%s", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("query bad did not fail: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
