package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

func TestAppendDecimal(t *testing.T) {
	tests := []struct {
		n     decimal128.Num
		scale int32
		want  string
	}{
		{decimal128.FromI64(1913400), 4, "191.3400"},
		{decimal128.FromI64(-5000), 4, "-0.5000"},
		{decimal128.FromI64(0), 2, "0.00"},
		{decimal128.FromI64(0), 0, "0"},
		{decimal128.FromI64(-17), 0, "-17"},
		{decimal128.FromI64(-1), 4, "-0.0001"},
		{decimal128.FromI64(17), -2, "1700"},
		{decimal128.FromI64(math.MinInt64), 0, "-9223372036854775808"},
		{decimal128.New(1, 0), 1, "1844674407370955161.6"},                          // 2^64
		{decimal128.FromU64(10_000_000_000_000_000_000), 0, "10000000000000000000"}, // 10^19
		{decimal128.New(0x7fffffffffffffff, math.MaxUint64), 0, "170141183460469231731687303715884105727"},
		{decimal128.New(math.MinInt64, 0), 0, "-170141183460469231731687303715884105728"},
	}
	for _, tc := range tests {
		if got := string(AppendDecimal([]byte("x"), tc.n, tc.scale)); got != "x"+tc.want {
			t.Errorf("AppendDecimal(%v, %d) = %s, want x%s", tc.n, tc.scale, got, tc.want)
		}
	}
	n, err := decimal128.FromString("-123456789012345678901234567890123456.78", 38, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatDecimal(n, 2); got != "-123456789012345678901234567890123456.78" {
		t.Errorf("38 digits: %s", got)
	}
	// against a math/big reference, over the whole 128-bit range
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		v := decimal128.New(int64(r.Uint64())>>r.IntN(64), r.Uint64())
		s := int32(r.IntN(40))
		if got, want := FormatDecimal(v, s), bigDecimal(v, s); got != want {
			t.Fatalf("FormatDecimal(%v, %d) = %s, want %s", v, s, got, want)
		}
	}
}

// bigDecimal renders v at scale s (>= 0) through math/big.
func bigDecimal(v decimal128.Num, s int32) string {
	b := v.BigInt()
	digits := new(big.Int).Abs(b).String()
	if pad := int(s) + 1 - len(digits); pad > 0 {
		digits = strings.Repeat("0", pad) + digits
	}
	if s > 0 {
		digits = digits[:len(digits)-int(s)] + "." + digits[len(digits)-int(s):]
	}
	if b.Sign() < 0 {
		return "-" + digits
	}
	return digits
}

func TestAppendTimestampAndDate(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "1970-01-01T00:00:00.000Z"},
		{1704067205000, "2024-01-01T00:00:05.000Z"},
		{1704067205123, "2024-01-01T00:00:05.123Z"},
		{-1, "1969-12-31T23:59:59.999Z"},
		{951782400000, "2000-02-29T00:00:00.000Z"},
		{-62135596800000, "0001-01-01T00:00:00.000Z"},
		{253402300799999, "9999-12-31T23:59:59.999Z"},
		{253402300800000, "10000-01-01T00:00:00.000Z"}, // outside 0000..9999: as time formats it
	}
	for _, tc := range tests {
		if got := FormatTimestamp(tc.ms); got != tc.want {
			t.Errorf("FormatTimestamp(%d) = %s, want %s", tc.ms, got, tc.want)
		}
	}
	if got := string(AppendDate(nil, 19723)); got != "2024-01-01" {
		t.Errorf("AppendDate(19723) = %s", got)
	}
	if got := string(AppendDate(nil, -719529)); got != "-0001-12-31" {
		t.Errorf("AppendDate(-719529) = %s", got)
	}
	// against time, and back through the parser
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		ms := r.Int64N(2*253402300799999) - 253402300799999/2*3 // years ~ -2700..9999
		want := time.UnixMilli(ms).UTC().Format(timestampLayout)
		got := FormatTimestamp(ms)
		if got != want {
			t.Fatalf("FormatTimestamp(%d) = %s, want %s", ms, got, want)
		}
		days := FloorDiv(ms, MillisPerDay)
		if d := string(AppendDate(nil, days)); d != want[:len(want)-len("T00:00:00.000Z")] {
			t.Fatalf("AppendDate(%d) = %s, want the date of %s", days, d, want)
		}
		if ms >= -62135596800000 { // years 0001..9999 read back
			if back, st := ParseTimestampBytes([]byte(got)); st != ParseOK || back != ms {
				t.Fatalf("ParseTimestampBytes(%s) = %d, %d; want %d", got, back, st, ms)
			}
		}
	}
}

func TestCivil(t *testing.T) {
	for d := int64(-1_000_000); d <= 1_000_000; d += 7 {
		y, m, dd := civilFromDays(d)
		if m < 1 || m > 12 || dd < 1 || dd > daysIn(y, m) || daysFromCivil(y, m, dd) != d {
			t.Fatalf("day %d: %d-%d-%d", d, y, m, dd)
		}
	}
	for _, c := range [][3]int64{{-7, 2, -4}, {7, 2, 3}, {-8, 2, -4}, {0, 5, 0}, {7, -2, -4}, {-1, 1000, -1}} {
		if got := FloorDiv(c[0], c[1]); got != c[2] {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

func TestAppendersDoNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 64)
	n := decimal128.New(1, 12345)
	allocs := testing.AllocsPerRun(100, func() {
		b := AppendDecimal(dst[:0], n, 4)
		b = AppendTimestamp(b, 1704067205123)
		_ = AppendDate(b, 19723)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}
