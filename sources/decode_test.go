package sources

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestRecordDecoder decodes single JSON and CSV records with the file
// source's rules; a bad record appends nothing.
func TestRecordDecoder(t *testing.T) {
	mem := checkedAlloc(t)
	schema := arrow.NewSchema([]arrow.Field{
		field("id", sqltypes.BigInt, false), field("name", sqltypes.Varchar, true), field("price", dec(6, 2), true),
	}, nil)
	for _, tc := range []struct {
		format string
		recs   []string
		rows   []string
		errs   []string // "field: reason" per bad record, in order
	}{
		{"json",
			[]string{`{"id":1,"name":"a","price":1.5}` + "\n", `{"id":"x"}`, `{"NAME":"b","id":2}`, `{"name":"c"}`, `{"id":3`},
			[]string{`1|"a"|1.50`, `2|"b"|null`},
			[]string{`field id: expected BIGINT, found "x"`, "field id: missing value for NOT NULL column id", "invalid JSON: unterminated object"}},
		{"csv",
			[]string{"1,\"a,\"\"q\"\"\",1.5\r\n", "2,,", "x,b,1", "3,\"open", "4,b"},
			[]string{`1|"a,\"q\""|1.50`, `2|null|null`},
			[]string{`field id: expected BIGINT, found "x"`, "unterminated quoted field", "expected 3 fields, found 2"}},
	} {
		d, err := NewRecordDecoder(schema, tc.format, ',', mem)
		if err != nil {
			t.Fatal(err)
		}
		var errs []string
		for _, r := range tc.recs {
			if rerr := d.Append([]byte(r)); rerr != nil {
				errs = append(errs, rerr.Error())
			}
		}
		if d.Rows() != len(tc.rows) {
			t.Errorf("%s: %d rows, want %d", tc.format, d.Rows(), len(tc.rows))
		}
		arrs := d.NewArrays()
		rec := array.NewRecordBatch(schema, arrs, int64(len(tc.rows)))
		for _, a := range arrs {
			a.Release()
		}
		for i, want := range tc.rows {
			if got := renderRow(rec, i); got != want {
				t.Errorf("%s row %d = %s, want %s", tc.format, i, got, want)
			}
		}
		rec.Release()
		if len(errs) != len(tc.errs) {
			t.Errorf("%s: errors %q, want %q", tc.format, errs, tc.errs)
		} else {
			for i := range errs {
				if errs[i] != tc.errs[i] {
					t.Errorf("%s: error %q, want %q", tc.format, errs[i], tc.errs[i])
				}
			}
		}
		if d.Rows() != 0 {
			t.Errorf("%s: Rows after NewArrays = %d", tc.format, d.Rows())
		}
		d.Release()
		d.Release()
	}
	if _, err := NewRecordDecoder(schema, "xml", ',', mem); err == nil {
		t.Error("format xml accepted")
	}
}
