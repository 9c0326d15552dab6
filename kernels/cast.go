package kernels

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// MillisPerDay is the number of milliseconds in a day (DATE <-> TIMESTAMP).
const MillisPerDay = 86_400_000

// CanCast reports whether Cast supports converting from to to.
func CanCast(from, to arrow.DataType) bool {
	if arrow.TypeEqual(from, to) || from.ID() == arrow.NULL {
		return true
	}
	f, t := from.ID(), to.ID()
	num := func(id arrow.Type) bool {
		return id == arrow.INT32 || id == arrow.INT64 || id == arrow.FLOAT64 || id == arrow.DECIMAL128
	}
	switch {
	case f == arrow.STRING || t == arrow.STRING:
		return true // every type renders as and parses from text
	case num(f) && num(t):
		return true
	case f == arrow.BOOL && (t == arrow.INT32 || t == arrow.INT64),
		t == arrow.BOOL && (f == arrow.INT32 || f == arrow.INT64):
		return true
	case f == arrow.TIMESTAMP && t == arrow.DATE32, f == arrow.DATE32 && t == arrow.TIMESTAMP:
		return true
	}
	return false
}

// Cast converts x to type to, returning a new array owned by the caller.
//
// Rules: numeric narrowing and DOUBLE/DECIMAL to integer round half away
// from zero and fail on overflow; DECIMAL rescaling rounds half away from
// zero; DOUBLE to DECIMAL goes through the shortest decimal text of the
// double (as PostgreSQL does), NaN and ±Inf fail; VARCHAR parsing trims
// spaces (see ParseTimestamp, ParseDate, ParseBool, ParseInterval);
// TIMESTAMP to DATE floors to the UTC day; text renderings are those of
// Text. A value that cannot be converted is an error naming it, e.g.
// `cannot cast "abc" to BIGINT`.
func Cast(alloc memory.Allocator, x arrow.Array, to arrow.DataType) (arrow.Array, error) {
	from := x.DataType()
	if arrow.TypeEqual(from, to) {
		x.Retain()
		return x, nil
	}
	if from.ID() == arrow.NULL || x.NullN() == x.Len() {
		return array.MakeArrayOfNull(alloc, to, x.Len()), nil
	}
	if !CanCast(from, to) {
		return nil, fmt.Errorf("cannot cast %s to %s", sqltypes.Name(from), sqltypes.Name(to))
	}
	if to.ID() == arrow.STRING {
		return castToString(alloc, x)
	}
	if from.ID() == arrow.STRING {
		return castFromString(alloc, x.(*array.String), to)
	}
	if to.ID() == arrow.BOOL {
		return castToBool(alloc, x)
	}
	if from.ID() == arrow.BOOL {
		b := x.(*array.Boolean)
		if to.ID() == arrow.INT32 {
			return castBool[int32](alloc, b, to), nil
		}
		return castBool[int64](alloc, b, to), nil
	}
	switch from.ID() {
	case arrow.INT32:
		return castFromInt[int32](alloc, x, to)
	case arrow.INT64:
		return castFromInt[int64](alloc, x, to)
	case arrow.FLOAT64:
		switch to.ID() {
		case arrow.INT32:
			return castFixed(alloc, x, to, func(v float64) (int32, bool) {
				r := math.Round(v)
				return int32(r), r >= math.MinInt32 && r <= math.MaxInt32
			})
		case arrow.INT64:
			return castFixed(alloc, x, to, func(v float64) (int64, bool) {
				r := math.Round(v)
				return int64(r), r >= math.MinInt64 && r < math.MaxInt64
			})
		case arrow.DECIMAL128:
			t := to.(*arrow.Decimal128Type)
			return castFixed(alloc, x, to, func(v float64) (decimal128.Num, bool) {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return decimal128.Num{}, false
				}
				d, err := ParseDecimal(strconv.FormatFloat(v, 'e', -1, 64), t.Precision, t.Scale)
				return d, err == nil
			})
		}
	case arrow.DECIMAL128:
		s := from.(*arrow.Decimal128Type).Scale
		switch to.ID() {
		case arrow.INT32:
			return castFixed(alloc, x, to, func(v decimal128.Num) (int32, bool) {
				r, ok := RescaleDecimal(v, s, 0, 10)
				return int32(r.LowBits()), ok && r.Cmp(decimal128.FromI64(math.MinInt32)) >= 0 && r.Cmp(decimal128.FromI64(math.MaxInt32)) <= 0
			})
		case arrow.INT64:
			return castFixed(alloc, x, to, func(v decimal128.Num) (int64, bool) {
				r, ok := RescaleDecimal(v, s, 0, 19)
				return int64(r.LowBits()), ok && int64(r.LowBits())>>63 == r.HighBits()
			})
		case arrow.FLOAT64:
			return castFixed(alloc, x, to, func(v decimal128.Num) (float64, bool) { return DecimalToFloat(v, s), true })
		case arrow.DECIMAL128:
			t := to.(*arrow.Decimal128Type)
			return castFixed(alloc, x, to, func(v decimal128.Num) (decimal128.Num, bool) {
				return RescaleDecimal(v, s, t.Scale, t.Precision)
			})
		}
	case arrow.TIMESTAMP: // to DATE
		return castFixed(alloc, x, to, func(v int64) (int32, bool) {
			d := FloorDiv(v, MillisPerDay)
			return int32(d), d >= math.MinInt32 && d <= math.MaxInt32
		})
	case arrow.DATE32: // to TIMESTAMP
		return castFixed(alloc, x, to, func(v int32) (int64, bool) { return int64(v) * MillisPerDay, true })
	}
	return nil, fmt.Errorf("cannot cast %s to %s", sqltypes.Name(from), sqltypes.Name(to))
}

// DecimalToFloat converts an unscaled decimal to the nearest DOUBLE
// (correctly rounded).
func DecimalToFloat(v decimal128.Num, scale int32) float64 {
	if lo := int64(v.LowBits()); lo>>63 == v.HighBits() && lo < 1<<53 && lo > -(1<<53) && scale <= 22 {
		return float64(lo) / math.Pow10(int(scale)) // both exact: one rounding
	}
	f, _ := strconv.ParseFloat(FormatDecimal(v, scale), 64)
	return f
}

func castFromInt[I int32 | int64](alloc memory.Allocator, x arrow.Array, to arrow.DataType) (arrow.Array, error) {
	switch to.ID() {
	case arrow.INT32:
		return castFixed(alloc, x, to, func(v I) (int32, bool) { return int32(v), int64(v) == int64(int32(v)) })
	case arrow.INT64:
		return castFixed(alloc, x, to, func(v I) (int64, bool) { return int64(v), true })
	case arrow.FLOAT64:
		return castFixed(alloc, x, to, func(v I) (float64, bool) { return float64(v), true })
	case arrow.DECIMAL128:
		t := to.(*arrow.Decimal128Type)
		return castFixed(alloc, x, to, func(v I) (decimal128.Num, bool) {
			return RescaleDecimal(decimal128.FromI64(int64(v)), 0, t.Scale, t.Precision)
		})
	}
	return nil, fmt.Errorf("cannot cast %s to %s", sqltypes.Name(x.DataType()), sqltypes.Name(to))
}

// castFixed maps each value of x through f; f reporting false on a
// non-NULL row fails the cast.
func castFixed[I, O Fixed](alloc memory.Allocator, x arrow.Array, to arrow.DataType, f func(I) (O, bool)) (arrow.Array, error) {
	n := x.Len()
	in := Values[I](x)
	validity := andValidity(alloc, n, x)
	buf, o := allocFixed[O](alloc, n)
	for i, v := range in {
		r, ok := f(v)
		if !ok && (validity == nil || bitutil.BitIsSet(validity.Bytes(), i)) {
			buf.Release()
			if validity != nil {
				validity.Release()
			}
			return nil, castError(x, i, to)
		}
		o[i] = r
	}
	return finish(to, n, validity, buf), nil
}

func castError(x arrow.Array, i int, to arrow.DataType) error {
	return fmt.Errorf("cannot cast %s to %s", Quote(x, i), sqltypes.Name(to))
}

// Quote renders row i of x for error messages: text quoted, other values as
// Text renders them.
func Quote(x arrow.Array, i int) string {
	if x.IsNull(i) {
		return "NULL"
	}
	if s, ok := x.(*array.String); ok {
		return strconv.Quote(s.Value(i))
	}
	return Text(x, i)
}

func castBool[O int32 | int64](alloc memory.Allocator, b *array.Boolean, to arrow.DataType) arrow.Array {
	n := b.Len()
	validity := andValidity(alloc, n, b)
	buf, o := allocFixed[O](alloc, n)
	for i := range o {
		o[i] = 0
		if b.Value(i) {
			o[i] = 1
		}
	}
	return finish(to, n, validity, buf)
}

func castToBool(alloc memory.Allocator, x arrow.Array) (arrow.Array, error) {
	n := x.Len()
	validity := andValidity(alloc, n, x)
	out := allocBitmap(alloc, n)
	for i := 0; i < n; i++ {
		var v bool
		switch a := x.(type) {
		case *array.Int32:
			v = a.Value(i) != 0
		case *array.Int64:
			v = a.Value(i) != 0
		}
		if v {
			bitutil.SetBit(out.Bytes(), i)
		}
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, validity, out), nil
}

// castFromString parses each non-NULL row of x as type to.
func castFromString(alloc memory.Allocator, x *array.String, to arrow.DataType) (arrow.Array, error) {
	switch to.ID() {
	case arrow.INT32:
		return parseFixed(alloc, x, to, func(s string) (int32, error) {
			v, err := parseInt(s, math.MinInt32, math.MaxInt32)
			return int32(v), err
		})
	case arrow.INT64:
		return parseFixed(alloc, x, to, func(s string) (int64, error) {
			return parseInt(s, math.MinInt64, math.MaxInt64)
		})
	case arrow.FLOAT64:
		return parseFixed(alloc, x, to, ParseDouble)
	case arrow.DECIMAL128:
		t := to.(*arrow.Decimal128Type)
		return parseFixed(alloc, x, to, func(s string) (decimal128.Num, error) {
			return ParseDecimal(s, t.Precision, t.Scale)
		})
	case arrow.TIMESTAMP:
		return parseFixed(alloc, x, to, ParseTimestamp)
	case arrow.DATE32:
		return parseFixed(alloc, x, to, ParseDate)
	case arrow.DURATION:
		return parseFixed(alloc, x, to, ParseInterval)
	case arrow.BOOL:
		n := x.Len()
		validity := andValidity(alloc, n, x)
		out := allocBitmap(alloc, n)
		for i := 0; i < n; i++ {
			if x.IsNull(i) {
				continue
			}
			v, err := ParseBool(x.Value(i))
			if err != nil {
				out.Release()
				if validity != nil {
					validity.Release()
				}
				return nil, castError(x, i, to)
			}
			if v {
				bitutil.SetBit(out.Bytes(), i)
			}
		}
		return finish(to, n, validity, out), nil
	}
	return nil, fmt.Errorf("cannot cast VARCHAR to %s", sqltypes.Name(to))
}

// parseInt parses integer text for CAST, spaces trimmed, in [lo, hi].
func parseInt(s string, lo, hi int64) (int64, error) {
	v, st := ParseIntBytes(stringBytes(strings.TrimSpace(s)), lo, hi)
	if st != ParseOK {
		return 0, fmt.Errorf("invalid integer %q", s)
	}
	return v, nil
}

func parseFixed[O Fixed](alloc memory.Allocator, x *array.String, to arrow.DataType, parse func(string) (O, error)) (arrow.Array, error) {
	n := x.Len()
	validity := andValidity(alloc, n, x)
	buf, o := allocFixed[O](alloc, n)
	for i := range o {
		var z O
		o[i] = z
		if x.IsNull(i) {
			continue
		}
		v, err := parse(x.Value(i))
		if err != nil {
			buf.Release()
			if validity != nil {
				validity.Release()
			}
			return nil, castError(x, i, to)
		}
		o[i] = v
	}
	return finish(to, n, validity, buf), nil
}

func castToString(alloc memory.Allocator, x arrow.Array) (arrow.Array, error) {
	n := x.Len()
	b := array.NewStringBuilder(alloc)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		if x.IsNull(i) {
			b.AppendNull()
			continue
		}
		b.Append(Text(x, i))
	}
	return b.NewArray(), nil
}

// Text renders row i of x (non-NULL) as CAST(x AS VARCHAR) does: BOOLEAN
// true/false; DOUBLE as the shortest text that reads back exactly, in
// exponent form below 1e-4 or from 1e15 on, NaN, Infinity, -Infinity;
// DECIMAL exactly with its scale; TIMESTAMP as RFC 3339 UTC with
// milliseconds (2024-01-01T00:00:05.000Z); DATE as 2024-01-01; INTERVAL
// as PostgreSQL does (1 day 02:03:04.500).
func Text(x arrow.Array, i int) string {
	switch a := x.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Int32:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return FormatDouble(a.Value(i))
	case *array.Decimal128:
		return FormatDecimal(a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Timestamp:
		return FormatTimestamp(int64(a.Value(i)))
	case *array.Date32:
		return string(AppendDate(nil, int64(a.Value(i))))
	case *array.Duration:
		return FormatInterval(int64(a.Value(i)))
	}
	return fmt.Sprint(x.GetOneForMarshal(i))
}

// FormatDouble renders a DOUBLE as PostgreSQL does.
func FormatDouble(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	if a := math.Abs(v); a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'e', -1, 64)
}

// FormatInterval renders milliseconds as PostgreSQL renders an interval:
// [-]N day[s] HH:MM:SS[.mmm].
func FormatInterval(ms int64) string {
	var sb strings.Builder
	u := uint64(ms) // magnitude as unsigned, so MinInt64 negates correctly
	if ms < 0 {
		sb.WriteByte('-')
		u = -u
	}
	days := u / MillisPerDay
	ms = int64(u % MillisPerDay)
	if days == 1 {
		sb.WriteString("1 day ")
	} else if days != 0 {
		fmt.Fprintf(&sb, "%d days ", days)
	}
	fmt.Fprintf(&sb, "%02d:%02d:%02d", ms/3_600_000, ms/60_000%60, ms/1000%60)
	if ms%1000 != 0 {
		fmt.Fprintf(&sb, ".%03d", ms%1000)
	}
	return sb.String()
}

var intervalUnits = map[string]int64{
	"millisecond": 1, "ms": 1, "second": 1000, "s": 1000, "sec": 1000,
	"minute": 60_000, "min": 60_000, "m": 60_000, "hour": 3_600_000, "h": 3_600_000,
	"day": MillisPerDay, "d": MillisPerDay, "week": 7 * MillisPerDay, "w": 7 * MillisPerDay,
}

// IntervalUnit returns the length in milliseconds of an interval unit name
// (millisecond, second, minute, hour, day, week; singular or plural,
// case-insensitive). Months and years have no fixed length and are not
// supported.
func IntervalUnit(unit string) (int64, bool) {
	u := strings.ToLower(unit)
	if v, ok := intervalUnits[u]; ok {
		return v, true
	}
	v, ok := intervalUnits[strings.TrimSuffix(u, "s")]
	return v, ok
}

// ParseInterval parses interval text into milliseconds: a sequence of
// "<number> <unit>" pairs ("1 day 2 hours", "1.5 seconds", "500 ms") and/or
// a clock "[-]HH:MM:SS[.fff]"; a bare number is seconds.
func ParseInterval(s string) (int64, error) {
	fields := strings.Fields(s)
	bad := fmt.Errorf("invalid INTERVAL %q", s)
	if len(fields) == 0 {
		return 0, bad
	}
	var total float64
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.Contains(f, ":") {
			neg := strings.HasPrefix(f, "-")
			parts := strings.Split(strings.TrimLeft(f, "+-"), ":")
			if len(parts) < 2 || len(parts) > 3 {
				return 0, bad
			}
			var v float64
			for j, p := range parts {
				x, err := strconv.ParseFloat(p, 64)
				if err != nil || x < 0 {
					return 0, bad
				}
				v += x * []float64{3_600_000, 60_000, 1000}[j]
			}
			if neg {
				v = -v
			}
			total += v
			continue
		}
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, bad
		}
		unit := int64(1000)
		if i+1 < len(fields) {
			u, ok := IntervalUnit(fields[i+1])
			if !ok {
				return 0, bad
			}
			unit = u
			i++
		}
		total += x * float64(unit)
	}
	return int64(math.Round(total)), nil
}
