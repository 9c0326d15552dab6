package sinks

import (
	"context"
	"sync"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// Memory is a sink that keeps every row as a JSON line string (without the
// newline), rendered exactly like the JSON file and stdout sinks. It is
// meant for tests. Write is driven by one goroutine, as for every Sink;
// Rows, Watermark and Reset may be called concurrently with it.
type Memory struct {
	mu        sync.Mutex
	rows      []string
	watermark arrowexec.Watermark
	enc       *JSONEncoder
	buf       []byte
}

var _ arrowexec.Sink = (*Memory)(nil)

// NewMemory returns an empty in-memory sink.
func NewMemory() *Memory { return &Memory{watermark: arrowexec.NoWatermark} }

// Factory returns a SinkFactory that always hands out m, so a test can
// register it as a connector and inspect it afterwards.
func (m *Memory) Factory() arrowexec.SinkFactory {
	return func(arrowexec.SinkSpec) (arrowexec.Sink, error) { return m, nil }
}

func (m *Memory) Open(context.Context) error { return nil }

// Write renders the rows of msg; it does not retain the batch.
func (m *Memory) Write(_ context.Context, msg arrowexec.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg.Watermark > m.watermark {
		m.watermark = msg.Watermark
	}
	if msg.Batch == nil {
		return nil
	}
	if m.enc == nil {
		m.enc = NewJSONEncoder(msg.Batch.Schema())
	}
	for i := range int(msg.Batch.NumRows()) {
		m.buf = m.enc.AppendRow(m.buf[:0], msg.Batch, i)
		m.rows = append(m.rows, string(m.buf))
	}
	return nil
}

func (m *Memory) Flush(context.Context) error { return nil }
func (m *Memory) Close() error                { return nil }

// Rows returns a copy of the rows written so far, in order.
func (m *Memory) Rows() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.rows...)
}

// Watermark returns the highest watermark written so far.
func (m *Memory) Watermark() arrowexec.Watermark {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.watermark
}

// Reset forgets the rows written so far.
func (m *Memory) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = nil
}
