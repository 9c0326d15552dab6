package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

// TestPipelineResumesAfterServerRestart: a pipeline with state_dir keeps
// checkpoints; after the server shuts down, registering it again resumes
// from the latest one (its output file continues with the next row, none
// repeated or skipped); removing it deletes its checkpoints.
func TestPipelineResumesAfterServerRestart(t *testing.T) {
	dir := t.TempDir()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	var mu sync.Mutex
	var notes []string
	newRegistry := func() *Registry {
		return NewRegistry(RegistryConfig{
			Settings: arrowexec.DefaultSettings(), DataDir: dir, Resources: resource.NewManager(alloc, 0),
			Connectors: func(io.Writer) *arrowexec.Connectors {
				c := &arrowexec.Connectors{}
				sources.Register(c)
				sinks.Register(c)
				return c
			},
			Logf: func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				notes = append(notes, fmt.Sprintf(format, args...))
			},
		})
	}
	const sql = `SET state_dir = 'state';
SET checkpoint_interval_ms = '20';
CREATE STREAM ticks (id BIGINT, ticker VARCHAR, price DECIMAL(18,4))
WITH (connector = 'generator', rows = '0', rate = '5000', batch_size = '64', linger_ms = '5');
CREATE STREAM out AS SELECT id, ticker FROM ticks WITH (connector = 'file', path = 'out.jsonl');`
	checkpoints := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "state", "p", "chk-*", "manifest.json"))
		return m
	}
	waitCheckpoints := func(n int) {
		for deadline := time.Now().Add(20 * time.Second); len(checkpoints()) < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint written; notes: %v", notes)
			}
		}
	}

	r := newRegistry()
	if _, err := r.Register("p", sql); err != nil {
		t.Fatal(err)
	}
	waitCheckpoints(2)
	rec := httptest.NewRecorder()
	MetricsHandler(r, ServiceCounters{}, "").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, m := range []string{`ferris_checkpoints_total{query="p",result="completed"}`, `ferris_checkpoint_last_bytes{query="p"}`} {
		if !strings.Contains(rec.Body.String(), m) {
			t.Errorf("metric %s missing from the exposition", m)
		}
	}
	time.Sleep(30 * time.Millisecond)
	r.Shutdown(5 * time.Second)
	if len(checkpoints()) == 0 {
		t.Fatal("shutdown removed the checkpoints")
	}
	before := len(readIDs(t, filepath.Join(dir, "out.jsonl")))

	r = newRegistry()
	if _, err := r.Register("p", sql); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := r.Remove("p", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.Shutdown(time.Second)
	mu.Lock()
	resumed := strings.Contains(strings.Join(notes, "\n"), "pipeline p: resuming from checkpoint")
	mu.Unlock()
	if !resumed {
		t.Fatalf("the pipeline did not resume; notes: %v", notes)
	}
	if m := checkpoints(); len(m) != 0 {
		t.Fatalf("checkpoints left after removing the pipeline: %v", m)
	}
	ids := readIDs(t, filepath.Join(dir, "out.jsonl"))
	if len(ids) <= before/2 {
		t.Fatalf("%d rows after the restart, %d before", len(ids), before)
	}
	for i, id := range ids {
		if id != int64(i) {
			t.Fatalf("row %d has id %d: the output repeats or skips rows across the restart", i, id)
		}
	}
}

// readIDs returns the id field of each JSON line of path.
func readIDs(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct{ ID int64 }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("line %d: %v", len(ids)+1, err)
		}
		ids = append(ids, row.ID)
	}
	return ids
}
