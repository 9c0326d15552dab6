package expr

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// Reference implementations of the scalar functions of funcs.go and of the
// temporal and BOOLEAN casts, one row at a time, written from the doc
// comments (PostgreSQL semantics) with the strings, unicode, math, big and
// time packages only: no kernel code is shared.

// unitHint wraps TO_TIMESTAMP over a non-integer number: the compiled node
// does not record its unit ('s', 'ms' or 'us'), which the reference needs.
// It evaluates exactly as the wrapped expression and survives Fold.
type unitHint struct {
	Expr
	unit string
}

var _ node = (*unitHint)(nil)

func (h *unitHint) children() []Expr {
	if n, ok := h.Expr.(node); ok {
		return n.children()
	}
	return nil
}

func (h *unitHint) withChildren(ch []Expr) Expr {
	return &unitHint{Expr: h.Expr.(node).withChildren(ch), unit: h.unit}
}

// refAlternatives is a reference result that accepts any of its values
// (for documented behaviour with more than one reasonable reading).
type refAlternatives []any

const msPerDay = 86_400_000

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// civil is a UTC timestamp broken into calendar fields.
type civil struct {
	year, month, day, hour, minute, second, milli int64
	days                                          int64 // days since the epoch
}

func civilOf(ms int64) civil {
	days := floorDiv(ms, msPerDay)
	rem := ms - days*msPerDay
	t := time.Date(1970, 1, 1+int(days), 0, 0, 0, 0, time.UTC)
	return civil{
		year: int64(t.Year()), month: int64(t.Month()), day: int64(t.Day()),
		hour: rem / 3_600_000, minute: rem / 60_000 % 60, second: rem / 1000 % 60, milli: rem % 1000,
		days: days,
	}
}

// daysOf returns the days since the epoch of a calendar date.
func daysOf(y, m, d int64) int64 {
	return floorDiv(time.Date(int(y), time.Month(m), int(d), 0, 0, 0, 0, time.UTC).Unix(), 86400)
}

// isoDow is 1 (Monday) .. 7 (Sunday); 1970-01-01 was a Thursday.
func isoDow(days int64) int64 {
	dow := (days%7 + 7 + 4) % 7 // 0 = Sunday
	if dow == 0 {
		return 7
	}
	return dow
}

func refExtract(field string, ms int64) any {
	c := civilOf(ms)
	// ISO 8601: a week belongs to the year of its Thursday.
	thursday := c.days + 4 - isoDow(c.days)
	isoYear := civilOf(thursday * msPerDay).year
	switch field {
	case "year", "years":
		return c.year
	case "month", "months":
		return c.month
	case "day", "days":
		return c.day
	case "hour", "hours":
		return c.hour
	case "minute", "minutes":
		return c.minute
	case "second", "seconds":
		return c.second
	case "millisecond", "milliseconds":
		return c.second*1000 + c.milli
	case "dow":
		return isoDow(c.days) % 7
	case "isodow":
		return isoDow(c.days)
	case "doy":
		return c.days - daysOf(c.year, 1, 1) + 1
	case "week":
		return (thursday-daysOf(isoYear, 1, 1))/7 + 1
	case "isoyear":
		return isoYear
	case "quarter":
		return (c.month-1)/3 + 1
	case "epoch":
		return float64(ms) / 1000
	}
	panic("refExtract: field " + field)
}

func refDateTrunc(unit string, ms int64) int64 {
	c := civilOf(ms)
	switch strings.TrimSuffix(unit, "s") {
	case "millisecond":
		return ms
	case "second":
		return floorDiv(ms, 1000) * 1000
	case "minute":
		return floorDiv(ms, 60_000) * 60_000
	case "hour":
		return floorDiv(ms, 3_600_000) * 3_600_000
	case "day":
		return c.days * msPerDay
	case "week":
		return (c.days - isoDow(c.days) + 1) * msPerDay
	case "month":
		return daysOf(c.year, c.month, 1) * msPerDay
	case "quarter":
		return daysOf(c.year, (c.month-1)/3*3+1, 1) * msPerDay
	case "year":
		return daysOf(c.year, 1, 1) * msPerDay
	}
	panic("refDateTrunc: unit " + unit)
}

func refFormatTimestamp(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func refFormatDate(days int64) string {
	return time.Unix(days*86400, 0).UTC().Format("2006-01-02")
}

// refTimestampFast is the grammar kernels.ParseTimestampBytes documents for
// its fast path.
var refTimestampFast = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$`)

// refTimestampLayouts are the documented fallback layouts.
var refTimestampLayouts = []string{
	"2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05Z07:00", "2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z0700", "2006-01-02T15:04:05Z07", "2006-01-02 15:04:05Z07",
	"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04Z07:00", "2006-01-02 15:04Z07:00",
	"2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700 MST", "2006-01-02",
	time.RFC1123Z, time.RFC1123, time.RFC850, time.ANSIC, time.UnixDate,
}

func daysInMonth(y, m int64) int64 {
	return daysOf(y, m+1, 1) - daysOf(y, m, 1)
}

// refParseTimestamp parses TIMESTAMP text (surrounding white space
// trimmed) into milliseconds since the epoch, UTC.
func refParseTimestamp(s string) (int64, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	if m := refTimestampFast.FindStringSubmatch(s); m != nil {
		num := func(i int) int64 {
			v, _ := strconv.ParseInt(m[i], 10, 64) // "" is 0
			return v
		}
		y, mo, d, h, mi, sec, oh, om := num(1), num(2), num(3), num(4), num(5), num(6), num(10), num(11)
		if mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth(y, mo) && h <= 23 && mi <= 59 && sec <= 59 && oh <= 23 && om <= 59 {
			frac := (m[7] + "000")[:3]
			f, _ := strconv.ParseInt(frac, 10, 64)
			ms := daysOf(y, mo, d)*msPerDay + h*3_600_000 + mi*60_000 + sec*1000 + f
			off := oh*3_600_000 + om*60_000
			if m[9] == "-" {
				off = -off
			}
			return ms - off, nil
		}
	}
	if len(s) >= 10 {
		for _, layout := range refTimestampLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UnixMilli(), nil
			}
		}
	}
	return 0, errRef
}

// refParseInt parses integer text: optional sign and decimal digits.
func refParseInt(s string, lo, hi int64) (int64, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, errRef
	}
	b, _ := new(big.Int).SetString(s, 10)
	if b == nil || !b.IsInt64() || b.Int64() < lo || b.Int64() > hi {
		return 0, errRef
	}
	return b.Int64(), nil
}

var refDecimalText = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE]([+-]?\d+))?$`)

// refParseDecimalText parses decimal text exactly (exponent within
// ±100000).
func refParseDecimalText(s string) (*big.Rat, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	m := refDecimalText.FindStringSubmatch(s)
	if m == nil {
		return nil, errRef
	}
	if m[3] != "" {
		e, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil || e < -100000 || e > 100000 {
			return nil, errRef
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, errRef
	}
	return r, nil
}

func refParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimFunc(s, unicode.IsSpace)) {
	case "true", "t", "yes", "y", "on", "1":
		return true, nil
	case "false", "f", "no", "n", "off", "0":
		return false, nil
	}
	return false, errRef
}

// refRoundHalfAway rounds r to an integer, half away from zero.
func refRoundHalfAway(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Abs(m).Mul(m, big.NewInt(2)).Cmp(r.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(r.Num().Sign())))
	}
	return q
}

func pow10Rat(d int64) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs64(d)), nil)
	if d < 0 {
		return new(big.Rat).SetFrac(big.NewInt(1), p)
	}
	return new(big.Rat).SetInt(p)
}

// refRoundRat rounds r half away from zero to d decimal digits (d < 0
// rounds to tens, hundreds, ...).
func refRoundRat(r *big.Rat, d int64) *big.Rat {
	p := pow10Rat(d)
	q := refRoundHalfAway(new(big.Rat).Mul(r, p))
	return new(big.Rat).Quo(new(big.Rat).SetInt(q), p)
}

// refRoundDouble is ROUND(x, d) on a DOUBLE. The doc says "half away from
// zero" without saying of which value: the exact binary value of x, or the
// decimal number x prints as (2.675 is 2.67499999... in binary). Both are
// accepted.
func refRoundDouble(x float64, d int64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	d = max(min(d, 400), -400) // beyond that every double is unchanged or 0
	exact, _ := refRoundRat(new(big.Rat).SetFloat64(x), d).Float64()
	text, _ := new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
	short, _ := refRoundRat(text, d).Float64()
	return refAlternatives{math.Copysign(exact, x), math.Copysign(short, x)}
}

// refRoundHalf rounds a double to an integer value, half away from zero.
func refRoundHalf(x float64) float64 {
	t := math.Trunc(x)
	if math.Abs(x-t) >= 0.5 {
		t += math.Copysign(1, x)
	}
	return t
}

// refSubstring: characters start .. start+length-1 (1-based), clipped to
// the string, PostgreSQL style.
func refSubstring(s string, start int64, length *int64) string {
	r := []rune(s)
	lo := new(big.Int).SetInt64(start)
	hi := new(big.Int).SetInt64(int64(len(r)) + 1)
	if length != nil {
		end := new(big.Int).Add(lo, big.NewInt(*length))
		if end.Cmp(hi) < 0 {
			hi = end
		}
	}
	if lo.Cmp(big.NewInt(1)) < 0 {
		lo = big.NewInt(1)
	}
	if hi.Cmp(lo) <= 0 {
		return ""
	}
	return string(r[lo.Int64()-1 : hi.Int64()-1])
}

func refTrim(s, chars string, left, right bool) string {
	set := map[rune]bool{}
	for _, c := range chars {
		set[c] = true
	}
	r := []rune(s)
	i, j := 0, len(r)
	for left && i < j && set[r[i]] {
		i++
	}
	for right && j > i && set[r[j-1]] {
		j--
	}
	return string(r[i:j])
}

func refReplace(s, from, to string) string {
	if from == "" {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], from) {
			sb.WriteString(to)
			i += len(from)
			continue
		}
		sb.WriteByte(s[i])
		i++
	}
	return sb.String()
}

func refPosition(sub, s string) int32 {
	r, p := []rune(s), []rune(sub)
	for i := 0; i+len(p) <= len(r); i++ {
		if string(r[i:i+len(p)]) == sub {
			return int32(i + 1)
		}
	}
	return 0
}

func refSplitPart(s, delim string, n int64) (string, error) {
	if n == 0 {
		return "", errRef
	}
	var fields []string
	switch {
	case s == "":
	case delim == "":
		fields = []string{s}
	default:
		for {
			k := strings.Index(s, delim)
			if k < 0 {
				fields = append(fields, s)
				break
			}
			fields = append(fields, s[:k])
			s = s[k+len(delim):]
		}
	}
	if n < 0 {
		n += int64(len(fields)) + 1
	}
	if n < 1 || n > int64(len(fields)) {
		return "", nil
	}
	return fields[n-1], nil
}

func refRegexpExtract(s, pattern string, group int64, explicit bool) (any, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, errRef
	}
	// An explicit negative group is not documented; the implementation
	// treats it as the default group, and so does the reference.
	if !explicit || group < 0 {
		group = 0
		if re.NumSubexp() > 0 {
			group = 1
		}
	}
	if group > int64(re.NumSubexp()) {
		return nil, errRef
	}
	m := re.FindStringSubmatch(s)
	idx := re.FindStringSubmatchIndex(s)
	if m == nil || idx[2*group] < 0 {
		return nil, nil
	}
	return m[group], nil
}

func signInt(v int64) int64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// refMath evaluates SQRT, LN, LOG10, EXP and POWER: NULL when the result is
// not a real number though the arguments are numbers.
func refMath(name string, x, y float64) any {
	nan := math.IsNaN(x) || math.IsNaN(y)
	switch name {
	case "SQRT":
		if x < 0 {
			return nil
		}
		return math.Sqrt(x)
	case "LN", "LOG10":
		if x <= 0 {
			return nil
		}
		if name == "LN" {
			return math.Log(x)
		}
		return math.Log10(x)
	case "EXP":
		return math.Exp(x)
	}
	if !nan && x < 0 && !math.IsInf(x, 0) && !math.IsInf(y, 0) && y != math.Trunc(y) {
		return nil // a negative number to a fractional power
	}
	return math.Pow(x, y)
}

// refFunc evaluates a function call whose arguments are all non-NULL.
// unit is TO_TIMESTAMP's unit for a non-integer number.
func refFunc(x *opExpr, args []any, unit string) (any, error) {
	at := func(i int) arrow.DataType { return x.args[i].Type() }
	str := func(i int) string { return args[i].(string) }
	i64 := func(i int) int64 {
		switch v := args[i].(type) {
		case int32:
			return int64(v)
		case int64:
			return v
		}
		panic(fmt.Sprintf("%s: argument %d is %T", x.name, i, args[i]))
	}
	switch x.name {
	case "SUBSTRING", "SUBSTR":
		if len(args) == 3 {
			l := i64(2)
			if l < 0 {
				return nil, errRef
			}
			return refSubstring(str(0), i64(1), &l), nil
		}
		return refSubstring(str(0), i64(1), nil), nil
	case "TRIM", "BTRIM", "LTRIM", "RTRIM":
		chars := " "
		if len(args) == 2 {
			chars = str(1)
		}
		return refTrim(str(0), chars, x.name != "RTRIM", x.name != "LTRIM"), nil
	case "REPLACE":
		return refReplace(str(0), str(1), str(2)), nil
	case "POSITION":
		return refPosition(str(0), str(1)), nil
	case "SPLIT_PART":
		v, err := refSplitPart(str(0), str(1), i64(2))
		return v, err
	case "REGEXP_MATCH":
		re, err := regexp.Compile(str(1))
		if err != nil {
			return nil, errRef
		}
		return re.MatchString(str(0)), nil
	case "REGEXP_COUNT":
		re, err := regexp.Compile(str(1))
		if err != nil {
			return nil, errRef
		}
		return int64(len(re.FindAllStringIndex(str(0), -1))), nil
	case "REGEXP_EXTRACT":
		if len(args) == 3 {
			return refRegexpExtract(str(0), str(1), i64(2), true)
		}
		return refRegexpExtract(str(0), str(1), 0, false)
	case "ABS":
		if f := args[0].(float64); f < 0 {
			return -f, nil
		} else {
			return f, nil
		}
	case "SIGN":
		switch v := args[0].(type) {
		case int32:
			return int32(signInt(int64(v))), nil
		case int64:
			return signInt(v), nil
		case float64:
			switch {
			case v > 0:
				return 1.0, nil
			case v < 0:
				return -1.0, nil
			}
			return v * 0, nil // 0 for ±0, NaN for NaN
		case decimal128.Num:
			return decimal128.FromI64(int64(ratOf(v, at(0)).Sign())), nil
		}
	case "ROUND":
		d := i64(1)
		switch v := args[0].(type) {
		case float64:
			return refRoundDouble(v, d), nil
		case decimal128.Num:
			r := refRoundRat(ratOf(v, at(0)), d)
			return ratToDecimal(r, x.typ.(*arrow.Decimal128Type))
		}
		r := refRoundRat(ratOf(args[0], at(0)), min(max(d, -40), 0))
		if x.typ.ID() == arrow.INT32 {
			if !r.Num().IsInt64() || r.Num().Int64() != int64(int32(r.Num().Int64())) {
				return nil, errRef
			}
			return int32(r.Num().Int64()), nil
		}
		if !r.Num().IsInt64() {
			return nil, errRef
		}
		return r.Num().Int64(), nil
	case "FLOOR", "CEIL", "CEILING":
		ceil := x.name != "FLOOR"
		if f, ok := args[0].(float64); ok {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return f, nil
			}
			t := math.Trunc(f)
			if t != f && (f > 0) == ceil {
				t += math.Copysign(1, f)
			}
			return math.Copysign(t, f), nil
		}
		r := ratOf(args[0], at(0))
		q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int)) // Euclidean: floor for a positive divisor
		if ceil && m.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		return ratToDecimal(new(big.Rat).SetInt(q), x.typ.(*arrow.Decimal128Type))
	case "SQRT", "LN", "LOG10", "EXP", "POWER", "POW":
		y := 0.0
		if len(args) == 2 {
			y = args[1].(float64)
		}
		return refMath(x.name, args[0].(float64), y), nil
	case "EXTRACT", "DATE_PART":
		return refExtract(strings.ToLower(str(0)), i64(1)), nil
	case "DATE_TRUNC":
		return refDateTrunc(strings.ToLower(str(0)), i64(1)), nil
	case "TO_TIMESTAMP", "TO_TIMESTAMP_MS":
		switch v := args[0].(type) {
		case string:
			return refParseTimestamp(v)
		case int64: // an integer already multiplied to milliseconds
			return v, nil
		case float64:
			if x.name == "TO_TIMESTAMP_MS" {
				unit = "ms"
			}
			switch unit {
			case "s":
				v *= 1000
			case "us":
				v /= 1000
			}
			ms := refRoundHalf(v)
			if math.IsNaN(ms) || ms >= math.Ldexp(1, 63) || ms < -math.Ldexp(1, 63) {
				return nil, errRef
			}
			return int64(ms), nil
		}
	}
	return nil, fmt.Errorf("reference: unsupported operator %s", x.name)
}

// refGreatestLeast skips NULLs; NaN is above every number.
func refGreatestLeast(x *opExpr, args []any) any {
	var best any
	for i, a := range args {
		if a == nil {
			continue
		}
		if best == nil {
			best = a
			continue
		}
		c := refCompare(a, best, x.args[i].Type(), x.typ)
		if (x.name == "GREATEST" && c > 0) || (x.name == "LEAST" && c < 0) {
			best = a
		}
	}
	return best
}

// refScaleInterval is INTERVAL * or / a DOUBLE, rounded to the millisecond
// half away from zero; dividing by zero is NULL, a result out of range an
// error.
func refScaleInterval(op string, ms int64, f float64) (any, error) {
	v := float64(ms) * f
	if op == "/" {
		if f == 0 {
			return nil, nil
		}
		v = float64(ms) / f
	}
	v = refRoundHalf(v)
	if math.IsNaN(v) || v >= math.Ldexp(1, 63) || v < -math.Ldexp(1, 63) {
		return nil, errRef
	}
	return int64(v), nil
}

// refCastTemporal handles the casts to and from TIMESTAMP, DATE and
// BOOLEAN; ok is false for other pairs.
func refCastTemporal(v any, from, to arrow.DataType) (out any, ok bool, err error) {
	f, t := from.ID(), to.ID()
	switch {
	case f == arrow.TIMESTAMP && t == arrow.STRING:
		return refFormatTimestamp(v.(int64)), true, nil
	case f == arrow.DATE32 && t == arrow.STRING:
		return refFormatDate(int64(v.(int32))), true, nil
	case f == arrow.STRING && t == arrow.TIMESTAMP:
		ms, err := refParseTimestamp(v.(string))
		return ms, true, err
	case f == arrow.STRING && t == arrow.DATE32:
		s := strings.TrimFunc(v.(string), unicode.IsSpace)
		ms, err := refParseTimestamp(s)
		if err != nil {
			return nil, true, err
		}
		d := floorDiv(ms, msPerDay)
		if d != int64(int32(d)) {
			return nil, true, errRef
		}
		return int32(d), true, nil
	case f == arrow.TIMESTAMP && t == arrow.DATE32:
		d := floorDiv(v.(int64), msPerDay)
		if d != int64(int32(d)) {
			return nil, true, errRef // beyond the DATE range
		}
		return int32(d), true, nil
	case f == arrow.DATE32 && t == arrow.TIMESTAMP:
		return int64(v.(int32)) * msPerDay, true, nil
	case f == arrow.STRING && t == arrow.BOOL:
		b, err := refParseBool(v.(string))
		return b, true, err
	case f == arrow.BOOL && t == arrow.STRING:
		return strconv.FormatBool(v.(bool)), true, nil
	case f == arrow.BOOL && t == arrow.INT32:
		if v.(bool) {
			return int32(1), true, nil
		}
		return int32(0), true, nil
	case f == arrow.BOOL && t == arrow.INT64:
		if v.(bool) {
			return int64(1), true, nil
		}
		return int64(0), true, nil
	case t == arrow.BOOL && f == arrow.INT32:
		return v.(int32) != 0, true, nil
	case t == arrow.BOOL && f == arrow.INT64:
		return v.(int64) != 0, true, nil
	case f == arrow.STRING && (t == arrow.INT32 || t == arrow.INT64):
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		if t == arrow.INT64 {
			lo, hi = math.MinInt64, math.MaxInt64
		}
		n, err := refParseInt(v.(string), lo, hi)
		if err != nil {
			return nil, true, err
		}
		if t == arrow.INT32 {
			return int32(n), true, nil
		}
		return n, true, nil
	case f == arrow.STRING && t == arrow.DECIMAL128:
		r, err := refParseDecimalText(v.(string))
		if err != nil {
			return nil, true, err
		}
		d, err := ratToDecimal(r, to.(*arrow.Decimal128Type))
		return d, true, err
	case f == arrow.STRING && t == arrow.FLOAT64:
		d, err := strconv.ParseFloat(strings.TrimFunc(v.(string), unicode.IsSpace), 64)
		if err != nil {
			return nil, true, errRef
		}
		return d, true, nil
	}
	return nil, false, nil
}
