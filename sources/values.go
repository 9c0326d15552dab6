package sources

import (
	"math"
	"math/bits"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// parseErr classifies why a textual value could not be converted. The hot
// path returns these small codes; the caller builds a message only for bad
// records.
type parseErr uint8

const (
	errNone      parseErr = iota
	errSyntax             // not a value of the column's type
	errRange              // a number outside the type's range
	errPrecision          // a decimal with more integer digits than its precision allows
	errUTF8               // a string that is not valid UTF-8
)

// bytesString views b as a string without copying. The result must not
// outlive b or be retained by the callee; the strconv functions it is passed
// to clone their input before keeping it in an error.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parseInt parses an optionally signed decimal integer that must lie in
// [lo, hi].
func parseInt(b []byte, lo, hi int64) (int64, parseErr) {
	if len(b) == 0 {
		return 0, errSyntax
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
		return 0, errSyntax
	}
	var u uint64
	overflow := false
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 {
			return 0, errSyntax
		}
		if u > (math.MaxUint64-9)/10 {
			overflow = true
			continue
		}
		u = u*10 + d
	}
	if overflow {
		return 0, errRange
	}
	if neg {
		if u > uint64(-lo) { // uint64(-MinInt64) wraps to 1<<63, as wanted
			return 0, errRange
		}
		return -int64(u), errNone
	}
	if u > uint64(hi) {
		return 0, errRange
	}
	return int64(u), errNone
}

// parseFloat parses a DOUBLE. NaN and ±Infinity are accepted as text.
func parseFloat(b []byte) (float64, parseErr) {
	f, err := strconv.ParseFloat(bytesString(b), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, errRange
		}
		return 0, errSyntax
	}
	return f, errNone
}

// parseBool accepts true/false, t/f and 1/0, case-insensitively.
func parseBool(b []byte) (bool, parseErr) {
	switch len(b) {
	case 1:
		switch b[0] {
		case 't', 'T', '1':
			return true, errNone
		case 'f', 'F', '0':
			return false, errNone
		}
	case 4:
		if b[0]|0x20 == 't' && b[1]|0x20 == 'r' && b[2]|0x20 == 'u' && b[3]|0x20 == 'e' {
			return true, errNone
		}
	case 5:
		if b[0]|0x20 == 'f' && b[1]|0x20 == 'a' && b[2]|0x20 == 'l' && b[3]|0x20 == 's' && b[4]|0x20 == 'e' {
			return false, errNone
		}
	}
	return false, errSyntax
}

// u128 is an unsigned 128-bit magnitude used to build decimals exactly
// without math/big.
type u128 struct{ hi, lo uint64 }

// pow10u128[i] is 10^i for i in 0..38.
var pow10u128 = func() (t [39]u128) {
	t[0] = u128{0, 1}
	for i := 1; i < len(t); i++ {
		t[i], _ = t[i-1].mulAdd(10, 0)
	}
	return t
}()

// mulAdd returns x*m + a and whether it overflowed 128 bits.
func (x u128) mulAdd(m, a uint64) (u128, bool) {
	h1, lo := bits.Mul64(x.lo, m)
	h2, hiLo := bits.Mul64(x.hi, m)
	hi, c := bits.Add64(hiLo, h1, 0)
	lo, c2 := bits.Add64(lo, a, 0)
	hi, c3 := bits.Add64(hi, 0, c2)
	return u128{hi, lo}, h2 != 0 || c != 0 || c3 != 0
}

func (x u128) less(y u128) bool { return x.hi < y.hi || (x.hi == y.hi && x.lo < y.lo) }

// parseDecimal parses a decimal number (optional sign, digits, optional
// fraction, optional exponent) exactly into a decimal128 with the given
// precision and scale. Digits beyond the scale are rounded half away from
// zero; a value whose magnitude needs more than precision digits is
// errPrecision.
func parseDecimal(b []byte, prec, scale int32) (decimal128.Num, parseErr) {
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
		return decimal128.Num{}, errSyntax
	}
	exp := 0
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		e, pe := parseInt(b[i+1:], -100000, 100000)
		if pe != errNone {
			return decimal128.Num{}, errSyntax
		}
		exp = int(e)
		i = n
	}
	if i != n {
		return decimal128.Num{}, errSyntax
	}
	// value = digits * 10^(exp - fracLen); we want digits * 10^k at scale.
	nInt, nFrac := intEnd-intStart, fracEnd-fracStart
	k := exp - nFrac + int(scale)
	total := nInt + nFrac
	keep := total // digits accumulated
	if k < 0 {
		keep = total + k // drop the last -k digits
	}
	var v u128
	var overflow bool
	roundUp := false
	digit := func(j int) byte {
		if j < nInt {
			return b[intStart+j] - '0'
		}
		return b[fracStart+j-nInt] - '0'
	}
	for j := 0; j < keep; j++ {
		if v, overflow = v.mulAdd(10, uint64(digit(j))); overflow || !v.less(pow10u128[38]) {
			return decimal128.Num{}, errPrecision
		}
	}
	if k < 0 && keep >= 0 && keep < total {
		roundUp = digit(keep) >= 5
	}
	if roundUp {
		if v, overflow = v.mulAdd(1, 1); overflow {
			return decimal128.Num{}, errPrecision
		}
	}
	if k > 0 && (v.hi != 0 || v.lo != 0) {
		if k > 38 {
			return decimal128.Num{}, errPrecision
		}
		for j := 0; j < k; j++ {
			if v, overflow = v.mulAdd(10, 0); overflow {
				return decimal128.Num{}, errPrecision
			}
		}
	}
	if prec < 1 || prec > 38 || !v.less(pow10u128[prec]) {
		return decimal128.Num{}, errPrecision
	}
	num := decimal128.New(int64(v.hi), v.lo)
	if neg {
		num = num.Negate()
	}
	return num, errNone
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func digits2(b []byte, i int) (int, bool) {
	d1, d2 := b[i]-'0', b[i+1]-'0'
	return int(d1)*10 + int(d2), d1 <= 9 && d2 <= 9
}

// parseDateDays parses YYYY-MM-DD at the start of b and returns the epoch
// day and the number of bytes consumed.
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

// parseDate parses a DATE: 'YYYY-MM-DD' or an integer number of days since
// the epoch.
func parseDate(b []byte) (int32, parseErr) {
	if len(b) == 10 {
		if d, ok := parseDateDays(b); ok {
			return int32(d), errNone
		}
	}
	if v, pe := parseInt(b, math.MinInt32, math.MaxInt32); pe != errSyntax {
		return int32(v), pe
	}
	return 0, errSyntax
}

// fallbackLayouts are tried, in order, by parseTimestamp when the fast path
// does not recognise the text.
var fallbackLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05 Z07:00",
	"2006-01-02 15:04:05 -0700 MST",
	time.RFC1123Z,
	time.RFC1123,
	time.RFC850,
	time.ANSIC,
	time.UnixDate,
}

// parseTimestamp parses a TIMESTAMP into epoch milliseconds (UTC). Accepted:
// an integer (epoch milliseconds); 'YYYY-MM-DD'; 'YYYY-MM-DD[T ]HH:MM[:SS[.f+]]'
// followed by nothing (UTC), 'Z', or an offset ±HH[:MM] which is normalised
// to UTC; sub-millisecond digits are truncated towards negative infinity.
// Anything else is tried with time.Parse against fallbackLayouts.
func parseTimestamp(b []byte) (int64, parseErr) {
	if len(b) == 0 {
		return 0, errSyntax
	}
	if c := b[0]; c-'0' <= 9 && (len(b) < 5 || b[4] != '-') || c == '-' || c == '+' {
		return parseInt(b, math.MinInt64, math.MaxInt64)
	}
	if ms, ok := parseTimestampFast(b); ok {
		return ms, errNone
	}
	s := string(b)
	for _, layout := range fallbackLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), errNone
		}
	}
	return 0, errSyntax
}

func parseTimestampFast(b []byte) (int64, bool) {
	days, ok := parseDateDays(b)
	if !ok {
		return 0, false
	}
	ms := days * 86_400_000
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
	s := 0
	if i < n && b[i] == ':' {
		if n < i+3 {
			return 0, false
		}
		var ok bool
		if s, ok = digits2(b, i+1); !ok || s > 59 {
			return 0, false
		}
		i += 3
	}
	frac := 0
	if i < n && (b[i] == '.' || b[i] == ',') {
		i++
		start := i
		for i < n && b[i]-'0' <= 9 {
			if i-start < 3 {
				frac = frac*10 + int(b[i]-'0')
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
	ms += int64(h)*3_600_000 + int64(m)*60_000 + int64(s)*1000 + int64(frac)
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
		om := 0
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
		return ms - sign*(int64(oh)*3_600_000+int64(om)*60_000), true
	}
	return 0, false
}
