package kernels

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// Text renderings shared by CAST(... AS VARCHAR) and the sinks' encoders.
// The Append functions append to dst and return the extended slice, as
// strconv.AppendInt does; they allocate only when dst must grow, and are
// safe for concurrent use.

// AppendDecimal appends the unscaled value n with exactly scale fractional
// digits, keeping the sign: 19134 at scale 4 is 1.9134, -5000 at scale 4 is
// -0.5000, 191340 at scale 2 is 1913.40. A negative scale appends -scale
// zeros (17 at scale -2 is 1700).
func AppendDecimal(dst []byte, n decimal128.Num, scale int32) []byte {
	u, neg := absNum(n)
	if neg {
		dst = append(dst, '-')
	}
	var buf [40]byte // 2^128 has 39 digits
	pos := len(buf)
	const e19 = 10_000_000_000_000_000_000
	for u.hi != 0 { // peel 19 digits at a time while the value needs 128 bits
		var r uint64
		u, r = u.divmod64(e19)
		for range 19 {
			pos--
			buf[pos] = byte('0' + r%10)
			r /= 10
		}
	}
	for lo := u.lo; lo != 0; lo /= 10 {
		pos--
		buf[pos] = byte('0' + lo%10)
	}
	for pos < len(buf)-1 && buf[pos] == '0' { // zeros left by a 19-digit group
		pos++
	}
	if pos == len(buf) {
		pos--
		buf[pos] = '0'
	}
	digits := buf[pos:]
	if scale <= 0 {
		dst = append(dst, digits...)
		for range -scale {
			dst = append(dst, '0')
		}
		return dst
	}
	s := int(scale)
	if len(digits) <= s {
		dst = append(dst, '0', '.')
		for range s - len(digits) {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[:len(digits)-s]...)
	dst = append(dst, '.')
	return append(dst, digits[len(digits)-s:]...)
}

// FormatDecimal is AppendDecimal as a string.
func FormatDecimal(n decimal128.Num, scale int32) string {
	return string(AppendDecimal(nil, n, scale))
}

func append2(dst []byte, v int64) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

// AppendDate appends days since the epoch as YYYY-MM-DD (proleptic
// Gregorian; years outside 0000..9999 as time.Time formats them).
func AppendDate(dst []byte, days int64) []byte {
	y, m, d := civilFromDays(days)
	if y < 0 || y > 9999 {
		return time.UnixMilli(days*MillisPerDay).UTC().AppendFormat(dst, time.DateOnly)
	}
	dst = append2(dst, y/100)
	dst = append2(dst, y%100)
	dst = append(dst, '-')
	dst = append2(dst, m)
	dst = append(dst, '-')
	return append2(dst, d)
}

// timestampLayout is the rendering of AppendTimestamp as a time layout.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendTimestamp appends milliseconds since the epoch as RFC 3339 UTC with
// milliseconds, e.g. 2024-01-01T00:00:05.000Z.
func AppendTimestamp(dst []byte, ms int64) []byte {
	days := FloorDiv(ms, MillisPerDay)
	rem := ms - days*MillisPerDay
	if y, _, _ := civilFromDays(days); y < 0 || y > 9999 {
		return time.UnixMilli(ms).UTC().AppendFormat(dst, timestampLayout)
	}
	dst = AppendDate(dst, days)
	dst = append(dst, 'T')
	dst = append2(dst, rem/3_600_000)
	dst = append(dst, ':')
	dst = append2(dst, rem/60_000%60)
	dst = append(dst, ':')
	dst = append2(dst, rem/1000%60)
	frac := rem % 1000
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), 'Z')
}

// FormatTimestamp is AppendTimestamp as a string.
func FormatTimestamp(ms int64) string {
	return string(AppendTimestamp(nil, ms))
}
