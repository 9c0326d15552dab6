package sources

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// recorder is a DeadLetter that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	recs []arrowexec.DeadLetterRecord
}

func (r *recorder) DeadLetter(_ context.Context, rec arrowexec.DeadLetterRecord) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}

func field(name string, t arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// renderRow renders row i as "v1|v2|..." with NULL as "null".
func renderRow(rec arrow.RecordBatch, i int) string {
	parts := make([]string, rec.NumCols())
	for c, col := range rec.Columns() {
		if col.IsNull(i) {
			parts[c] = "null"
			continue
		}
		switch a := col.(type) {
		case *array.Timestamp:
			parts[c] = time.UnixMilli(int64(a.Value(i))).UTC().Format("2006-01-02T15:04:05.000Z")
		case *array.Date32:
			parts[c] = a.Value(i).ToTime().Format("2006-01-02")
		case *array.Float64:
			parts[c] = strconv.FormatFloat(a.Value(i), 'g', -1, 64)
		case *array.Decimal128:
			parts[c] = a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
			if a.Value(i).Sign() < 0 && !strings.HasPrefix(parts[c], "-") {
				parts[c] = "-" + parts[c]
			}
		case *array.Duration:
			parts[c] = strconv.FormatInt(int64(a.Value(i)), 10)
		case *array.String:
			parts[c] = strconv.Quote(a.Value(i))
		default:
			parts[c] = col.ValueStr(i)
		}
	}
	return strings.Join(parts, "|")
}

// drain opens src, reads it to io.EOF and closes it; it checks the
// batches have the declared schema and at most batch rows.
func drain(t *testing.T, src arrowexec.Operator, batch int) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	defer src.Close()
	if err := src.Open(ctx); err != nil {
		return nil, err
	}
	var rows []string
	for {
		msg, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		if !msg.Batch.Schema().Equal(src.Schema()) {
			t.Errorf("batch schema %s, want %s", msg.Batch.Schema(), src.Schema())
		}
		if msg.Watermark != arrowexec.NoWatermark {
			t.Errorf("watermark %d, want NoWatermark", msg.Watermark)
		}
		if n := int(msg.Batch.NumRows()); n == 0 || (batch > 0 && n > batch) {
			t.Errorf("batch of %d rows (batch_size %d)", n, batch)
		}
		for i := range int(msg.Batch.NumRows()) {
			rows = append(rows, renderRow(msg.Batch, i))
		}
		msg.Release()
	}
}

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// openFile builds a file source over content.
func openFile(t *testing.T, mem memory.Allocator, schema *arrow.Schema, format, content string, dl arrowexec.DeadLetter, extra ...string) arrowexec.Operator {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "in."+format, content)
	o := arrowexec.Options{"connector": "file", "path": "in." + format, "format": format}
	for i := 0; i+1 < len(extra); i += 2 {
		o[extra[i]] = extra[i+1]
	}
	src, err := NewFile(arrowexec.SourceSpec{Name: "s", Schema: schema, Options: o, BaseDir: dir, Alloc: mem, DeadLetter: dl})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func dec(p, s int32) arrow.DataType { return sqltypes.Decimal(p, s) }
