package kernels

import (
	"math"
	"strings"
	"testing"
)

func TestParseDecimalBytes(t *testing.T) {
	tests := []struct {
		in         string
		prec, scal int32
		want       string // "" for an error
	}{
		{"191.34", 18, 4, "191.3400"},
		{"-0.5", 18, 4, "-0.5000"},
		{"0.00005", 18, 4, "0.0001"},
		{"-0.00005", 18, 4, "-0.0001"},
		{"0.000049", 18, 4, "0.0000"},
		{"1.23456789", 18, 4, "1.2346"},
		{"12", 4, 2, "12.00"},
		{"123", 4, 2, ""},
		{"99.995", 4, 2, ""},
		{"99.994", 4, 2, "99.99"},
		{"1e3", 10, 2, "1000.00"},
		{"1.5E-2", 10, 2, "0.02"},
		{"-1.5e-3", 10, 2, "-0.00"},
		{"12345678901234567890123456789012345678", 38, 0, "12345678901234567890123456789012345678"},
		{"-99999999999999999999999999999999999999", 38, 0, "-99999999999999999999999999999999999999"},
		{"123456789012345678901234567890123456789", 38, 0, ""},
		{"0.1", 38, 37, "0.1000000000000000000000000000000000000"},
		{"000001.10", 5, 2, "1.10"},
		{".5", 3, 1, "0.5"},
		{"abc", 10, 2, ""},
		{"1.2.3", 10, 2, ""},
		{"", 10, 2, ""},
		{"-", 10, 2, ""},
		{"1e", 10, 2, ""},
		{"1e999", 10, 2, ""},
		{"0e999", 10, 2, "0.00"},
		// reconciled with the old CAST parser, which rejected exponents
		// beyond ±100: a value below the scale's unit rounds to zero
		{"1e-200", 10, 2, "0.00"},
		{"-4e-3", 10, 2, "-0.00"},
		{"1.", 10, 2, "1.00"},
		{".", 10, 2, ""},
		{"1e+2", 10, 0, "100"},
		{"1 ", 10, 2, ""}, // the []byte parser does not trim
		{"1", 39, 0, ""},  // precision beyond DECIMAL's 38
	}
	for _, tc := range tests {
		n, st := ParseDecimalBytes([]byte(tc.in), tc.prec, tc.scal)
		got := ""
		if st == ParseOK {
			got = n.ToString(tc.scal)
			if tc.scal > 0 && n.Sign() == 0 && strings.HasPrefix(tc.want, "-") {
				got = "-" + got // ToString drops the sign of zero
			}
		}
		if got != tc.want {
			t.Errorf("ParseDecimalBytes(%q, %d, %d) = %q (status %d), want %q", tc.in, tc.prec, tc.scal, got, st, tc.want)
		}
	}
}

func TestParseTimestampBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1970-01-01T00:00:00Z", 0, true},
		{"2024-01-01T00:00:05.000Z", 1704067205000, true},
		{"2024-01-01T00:00:05Z", 1704067205000, true},
		{"2024-01-01t00:00:05z", 1704067205000, true},
		{"2024-01-01T02:00:05+02:00", 1704067205000, true},
		{"2024-01-01T02:00:05+0200", 1704067205000, true},
		{"2024-01-01T02:00:05+02", 1704067205000, true},
		{"2023-12-31T22:00:05-02:00", 1704067205000, true},
		{"2024-01-01 00:00:05", 1704067205000, true},
		{"2024-01-01 00:00", 1704067200000, true},
		{"2024-01-01T00:00:05.1", 1704067205100, true},
		{"2024-01-01T00:00:05.123999999Z", 1704067205123, true},
		{"1969-12-31T23:59:59.999Z", -1, true},
		{"1900-03-01T00:00:00Z", -2203891200000, true},
		{"2024-02-29T00:00:00Z", 1709164800000, true},
		// epoch numbers are a source-format convention (sources.parseTimestamp),
		// not timestamp text
		{"1704067205000", 0, false},
		{"-1000", 0, false},
		// layouts the old CAST parser accepted through time.Parse
		{"2024-01-01T2:00:05+02:00", 1704067205000, true},
		{"2024-01-01 00:00:05 UTC", 1704067205000, true},
		{"2024-01-01T00:00Z", 1704067200000, true},
		{"2024-01-01 00:00:05,5", 1704067205500, true},
		// layouts the sources' parser accepted through time.Parse
		{"Mon, 01 Jan 2024 00:00:05 +0000", 1704067205000, true},
		{"Mon Jan  1 00:00:05 2024", 1704067205000, true},
		{"2024-01-01 02:00:05 +02:00", 1704067205000, true},
		// reconciled: a fraction needs seconds (time.Parse rejected it, the
		// sources' fast path read it as seconds)
		{"2024-01-01T00:00.5", 0, false},
		{"2024-01-01T", 0, false},
		{"2024-01-01T00:00:05+02:0", 0, false},
		{"2024-02-30T00:00:00Z", 0, false},
		{"2024-01-01T24:00:00Z", 0, false},
		{"2024-01-01T00:00:05+25:00", 0, false},
		{"2024-01-01X00:00:05", 0, false},
		{"yesterday", 0, false},
		{"", 0, false},
		{"2024-01-01T00:00:05.Z", 0, false},
	}
	for _, tc := range tests {
		got, st := ParseTimestampBytes([]byte(tc.in))
		if (st == ParseOK) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseTimestampBytes(%q) = %d, %d; want %d, ok=%v", tc.in, got, st, tc.want, tc.ok)
		}
	}
}

func TestParseFormatDecimal(t *testing.T) {
	for _, c := range []struct {
		in   string
		p, s int32
		out  string
	}{
		{"-0.5", 5, 4, "-0.5000"}, {"123.455", 10, 2, "123.46"}, {"-123.455", 10, 2, "-123.46"},
		{"1e3", 10, 0, "1000"}, {".5", 3, 0, "1"}, {"0.0049", 5, 2, "0.00"}, {"  42 ", 5, 1, "42.0"},
		{"99999999999999999999999999999999999999", 38, 0, "99999999999999999999999999999999999999"},
	} {
		n, err := ParseDecimal(c.in, c.p, c.s)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if got := FormatDecimal(n, c.s); got != c.out {
			t.Errorf("%q -> %s, want %s", c.in, got, c.out)
		}
	}
	for _, bad := range []string{"abc", "", "1.2.3", "123456", "1e"} {
		if _, err := ParseDecimal(bad, 5, 0); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseTimestampTrimsAndNamesValue(t *testing.T) {
	if ms, err := ParseTimestamp(" 2024-01-01T00:00:05Z\t"); err != nil || ms != 1704067205000 {
		t.Errorf("trimmed: %d, %v", ms, err)
	}
	if _, err := ParseTimestamp("yesterday"); err == nil || err.Error() != `invalid TIMESTAMP "yesterday"` {
		t.Errorf("error %v", err)
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in   string
		want int32
		ok   bool
	}{
		{"2024-01-01", 19723, true},
		{"1970-01-01", 0, true},
		{"1969-12-31", -1, true},
		{"0001-01-01", -719162, true},
		{"2000-02-29", 11016, true},
		{"1900-02-29", 0, false},
		{"2024-13-01", 0, false},
		{"2024-00-10", 0, false},
		{"2024-01-32", 0, false},
		// a timestamp keeps its UTC day
		{"2024-01-01T23:00:00-02:00", 19724, true},
		{"1969-12-31T23:59:59.999Z", -1, true},
		{"19723", 0, false}, // day counts are a source-format convention
		{"", 0, false},
	}
	for _, tc := range tests {
		got, st := ParseDateBytes([]byte(tc.in))
		if (st == ParseOK) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseDateBytes(%q) = %d, %d; want %d, ok=%v", tc.in, got, st, tc.want, tc.ok)
		}
	}
	if d, err := ParseDate(" 2024-01-01 "); err != nil || d != 19723 {
		t.Errorf("ParseDate trimmed: %d, %v", d, err)
	}
	if _, err := ParseDate("2024-02-30"); err == nil || err.Error() != `invalid DATE "2024-02-30"` {
		t.Errorf("error %v", err)
	}
}

// TestParseBool pins the reconciled BOOLEAN spelling: PostgreSQL's set
// (CAST accepted it; the sources accepted only true/false, t/f and 1/0),
// case-insensitive; only the string form trims spaces.
func TestParseBool(t *testing.T) {
	for _, in := range []string{"true", "TRUE", "True", "t", "T", "yes", "YES", "y", "Y", "on", "ON", "1"} {
		if v, st := ParseBoolBytes([]byte(in)); st != ParseOK || !v {
			t.Errorf("ParseBoolBytes(%q) = %v, %d; want true", in, v, st)
		}
	}
	for _, in := range []string{"false", "FALSE", "f", "F", "no", "No", "n", "N", "off", "OFF", "0"} {
		if v, st := ParseBoolBytes([]byte(in)); st != ParseOK || v {
			t.Errorf("ParseBoolBytes(%q) = %v, %d; want false", in, v, st)
		}
	}
	for _, in := range []string{"", "tru", "yess", "2", "o", " true", "true ", "nope", "\x11", "1.5", "t\x00"} {
		if _, st := ParseBoolBytes([]byte(in)); st != ParseSyntax {
			t.Errorf("ParseBoolBytes(%q) = %d, want ParseSyntax", in, st)
		}
	}
	if v, err := ParseBool("  On\n"); err != nil || !v {
		t.Errorf("ParseBool trimmed: %v, %v", v, err)
	}
	if _, err := ParseBool("maybe"); err == nil || err.Error() != `invalid BOOLEAN "maybe"` {
		t.Errorf("error %v", err)
	}
}

func TestParseIntBytes(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int64
		want   int64
		st     ParseStatus
	}{
		{"42", math.MinInt32, math.MaxInt32, 42, ParseOK},
		{"+42", math.MinInt32, math.MaxInt32, 42, ParseOK},
		{"-2147483648", math.MinInt32, math.MaxInt32, math.MinInt32, ParseOK},
		{"2147483648", math.MinInt32, math.MaxInt32, 0, ParseRange},
		{"-2147483649", math.MinInt32, math.MaxInt32, 0, ParseRange},
		{"-9223372036854775808", math.MinInt64, math.MaxInt64, math.MinInt64, ParseOK},
		{"9223372036854775807", math.MinInt64, math.MaxInt64, math.MaxInt64, ParseOK},
		{"9223372036854775808", math.MinInt64, math.MaxInt64, 0, ParseRange},
		{"99999999999999999999999", math.MinInt64, math.MaxInt64, 0, ParseRange},
		{"", math.MinInt64, math.MaxInt64, 0, ParseSyntax},
		{"-", math.MinInt64, math.MaxInt64, 0, ParseSyntax},
		{"1_000", math.MinInt64, math.MaxInt64, 0, ParseSyntax},
		{" 1", math.MinInt64, math.MaxInt64, 0, ParseSyntax},
		{"1.0", math.MinInt64, math.MaxInt64, 0, ParseSyntax},
	}
	for _, tc := range tests {
		if got, st := ParseIntBytes([]byte(tc.in), tc.lo, tc.hi); got != tc.want || st != tc.st {
			t.Errorf("ParseIntBytes(%q, %d, %d) = %d, %d; want %d, %d", tc.in, tc.lo, tc.hi, got, st, tc.want, tc.st)
		}
	}
}

func TestParseFloatBytes(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		st   ParseStatus
	}{
		{"191.34", 191.34, ParseOK},
		{"-1e-7", -1e-7, ParseOK},
		{"Infinity", math.Inf(1), ParseOK},
		{"-inf", math.Inf(-1), ParseOK},
		{"1e999", 0, ParseRange},
		{"abc", 0, ParseSyntax},
		{"", 0, ParseSyntax},
	}
	for _, tc := range tests {
		if got, st := ParseFloatBytes([]byte(tc.in)); got != tc.want || st != tc.st {
			t.Errorf("ParseFloatBytes(%q) = %v, %d; want %v, %d", tc.in, got, st, tc.want, tc.st)
		}
	}
	if v, err := ParseDouble(" NaN "); err != nil || !math.IsNaN(v) {
		t.Errorf("ParseDouble NaN: %v, %v", v, err)
	}
}

// TestParsersDoNotAllocate checks the fast paths the sources rely on.
func TestParsersDoNotAllocate(t *testing.T) {
	dec, ts, date, i, f, b := []byte("-12345.67895"), []byte("2024-01-01T02:00:05.123+02:00"), []byte("2024-02-29"), []byte("-123456"), []byte("191.34"), []byte("TRUE")
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = ParseDecimalBytes(dec, 18, 4)
		_, _ = ParseTimestampBytes(ts)
		_, _ = ParseDateBytes(date)
		_, _ = ParseIntBytes(i, math.MinInt64, math.MaxInt64)
		_, _ = ParseFloatBytes(f)
		_, _ = ParseBoolBytes(b)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}
