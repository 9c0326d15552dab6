package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunExitsWhenItsQueryFails: ferris run ends, exiting 1 with the
// query's error, once its only query has failed, although its generator
// never ends.
func TestRunExitsWhenItsQueryFails(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blocker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fail.sql")
	sql := `CREATE STREAM ticks (id BIGINT) WITH (connector = 'generator', rows = '0', rate = '1000');
CREATE STREAM out AS SELECT id FROM ticks WITH (connector = 'file', path = 'blocker/out.json');`
	if err := os.WriteFile(path, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, stderr := ferris(t, "run", path)
		done <- result{code, stderr}
	}()
	select {
	case r := <-done:
		if r.code != 1 || !strings.Contains(r.stderr, `query "out"`) || !strings.Contains(r.stderr, "not a directory") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ferris run did not end after its only query failed")
	}
}

// TestRunSelectOne: a SELECT without FROM prints its row and ends.
func TestRunSelectOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "one.sql")
	if err := os.WriteFile(path, []byte("SELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ferris(t, "run", path)
	if code != 0 || stdout != "{\"expr_1\":1}\n" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}
