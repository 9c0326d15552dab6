package avro

import (
	"context"
	"encoding/binary"
	"math/big"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/ferrisstreams/ferris/schemaregistry"
	hamba "github.com/hamba/avro/v2"
)

// testRegistry serves an in-memory schema registry over HTTP and returns
// it with a client of it.
func testRegistry(t testing.TB) (*schemaregistry.Registry, *RegistryClient) {
	t.Helper()
	reg := schemaregistry.New()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	cl, err := NewRegistryClient([]string{srv.URL}, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return reg, cl
}

// frame encodes v with the writer schema text, registered under subject
// "t-value", in the Confluent wire format.
func frame(t testing.TB, reg *schemaregistry.Registry, text string, v any) []byte {
	t.Helper()
	id, _ := reg.Register("t-value", "", text)
	body, err := hamba.Marshal(hamba.MustParse(text), v)
	if err != nil {
		t.Fatal(err)
	}
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, body...)
}

func checkedAlloc(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// rows renders the decoder's rows as "v1|v2|..." (NULL as "null").
func rows(t *testing.T, d *Decoder) []string {
	t.Helper()
	n := d.Rows()
	arrs := d.NewArrays()
	defer func() {
		for _, a := range arrs {
			a.Release()
		}
	}()
	out := make([]string, n)
	for i := range n {
		parts := make([]string, len(arrs))
		for c, a := range arrs {
			switch {
			case a.IsNull(i):
				parts[c] = "null"
			case a.DataType().ID() == arrow.DECIMAL128:
				parts[c] = a.(*array.Decimal128).Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
			case a.DataType().ID() == arrow.TIMESTAMP:
				parts[c] = time.UnixMilli(int64(a.(*array.Timestamp).Value(i))).UTC().Format(time.RFC3339Nano)
			default:
				parts[c] = a.ValueStr(i)
			}
		}
		out[i] = strings.Join(parts, "|")
	}
	return out
}

func field(name string, t arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: t, Nullable: nullable}
}

const allTypesSchema = `{"type":"record","name":"All","namespace":"t","fields":[
 {"name":"b","type":"boolean"},
 {"name":"i","type":"int"},
 {"name":"l","type":"long"},
 {"name":"f","type":"float"},
 {"name":"d","type":"double"},
 {"name":"s","type":"string"},
 {"name":"raw","type":"bytes"},
 {"name":"skipped_array","type":{"type":"array","items":{"type":"record","name":"Leg","fields":[{"name":"x","type":"long"},{"name":"y","type":"string"}]}}},
 {"name":"skipped_map","type":{"type":"map","values":["null","double"]}},
 {"name":"skipped_fixed","type":{"type":"fixed","name":"F3","size":3}},
 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"decf","type":{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":18,"scale":4}},
 {"name":"tms","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"tus","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"id","type":{"type":"string","logicalType":"uuid"}},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
 {"name":"opt","type":["null","string"],"default":null},
 {"name":"addr","type":{"type":"record","name":"Addr","fields":[{"name":"city","type":"string"},{"name":"zip","type":["null","int"]}]}},
 {"name":"boss","type":["null",{"type":"record","name":"Boss","fields":[{"name":"name","type":"string"}]}]}
]}`

type leg struct {
	X int64  `avro:"x"`
	Y string `avro:"y"`
}

type addr struct {
	City string `avro:"city"`
	Zip  *int32 `avro:"zip"`
}

type boss struct {
	Name string `avro:"name"`
}

type allTypes struct {
	B     bool                `avro:"b"`
	I     int32               `avro:"i"`
	L     int64               `avro:"l"`
	F     float32             `avro:"f"`
	D     float64             `avro:"d"`
	S     string              `avro:"s"`
	Raw   []byte              `avro:"raw"`
	Arr   []leg               `avro:"skipped_array"`
	Map   map[string]*float64 `avro:"skipped_map"`
	Fixed [3]byte             `avro:"skipped_fixed"`
	Dec   *big.Rat            `avro:"dec"`
	DecF  *big.Rat            `avro:"decf"`
	TMs   time.Time           `avro:"tms"`
	TUs   time.Time           `avro:"tus"`
	Day   time.Time           `avro:"day"`
	ID    string              `avro:"id"`
	Color string              `avro:"color"`
	Opt   *string             `avro:"opt"`
	Addr  addr                `avro:"addr"`
	Boss  *boss               `avro:"boss"`
	//lint:ignore U1000 an unexported field the encoder must skip
	unused int
}

var allTypesColumns = arrow.NewSchema([]arrow.Field{
	field("b", sqltypes.Boolean, true),
	field("i", sqltypes.Int, true),
	field("l", sqltypes.BigInt, true),
	field("f", sqltypes.Double, true),
	field("d", sqltypes.Double, true),
	field("s", sqltypes.Varchar, true),
	field("raw", sqltypes.Varchar, true),
	field("dec", sqltypes.Decimal(12, 4), true), // scale 2 → 4
	field("decf", sqltypes.Decimal(18, 4), true),
	field("tms", sqltypes.Timestamp, true),
	field("tus", sqltypes.Timestamp, true),
	field("day", sqltypes.Date, true),
	field("ID", sqltypes.Varchar, true), // matched case-insensitively
	field("color", sqltypes.Varchar, true),
	field("opt", sqltypes.Varchar, true),
	field("addr.city", sqltypes.Varchar, false),
	field("addr.zip", sqltypes.Int, true),
	field("boss.name", sqltypes.Varchar, true),
	field("absent", sqltypes.BigInt, true), // not in the writer: NULL
}, nil)

// TestDecodeTypes: every supported Avro type and logical type lands in its
// column with the value written; fields without a column (arrays, maps,
// fixed) are skipped; nested records are read through dotted names.
func TestDecodeTypes(t *testing.T) {
	reg, cl := testRegistry(t)
	d, err := NewDecoder(allTypesColumns, cl, checkedAlloc(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	opt, zip, two := "here", int32(1234), 2.5
	ts := time.Date(2024, 3, 1, 12, 30, 45, 123_000_000, time.UTC)
	pre := time.Date(1969, 12, 31, 23, 59, 59, 999_998_000, time.UTC) // before the epoch: floored to .999
	recs := []allTypes{
		{B: true, I: -7, L: 1 << 40, F: 1.5, D: -0.25, S: "héllo", Raw: []byte("bytes"),
			Arr: []leg{{1, "a"}, {2, "bb"}}, Map: map[string]*float64{"k": &two, "n": nil}, Fixed: [3]byte{1, 2, 3},
			Dec: big.NewRat(-12345, 100), DecF: big.NewRat(987654321, 10000), TMs: ts, TUs: ts.Add(456 * time.Microsecond),
			Day: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), ID: "123e4567-e89b-12d3-a456-426614174000", Color: "GREEN",
			Opt: &opt, Addr: addr{City: "Oslo", Zip: &zip}, Boss: &boss{Name: "Ada"}},
		{Dec: big.NewRat(0, 1), DecF: big.NewRat(-1, 10000), TMs: time.UnixMilli(0), TUs: pre, Day: time.Unix(0, 0).UTC(),
			Color: "RED", Addr: addr{City: ""}},
	}
	for _, r := range recs {
		v := frame(t, reg, allTypesSchema, r)
		if err := d.Resolve(context.Background(), v); err != nil {
			t.Fatal(err)
		}
		if rerr := d.Append(v); rerr != nil {
			t.Fatal(rerr)
		}
	}
	want := []string{
		"true|-7|1099511627776|1.5|-0.25|héllo|bytes|-123.4500|98765.4321|2024-03-01T12:30:45.123Z|2024-03-01T12:30:45.123Z|2024-02-29|123e4567-e89b-12d3-a456-426614174000|GREEN|here|Oslo|1234|Ada|null",
		"false|0|0|0|0|||0.0000|-0.0001|1970-01-01T00:00:00Z|1969-12-31T23:59:59.999Z|1970-01-01||RED|null||null|null|null",
	}
	if got := rows(t, d); !slices.Equal(got, want) {
		t.Fatalf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const tradeV1 = `{"type":"record","name":"Trade","fields":[
 {"name":"ticker","type":"string"},
 {"name":"price","type":"double"},
 {"name":"volume","type":"long"}]}`

// v2 reorders, adds a field and drops nothing: compatible.
const tradeV2 = `{"type":"record","name":"Trade","fields":[
 {"name":"venue","type":["null","string"],"default":null},
 {"name":"volume","type":"int"},
 {"name":"ticker","type":"string"},
 {"name":"price","type":"float"}]}`

// v3 drops volume: compatible while volume is nullable.
const tradeV3 = `{"type":"record","name":"Trade","fields":[
 {"name":"ticker","type":"string"},
 {"name":"price","type":"double"}]}`

// v4 makes price a string: incompatible with DOUBLE.
const tradeV4 = `{"type":"record","name":"Trade","fields":[
 {"name":"ticker","type":"string"},
 {"name":"price","type":"string"},
 {"name":"volume","type":"long"}]}`

// TestSchemaEvolution: records of several writer schemas are read by field
// name; a missing nullable column is NULL; an incompatible writer makes
// its records bad with the field and the reason, and the others are read.
func TestSchemaEvolution(t *testing.T) {
	reg, cl := testRegistry(t)
	schema := arrow.NewSchema([]arrow.Field{
		field("ticker", sqltypes.Varchar, false), field("price", sqltypes.Double, true), field("volume", sqltypes.BigInt, true),
	}, nil)
	d, err := NewDecoder(schema, cl, checkedAlloc(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	venue := "XNAS"
	values := [][]byte{
		frame(t, reg, tradeV1, map[string]any{"ticker": "AAPL", "price": 1.25, "volume": int64(100)}),
		frame(t, reg, tradeV2, map[string]any{"venue": &venue, "volume": int32(7), "ticker": "MSFT", "price": float32(2.5)}),
		frame(t, reg, tradeV4, map[string]any{"ticker": "BAD", "price": "1.0", "volume": int64(1)}),
		frame(t, reg, tradeV3, map[string]any{"ticker": "IBM", "price": 3.0}),
	}
	var bad []string
	for _, v := range values {
		if err := d.Resolve(context.Background(), v); err != nil {
			t.Fatal(err)
		}
		if rerr := d.Append(v); rerr != nil {
			bad = append(bad, rerr.Field+": "+rerr.Reason)
		}
	}
	if want := []string{"AAPL|1.25|100", "MSFT|2.5|7", "IBM|3|null"}; !slices.Equal(rows(t, d), want) {
		t.Fatalf("rows differ from %v", want)
	}
	if want := []string{"price: writer schema Trade: Avro string cannot be read as DOUBLE"}; !slices.Equal(bad, want) {
		t.Fatalf("bad records %q, want %q", bad, want)
	}
}

// TestIncompatibleWriters: writer schemas that cannot fill the columns,
// and records that are not valid Avro, are bad records naming the reason;
// a bad record leaves no partial row behind.
func TestIncompatibleWriters(t *testing.T) {
	reg, cl := testRegistry(t)
	schema := arrow.NewSchema([]arrow.Field{
		field("ticker", sqltypes.Varchar, false), field("price", sqltypes.Decimal(6, 2), false),
	}, nil)
	d, err := NewDecoder(schema, cl, checkedAlloc(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	const decV = `{"type":"record","name":"Q","fields":[{"name":"ticker","type":"string"},
	 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":8,"scale":1}}]}`
	const optV = `{"type":"record","name":"Q","fields":[{"name":"ticker","type":["null","string"]},
	 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":8,"scale":2}}]}`
	good := frame(t, reg, decV, map[string]any{"ticker": "A", "price": big.NewRat(15, 10)})
	if err := d.Resolve(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		value []byte
		want  string
	}{
		{"no ticker", frame(t, reg, `{"type":"record","name":"Q","fields":[{"name":"other","type":"int"}]}`, map[string]any{"other": int32(1)}),
			"ticker: writer schema Q has no field ticker for NOT NULL column ticker"},
		{"scale too large", frame(t, reg, `{"type":"record","name":"Q","fields":[{"name":"ticker","type":"string"},
		 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":8,"scale":3}}]}`, map[string]any{"ticker": "A", "price": big.NewRat(1, 1)}),
			"price: writer schema Q: decimal with scale 3 would lose digits in DECIMAL(6,2)"},
		{"too many digits", frame(t, reg, decV, map[string]any{"ticker": "A", "price": big.NewRat(100000, 1)}),
			"price: value does not fit DECIMAL(6,2)"},
		{"null for NOT NULL", frame(t, reg, optV, map[string]any{"ticker": nil, "price": big.NewRat(1, 1)}),
			"ticker: missing value for NOT NULL column ticker"},
		{"truncated", good[:len(good)-1], "price: invalid Avro for writer schema id 1: the record ends inside a value"},
		{"trailing", append(append([]byte(nil), good...), 0), ": invalid Avro for writer schema id 1: 1 bytes after the end of the record"},
		{"bad utf8", append(append([]byte(nil), good[:5]...), 2, 0xff, 2, 15), "ticker: invalid UTF-8 in string"},
		{"no magic", []byte(`{"ticker":"A"}`), ": not in the Confluent Avro wire format (magic byte 0 and a 4-byte schema id)"},
		{"unknown id", []byte{0, 0, 0, 0, 99, 2, 'A'}, ": writer schema id 99 is not in the schema registry"},
		{"not a record", frame(t, reg, `"string"`, "x"), ": writer schema is a string, not a record"},
	}
	for _, c := range cases {
		if err := d.Resolve(context.Background(), c.value); err != nil {
			t.Fatal(err)
		}
		rerr := d.Append(c.value)
		if rerr == nil {
			t.Errorf("%s: appended", c.name)
			continue
		}
		if got := rerr.Field + ": " + rerr.Reason; got != c.want {
			t.Errorf("%s: got %q\nwant %q", c.name, got, c.want)
		}
		if rerr := d.Append(good); rerr != nil {
			t.Fatal(rerr)
		}
	}
	got := rows(t, d)
	if len(got) != len(cases) || got[0] != "A|1.50" || got[len(got)-1] != "A|1.50" {
		t.Fatalf("rows %q: want one A|1.50 per case", got)
	}
}

// TestColumns: the columns a stream declaring none gets from the writer
// schema.
func TestColumns(t *testing.T) {
	fields, err := Columns(allTypesSchema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		s := f.Name + " " + sqltypes.Name(f.Type)
		if !f.Nullable {
			s += " NOT NULL"
		}
		got = append(got, s)
	}
	want := []string{"b BOOLEAN NOT NULL", "i INT NOT NULL", "l BIGINT NOT NULL", "f DOUBLE NOT NULL", "d DOUBLE NOT NULL",
		"s VARCHAR NOT NULL", "raw VARCHAR NOT NULL", "dec DECIMAL(9,2) NOT NULL", "decf DECIMAL(18,4) NOT NULL",
		"tms TIMESTAMP NOT NULL", "tus TIMESTAMP NOT NULL", "day DATE NOT NULL", "id VARCHAR NOT NULL", "color VARCHAR NOT NULL",
		"opt VARCHAR", "addr.city VARCHAR NOT NULL", "addr.zip INT", "boss.name VARCHAR"}
	if !slices.Equal(got, want) {
		t.Fatalf("columns\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzDecode: any bytes after a valid header are either a row or a bad
// record, never a panic, and a bad record leaves no partial row.
func FuzzDecode(f *testing.F) {
	reg, cl := testRegistry(f)
	ok := frame(f, reg, allTypesSchema, allTypes{Dec: big.NewRat(1, 1), DecF: big.NewRat(1, 1), Arr: []leg{{1, "a"}},
		Map: map[string]*float64{"k": nil}, Color: "RED", TMs: time.UnixMilli(5), TUs: time.UnixMilli(5), Day: time.Unix(0, 0).UTC()})
	f.Add(ok[5:])
	f.Add([]byte{})
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		d, err := NewDecoder(allTypesColumns, cl, mem)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Release()
		value := append(append([]byte(nil), ok[:5]...), body...)
		if err := d.Resolve(context.Background(), value); err != nil {
			t.Fatal(err)
		}
		want := 0
		if d.Append(value) == nil {
			want++
		}
		if d.Append(ok) != nil {
			t.Fatal("a valid record after a fuzzed one is bad")
		}
		want++
		arrs := d.NewArrays()
		for _, a := range arrs {
			if a.Len() != want {
				t.Fatalf("column of %d rows, want %d", a.Len(), want)
			}
			a.Release()
		}
	})
}
