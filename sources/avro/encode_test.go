package avro

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	hamba "github.com/hamba/avro/v2"
)

// TestEncodeRoundTrip: rows encoded with WriterSchema are read back by an
// independent Avro implementation (hamba) with their values, and by the
// Decoder into the same columns.
func TestEncodeRoundTrip(t *testing.T) {
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{
		field("ok", sqltypes.Boolean, false), field("n", sqltypes.Int, true), field("big", sqltypes.BigInt, false),
		field("x", sqltypes.Double, true), field("price", sqltypes.Decimal(20, 3), false), field("ship.city", sqltypes.Varchar, true),
		field("ts", sqltypes.Timestamp, false), field("day", sqltypes.Date, true), field("ship.zip", sqltypes.Int, false),
	}, nil)
	text, order, err := WriterSchema("out-1", schema)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
	b.Field(1).(*array.Int32Builder).AppendValues([]int32{-300, 0}, []bool{true, false})
	b.Field(2).(*array.Int64Builder).AppendValues([]int64{1 << 62, -1}, nil)
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{0.5, 0}, []bool{true, false})
	b.Field(4).(*array.Decimal128Builder).AppendValues([]decimal128.Num{decimal128.FromI64(-128), decimal128.FromI64(123456789012345)}, nil)
	b.Field(5).(*array.StringBuilder).AppendValues([]string{"Oslo", ""}, []bool{true, false})
	b.Field(6).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{-1, 1_700_000_000_123}, nil)
	b.Field(7).(*array.Date32Builder).AppendValues([]arrow.Date32{19000, 0}, []bool{true, false})
	b.Field(8).(*array.Int32Builder).AppendValues([]int32{1234, 99}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()

	reg, cl := testRegistry(t)
	id, _ := reg.Register("out-value", "", text)
	enc := NewEncoder(id, order)
	ws := hamba.MustParse(text)
	type row struct {
		OK    bool     `avro:"ok"`
		N     *int32   `avro:"n"`
		Big   int64    `avro:"big"`
		X     *float64 `avro:"x"`
		Price *big.Rat `avro:"price"`
		Ship  struct {
			City *string `avro:"city"`
			Zip  int32   `avro:"zip"`
		} `avro:"ship"`
		TS  time.Time  `avro:"ts"`
		Day *time.Time `avro:"day"`
	}
	var values [][]byte
	var seen []string
	for i := range int(rec.NumRows()) {
		v := enc.AppendRow(nil, rec, i)
		values = append(values, v)
		if got, ok := SchemaID(v); !ok || got != id {
			t.Fatalf("row %d: schema id %d, %v", i, got, ok)
		}
		var r row
		if err := hamba.Unmarshal(ws, v[5:], &r); err != nil {
			t.Fatalf("row %d: hamba: %v", i, err)
		}
		s := fmt.Sprintf("%v %s %v %s %s %s %d %s %s", r.OK, ptr(r.N), r.Big, ptr(r.X), r.Price.FloatString(3), ptr(r.Ship.City), r.Ship.Zip,
			r.TS.UTC().Format(time.RFC3339Nano), "day")
		if r.Day != nil {
			s = strings.Replace(s, "day", r.Day.UTC().Format("2006-01-02"), 1)
		}
		seen = append(seen, s)
	}
	want := []string{
		"true -300 4611686018427387904 0.5 -0.128 Oslo 1234 1969-12-31T23:59:59.999Z 2022-01-08",
		"false nil -1 nil 123456789012.345 nil 99 2023-11-14T22:13:20.123Z day",
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("hamba read\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	d, err := NewDecoder(schema, cl, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	for _, v := range values {
		if err := d.Resolve(context.Background(), v); err != nil {
			t.Fatal(err)
		}
		if rerr := d.Append(v); rerr != nil {
			t.Fatal(rerr)
		}
	}
	got := rows(t, d)
	if want := []string{
		"true|-300|4611686018427387904|0.5|-0.128|Oslo|1969-12-31T23:59:59.999Z|2022-01-08|1234",
		"false|null|-1|null|123456789012.345|null|2023-11-14T22:13:20.123Z|null|99",
	}; !slices.Equal(got, want) {
		t.Fatalf("decoded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func ptr[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
