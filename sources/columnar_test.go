package sources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	flatbuffers "github.com/google/flatbuffers/go"
)

// columnarSchema is the schema of the Arrow and Parquet test files.
var columnarSchema = arrow.NewSchema([]arrow.Field{
	field("id", sqltypes.BigInt, false), field("name", sqltypes.Varchar, true), field("t", sqltypes.Timestamp, true),
}, nil)

// columnarBatches returns n batches of 4 rows: id 4b..4b+3, name "n<id>"
// (NULL when id is a multiple of 3), t id seconds.
func columnarBatches(n int) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	b := array.NewRecordBuilder(memory.DefaultAllocator, columnarSchema)
	defer b.Release()
	for k := range n {
		for id := int64(4 * k); id < int64(4*k+4); id++ {
			b.Field(0).(*array.Int64Builder).Append(id)
			if id%3 == 0 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("n%d", id))
			}
			b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(id * 1000))
		}
		out = append(out, b.NewRecordBatch())
	}
	return out
}

// columnarFile encodes recs as format: "arrow" (the IPC file format),
// "arrows" (the IPC stream format) or "parquet" (a row group per batch).
func columnarFile(t testing.TB, format string, recs []arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	var err error
	switch format {
	case "arrow":
		w, err = ipc.NewFileWriter(&buf, ipc.WithSchema(columnarSchema))
	case "arrows":
		w = ipc.NewWriter(&buf, ipc.WithSchema(columnarSchema))
	case "parquet":
		w, err = pqarrow.NewFileWriter(columnarSchema, &buf, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readColumnar reads data as a file source of format (arrow or parquet)
// with a checked allocator, and returns its rows or its error.
func readColumnar(t *testing.T, format string, data []byte) ([]string, error) {
	t.Helper()
	if format == "arrows" {
		format = "arrow"
	}
	return drain(t, openFile(t, checkedAlloc(t), columnarSchema, format, string(data), nil), 0)
}

func TestColumnarFilesRoundTrip(t *testing.T) {
	recs := columnarBatches(3)
	defer releaseAll(recs)
	for _, format := range []string{"arrow", "arrows", "parquet"} {
		rows, err := readColumnar(t, format, columnarFile(t, format, recs))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if len(rows) != 12 || rows[0] != `0|null|1970-01-01T00:00:00.000Z` || rows[11] != `11|"n11"|1970-01-01T00:00:11.000Z` {
			t.Fatalf("%s: %q", format, rows)
		}
	}
}

// TestCorruptBatchIsAnErrorNamingFileAndBatch: a batch whose string
// offsets run backwards (which the reader would slice with, out of
// bounds) is refused, naming the file, the batch and the column.
func TestCorruptBatchIsAnErrorNamingFileAndBatch(t *testing.T) {
	recs := columnarBatches(1)
	defer releaseAll(recs)
	offsets := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 5, 2, 6, 6}))
	values := memory.NewBufferBytes([]byte("abcdef"))
	bad := array.NewData(arrow.BinaryTypes.String, 4, []*memory.Buffer{nil, offsets, values}, nil, 0, 0)
	defer bad.Release()
	name := array.MakeFromData(bad)
	defer name.Release()
	broken := array.NewRecordBatch(columnarSchema, []arrow.Array{recs[0].Column(0), name, recs[0].Column(2)}, 4)
	defer broken.Release()
	for _, format := range []string{"arrow", "arrows"} {
		rows, err := readColumnar(t, format, columnarFile(t, format, []arrow.RecordBatch{recs[0], broken}))
		if err == nil || !strings.Contains(err.Error(), "in.arrow: batch 2: corrupt or unreadable file: column 1 (name):") {
			t.Fatalf("%s: got %v", format, err)
		}
		if len(rows) != 4 {
			t.Fatalf("%s: the good first batch gave %q", format, rows)
		}
	}
}

// TestMutatedColumnarFilesFailCleanly flips bytes of and truncates valid
// Arrow and Parquet files: each one reads, or fails with an error naming
// the file; none panics or leaks memory.
func TestMutatedColumnarFilesFailCleanly(t *testing.T) {
	recs := columnarBatches(3)
	defer releaseAll(recs)
	n := 300
	if testing.Short() {
		n = 60
	}
	for _, format := range []string{"arrow", "arrows", "parquet"} {
		good := columnarFile(t, format, recs)
		rng := rand.New(rand.NewPCG(1, uint64(len(format))))
		failed := 0
		for i := range n {
			data := mutate(rng, good)
			_, err := readColumnar(t, format, data)
			if err != nil {
				failed++
				if !strings.Contains(err.Error(), "in."+strings.TrimSuffix(format, "s")) {
					t.Fatalf("%s mutation %d: error without the file: %v", format, i, err)
				}
			}
		}
		if failed == 0 {
			t.Fatalf("%s: no mutation was noticed", format)
		}
	}
}

// mutate returns a copy of data with a few bytes flipped, or truncated.
func mutate(rng *rand.Rand, data []byte) []byte {
	out := bytes.Clone(data)
	if rng.IntN(4) == 0 {
		return out[:rng.IntN(len(out))]
	}
	for range 1 + rng.IntN(4) {
		out[rng.IntN(len(out))] ^= byte(1 + rng.IntN(255))
	}
	return out
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// TestHugeSchemaVectorIsRefused: an Arrow file or stream whose schema
// claims two billion fields is refused before the reader allocates for
// them.
func TestHugeSchemaVectorIsRefused(t *testing.T) {
	recs := columnarBatches(1)
	defer releaseAll(recs)
	for _, format := range []string{"arrow", "arrows"} {
		data := columnarFile(t, format, recs)
		var meta []byte // the flatbuffer holding the schema
		var schema flatbuffers.Table
		if format == "arrow" {
			n := int(binary.LittleEndian.Uint32(data[len(data)-10:]))
			meta = data[len(data)-10-n : len(data)-10]
			root := flatbuffers.Table{Bytes: meta, Pos: flatbuffers.GetUOffsetT(meta)}
			schema, _ = table(root, footerSchema)
		} else {
			n := int(binary.LittleEndian.Uint32(data[4:]))
			meta = data[8 : 8+n]
			root := flatbuffers.Table{Bytes: meta, Pos: flatbuffers.GetUOffsetT(meta)}
			schema, _ = table(root, messageHeader)
		}
		o := schema.Offset(slot(schemaFields))
		at := schema.Vector(flatbuffers.UOffsetT(o)) - 4 // the vector's length
		binary.LittleEndian.PutUint32(meta[at:], 0x7FFFFFFF)
		_, err := readColumnar(t, format, data)
		if !errors.Is(err, errIPCMetadata) || !strings.Contains(err.Error(), "in.arrow: corrupt or unreadable file") {
			t.Fatalf("%s: got %v", format, err)
		}
	}
}
