package sources

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

func TestCSV(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		field("ticker", sqltypes.Varchar, false),
		field("price", dec(10, 2), true),
		field("volume", sqltypes.BigInt, true),
		field("ts", sqltypes.Timestamp, true),
		field("note", sqltypes.Varchar, true),
	}, nil)
	tests := []struct {
		name    string
		input   string
		opts    []string
		want    []string
		wantBad []string // "line N field: reason substring"
	}{
		{
			name: "header maps by name in any order and case, extra columns ignored",
			input: "volume,extra,TICKER,price,ts,Note\n" +
				"100,x,AAPL,191.345,2024-01-01T00:00:05Z,\n" +
				"\n" +
				" 7 ,y,\"MS,FT\",,,\r\n" +
				"8,z,\"say \"\"hi\"\"\",1,1704067205000,\n",
			want: []string{
				`"AAPL"|191.35|100|2024-01-01T00:00:05.000Z|null`,
				`"MS,FT"|null|7|null|null`,
				`"say \"hi\""|1.00|8|2024-01-01T00:00:05.000Z|null`,
			},
		},
		{
			name:  "by position with a delimiter; quoted empty is an empty string, unquoted empty is NULL",
			input: "A;1.5;2;2024-01-01 00:00:00;\"\"\nB;;;;\n",
			opts:  []string{"header", "false", "delimiter", ";"},
			want: []string{
				`"A"|1.50|2|2024-01-01T00:00:00.000Z|""`,
				`"B"|null|null|null|null`,
			},
		},
		{
			name:  "quoted line breaks",
			input: "ticker,note,price,volume,ts\nA,\"line1\nline2\",,,\nB,x,,,\n",
			want:  []string{`"A"|null|null|null|"line1\nline2"`, `"B"|null|null|null|"x"`},
		},
		{
			name:  "bad records",
			input: "ticker,volume,price,ts,note\nA,1,2,,\nB,abc,2,,\nC,1\n,1,1,,\nD,1,\"2\"x,,\nE,9223372036854775808,1,,\nF,1,123456789.1,,\nG,2,3,,\nH,1,\"unterminated\n",
			want:  []string{`"A"|2.00|1|null|null`, `"G"|3.00|2|null|null`},
			wantBad: []string{
				`line 3 volume: expected BIGINT, found "abc"`,
				`line 4 : expected 5 fields, found 2`,
				`line 5 ticker: missing value for NOT NULL column ticker`,
				`line 6 : unexpected 'x' after a closing quote`,
				`line 7 volume: out of range for BIGINT`,
				`line 8 price: does not fit DECIMAL(10,2)`,
				`line 10 : unterminated quoted field`,
			},
		},
	}
	for _, tc := range tests {
		for _, bs := range []int{1, 3, 4096} {
			t.Run(tc.name+"/"+strconv.Itoa(bs), func(t *testing.T) {
				mem := checkedAlloc(t)
				dl := &recorder{}
				src := openFile(t, mem, schema, "csv", tc.input, dl, append([]string{"batch_size", strconv.Itoa(bs)}, tc.opts...)...)
				got, err := drain(t, src, bs)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
				var bad []string
				for _, r := range dl.recs {
					bad = append(bad, r.Position+" "+r.Field+": "+r.Reason)
				}
				if len(bad) != len(tc.wantBad) {
					t.Fatalf("dead letters:\n%s\nwant:\n%s", strings.Join(bad, "\n"), strings.Join(tc.wantBad, "\n"))
				}
				for i := range bad {
					w := tc.wantBad[i]
					prefix := w[:strings.Index(w, ":")]
					if !strings.HasPrefix(bad[i], prefix+":") || !strings.Contains(bad[i], w[len(prefix)+2:]) {
						t.Errorf("dead letter %d: %s, want %s", i, bad[i], w)
					}
				}
			})
		}
	}
}

// TestCSVHeaderErrors: a header that does not name every declared column
// is refused, naming the missing columns and the header, whether or not
// the columns are nullable.
func TestCSVHeaderErrors(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("ticker", sqltypes.Varchar, false),
		field("price", dec(10, 2), true), field("volume", sqltypes.BigInt, true)}, nil)
	for in, want := range map[string]string{
		"a,b\n1,2\n":                   "does not name the declared columns ticker, price, volume; header: a, b",
		"ticker,prise,VOLUME\nA,1,2\n": "does not name the declared columns price; header: ticker, prise, VOLUME",
	} {
		mem := checkedAlloc(t)
		_, err := drain(t, openFile(t, mem, schema, "csv", in, nil), 0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("input %q: got %v, want an error containing %q", in, err, want)
		}
	}
}

// TestEmptyCSVAndJSONHaveNoRows: an empty input (or blank lines only) is
// zero rows in CSV, with or without a header, as in JSON.
func TestEmptyCSVAndJSONHaveNoRows(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{field("ticker", sqltypes.Varchar, false)}, nil)
	for _, in := range []string{"", "\n\n"} {
		for _, c := range []struct {
			format string
			opts   []string
		}{{"csv", nil}, {"csv", []string{"header", "false"}}, {"json", nil}} {
			mem := checkedAlloc(t)
			rows, err := drain(t, openFile(t, mem, schema, c.format, in, nil, c.opts...), 0)
			if err != nil || len(rows) != 0 {
				t.Errorf("%s %v input %q: %d rows, error %v; want no rows and no error", c.format, c.opts, in, len(rows), err)
			}
		}
	}
}

// TestRawRecordColumn: a schema ending with arrowexec.RawRecordColumn gets
// each good record's original bytes there (a CSV record over two lines
// whole; JSON keys the schema does not declare kept), at every batch size;
// bad records are dead-lettered as usual and have no row.
func TestRawRecordColumn(t *testing.T) {
	for _, batch := range []int{1, 3, 100} {
		for _, tc := range []struct {
			format, content string
			want            []string
		}{
			{"json", `{"a":1,"b":"x","extra":[1,{"y":2}]}
{"a":"bad","b":"y"}
{"b":"z","a":2}
`, []string{`1|"x"|"{\"a\":1,\"b\":\"x\",\"extra\":[1,{\"y\":2}]}"`, `2|"z"|"{\"b\":\"z\",\"a\":2}"`}},
			{"csv", `a,b
1,"two
lines"
bad,y
3,  z
`, []string{`1|"two\nlines"|"1,\"two\nlines\""`, `3|"  z"|"3,  z"`}},
		} {
			mem := checkedAlloc(t)
			schema := arrow.NewSchema([]arrow.Field{field("a", arrow.PrimitiveTypes.Int64, true), field("b", arrow.BinaryTypes.String, true),
				field(arrowexec.RawRecordColumn, arrow.BinaryTypes.String, true)}, nil)
			dl := &recorder{}
			src := openFile(t, mem, schema, tc.format, tc.content, dl, "batch_size", strconv.Itoa(batch))
			rows, err := drain(t, src, batch)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows, tc.want) {
				t.Errorf("%s batch %d: rows\n%s\nwant\n%s", tc.format, batch, strings.Join(rows, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(dl.recs) != 1 || dl.recs[0].Field != "a" {
				t.Errorf("%s: dead letters %+v, want the bad record", tc.format, dl.recs)
			}
		}
	}
}
