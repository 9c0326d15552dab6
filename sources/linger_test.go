package sources

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestLingerOnPipe feeds a FIFO slowly: a partial batch is flushed after
// linger_ms while the writer stalls, and EOF ends the stream.
func TestLingerOnPipe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	src, err := NewFile(arrowexec.SourceSpec{Name: "p", Schema: schema, Alloc: mem,
		Options: arrowexec.Options{"path": fifo, "batch_size": "100", "linger_ms": "20"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	proceed := make(chan struct{})
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		w.Write([]byte("{\"a\":1}\n{\"a\":2}\n{\"a\""))
		<-proceed
		w.Write([]byte(":3}\n"))
	}()
	ctx := context.Background()
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	msg, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Rows() != 2 || time.Since(start) > 5*time.Second {
		t.Errorf("first batch %d rows after %v", msg.Rows(), time.Since(start))
	}
	msg.Release()
	close(proceed)
	msg, err = src.Next(ctx)
	if err != nil || msg.Rows() != 1 {
		t.Fatalf("second batch %v %v", msg, err)
	}
	msg.Release()
	if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("want EOF, got %v", err)
	}
}

// TestCancelOnPipe checks a source blocked on a silent pipe honours ctx.
func TestCancelOnPipe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // keeps the pipe open, writes nothing
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	src, _ := NewFile(arrowexec.SourceSpec{Name: "p", Schema: schema, Alloc: mem, Options: arrowexec.Options{"path": fifo}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want deadline exceeded, got %v", err)
	}
	if err := src.Close(); err != nil {
		t.Error(err)
	}
}
