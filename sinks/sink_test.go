package sinks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/sinks"
	"github.com/ferrisstreams/ferris/sources"
)

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

var schema = arrow.NewSchema([]arrow.Field{
	{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
	{Name: "price", Type: sqltypes.Decimal(18, 4), Nullable: true},
	{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
	{Name: "qty", Type: sqltypes.Int, Nullable: true},
	{Name: "ratio", Type: sqltypes.Double, Nullable: true},
	{Name: "trade_time", Type: sqltypes.Timestamp, Nullable: true},
	{Name: "day", Type: sqltypes.Date, Nullable: true},
	{Name: "ok", Type: sqltypes.Boolean, Nullable: true},
	{Name: "span", Type: sqltypes.Interval, Nullable: true},
}, nil)

// batch builds rows [from, to) of a deterministic table; every 4th value of
// each column is NULL (shifted by column).
func batch(mem memory.Allocator, from, to int) arrow.RecordBatch {
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	for i := from; i < to; i++ {
		for c, b := range rb.Fields() {
			if (i+c)%4 == 3 {
				b.AppendNull()
				continue
			}
			switch b := b.(type) {
			case *array.StringBuilder:
				b.Append([]string{"AAPL", "a,\"b\"\nc", "é😀", ""}[i/2%4])
			case *array.Decimal128Builder:
				b.Append(decimal128.FromI64(int64(i*12345 - 50000)))
			case *array.Int64Builder:
				b.Append(int64(i) * 1000003)
			case *array.Int32Builder:
				b.Append(int32(-i))
			case *array.Float64Builder:
				b.Append(float64(i) / 3)
			case *array.TimestampBuilder:
				b.Append(arrow.Timestamp(1704067200000 + int64(i)*1500))
			case *array.Date32Builder:
				b.Append(arrow.Date32(19723 + i))
			case *array.BooleanBuilder:
				b.Append(i%2 == 0)
			case *array.DurationBuilder:
				b.Append(arrow.Duration(i * 60000))
			}
		}
	}
	return rb.NewRecordBatch()
}

// writeAll writes rows 0..n in batches of 7 through a sink.
func writeAll(t *testing.T, s arrowexec.Sink, mem memory.Allocator, n int) {
	t.Helper()
	ctx := context.Background()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 7 {
		b := batch(mem, i, min(n, i+7))
		if err := s.Write(ctx, arrowexec.Message{Batch: b, Watermark: arrowexec.NoWatermark}); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	if err := s.Write(ctx, arrowexec.Message{Watermark: arrowexec.FinalWatermark}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// expectedJSON renders rows 0..n with the JSON encoder.
func expectedJSON(t *testing.T, mem memory.Allocator, n int) []string {
	b := batch(mem, 0, n)
	defer b.Release()
	return strings.Split(strings.TrimSuffix(string(sinks.NewJSONEncoder(schema).AppendBatch(nil, b)), "\n"), "\n")
}

// readBack reads a file with the file source into JSON lines.
func readBack(t *testing.T, mem memory.Allocator, dir, path, format string, extra ...string) []string {
	t.Helper()
	o := arrowexec.Options{"connector": "file", "path": path, "format": format, "batch_size": "5"}
	for i := 0; i+1 < len(extra); i += 2 {
		o[extra[i]] = extra[i+1]
	}
	src, err := sources.NewFile(arrowexec.SourceSpec{Name: "back", Schema: schema, Options: o, BaseDir: dir, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	m := sinks.NewMemory()
	for {
		msg, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.Rows() > 5 {
			t.Errorf("batch of %d rows, batch_size 5", msg.Rows())
		}
		if err := m.Write(ctx, msg); err != nil {
			t.Fatal(err)
		}
		msg.Release()
	}
	return m.Rows()
}

func TestFileSinkRoundTrip(t *testing.T) {
	const n = 23
	for _, format := range []string{"json", "csv", "arrow", "parquet"} {
		t.Run(format, func(t *testing.T) {
			mem := checkedAlloc(t)
			dir := t.TempDir()
			path := filepath.Join("out", "deeper", "data."+format)
			s, err := sinks.NewFile(arrowexec.SinkSpec{Name: "q", Schema: schema, BaseDir: dir, Alloc: mem,
				Options: arrowexec.Options{"connector": "file", "path": path, "format": format}})
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, s, mem, n)
			got := readBack(t, mem, dir, path, format)
			want := expectedJSON(t, mem, n)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("round trip:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if format == "json" {
				raw, _ := os.ReadFile(filepath.Join(dir, path))
				if string(raw) != strings.Join(want, "\n")+"\n" {
					t.Errorf("file content:\n%s", raw)
				}
			}
			if format == "csv" {
				raw, _ := os.ReadFile(filepath.Join(dir, path))
				if !strings.HasPrefix(string(raw), "ticker,price,volume,qty,ratio,trade_time,day,ok,span\nAAPL,-5.0000,0,,0,2024-01-01T00:00:00.000Z,2024-01-01,,0\n") {
					t.Errorf("csv content:\n%s", raw)
				}
			}
		})
	}
}

func TestColumnarSourceCastsAndChecks(t *testing.T) {
	mem := checkedAlloc(t)
	dir := t.TempDir()
	// a file with an INT volume, columns in another order and an extra column
	fileSchema := arrow.NewSchema([]arrow.Field{
		{Name: "extra", Type: sqltypes.Varchar, Nullable: true},
		{Name: "Volume", Type: sqltypes.Int, Nullable: true},
		{Name: "price", Type: sqltypes.Decimal(10, 2), Nullable: true},
	}, nil)
	rb := array.NewRecordBuilder(mem, fileSchema)
	rb.Field(0).(*array.StringBuilder).AppendValues([]string{"x", "y"}, nil)
	rb.Field(1).(*array.Int32Builder).AppendValues([]int32{7, -1}, []bool{true, false})
	rb.Field(2).(*array.Decimal128Builder).AppendValues([]decimal128.Num{decimal128.FromI64(150), decimal128.FromI64(-1)}, nil)
	rec := rb.NewRecordBatch()
	rb.Release()
	for _, format := range []string{"arrow", "parquet"} {
		s, err := sinks.NewFile(arrowexec.SinkSpec{Name: "q", Schema: fileSchema, BaseDir: dir, Alloc: mem,
			Options: arrowexec.Options{"path": "f." + format, "format": format}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := s.Open(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, arrowexec.Message{Batch: rec}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		declared := arrow.NewSchema([]arrow.Field{
			{Name: "price", Type: sqltypes.Decimal(18, 4), Nullable: true},
			{Name: "volume", Type: sqltypes.BigInt, Nullable: true},
		}, nil)
		open := func(sch *arrow.Schema) (arrowexec.Operator, error) {
			src, err := sources.NewFile(arrowexec.SourceSpec{Name: "in", Schema: sch, BaseDir: dir, Alloc: mem,
				Options: arrowexec.Options{"path": "f." + format, "format": format}})
			if err != nil {
				t.Fatal(err)
			}
			return src, src.Open(ctx)
		}
		src, err := open(declared)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := sinks.NewMemory()
		m.Write(ctx, msg)
		msg.Release()
		if _, err := src.Next(ctx); !errors.Is(err, io.EOF) {
			t.Errorf("%s: want EOF, got %v", format, err)
		}
		src.Close()
		if got := strings.Join(m.Rows(), "\n"); got != `{"price":1.5000,"volume":7}`+"\n"+`{"price":-0.0100,"volume":null}` {
			t.Errorf("%s: cast rows %s", format, got)
		}
		for _, bad := range []struct {
			f    arrow.Field
			want string
		}{
			{arrow.Field{Name: "price", Type: sqltypes.Decimal(5, 1), Nullable: true}, "column price: file type decimal(10, 2) cannot be read as DECIMAL(5,1)"},
			{arrow.Field{Name: "extra", Type: sqltypes.BigInt, Nullable: true}, "column extra: file type utf8 cannot be read as BIGINT"},
			{arrow.Field{Name: "nope", Type: sqltypes.BigInt, Nullable: true}, "column nope not found in the file (file columns: extra, Volume, price)"},
		} {
			src, err := open(arrow.NewSchema([]arrow.Field{bad.f}, nil))
			src.Close()
			if err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("%s: error %v, want %q", format, err, bad.want)
			}
		}
		// a NOT NULL column holding NULLs is an error
		src, err = open(arrow.NewSchema([]arrow.Field{{Name: "volume", Type: sqltypes.BigInt}}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(ctx); err == nil || !strings.Contains(err.Error(), "NOT NULL") {
			t.Errorf("%s: NOT NULL error %v", format, err)
		}
		src.Close()
	}
	rec.Release()
}

func TestWriterSink(t *testing.T) {
	mem := checkedAlloc(t)
	for _, format := range []string{"json", "csv"} {
		var buf bytes.Buffer
		s, err := sinks.NewWriter(&buf, schema, format)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, s, mem, 3)
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if format == "json" {
			if want := expectedJSON(t, mem, 3); strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("json:\n%s", buf.String())
			}
		} else if lines[0] != "ticker,price,volume,qty,ratio,trade_time,day,ok,span" || len(lines) != 5 {
			t.Errorf("csv:\n%s", buf.String())
		}
	}
	if _, err := sinks.NewWriter(io.Discard, schema, "xml"); err == nil {
		t.Error("format xml accepted")
	}
}

func TestSinkOptions(t *testing.T) {
	var c arrowexec.Connectors
	sinks.Register(&c)
	tests := []struct {
		connector string
		opts      arrowexec.Options
		want      string
	}{
		{"file", arrowexec.Options{"format": "json"}, `file sink "q": option path is required`},
		{"file", arrowexec.Options{"path": "x", "format": "xml"}, `format "xml" not supported (json, csv, arrow, parquet)`},
		{"file", arrowexec.Options{"path": "x", "paht": "x"}, `unknown option "paht"`},
		{"file", arrowexec.Options{"path": "x", "format": "csv", "header": "perhaps"}, "option header"},
		{"stdout", arrowexec.Options{"format": "parquet"}, `format "parquet" not supported (json, csv)`},
		{"stdout", arrowexec.Options{"path": "x"}, `unknown option "path"`},
	}
	for _, tc := range tests {
		f, err := c.Sink(tc.connector)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f(arrowexec.SinkSpec{Name: "q", Schema: schema, Options: tc.opts})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error %v, want %q", tc.connector, tc.opts, err, tc.want)
		}
	}
	all := arrowexec.Options{"path": "x"}
	for _, k := range arrowexec.CommonSinkOptions {
		if _, ok := all[k]; !ok {
			all[k] = "json"
		}
	}
	for _, name := range []string{"file", "stdout"} {
		f, _ := c.Sink(name)
		o := arrowexec.Options{}
		for k, v := range all {
			if k != "path" || name == "file" {
				o[k] = v
			}
		}
		if _, err := f(arrowexec.SinkSpec{Name: "q", Schema: schema, Options: o}); err != nil {
			t.Errorf("%s rejects common options: %v", name, err)
		}
	}
}

func TestDeadLetterFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dlq", "bad.jsonl")
	d := sinks.NewDeadLetterFile(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file exists before the first record: %v", err)
	}
	ctx := context.Background()
	at := time.Date(2024, 1, 1, 2, 0, 5, 0, time.FixedZone("x", 7200))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.DeadLetter(ctx, arrowexec.DeadLetterRecord{Time: at, Source: "trades (t.jsonl)", Position: "line " + strconv.Itoa(i),
				Field: "volume", Reason: `expected BIGINT, found "abc"`, Raw: `{"volume":"abc"}` + "\n<&>"})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if d.Count() != 50 {
		t.Errorf("count %d", d.Count())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.DeadLetter(ctx, arrowexec.DeadLetterRecord{Reason: "late"}); err == nil {
		t.Error("DeadLetter after Close succeeded")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		var m map[string]string
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v: %s", n, err, sc.Text())
		}
		if m["time"] != "2024-01-01T00:00:05Z" || m["source"] != "trades (t.jsonl)" || m["field"] != "volume" ||
			m["reason"] != `expected BIGINT, found "abc"` || m["raw"] != `{"volume":"abc"}`+"\n<&>" || !strings.HasPrefix(m["position"], "line ") {
			t.Errorf("line %d: %s", n, sc.Text())
		}
	}
	if n != 50 {
		t.Errorf("%d lines", n)
	}
	// a clean run leaves no file
	clean := sinks.NewDeadLetterFile(filepath.Join(dir, "clean", "x.jsonl"))
	clean.Close()
	if _, err := os.Stat(filepath.Join(dir, "clean")); !os.IsNotExist(err) {
		t.Errorf("clean run created %v", err)
	}
}

// TestSourceDeadLetterEndToEnd wires the JSON source to a dead-letter file.
func TestSourceDeadLetterEndToEnd(t *testing.T) {
	mem := checkedAlloc(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte("{\"volume\":1}\n{\"volume\":\"abc\"}\n{\"volume\":3}\n"), 0o644)
	d := sinks.NewDeadLetterFile(filepath.Join(dir, "dead.jsonl"))
	sch := arrow.NewSchema([]arrow.Field{{Name: "volume", Type: sqltypes.BigInt, Nullable: true}}, nil)
	src, err := sources.NewFile(arrowexec.SourceSpec{Name: "trades", Schema: sch, BaseDir: dir, Alloc: mem, DeadLetter: d,
		Options: arrowexec.Options{"path": "in.jsonl", "format": "json"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	m := sinks.NewMemory()
	for {
		msg, err := src.Next(ctx)
		if err != nil {
			break
		}
		m.Write(ctx, msg)
		msg.Release()
	}
	src.Close()
	d.Close()
	if got := strings.Join(m.Rows(), " "); got != `{"volume":1} {"volume":3}` {
		t.Errorf("rows %s", got)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "dead.jsonl"))
	var rec arrowexec.DeadLetterRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Position != "line 2" || rec.Source != "trades (in.jsonl)" || rec.Raw != `{"volume":"abc"}` {
		t.Errorf("dead letter %s (%v)", raw, err)
	}
}
