package sinks

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// one builds a one-column, one-row array of type dt from append.
func one(mem memory.Allocator, dt arrow.DataType, appendFn func(array.Builder)) arrow.Array {
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	appendFn(b)
	return b.NewArray()
}

func TestValueRendering(t *testing.T) {
	mem := checkedAlloc(t)
	decOf := func(s string, p, sc int32) func(array.Builder) {
		return func(b array.Builder) {
			n, err := decimal128.FromString(s, p, sc)
			if err != nil {
				t.Fatal(err)
			}
			b.(*array.Decimal128Builder).Append(n)
		}
	}
	str := func(s string) func(array.Builder) {
		return func(b array.Builder) { b.(*array.StringBuilder).Append(s) }
	}
	f64 := func(f float64) func(array.Builder) {
		return func(b array.Builder) { b.(*array.Float64Builder).Append(f) }
	}
	ts := func(ms int64) func(array.Builder) {
		return func(b array.Builder) { b.(*array.TimestampBuilder).Append(arrow.Timestamp(ms)) }
	}
	null := func(b array.Builder) { b.AppendNull() }
	tests := []struct {
		name string
		dt   arrow.DataType
		fill func(array.Builder)
		json string
		csv  string
	}{
		{"int", sqltypes.Int, func(b array.Builder) { b.(*array.Int32Builder).Append(-42) }, "-42", "-42"},
		{"bigint", sqltypes.BigInt, func(b array.Builder) { b.(*array.Int64Builder).Append(math.MinInt64) }, "-9223372036854775808", "-9223372036854775808"},
		{"bool", sqltypes.Boolean, func(b array.Builder) { b.(*array.BooleanBuilder).Append(true) }, "true", "true"},
		{"null", sqltypes.BigInt, null, "null", ""},
		{"null string", sqltypes.Varchar, null, "null", ""},
		{"decimal scale 4", sqltypes.Decimal(18, 4), decOf("191.34", 18, 4), "191.3400", "191.3400"},
		{"negative decimal", sqltypes.Decimal(18, 4), decOf("-0.5", 18, 4), "-0.5000", "-0.5000"},
		{"decimal zero", sqltypes.Decimal(10, 2), decOf("0", 10, 2), "0.00", "0.00"},
		{"decimal scale 0", sqltypes.Decimal(10, 0), decOf("-17", 10, 0), "-17", "-17"},
		{"decimal small", sqltypes.Decimal(10, 4), decOf("-0.0001", 10, 4), "-0.0001", "-0.0001"},
		{"decimal 38 digits", sqltypes.Decimal(38, 2), decOf("-123456789012345678901234567890123456.78", 38, 2),
			"-123456789012345678901234567890123456.78", "-123456789012345678901234567890123456.78"},
		{"decimal 2^64", sqltypes.Decimal(38, 1), decOf("1844674407370955161.6", 38, 1), "1844674407370955161.6", "1844674407370955161.6"},
		{"decimal 10^19", sqltypes.Decimal(38, 0), decOf("10000000000000000000", 38, 0), "10000000000000000000", "10000000000000000000"},
		{"double", sqltypes.Double, f64(191.34), "191.34", "191.34"},
		{"double whole", sqltypes.Double, f64(3), "3", "3"},
		{"double big", sqltypes.Double, f64(1e21), "1e+21", "1e+21"},
		{"double tiny", sqltypes.Double, f64(1e-7), "1e-7", "1e-7"},
		{"double neg", sqltypes.Double, f64(-0.000001), "-0.000001", "-0.000001"},
		{"double NaN", sqltypes.Double, f64(math.NaN()), "null", "NaN"},
		{"double +Inf", sqltypes.Double, f64(math.Inf(1)), "null", "Infinity"},
		{"double -Inf", sqltypes.Double, f64(math.Inf(-1)), "null", "-Infinity"},
		{"timestamp", sqltypes.Timestamp, ts(1704067205000), `"2024-01-01T00:00:05.000Z"`, "2024-01-01T00:00:05.000Z"},
		{"timestamp ms", sqltypes.Timestamp, ts(1704067205123), `"2024-01-01T00:00:05.123Z"`, "2024-01-01T00:00:05.123Z"},
		{"timestamp before epoch", sqltypes.Timestamp, ts(-1), `"1969-12-31T23:59:59.999Z"`, "1969-12-31T23:59:59.999Z"},
		{"timestamp leap day", sqltypes.Timestamp, ts(951782400000), `"2000-02-29T00:00:00.000Z"`, "2000-02-29T00:00:00.000Z"},
		{"date", sqltypes.Date, func(b array.Builder) { b.(*array.Date32Builder).Append(19723) }, `"2024-01-01"`, "2024-01-01"},
		{"interval", sqltypes.Interval, func(b array.Builder) { b.(*array.DurationBuilder).Append(60000) }, "60000", "60000"},
		{"string plain", sqltypes.Varchar, str("AAPL"), `"AAPL"`, "AAPL"},
		{"string empty", sqltypes.Varchar, str(""), `""`, `""`},
		{"string escapes", sqltypes.Varchar, str("a\"b\\c\nd\te\r\x01\x1f"), `"a\"b\\c\nd\te\r\u0001\u001f"`, "\"a\"\"b\\c\nd\te\r\x01\x1f\""},
		{"string unicode", sqltypes.Varchar, str("é世😀\u2028</>&"), "\"é世😀\u2028</>&\"", "é世😀\u2028</>&"},
		{"string invalid utf8", sqltypes.Varchar, str("a\xffb"), `"a\ufffdb"`, "a\xffb"},
		{"string delimiter", sqltypes.Varchar, str("a,b"), `"a,b"`, `"a,b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arr := one(mem, tc.dt, tc.fill)
			defer arr.Release()
			if got := string(AppendJSONValue(nil, arr, 0)); got != tc.json {
				t.Errorf("json %s, want %s", got, tc.json)
			}
			if got := string(AppendCSVValue(nil, arr, 0, ',')); got != tc.csv {
				t.Errorf("csv %q, want %q", got, tc.csv)
			}
			if tc.json != "null" && !json.Valid([]byte(tc.json)) {
				t.Errorf("invalid JSON %s", tc.json)
			}
		})
	}
}

func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "\x00\x07\b\f\n\r\t\x7f", "héllo 世界 😀", "\u2028\u2029", "bad\xc3"} {
		got := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q: %s does not parse: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("%q: round trip %q", s, back)
		}
	}
}

func TestJSONEncoderRow(t *testing.T) {
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ticker", Type: sqltypes.Varchar, Nullable: true},
		{Name: "price", Type: sqltypes.Decimal(18, 4), Nullable: true},
		{Name: "trade_time", Type: sqltypes.Timestamp, Nullable: true},
		{Name: `we"ird`, Type: sqltypes.BigInt, Nullable: true},
	}, nil)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	rb.Field(0).(*array.StringBuilder).AppendValues([]string{"AAPL", ""}, []bool{true, false})
	rb.Field(1).(*array.Decimal128Builder).AppendValues([]decimal128.Num{decimal128.FromI64(1913400), decimal128.FromI64(-5000)}, nil)
	rb.Field(2).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1704067205000, 0}, nil)
	rb.Field(3).(*array.Int64Builder).AppendValues([]int64{1, 2}, []bool{false, true})
	rec := rb.NewRecordBatch()
	defer rec.Release()
	got := string(NewJSONEncoder(schema).AppendBatch(nil, rec))
	want := `{"ticker":"AAPL","price":191.3400,"trade_time":"2024-01-01T00:00:05.000Z","we\"ird":null}` + "\n" +
		`{"ticker":null,"price":-0.5000,"trade_time":"1970-01-01T00:00:00.000Z","we\"ird":2}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var buf bytes.Buffer
	buf.Write(CSVEncoder{Delim: ','}.AppendHeader(nil, schema))
	buf.Write(CSVEncoder{Delim: ','}.AppendBatch(nil, rec))
	wantCSV := "ticker,price,trade_time,\"we\"\"ird\"\nAAPL,191.3400,2024-01-01T00:00:05.000Z,\n,-0.5000,1970-01-01T00:00:00.000Z,2\n"
	if buf.String() != wantCSV {
		t.Errorf("csv got\n%s\nwant\n%s", buf.String(), wantCSV)
	}
}
