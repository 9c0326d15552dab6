package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"
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

func TestServerRegistersFilesAndStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"server", "--http-addr", "127.0.0.1:0", "--metrics-addr", "-", "--flight-addr", "127.0.0.1:0",
			"--data-dir", "../../examples", "../../examples/big_trades.sql"}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`HTTP API on (http://\S+)`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address announced: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
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
