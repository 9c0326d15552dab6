package kernels

import (
	"math"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// TestCastTextReconciled runs CAST over the behaviours the shared parsers
// settled (see parse.go), on a sliced array with a NULL.
func TestCastTextReconciled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	varchars := func(vs ...string) arrow.Array {
		b := array.NewStringBuilder(mem)
		defer b.Release()
		b.Append("padding")
		for _, v := range vs {
			if v == "NULL" {
				b.AppendNull()
				continue
			}
			b.Append(v)
		}
		full := b.NewArray()
		defer full.Release()
		return array.NewSlice(full, 1, int64(full.Len()))
	}
	texts := func(a arrow.Array) []string {
		out := make([]string, a.Len())
		for i := range out {
			out[i] = "NULL"
			if a.IsValid(i) {
				out[i] = Text(a, i)
			}
		}
		return out
	}
	tests := []struct {
		name string
		in   []string
		to   arrow.DataType
		want []string // nil: the cast fails
	}{
		{"bool PostgreSQL spellings", []string{" yes ", "OFF", "NULL", "t", "0"}, sqltypes.Boolean, []string{"true", "false", "NULL", "true", "false"}},
		{"bool unknown", []string{"maybe"}, sqltypes.Boolean, nil},
		{"timestamp lower-case t and z", []string{"2024-01-01t00:00:05z", "NULL"}, sqltypes.Timestamp, []string{"2024-01-01T00:00:05.000Z", "NULL"}},
		{"timestamp zone name and RFC 1123", []string{"2024-01-01 00:00:05 UTC", "Mon, 01 Jan 2024 00:00:05 +0000"}, sqltypes.Timestamp,
			[]string{"2024-01-01T00:00:05.000Z", "2024-01-01T00:00:05.000Z"}},
		{"timestamp fraction without seconds", []string{"2024-01-01T00:00.5"}, sqltypes.Timestamp, nil},
		{"timestamp epoch number", []string{"1704067205000"}, sqltypes.Timestamp, nil},
		{"date of a timestamp", []string{"2024-01-01T23:00:00-02:00"}, sqltypes.Date, []string{"2024-01-02"}},
		{"decimal tiny exponent", []string{"1e-200", " -4e-3 "}, sqltypes.Decimal(10, 2), []string{"0.00", "0.00"}},
		{"decimal huge exponent", []string{"1e200"}, sqltypes.Decimal(10, 2), nil},
		{"int range", []string{" -2147483648 ", "2147483647"}, sqltypes.Int, []string{"-2147483648", "2147483647"}},
		{"int overflow", []string{"2147483648"}, sqltypes.Int, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := varchars(tc.in...)
			defer x.Release()
			got, err := Cast(mem, x, tc.to)
			if tc.want == nil {
				if err == nil {
					got.Release()
					t.Fatalf("cast succeeded: %v", texts(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer got.Release()
			if g := texts(got); !slices.Equal(g, tc.want) {
				t.Errorf("got %v, want %v", g, tc.want)
			}
		})
	}
}

func TestFormatIntervalExtremes(t *testing.T) {
	for ms, want := range map[int64]string{
		0:             "00:00:00",
		-1500:         "-00:00:01.500",
		90061001:      "1 day 01:01:01.001",
		math.MinInt64: "-106751991167 days 07:12:55.808",
		math.MaxInt64: "106751991167 days 07:12:55.807",
	} {
		if got := FormatInterval(ms); got != want {
			t.Errorf("FormatInterval(%d) = %q, want %q", ms, got, want)
		}
	}
}
