package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// checkDeclared rejects declared types no file format can produce.
func checkDeclared(schema *arrow.Schema) error {
	_, err := newColumns(schema)
	return err
}

// batchReader yields batches the caller owns.
type batchReader interface {
	schema() *arrow.Schema
	next() (arrow.RecordBatch, error) // io.EOF at the end
	close() error
}

// columnarSource reads Arrow IPC (file or stream) and Parquet files. Columns
// are matched by name (exactly, then case-insensitively); every declared
// column must exist with a type that casts losslessly to the declared one.
type columnarSource struct {
	fileBase
	format  string
	f       *os.File
	r       batchReader
	index   []int                  // declared column -> file column
	casts   []*compute.CastOptions // nil where no cast is needed
	pending arrow.RecordBatch      // a conformed batch not yet fully returned
	offset  int64
	closed  bool
	rows    int64 // rows returned so far (the checkpoint position)
	batches int   // batches read from the file, the one being read included (for errors)
	mem     *readAllocator
	skip    int64 // rows to skip first (Seek)
}

var _ arrowexec.Operator = (*columnarSource)(nil)

func (s *columnarSource) Open(ctx context.Context) error {
	f, err := os.Open(s.path)
	if err != nil {
		return s.o.errorf("%w", err)
	}
	s.f = f
	s.mem = &readAllocator{Allocator: s.spec.Alloc}
	spec := s.spec
	spec.Alloc = s.mem
	var fs *arrow.Schema
	err = func() (err error) {
		defer arrowexec.RecoverPanic(&err) // a corrupt footer or schema
		if s.format == "parquet" {
			s.r, err = openParquet(ctx, f, spec, s.batchSize)
		} else {
			s.r, err = openIPC(f, spec)
		}
		if err == nil {
			fs = s.r.schema()
		}
		return err
	}()
	if err != nil {
		s.mem.failed()
		return s.o.errorf("%s: %w", s.path, corrupt(err))
	}
	s.index = make([]int, s.spec.Schema.NumFields())
	s.casts = make([]*compute.CastOptions, len(s.index))
	for i, want := range s.spec.Schema.Fields() {
		k := fieldIndex(fs, want.Name)
		if k < 0 {
			return s.o.errorf("%s: column %s not found in the file (file columns: %s)", s.path, want.Name, fieldNames(fs))
		}
		s.index[i] = k
		have := fs.Field(k).Type
		if arrow.TypeEqual(have, want.Type) {
			continue
		}
		if !castable(have, want.Type) {
			return s.o.errorf("%s: column %s: file type %s cannot be read as %s", s.path, want.Name, have, sqltypes.Name(want.Type))
		}
		opts := compute.SafeCastOptions(want.Type)
		opts.AllowTimeTruncate = true
		s.casts[i] = opts
	}
	return nil
}

func fieldIndex(s *arrow.Schema, name string) int {
	for i, f := range s.Fields() {
		if f.Name == name {
			return i
		}
	}
	for i, f := range s.Fields() {
		if bytes.EqualFold([]byte(f.Name), []byte(name)) {
			return i
		}
	}
	return -1
}

func fieldNames(s *arrow.Schema) string {
	var b bytes.Buffer
	for i, f := range s.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Name)
	}
	return b.String()
}

// castable reports whether values of type from convert to the declared type
// to without loss (widening integers, decimals with room for every value,
// any string, timestamp, date or duration representation).
func castable(from, to arrow.DataType) bool {
	isSigned := func(id arrow.Type, max int) bool {
		switch id {
		case arrow.INT8, arrow.UINT8:
			return max >= 16 || id == arrow.INT8
		case arrow.INT16, arrow.UINT16:
			return max >= 32 || id == arrow.INT16
		case arrow.INT32, arrow.UINT32:
			return max >= 64 || id == arrow.INT32
		case arrow.INT64:
			return max >= 64
		}
		return false
	}
	intDigits := map[arrow.Type]int32{arrow.INT8: 3, arrow.UINT8: 3, arrow.INT16: 5, arrow.UINT16: 5,
		arrow.INT32: 10, arrow.UINT32: 10, arrow.INT64: 19}
	f := from.ID()
	switch t := to.(type) {
	case *arrow.Int32Type:
		return isSigned(f, 32)
	case *arrow.Int64Type:
		return isSigned(f, 64)
	case *arrow.Float64Type:
		return f == arrow.FLOAT32 || f == arrow.FLOAT16 || isSigned(f, 64)
	case *arrow.Decimal128Type:
		if d, ok := from.(arrow.DecimalType); ok {
			return d.GetScale() <= t.Scale && d.GetPrecision()-d.GetScale() <= t.Precision-t.Scale
		}
		n, ok := intDigits[f]
		return ok && n <= t.Precision-t.Scale
	case *arrow.StringType:
		return f == arrow.LARGE_STRING
	case *arrow.TimestampType:
		return f == arrow.TIMESTAMP
	case *arrow.Date32Type:
		return f == arrow.DATE64
	case *arrow.DurationType:
		return f == arrow.DURATION || f == arrow.INT64 // Parquet stores INTERVAL as int64 ms
	}
	return false
}

// Next returns the next batch of at most batch_size rows with the declared
// schema, or io.EOF.
func (s *columnarSource) Next(ctx context.Context) (arrowexec.Message, error) {
	if err := ctx.Err(); err != nil {
		return arrowexec.Message{}, err
	}
	if s.r == nil {
		return arrowexec.Message{}, s.o.errorf("Next called before Open")
	}
	for s.pending == nil {
		rec, err := s.readBatch()
		if err == io.EOF {
			return arrowexec.Message{}, io.EOF
		}
		if err != nil {
			return arrowexec.Message{}, s.o.errorf("%s: batch %d: %w", s.path, s.batches, err)
		}
		if rec.NumRows() == 0 {
			rec.Release()
			continue
		}
		if n := rec.NumRows(); s.skip >= n { // resuming: rows returned before
			s.skip -= n
			rec.Release()
			continue
		}
		s.pending, err = s.conform(ctx, rec)
		rec.Release()
		if err != nil {
			return arrowexec.Message{}, err
		}
		s.offset, s.skip = s.skip, 0
	}
	n := s.pending.NumRows()
	if s.offset == 0 && n <= int64(s.batchSize) {
		out := s.pending
		s.pending = nil
		s.rows += n
		return arrowexec.Message{Batch: out, Watermark: arrowexec.NoWatermark}, nil
	}
	end := min(n, s.offset+int64(s.batchSize))
	out := s.pending.NewSlice(s.offset, end)
	s.rows += end - s.offset
	s.offset = end
	if end == n {
		s.pending.Release()
		s.pending = nil
	}
	return arrowexec.Message{Batch: out, Watermark: arrowexec.NoWatermark}, nil
}

// readBatch reads the next batch of the file and validates it: the file is
// untrusted, and a batch whose buffers do not match its lengths and offsets
// would make the kernels reading it index out of bounds. A panic of the
// decoder is an error too.
func (s *columnarSource) readBatch() (rec arrow.RecordBatch, err error) {
	s.mem.begin()
	defer func() {
		if r := recover(); r != nil {
			if rec != nil {
				rec.Release()
			}
			rec, err = nil, fmt.Errorf("%v", r)
		}
		if err != nil && err != io.EOF {
			s.mem.failed()
			err = corrupt(err)
		}
	}()
	s.batches++
	if rec, err = s.r.next(); err != nil {
		return nil, err
	}
	if err := array.ValidateRecordFull(rec); err != nil {
		rec.Release()
		return nil, err
	}
	return rec, nil
}

// readAllocator is the allocator of a columnar file's reader. The Arrow
// IPC readers recover from a panic on a corrupt batch but leave what they
// had allocated for it referenced by the half-built arrays, never freed:
// readAllocator keeps the allocations of the current read, and after a
// failed read frees those left once the reader is closed. It is safe for
// concurrent use (batches returned earlier are freed by other goroutines).
type readAllocator struct {
	memory.Allocator
	mu     sync.Mutex
	cur    map[*byte][]byte // allocations of the current read not freed yet
	broken bool             // a read failed: cur holds its leftovers
}

func (a *readAllocator) Allocate(n int) []byte {
	b := a.Allocator.Allocate(n)
	a.track(nil, b)
	return b
}

func (a *readAllocator) Reallocate(n int, old []byte) []byte {
	b := a.Allocator.Reallocate(n, old)
	a.track(old, b)
	return b
}

func (a *readAllocator) Free(b []byte) {
	a.track(b, nil)
	a.Allocator.Free(b)
}

// track forgets old and remembers b (either may be empty).
func (a *readAllocator) track(old, b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cap(old) > 0 {
		delete(a.cur, &old[:1][0])
	}
	if cap(b) > 0 && !a.broken {
		if a.cur == nil {
			a.cur = map[*byte][]byte{}
		}
		a.cur[&b[:1][0]] = b
	}
}

// begin starts a read: what earlier reads allocated belongs to their
// batches.
func (a *readAllocator) begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.cur)
}

// failed marks the current read as failed: nothing more is tracked.
func (a *readAllocator) failed() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.broken = true
}

// freeLeftovers frees, after a failed read, what it allocated and the
// closed reader did not free.
func (a *readAllocator) freeLeftovers() {
	a.mu.Lock()
	left := a.cur
	a.cur = nil
	broken := a.broken
	a.mu.Unlock()
	if !broken {
		return
	}
	for _, b := range left {
		a.Allocator.Free(b)
	}
}

// corrupt marks an error reading an Arrow or Parquet file as a corrupt file.
func corrupt(err error) error {
	return fmt.Errorf("corrupt or unreadable file: %w", err)
}

// Position implements arrowexec.Checkpointable: the rows returned so far.
func (s *columnarSource) Position() ([]byte, error) {
	return json.Marshal(filePosition{Rows: s.rows})
}

// Seek implements arrowexec.Checkpointable: the rows before the position
// are skipped.
func (s *columnarSource) Seek(pos []byte) error {
	var p filePosition
	if err := json.Unmarshal(pos, &p); err != nil {
		return s.o.errorf("bad checkpoint position: %w", err)
	}
	s.rows, s.skip = p.Rows, p.Rows
	return nil
}

// conform picks, orders and casts the file's columns into the declared
// schema. It does not take ownership of rec.
func (s *columnarSource) conform(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, len(s.index))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	cctx := compute.WithAllocator(ctx, s.spec.Alloc)
	for i, k := range s.index {
		a := rec.Column(k)
		field := s.spec.Schema.Field(i)
		if s.casts[i] == nil {
			a.Retain()
		} else if a.DataType().ID() == arrow.INT64 && field.Type.ID() == arrow.DURATION {
			d := a.Data() // reinterpret int64 milliseconds, zero-copy
			nd := array.NewData(field.Type, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
			a = array.MakeFromData(nd)
			nd.Release()
		} else {
			var err error
			if a, err = compute.CastArray(cctx, a, s.casts[i]); err != nil {
				return nil, s.o.errorf("%s: column %s: %w", s.path, field.Name, err)
			}
		}
		cols[i] = a
		if !field.Nullable && a.NullN() > 0 {
			return nil, s.o.errorf("%s: column %s is NOT NULL but the file holds NULLs", s.path, field.Name)
		}
	}
	return array.NewRecordBatch(s.spec.Schema, cols, rec.NumRows()), nil
}

func (s *columnarSource) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.pending != nil {
		s.pending.Release()
		s.pending = nil
	}
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.close())
	}
	if s.mem != nil {
		s.mem.freeLeftovers()
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s.o.errorf("%w", err)
	}
	return nil
}

// ipcReader reads the Arrow IPC file format (random access, "ARROW1" magic)
// or the streaming format.
type ipcReader struct {
	file   *ipc.FileReader
	stream *ipc.Reader
	i      int
}

func openIPC(f *os.File, spec arrowexec.SourceSpec) (batchReader, error) {
	magic := make([]byte, 6)
	n, _ := io.ReadFull(f, magic)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if n == 6 && string(magic) == "ARROW1" {
		if err := checkIPCFile(f); err != nil {
			return nil, err
		}
		fr, err := ipc.NewFileReader(f, ipc.WithAllocator(spec.Alloc))
		if err != nil {
			return nil, err
		}
		return &ipcReader{file: fr}, nil
	}
	// No message body is larger than the file: a corrupt length must not
	// allocate more. (ipc.NewReader does not pass the limit on to its
	// message reader; a message reader of our own does.)
	opts := []ipc.Option{ipc.WithAllocator(spec.Alloc)}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		opts = append(opts, ipc.WithBodySizeLimit(max(fi.Size(), 1)))
	}
	if err := checkIPCStream(f); err != nil {
		return nil, err
	}
	sr, err := ipc.NewReaderFromMessageReader(ipc.NewMessageReader(f, opts...), opts...)
	if err != nil {
		return nil, err
	}
	return &ipcReader{stream: sr}, nil
}

func (r *ipcReader) schema() *arrow.Schema {
	if r.file != nil {
		return r.file.Schema()
	}
	return r.stream.Schema()
}

func (r *ipcReader) next() (arrow.RecordBatch, error) {
	if r.file != nil {
		if r.i == r.file.NumRecords() {
			return nil, io.EOF
		}
		r.i++
		return r.file.RecordBatchAt(r.i - 1)
	}
	if !r.stream.Next() {
		if err := r.stream.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	rec := r.stream.RecordBatch()
	rec.Retain()
	return rec, nil
}

func (r *ipcReader) close() error {
	if r.file != nil {
		return r.file.Close()
	}
	r.stream.Release()
	return nil
}

type parquetReader struct {
	pf *file.Reader
	rr pqarrow.RecordReader
}

func openParquet(ctx context.Context, f *os.File, spec arrowexec.SourceSpec, batchSize int) (batchReader, error) {
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchSize)}, spec.Alloc)
	if err != nil {
		pf.Close()
		return nil, err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		pf.Close()
		return nil, err
	}
	return &parquetReader{pf: pf, rr: rr}, nil
}

func (r *parquetReader) schema() *arrow.Schema { return r.rr.Schema() }

func (r *parquetReader) next() (arrow.RecordBatch, error) {
	rec, err := r.rr.Read()
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, io.EOF
	}
	rec.Retain()
	return rec, nil
}

func (r *parquetReader) close() error {
	r.rr.Release()
	return r.pf.Close()
}
