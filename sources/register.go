// Package sources holds the FerrisStreams source connectors: files (JSON
// lines, CSV, Arrow IPC, Parquet) and the trades generator. Each source is an
// arrowexec.Operator that emits record batches with exactly the declared
// schema (spec.Schema), Watermark = arrowexec.NoWatermark, and io.EOF at the
// end of a bounded input. Batches returned by Next belong to the caller.
// Every Arrow buffer is allocated from spec.Alloc.
package sources

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// DefaultBatchSize is used when neither the batch_size option nor
// SourceSpec.BatchSize is set.
const DefaultBatchSize = 4096

// DefaultMaxRecordBytes bounds one input record (line) of a text format.
const DefaultMaxRecordBytes = 1 << 20

// Register adds the "file" and "generator" source connectors to c.
func Register(c *arrowexec.Connectors) {
	c.RegisterSource("file", NewFile)
	c.RegisterSource("generator", NewGenerator)
}

// opts reads typed option values and prefixes errors with the source name.
type opts struct {
	what string // e.g. `file source "trades"`
	o    arrowexec.Options
}

func newOpts(connector string, spec arrowexec.SourceSpec, own ...string) (opts, error) {
	o := opts{what: fmt.Sprintf("%s source %q", connector, spec.Name), o: spec.Options}
	known := append(append([]string(nil), arrowexec.CommonSourceOptions...), own...)
	if err := spec.Options.CheckKnown(connector, known...); err != nil {
		return o, fmt.Errorf("%s: %w", o.what, err)
	}
	return o, nil
}

func (o opts) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{o.what}, args...)...)
}

func (o opts) int(name string, def, min int64) (int64, error) {
	v, ok := o.o.Get(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min {
		return 0, o.errorf("option %s: expected an integer >= %d, found %q", name, min, v)
	}
	return n, nil
}

func (o opts) bool(name string, def bool) (bool, error) {
	v, ok := o.o.Get(name)
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, o.errorf("option %s: expected true or false, found %q", name, v)
	}
	return b, nil
}

func (o opts) str(name, def string) string {
	if v, ok := o.o.Get(name); ok && v != "" {
		return v
	}
	return def
}

// batching reads batch_size and linger_ms, defaulting to the spec.
func (o opts) batching(spec arrowexec.SourceSpec) (int, time.Duration, error) {
	def := int64(spec.BatchSize)
	if def <= 0 {
		def = DefaultBatchSize
	}
	bs, err := o.int("batch_size", def, 1)
	if err != nil {
		return 0, 0, err
	}
	linger, err := o.int("linger_ms", spec.Linger.Milliseconds(), 0)
	if err != nil {
		return 0, 0, err
	}
	return int(bs), time.Duration(linger) * time.Millisecond, nil
}

// resolve makes a relative path relative to base.
func resolve(base, path string) string {
	if filepath.IsAbs(path) || base == "" {
		return path
	}
	return filepath.Join(base, path)
}
