package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrisstreams/ferris/server"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// announced waits for a line of out matching pattern and returns the
// pattern's first group (an address the command prints).
func announced(t *testing.T, out *syncBuffer, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not announced: %s", pattern, out.String())
		}
	}
}

func TestServerRegistersFilesAndStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"server", "--http-addr", "127.0.0.1:0", "--metrics-addr", "-", "--flight-addr", "127.0.0.1:0",
			"--data-dir", "../../examples", "../../examples/big_trades.sql"}, &stdout, &stderr)
	}()
	base := announced(t, &stderr, `HTTP API on (http://\S+)`)
	var st struct {
		State   string `json:"state"`
		RowsOut int64  `json:"rows_out"`
	}
	for deadline := time.Now().Add(20 * time.Second); st.State != "finished"; {
		resp, err := http.Get(base + "/queries/big_trades")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("%s: %v (stderr %s)", body, err, stderr.String())
		}
		if st.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("pipeline: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.RowsOut == 0 {
		t.Fatal("no rows out")
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop after cancel")
	}
}

// TestRunReadsAnyPathServerConfinesThem: ferris run keeps the local user's
// reach (absolute paths anywhere); ferris server refuses a pipeline file
// naming a path outside --data-dir unless --allow-path names its folder.
func TestRunReadsAnyPathServerConfinesThem(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	in := filepath.Join(elsewhere, "in.jsonl")
	if err := os.WriteFile(in, []byte("{\"v\":\"a\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sqlFile := filepath.Join(dir, "p.sql")
	if err := os.WriteFile(sqlFile, []byte("CREATE STREAM s (v VARCHAR) WITH (connector = 'file', path = '"+in+"');\nSELECT v FROM s;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := ferris(t, "run", "--progress", "never", sqlFile); code != 0 || out != "{\"v\":\"a\"}\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	server := []string{"server", "--http-addr", "127.0.0.1:0", "--metrics-addr", "-", "--flight-addr", "-", "--data-dir", dir}
	code, _, errOut := ferris(t, append(server, sqlFile)...)
	if code != 1 || !strings.Contains(errOut, "line 1, column 1: option path: \""+in+"\" is outside the data folder") {
		t.Fatalf("server: exit %d, stderr %s", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // registered, then shut down at once
	var stderr syncBuffer
	if code := run(ctx, append(server, "--allow-path", elsewhere, sqlFile), io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "registered "+sqlFile) {
		t.Fatalf("server --allow-path: exit %d, stderr %s", code, stderr.String())
	}
}

// TestServerMemoryIsBoundedByDefault: ferris server starts with
// max_memory_mb at its default share of the machine's memory, not
// unlimited; --set still overrides it.
func TestServerMemoryIsBoundedByDefault(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{nil, server.DefaultMemoryLimitMB() << 20},
		{[]string{"--set", "max_memory_mb=64"}, 64 << 20},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var stderr syncBuffer
		code := make(chan int, 1)
		go func() {
			code <- run(ctx, append([]string{"server", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--flight-addr", "-",
				"--data-dir", t.TempDir()}, tc.args...), io.Discard, &stderr)
		}()
		resp, err := http.Get(announced(t, &stderr, `metrics on (http://\S+)`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		<-code
		var got float64
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "ferris_memory_limit_bytes "); ok {
				got, _ = strconv.ParseFloat(v, 64)
			}
		}
		if tc.want <= 0 || got != float64(tc.want) {
			t.Fatalf("%v: ferris_memory_limit_bytes %v, want %d", tc.args, got, tc.want)
		}
	}
}
