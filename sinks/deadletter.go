package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// DeadLetterFile writes dead-letter records as JSON lines: one object per
// record with the DeadLetterRecord fields (time in RFC 3339 UTC). The file
// and its folder are created on the first record, so a clean run leaves no
// file; an existing file is appended to. Each record is written with a
// single write call. It is safe for concurrent use.
type DeadLetterFile struct {
	path  string
	count atomic.Int64

	mu     sync.Mutex
	f      *os.File
	buf    bytes.Buffer
	closed bool
}

var _ arrowexec.DeadLetter = (*DeadLetterFile)(nil)

// NewDeadLetterFile returns a dead-letter sink writing to path.
func NewDeadLetterFile(path string) *DeadLetterFile { return &DeadLetterFile{path: path} }

// Path returns the file the records go to.
func (d *DeadLetterFile) Path() string { return d.path }

// DeadLetter appends rec to the file. A zero rec.Time is set to now.
func (d *DeadLetterFile) DeadLetter(_ context.Context, rec arrowexec.DeadLetterRecord) error {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("dead letter file %s: closed", d.path)
	}
	if d.f == nil {
		if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
			return fmt.Errorf("dead letter file: %w", err)
		}
		f, err := os.OpenFile(d.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("dead letter file: %w", err)
		}
		d.f = f
	}
	d.buf.Reset()
	enc := json.NewEncoder(&d.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil { // Encode adds the newline
		return fmt.Errorf("dead letter file %s: %w", d.path, err)
	}
	if _, err := d.f.Write(d.buf.Bytes()); err != nil {
		return fmt.Errorf("dead letter file %s: %w", d.path, err)
	}
	d.count.Add(1)
	return nil
}

// Count returns the number of records written.
func (d *DeadLetterFile) Count() int64 { return d.count.Load() }

// Close closes the file if it was created. It is idempotent; records
// arriving afterwards are an error.
func (d *DeadLetterFile) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("dead letter file %s: %w", d.path, err)
	}
	return nil
}
