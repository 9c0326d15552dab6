package sources

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/ferrisstreams/ferris/kernels"
)

// parseErr classifies why a textual value could not be converted. The hot
// path returns these small codes; the caller builds a message only for bad
// records. The first four are kernels' ParseStatus values, so a status
// converts to a parseErr directly.
type parseErr uint8

const (
	errNone      = parseErr(kernels.ParseOK)
	errSyntax    = parseErr(kernels.ParseSyntax)    // not a value of the column's type
	errRange     = parseErr(kernels.ParseRange)     // a number outside the type's range
	errPrecision = parseErr(kernels.ParsePrecision) // a decimal with more integer digits than its precision allows
	errUTF8      = errPrecision + 1                 // a string that is not valid UTF-8
)

// The parsers below are the sources' view of the kernels text parsers
// (see kernels.ParseDecimalBytes and friends): they take a JSON string's
// content, a JSON number or literal, or a CSV field, all without
// surrounding spaces, and add what is particular to the source formats:
// integers as epoch counts for TIMESTAMP and DATE.

func parseInt(b []byte, lo, hi int64) (int64, parseErr) {
	v, st := kernels.ParseIntBytes(b, lo, hi)
	return v, parseErr(st)
}

func parseFloat(b []byte) (float64, parseErr) {
	f, st := kernels.ParseFloatBytes(b)
	return f, parseErr(st)
}

func parseBool(b []byte) (bool, parseErr) {
	v, st := kernels.ParseBoolBytes(b)
	return v, parseErr(st)
}

func parseDecimal(b []byte, prec, scale int32) (decimal128.Num, parseErr) {
	n, st := kernels.ParseDecimalBytes(b, prec, scale)
	return n, parseErr(st)
}

// epochCount reports whether b is to be read as an integer count since the
// epoch rather than as date text: it starts with a sign, or with a digit
// and is not YYYY-...
func epochCount(b []byte) bool {
	c := b[0]
	return c-'0' <= 9 && (len(b) < 5 || b[4] != '-') || c == '-' || c == '+'
}

// parseTimestamp parses a TIMESTAMP into epoch milliseconds (UTC): an
// integer is epoch milliseconds, anything else is text for
// kernels.ParseTimestampBytes.
func parseTimestamp(b []byte) (int64, parseErr) {
	if len(b) == 0 {
		return 0, errSyntax
	}
	if epochCount(b) {
		return parseInt(b, math.MinInt64, math.MaxInt64)
	}
	ms, st := kernels.ParseTimestampBytes(b)
	return ms, parseErr(st)
}

// parseDate parses a DATE into days since the epoch: an integer is a day
// count, anything else is text for kernels.ParseDateBytes ('YYYY-MM-DD',
// or a timestamp whose UTC day is taken).
func parseDate(b []byte) (int32, parseErr) {
	if len(b) == 0 {
		return 0, errSyntax
	}
	if epochCount(b) {
		v, pe := parseInt(b, math.MinInt32, math.MaxInt32)
		return int32(v), pe
	}
	d, st := kernels.ParseDateBytes(b)
	return d, parseErr(st)
}
