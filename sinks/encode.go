package sinks

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/kernels"
)

// Value renderings shared by the JSON and CSV encoders (docs/design.md,
// "Output conventions"):
//
//	BOOLEAN    true / false
//	INT, BIGINT decimal integer
//	DOUBLE     shortest text that round-trips, in the ECMAScript style of
//	           encoding/json (1e+21, 0.000001, 3 for 3.0); NaN and ±Inf are
//	           null in JSON (JSON has no such numbers) and NaN, Infinity,
//	           -Infinity in CSV
//	DECIMAL    a number with exactly the declared scale: 191.3400, -0.5000
//	VARCHAR    a JSON string (escaped) / a CSV field (RFC 4180 quoting)
//	TIMESTAMP  RFC 3339 UTC with milliseconds: 2024-01-01T00:00:05.000Z
//	DATE       YYYY-MM-DD
//	INTERVAL   milliseconds as an integer
//	NULL       null in JSON, an empty field in CSV
//
// Other Arrow types are rendered with the array's ValueStr, as a string.

// AppendJSONValue appends the JSON rendering of arr[i] to dst.
func AppendJSONValue(dst []byte, arr arrow.Array, i int) []byte {
	if arr.IsNull(i) || arr.DataType().ID() == arrow.NULL { // a NullArray has no validity bitmap
		return append(dst, "null"...)
	}
	switch a := arr.(type) {
	case *array.String:
		return AppendJSONString(dst, a.Value(i))
	case *array.LargeString:
		return AppendJSONString(dst, a.Value(i))
	case *array.Float64:
		return appendJSONFloat(dst, a.Value(i), 64)
	case *array.Float32:
		return appendJSONFloat(dst, float64(a.Value(i)), 32)
	case *array.Timestamp, *array.Date32, *array.Date64:
		dst = append(dst, '"')
		dst = appendScalar(dst, arr, i)
		return append(dst, '"')
	}
	if b, ok := appendNumber(dst, arr, i); ok {
		return b
	}
	return AppendJSONString(dst, arr.ValueStr(i))
}

// appendNumber appends the values rendered the same in JSON and CSV
// (integers, decimals, booleans, durations).
func appendNumber(dst []byte, arr arrow.Array, i int) ([]byte, bool) {
	switch a := arr.(type) {
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10), true
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), true
	case *array.Int16:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), true
	case *array.Int8:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10), true
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10), true
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), true
	case *array.Uint16:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), true
	case *array.Uint8:
		return strconv.AppendUint(dst, uint64(a.Value(i)), 10), true
	case *array.Decimal128:
		return kernels.AppendDecimal(dst, a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale), true
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i)), true
	case *array.Duration:
		return strconv.AppendInt(dst, toMillis(int64(a.Value(i)), a.DataType().(*arrow.DurationType).Unit), 10), true
	}
	return dst, false
}

// appendScalar appends TIMESTAMP and DATE values without quotes.
func appendScalar(dst []byte, arr arrow.Array, i int) []byte {
	switch a := arr.(type) {
	case *array.Timestamp:
		return kernels.AppendTimestamp(dst, toMillis(int64(a.Value(i)), a.DataType().(*arrow.TimestampType).Unit))
	case *array.Date32:
		return kernels.AppendDate(dst, int64(a.Value(i)))
	case *array.Date64:
		return kernels.AppendDate(dst, kernels.FloorDiv(int64(a.Value(i)), kernels.MillisPerDay))
	}
	return dst
}

// AppendCSVValue appends the CSV field for arr[i] to dst, quoting strings
// per RFC 4180 when they contain delim, a quote or a line break, or are
// empty (an unquoted empty field is NULL).
func AppendCSVValue(dst []byte, arr arrow.Array, i int, delim byte) []byte {
	if arr.IsNull(i) || arr.DataType().ID() == arrow.NULL {
		return dst
	}
	switch a := arr.(type) {
	case *array.String:
		return appendCSVString(dst, a.Value(i), delim)
	case *array.LargeString:
		return appendCSVString(dst, a.Value(i), delim)
	case *array.Float64:
		return appendCSVFloat(dst, a.Value(i), 64)
	case *array.Float32:
		return appendCSVFloat(dst, float64(a.Value(i)), 32)
	case *array.Timestamp, *array.Date32, *array.Date64:
		return appendScalar(dst, arr, i)
	}
	if b, ok := appendNumber(dst, arr, i); ok {
		return b
	}
	return appendCSVString(dst, arr.ValueStr(i), delim)
}

func appendCSVString(dst []byte, s string, delim byte) []byte {
	quote := s == ""
	for i := 0; i < len(s) && !quote; i++ {
		c := s[i]
		quote = c == delim || c == '"' || c == '\n' || c == '\r'
	}
	if !quote {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

func appendFloat(dst []byte, f float64, bitSize int) []byte {
	// ECMAScript number formatting, as encoding/json does.
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bitSize == 64 && (abs < 1e-6 || abs >= 1e21) || bitSize == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bitSize)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

func appendJSONFloat(dst []byte, f float64, bitSize int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return appendFloat(dst, f, bitSize)
}

func appendCSVFloat(dst []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	return appendFloat(dst, f, bitSize)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Quotes, backslashes and
// control characters are escaped (\n, \r, \t, \b, \f or \u00XX); other
// characters, including non-ASCII ones, are kept; invalid UTF-8 becomes
// U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func toMillis(v int64, unit arrow.TimeUnit) int64 {
	switch unit {
	case arrow.Second:
		return v * 1000
	case arrow.Microsecond:
		return kernels.FloorDiv(v, 1000)
	case arrow.Nanosecond:
		return kernels.FloorDiv(v, 1_000_000)
	}
	return v
}

// JSONEncoder renders rows of one schema as JSON objects with keys in
// schema order. It holds no per-row state; it is safe for concurrent use
// once built.
type JSONEncoder struct {
	keys [][]byte // `{"name":` for the first column, `,"name":` for others
}

// NewJSONEncoder prepares an encoder for rows of schema.
func NewJSONEncoder(schema *arrow.Schema) *JSONEncoder {
	e := &JSONEncoder{keys: make([][]byte, schema.NumFields())}
	for i, f := range schema.Fields() {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		e.keys[i] = append(AppendJSONString([]byte{sep}, f.Name), ':')
	}
	return e
}

// AppendRow appends row i of batch as one JSON object (no newline).
func (e *JSONEncoder) AppendRow(dst []byte, batch arrow.RecordBatch, i int) []byte {
	if len(e.keys) == 0 {
		return append(dst, '{', '}')
	}
	for c, key := range e.keys {
		dst = append(dst, key...)
		dst = AppendJSONValue(dst, batch.Column(c), i)
	}
	return append(dst, '}')
}

// AppendBatch appends every row of batch, each followed by '\n'.
func (e *JSONEncoder) AppendBatch(dst []byte, batch arrow.RecordBatch) []byte {
	for i := range int(batch.NumRows()) {
		dst = append(e.AppendRow(dst, batch, i), '\n')
	}
	return dst
}

// CSVEncoder renders rows as RFC 4180 CSV records terminated by "\n".
type CSVEncoder struct {
	Delim byte
}

// AppendHeader appends the column names as a CSV record.
func (e CSVEncoder) AppendHeader(dst []byte, schema *arrow.Schema) []byte {
	for i, f := range schema.Fields() {
		if i > 0 {
			dst = append(dst, e.Delim)
		}
		dst = appendCSVString(dst, f.Name, e.Delim)
	}
	return append(dst, '\n')
}

// AppendBatch appends every row of batch as a CSV record.
func (e CSVEncoder) AppendBatch(dst []byte, batch arrow.RecordBatch) []byte {
	cols := batch.Columns()
	for i := range int(batch.NumRows()) {
		for c, col := range cols {
			if c > 0 {
				dst = append(dst, e.Delim)
			}
			dst = AppendCSVValue(dst, col, i, e.Delim)
		}
		dst = append(dst, '\n')
	}
	return dst
}
