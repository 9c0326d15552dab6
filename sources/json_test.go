package sources

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

var allTypes = arrow.NewSchema([]arrow.Field{
	field("s", sqltypes.Varchar, true),
	field("i", sqltypes.Int, true),
	field("b", sqltypes.BigInt, true),
	field("d", sqltypes.Double, true),
	field("m", dec(10, 4), true),
	field("t", sqltypes.Timestamp, true),
	field("dt", sqltypes.Date, true),
	field("ok", sqltypes.Boolean, true),
	field("iv", sqltypes.Interval, true),
}, nil)

func TestJSONDecode(t *testing.T) {
	lines := []string{
		// all types
		`{"s":"AAPL","i":1,"b":1200,"d":191.34,"m":191.34,"t":"2024-01-01T00:00:05.000Z","dt":"2024-02-29","ok":true,"iv":60000}`,
		// nulls and missing keys
		`{"s":null,"i":null,"t":null}`,
		`{}`,
		// unknown and nested keys skipped, keys out of order, spaces
		` { "x": {"a":[1,{"b":"}"}],"c":"\""} , "b" : -5 , "arr":[[],{}], "s":"z", "n":null, "f":false, "e":1.5e3 } `,
		// escapes: \" \\ \n \u00e9 and a surrogate pair (U+1F600), key escape
		`{"s":"a\"b\\c\nd\u00e9\ud83d\ude00/\/","\u0069":7}`,
		// unicode kept as is
		`{"s":"héllo 世界"}`,
		// timestamps: offsets to UTC, space separator, epoch ms, date only, fraction digits
		`{"t":"2024-01-01T02:00:05+02:00"}`,
		`{"t":"2024-01-01 00:00:05.5"}`,
		`{"t":1704067205123}`,
		`{"t":"2024-01-01"}`,
		`{"t":"2023-12-31T19:00:05.123456-05:00"}`,
		`{"t":"Mon, 01 Jan 2024 00:00:05 +0000"}`,
		// decimals: fewer and more digits than the scale (rounded half away from zero), strings, exponent
		`{"m":-0.5}`,
		`{"m":"12.34565"}`,
		`{"m":-12.34565}`,
		`{"m":1.2e2}`,
		`{"m":"7"}`,
		// numbers from strings, booleans
		`{"i":"42","b":"-9223372036854775808","d":"1e-7","ok":"false"}`,
		// a number or an object into VARCHAR keeps its JSON text
		`{"s":12.50}`,
		`{"s":{"k":[1,2]}}`,
		// blank line is skipped
		``,
		`{"b":9223372036854775807,"i":-2147483648,"dt":19723}`,
	}
	want := []string{
		`"AAPL"|1|1200|191.34|191.3400|2024-01-01T00:00:05.000Z|2024-02-29|true|60000`,
		`null|null|null|null|null|null|null|null|null`,
		`null|null|null|null|null|null|null|null|null`,
		`"z"|null|-5|null|null|null|null|null|null`,
		`"a\"b\\c\ndé😀//"|7|null|null|null|null|null|null|null`,
		`"héllo 世界"|null|null|null|null|null|null|null|null`,
		`null|null|null|null|null|2024-01-01T00:00:05.000Z|null|null|null`,
		`null|null|null|null|null|2024-01-01T00:00:05.500Z|null|null|null`,
		`null|null|null|null|null|2024-01-01T00:00:05.123Z|null|null|null`,
		`null|null|null|null|null|2024-01-01T00:00:00.000Z|null|null|null`,
		`null|null|null|null|null|2024-01-01T00:00:05.123Z|null|null|null`,
		`null|null|null|null|null|2024-01-01T00:00:05.000Z|null|null|null`,
		`null|null|null|null|-0.5000|null|null|null|null`,
		`null|null|null|null|12.3457|null|null|null|null`,
		`null|null|null|null|-12.3457|null|null|null|null`,
		`null|null|null|null|120.0000|null|null|null|null`,
		`null|null|null|null|7.0000|null|null|null|null`,
		`null|42|-9223372036854775808|1e-07|null|null|null|false|null`,
		`"12.50"|null|null|null|null|null|null|null|null`,
		`"{\"k\":[1,2]}"|null|null|null|null|null|null|null|null`,
		`null|-2147483648|9223372036854775807|null|null|null|2024-01-01|null|null`,
	}
	input := strings.Join(lines, "\n") + "\n"
	for _, bs := range []int{1, 3, 4096} {
		t.Run("batch"+strconv.Itoa(bs), func(t *testing.T) {
			mem := checkedAlloc(t)
			src := openFile(t, mem, allTypes, "json", input, nil, "batch_size", strconv.Itoa(bs))
			got, err := drain(t, src, bs)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d rows, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("row %d:\n got %s\nwant %s", i, got[i], want[i])
				}
			}
		})
	}
}

func TestJSONBadRecords(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		field("ticker", sqltypes.Varchar, false),
		field("volume", sqltypes.BigInt, true),
		field("qty", sqltypes.Int, true),
		field("price", dec(6, 2), true),
		field("ts", sqltypes.Timestamp, true),
		field("ok", sqltypes.Boolean, true),
	}, nil)
	input := strings.Join([]string{
		`{"ticker":"A","volume":1}`,       // 1 ok
		`{"ticker":"B","volume":"abc"}`,   // 2 wrong type
		`{"ticker":"C","volume":1`,        // 3 truncated
		`{"volume":3}`,                    // 4 NOT NULL missing
		`{"ticker":null}`,                 // 5 NOT NULL null
		`{"ticker":"D","qty":2147483648}`, // 6 out of range
		`{"ticker":"E","price":12345.6}`,  // 7 precision overflow
		`{"ticker":"F","ts":"yesterday"}`, // 8 bad timestamp
		`{"ticker":"G","ok":1.5}`,         // 9 bad bool
		`["ticker"]`,                      // 10 not an object
		`{"ticker":"H"} x`,                // 11 trailing data
		`{"ticker":"I","volume":1.5}`,     // 12 fraction in BIGINT
		`{"ticker":"J","volume":01x}`,     // 13 invalid number
		`{"ticker":"K","volume":{"a":1}}`, // 14 object into BIGINT
		`{"ticker":"L","price":9999.995}`, // 15 rounds to 10000.00: overflow
		`{"ticker":"M","price":"9999.994","ts":"2024-01-01T00:00:00Z"}`, // 16 ok
		`{"ticker":"N\x01"}`, // 17 control char in string
	}, "\n")
	input = strings.Replace(input, `\x01`, "\x01", 1)
	type bad struct{ pos, field, reason string }
	wantBad := []bad{
		{"line 2", "volume", `expected BIGINT, found "abc"`},
		{"line 3", "", "invalid JSON"},
		{"line 4", "ticker", "missing value for NOT NULL column ticker"},
		{"line 5", "ticker", "missing value for NOT NULL column ticker"},
		{"line 6", "qty", "value 2147483648 out of range for INT"},
		{"line 7", "price", "value 12345.6 does not fit DECIMAL(6,2)"},
		{"line 8", "ts", `expected TIMESTAMP, found "yesterday"`},
		{"line 9", "ok", "expected BOOLEAN, found 1.5"},
		{"line 10", "", "invalid JSON: expected an object"},
		{"line 11", "", "invalid JSON: unexpected data"},
		{"line 12", "volume", "expected BIGINT, found 1.5"},
		{"line 13", "", "invalid JSON: bad value 01x"},
		{"line 14", "volume", `expected BIGINT, found {"a":1}`},
		{"line 15", "price", "does not fit DECIMAL(6,2)"},
		{"line 17", "", "invalid JSON"},
	}
	mem := checkedAlloc(t)
	dl := &recorder{}
	got, err := drain(t, openFile(t, mem, schema, "json", input, dl, "batch_size", "3"), 3)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []string{`"A"|1|null|null|null|null`, `"M"|null|null|9999.99|2024-01-01T00:00:00.000Z|null`}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	if len(dl.recs) != len(wantBad) {
		for _, r := range dl.recs {
			t.Logf("%s %s %s", r.Position, r.Field, r.Reason)
		}
		t.Fatalf("%d dead letters, want %d", len(dl.recs), len(wantBad))
	}
	lines := strings.Split(input, "\n")
	for i, w := range wantBad {
		r := dl.recs[i]
		if r.Position != w.pos || r.Field != w.field || !strings.Contains(r.Reason, w.reason) {
			t.Errorf("dead letter %d = {%s %q %q}, want {%s %q ~%q}", i, r.Position, r.Field, r.Reason, w.pos, w.field, w.reason)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(w.pos, "line "))
		if r.Raw != lines[n-1] {
			t.Errorf("dead letter %d raw %q, want %q", i, r.Raw, lines[n-1])
		}
		if r.Source != "s (in.json)" || r.Time.IsZero() {
			t.Errorf("dead letter %d source %q time %v", i, r.Source, r.Time)
		}
	}
}

func TestJSONBadRecordWithoutDeadLetter(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("volume", sqltypes.BigInt, true)}, nil)
	mem := checkedAlloc(t)
	_, err := drain(t, openFile(t, mem, schema, "json", "{\"volume\":1}\n{\"volume\":\"x\"}\n", nil), 0)
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, want := range []string{`file source "s"`, "in.json line 2", "field volume", `expected BIGINT, found "x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLongRecord(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("s", sqltypes.Varchar, true)}, nil)
	long := `{"s":"` + strings.Repeat("x", 5000) + `"}`
	for _, format := range []string{"json", "csv"} {
		t.Run(format, func(t *testing.T) {
			mem := checkedAlloc(t)
			dl := &recorder{}
			in := `{"s":"a"}` + "\n" + long + "\n" + `{"s":"b"}` + "\n" + long
			want := []string{`"a"`, `"b"`}
			if format == "csv" {
				in = "s\na\n" + strings.Repeat("y", 5000) + "\nb\n" + strings.Repeat("y", 5000)
			}
			got, err := drain(t, openFile(t, mem, schema, format, in, dl, "max_record_bytes", "1000"), 0)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("rows %v, want %v", got, want)
			}
			wantPos := []string{"line 2", "line 4"}
			if format == "csv" {
				wantPos = []string{"line 3", "line 5"}
			}
			if len(dl.recs) != 2 {
				t.Fatalf("dead letters %+v", dl.recs)
			}
			for i, r := range dl.recs {
				if r.Position != wantPos[i] || !strings.Contains(r.Reason, "max_record_bytes") || len(r.Raw) > 300 {
					t.Errorf("dead letter %d: %s %q (raw %d bytes)", i, r.Position, r.Reason, len(r.Raw))
				}
			}
		})
	}
}

// TestParseTimestampEpoch covers what the sources add to
// kernels.ParseTimestampBytes: integers are epoch milliseconds; other text
// is delegated (kernels/parse_test.go covers it).
func TestParseTimestampEpoch(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		pe   parseErr
	}{
		{"1704067205000", 1704067205000, errNone},
		{"-1000", -1000, errNone},
		{"+5", 5, errNone},
		{"99999999999999999999", 0, errRange},
		{"2024-01-01T00:00:05Z", 1704067205000, errNone},
		{"Mon, 01 Jan 2024 00:00:05 +0000", 1704067205000, errNone},
		{"2024-01-01X00:00:05", 0, errSyntax},
		{"", 0, errSyntax},
	}
	for _, tc := range tests {
		if got, pe := parseTimestamp([]byte(tc.in)); got != tc.want || pe != tc.pe {
			t.Errorf("parseTimestamp(%q) = %d, %d; want %d, %d", tc.in, got, pe, tc.want, tc.pe)
		}
	}
}

// TestParseDateEpoch: integers are days since the epoch; text is
// delegated to kernels.ParseDateBytes, so a timestamp keeps its UTC day.
func TestParseDateEpoch(t *testing.T) {
	tests := []struct {
		in   string
		want int32
		pe   parseErr
	}{
		{"19723", 19723, errNone},
		{"-1", -1, errNone},
		{"2147483648", 0, errRange},
		{"2024-01-01", 19723, errNone},
		{"2024-01-01T23:00:00-02:00", 19724, errNone},
		{"2024-02-30", 0, errSyntax},
		{"", 0, errSyntax},
	}
	for _, tc := range tests {
		if got, pe := parseDate([]byte(tc.in)); got != tc.want || pe != tc.pe {
			t.Errorf("parseDate(%q) = %d, %d; want %d, %d", tc.in, got, pe, tc.want, tc.pe)
		}
	}
}

// TestParseStatusKinds: the kernels' statuses map onto the dead-letter
// kinds.
func TestParseStatusKinds(t *testing.T) {
	if _, pe := parseDecimal([]byte("123"), 4, 2); pe != errPrecision {
		t.Errorf("precision: %d", pe)
	}
	if _, pe := parseInt([]byte("2147483648"), math.MinInt32, math.MaxInt32); pe != errRange {
		t.Errorf("range: %d", pe)
	}
	if _, pe := parseBool([]byte("maybe")); pe != errSyntax {
		t.Errorf("syntax: %d", pe)
	}
	if _, pe := parseFloat([]byte("1e999")); pe != errRange {
		t.Errorf("float range: %d", pe)
	}
}

func TestUnknownOptionAndFormat(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("a", sqltypes.BigInt, true)}, nil)
	tests := []struct {
		opts arrowexec.Options
		want string
	}{
		{arrowexec.Options{"connector": "file"}, `file source "s": option path is required`},
		{arrowexec.Options{"path": "x", "format": "xml"}, `format "xml" not supported (json, csv, arrow, parquet)`},
		{arrowexec.Options{"path": "x", "pth": "y"}, `unknown option "pth"`},
		{arrowexec.Options{"path": "x", "batch_size": "0"}, `option batch_size`},
		{arrowexec.Options{"path": "x", "format": "csv", "delimiter": ";;"}, `option delimiter`},
		{arrowexec.Options{"path": "x", "header": "maybe"}, `option header`},
	}
	for _, tc := range tests {
		_, err := NewFile(arrowexec.SourceSpec{Name: "s", Schema: schema, Options: tc.opts})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("options %v: error %v, want %q", tc.opts, err, tc.want)
		}
	}
	// every common option is accepted
	o := arrowexec.Options{"path": "x"}
	for _, k := range arrowexec.CommonSourceOptions {
		if _, ok := o[k]; !ok {
			o[k] = "1"
		}
	}
	o["format"] = "json"
	if _, err := NewFile(arrowexec.SourceSpec{Name: "s", Schema: schema, Options: o}); err != nil {
		t.Errorf("common options rejected: %v", err)
	}
	var c arrowexec.Connectors
	Register(&c)
	for _, name := range []string{"file", "generator"} {
		if _, err := c.Source(name); err != nil {
			t.Error(err)
		}
	}
}

func TestBOMAndCRLF(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("s", sqltypes.Varchar, true)}, nil)
	for _, format := range []string{"json", "csv"} {
		mem := checkedAlloc(t)
		in := "\xef\xbb\xbf{\"s\":\"x\"}\r\n{\"s\":\"y\"}"
		if format == "csv" {
			in = "\xef\xbb\xbfs\r\nx\r\ny"
		}
		got, err := drain(t, openFile(t, mem, schema, format, in, nil), 0)
		if err != nil || strings.Join(got, ",") != `"x","y"` {
			t.Errorf("%s: %v %v", format, got, err)
		}
	}
}
