package kernels

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// Text parsers shared by CAST(VARCHAR AS ...), SQL literals and the
// sources' decoders.
//
// The ...Bytes parsers read the whole of b (no surrounding spaces), never
// retain or modify it, allocate nothing on their fast paths and report
// failure as a ParseStatus, so that callers build a message only for bad
// values. The string parsers (ParseDecimal, ParseTimestamp, ParseDate,
// ParseBool, ParseDouble) are what CAST uses: they trim surrounding spaces,
// delegate to the ...Bytes parsers and return an error naming the value.
// All are safe for concurrent use.

// ParseStatus says why text is not a value of a type.
type ParseStatus uint8

const (
	ParseOK        ParseStatus = iota
	ParseSyntax                // not a value of the type
	ParseRange                 // a number outside the type's range
	ParsePrecision             // a decimal needing more integer digits than its precision allows
)

// bytesString views b as a string without copying. The result must not
// outlive b or be retained by the callee.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// stringBytes views s as a []byte without copying; it must not be
// modified.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// ParseIntBytes parses an optionally signed decimal integer that must lie
// in [lo, hi] (ParseRange otherwise).
func ParseIntBytes(b []byte, lo, hi int64) (int64, ParseStatus) {
	if len(b) == 0 {
		return 0, ParseSyntax
	}
	neg := false
	switch b[0] {
	case '-':
		neg = true
		b = b[1:]
	case '+':
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, ParseSyntax
	}
	var u uint64
	overflow := false
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 {
			return 0, ParseSyntax
		}
		if u > (math.MaxUint64-9)/10 {
			overflow = true
			continue
		}
		u = u*10 + d
	}
	if overflow {
		return 0, ParseRange
	}
	if neg {
		if u > uint64(-lo) { // uint64(-MinInt64) wraps to 1<<63, as wanted
			return 0, ParseRange
		}
		return -int64(u), ParseOK
	}
	if u > uint64(hi) {
		return 0, ParseRange
	}
	return int64(u), ParseOK
}

// ParseFloatBytes parses a DOUBLE as strconv.ParseFloat does (NaN, Inf,
// Infinity accepted case-insensitively); a finite number too large for a
// DOUBLE is ParseRange.
func ParseFloatBytes(b []byte) (float64, ParseStatus) {
	f, err := strconv.ParseFloat(bytesString(b), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, ParseRange
		}
		return 0, ParseSyntax
	}
	return f, ParseOK
}

// ParseBoolBytes parses a BOOLEAN as PostgreSQL does: true, t, yes, y, on,
// 1 and false, f, no, n, off, 0, case-insensitively.
func ParseBoolBytes(b []byte) (bool, ParseStatus) {
	switch len(b) {
	case 1:
		switch b[0] {
		case 't', 'T', 'y', 'Y', '1':
			return true, ParseOK
		case 'f', 'F', 'n', 'N', '0':
			return false, ParseOK
		}
	case 2:
		if foldEqual(b, "on") {
			return true, ParseOK
		}
		if foldEqual(b, "no") {
			return false, ParseOK
		}
	case 3:
		if foldEqual(b, "yes") {
			return true, ParseOK
		}
		if foldEqual(b, "off") {
			return false, ParseOK
		}
	case 4:
		if foldEqual(b, "true") {
			return true, ParseOK
		}
	case 5:
		if foldEqual(b, "false") {
			return false, ParseOK
		}
	}
	return false, ParseSyntax
}

// foldEqual reports whether b equals the lower-case ASCII letters lower,
// ignoring case.
func foldEqual(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// ParseDecimalBytes parses a decimal number (optional sign, digits,
// optional fraction, optional exponent: -12.345, +1, .5, 1., 1.5E-2)
// exactly, without going through float64, into an unscaled value of the
// given scale. Digits beyond the scale are rounded half away from zero, so
// a value too small for the scale is zero (1e-200 is 0.00); a value whose
// magnitude needs more than precision (1..38) digits is ParsePrecision.
func ParseDecimalBytes(b []byte, precision, scale int32) (decimal128.Num, ParseStatus) {
	i, n := 0, len(b)
	neg := false
	if i < n && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	intStart := i
	for i < n && b[i]-'0' <= 9 {
		i++
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < n && b[i] == '.' {
		i++
		fracStart = i
		for i < n && b[i]-'0' <= 9 {
			i++
		}
		fracEnd = i
	}
	if intEnd == intStart && fracEnd == fracStart {
		return decimal128.Num{}, ParseSyntax
	}
	exp := 0
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		e, st := ParseIntBytes(b[i+1:], -100000, 100000)
		if st != ParseOK {
			return decimal128.Num{}, ParseSyntax
		}
		exp = int(e)
		i = n
	}
	if i != n {
		return decimal128.Num{}, ParseSyntax
	}
	// value = digits * 10^(exp - nFrac); we want digits * 10^k at scale.
	nInt, nFrac := intEnd-intStart, fracEnd-fracStart
	k := exp - nFrac + int(scale)
	total := nInt + nFrac
	keep := total // digits accumulated
	if k < 0 {
		keep = total + k // drop the last -k digits
	}
	digit := func(j int) byte {
		if j < nInt {
			return b[intStart+j] - '0'
		}
		return b[fracStart+j-nInt] - '0'
	}
	var v u128
	var overflow bool
	for j := 0; j < keep; j++ {
		if v, overflow = v.mulAdd(10, uint64(digit(j))); overflow || v.cmp(pow10[38]) >= 0 {
			return decimal128.Num{}, ParsePrecision
		}
	}
	if k < 0 && keep >= 0 && keep < total && digit(keep) >= 5 {
		if v, overflow = v.mulAdd(1, 1); overflow {
			return decimal128.Num{}, ParsePrecision
		}
	}
	if k > 0 && !v.isZero() {
		if k > 38 {
			return decimal128.Num{}, ParsePrecision
		}
		if v, overflow = v.scaleUp(int32(k)); overflow {
			return decimal128.Num{}, ParsePrecision
		}
	}
	if precision < 1 || precision > 38 || v.cmp(maxForPrecision[precision]) > 0 {
		return decimal128.Num{}, ParsePrecision
	}
	return v.num(neg), ParseOK
}

// ParseDecimal is ParseDecimalBytes for CAST and SQL literals: surrounding
// spaces are trimmed and failures are errors naming s.
func ParseDecimal(s string, precision, scale int32) (decimal128.Num, error) {
	t := strings.TrimSpace(s)
	n, st := ParseDecimalBytes(stringBytes(t), precision, scale)
	switch st {
	case ParseOK:
		return n, nil
	case ParsePrecision:
		return decimal128.Num{}, fmt.Errorf("value %s overflows DECIMAL(%d,%d)", t, precision, scale)
	}
	return decimal128.Num{}, fmt.Errorf("invalid DECIMAL value %q", s)
}

func digits2(b []byte, i int) (int64, bool) {
	d1, d2 := b[i]-'0', b[i+1]-'0'
	return int64(d1)*10 + int64(d2), d1 <= 9 && d2 <= 9
}

// parseDateDays parses YYYY-MM-DD at the start of b (at least 10 bytes)
// into days since the epoch.
func parseDateDays(b []byte) (int64, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y1, ok1 := digits2(b, 0)
	y2, ok2 := digits2(b, 2)
	m, ok3 := digits2(b, 5)
	d, ok4 := digits2(b, 8)
	if !(ok1 && ok2 && ok3 && ok4) {
		return 0, false
	}
	y := y1*100 + y2
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// ParseDateBytes parses a DATE into days since the epoch: YYYY-MM-DD, or
// any text ParseTimestampBytes accepts, keeping its UTC day.
func ParseDateBytes(b []byte) (int32, ParseStatus) {
	if len(b) == 10 {
		if d, ok := parseDateDays(b); ok {
			return int32(d), ParseOK
		}
	}
	ms, st := ParseTimestampBytes(b)
	if st != ParseOK {
		return 0, ParseSyntax
	}
	return int32(FloorDiv(ms, MillisPerDay)), ParseOK
}

// ParseDate is ParseDateBytes for CAST: surrounding spaces are trimmed and
// a failure is an error naming s.
func ParseDate(s string) (int32, error) {
	d, st := ParseDateBytes(stringBytes(strings.TrimSpace(s)))
	if st != ParseOK {
		return 0, fmt.Errorf("invalid DATE %q", s)
	}
	return d, nil
}

// timestampLayouts are tried in order by ParseTimestampBytes when its fast
// path does not recognise the text. Go accepts a fractional second after
// the seconds field even when the layout has none.
var timestampLayouts = [...]string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02 15:04:05Z07",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02 15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700 MST",
	"2006-01-02",
	time.RFC1123Z,
	time.RFC1123,
	time.RFC850,
	time.ANSIC,
	time.UnixDate,
}

// ParseTimestampBytes parses a TIMESTAMP into milliseconds since the epoch,
// normalised to UTC. The fast path, which allocates nothing, takes
// YYYY-MM-DD (midnight UTC) and YYYY-MM-DD[Tt ]HH:MM[:SS[(.|,)f+]] followed
// by nothing (UTC), Z or z, or an offset ±HH, ±HHMM or ±HH:MM; digits
// beyond the millisecond are truncated towards negative infinity. Other
// text is tried with time.Parse against timestampLayouts (RFC 3339 variants
// with a one-digit hour, a zone name, RFC 1123, RFC 850, ANSI C and Unix
// date formats).
func ParseTimestampBytes(b []byte) (int64, ParseStatus) {
	if ms, ok := parseTimestampFast(b); ok {
		return ms, ParseOK
	}
	if len(b) < 10 {
		return 0, ParseSyntax
	}
	s := string(b)
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), ParseOK
		}
	}
	return 0, ParseSyntax
}

// ParseTimestamp is ParseTimestampBytes for CAST: surrounding spaces are
// trimmed and a failure is an error naming s.
func ParseTimestamp(s string) (int64, error) {
	ms, st := ParseTimestampBytes(stringBytes(strings.TrimSpace(s)))
	if st != ParseOK {
		return 0, fmt.Errorf("invalid TIMESTAMP %q", s)
	}
	return ms, nil
}

func parseTimestampFast(b []byte) (int64, bool) {
	days, ok := parseDateDays(b)
	if !ok {
		return 0, false
	}
	ms := days * MillisPerDay
	i, n := 10, len(b)
	if i == n {
		return ms, true
	}
	if c := b[i]; c != 'T' && c != 't' && c != ' ' {
		return 0, false
	}
	i++
	if n < i+5 || b[i+2] != ':' {
		return 0, false
	}
	h, ok1 := digits2(b, i)
	m, ok2 := digits2(b, i+3)
	if !ok1 || !ok2 || h > 23 || m > 59 {
		return 0, false
	}
	i += 5
	var s, frac int64
	if i < n && b[i] == ':' {
		if n < i+3 {
			return 0, false
		}
		var ok bool
		if s, ok = digits2(b, i+1); !ok || s > 59 {
			return 0, false
		}
		i += 3
		if i < n && (b[i] == '.' || b[i] == ',') { // a fraction only after seconds
			i++
			start := i
			for i < n && b[i]-'0' <= 9 {
				if i-start < 3 {
					frac = frac*10 + int64(b[i]-'0')
				}
				i++
			}
			if i == start {
				return 0, false
			}
			for d := i - start; d < 3; d++ {
				frac *= 10
			}
		}
	}
	ms += h*3_600_000 + m*60_000 + s*1000 + frac
	if i == n {
		return ms, true
	}
	switch b[i] {
	case 'Z', 'z':
		return ms, i+1 == n
	case '+', '-':
		sign := int64(1)
		if b[i] == '-' {
			sign = -1
		}
		i++
		if n < i+2 {
			return 0, false
		}
		oh, ok := digits2(b, i)
		if !ok || oh > 23 {
			return 0, false
		}
		i += 2
		var om int64
		if i < n && b[i] == ':' {
			i++
		}
		if i < n {
			if n != i+2 {
				return 0, false
			}
			if om, ok = digits2(b, i); !ok || om > 59 {
				return 0, false
			}
		}
		// local = UTC + offset, so UTC = local - offset.
		return ms - sign*(oh*3_600_000+om*60_000), true
	}
	return 0, false
}

// ParseBool is ParseBoolBytes for CAST: surrounding spaces are trimmed and
// a failure is an error naming s.
func ParseBool(s string) (bool, error) {
	v, st := ParseBoolBytes(stringBytes(strings.TrimSpace(s)))
	if st != ParseOK {
		return false, fmt.Errorf("invalid BOOLEAN %q", s)
	}
	return v, nil
}

// ParseDouble is ParseFloatBytes for CAST: surrounding spaces are trimmed
// and a failure is an error naming s.
func ParseDouble(s string) (float64, error) {
	f, st := ParseFloatBytes(stringBytes(strings.TrimSpace(s)))
	if st != ParseOK {
		return 0, fmt.Errorf("invalid DOUBLE %q", s)
	}
	return f, nil
}
