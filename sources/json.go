package sources

import (
	"bytes"
	"context"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonDecoder decodes JSON lines straight into column builders. It walks
// each object once: keys are matched to declared columns (unknown keys and
// their values, nested or not, are skipped), values are parsed from the
// line's bytes into the column's staged slot, and the row is committed only
// when the whole line decoded. It does not allocate per line.
type jsonDecoder struct {
	cols   []column
	hint   int // column expected next (keys usually come in schema order)
	keyBuf []byte
}

// recordError describes a bad record: the column (empty for the record as a
// whole) and what was wrong.
type recordError struct {
	field  string
	reason string
}

func badJSON(reason string) *recordError { return &recordError{reason: "invalid JSON: " + reason} }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// blank reports whether line holds only white space (skipped, not bad).
func blank(line []byte) bool { return skipSpace(line, 0) == len(line) }

func (d *jsonDecoder) decode(_ context.Context, line []byte) (*recordError, error) {
	return d.decodeLine(line), nil
}

// decodeLine stages and commits one JSON object. On failure nothing is
// committed and the staged values are cleared.
func (d *jsonDecoder) decodeLine(line []byte) *recordError {
	if err := d.stage(line); err != nil {
		for i := range d.cols {
			d.cols[i].set = false
		}
		return err
	}
	for i := range d.cols {
		if c := &d.cols[i]; !c.set && !c.nullable {
			for j := range d.cols {
				d.cols[j].set = false
			}
			return &recordError{field: c.name, reason: "missing value for NOT NULL column " + c.name}
		}
	}
	for i := range d.cols {
		d.cols[i].commit()
	}
	return nil
}

func (d *jsonDecoder) stage(b []byte) *recordError {
	n := len(b)
	i := skipSpace(b, 0)
	if i == n || b[i] != '{' {
		return badJSON("expected an object")
	}
	i = skipSpace(b, i+1)
	if i < n && b[i] == '}' {
		i++
	} else {
		for {
			if i == n || b[i] != '"' {
				return badJSON("expected a key")
			}
			end, esc, _, ok := scanString(b, i)
			if !ok {
				return badJSON("unterminated string")
			}
			key := b[i+1 : end]
			if esc {
				var ok bool
				if d.keyBuf, ok = unescape(d.keyBuf[:0], key); !ok {
					return badJSON("bad escape in key")
				}
				key = d.keyBuf
			}
			i = skipSpace(b, end+1)
			if i == n || b[i] != ':' {
				return badJSON("expected ':'")
			}
			i = skipSpace(b, i+1)
			if i == n {
				return badJSON("expected a value")
			}
			var err *recordError
			if ci := d.lookup(key); ci >= 0 {
				i, err = d.value(&d.cols[ci], b, i)
			} else {
				var ok bool
				if i, ok = skipValue(b, i); !ok {
					err = badJSON("bad value")
				}
			}
			if err != nil {
				return err
			}
			i = skipSpace(b, i)
			if i == n {
				return badJSON("unterminated object")
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return badJSON("expected ',' or '}'")
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != n {
		return badJSON("unexpected data after the object")
	}
	return nil
}

// value parses the value at b[i] into c and returns the index after it.
func (d *jsonDecoder) value(c *column, b []byte, i int) (int, *recordError) {
	start := i
	var text []byte
	switch ch := b[i]; {
	case ch == '"':
		end, esc, high, ok := scanString(b, i)
		if !ok {
			return 0, badJSON("unterminated string")
		}
		text = b[i+1 : end]
		if esc {
			if c.scratch, ok = unescape(c.scratch[:0], text); !ok {
				return 0, &recordError{field: c.name, reason: "invalid JSON: bad escape in string"}
			}
			text = c.scratch
		}
		i = end + 1
		if c.kind == KindString && !high {
			c.str, c.set = text, true // ASCII: no UTF-8 check needed
			return i, nil
		}
	case ch == 'n':
		if !bytes.HasPrefix(b[i:], litNull) {
			return 0, badJSON("bad literal")
		}
		c.set = false
		return i + 4, nil
	case ch == '{' || ch == '[':
		end, ok := skipValue(b, i)
		if !ok {
			return 0, badJSON("bad nested value")
		}
		if c.kind != KindString {
			return 0, &recordError{field: c.name, reason: c.describe(errSyntax, b[start:end])}
		}
		text, i = b[start:end], end
	default: // number or true/false
		j := tokenEnd(b, i)
		if j == i {
			return 0, badJSON("expected a value")
		}
		text, i = b[i:j], j
		if !validScalar(text) {
			return 0, badJSON("bad value " + truncate(text, 40))
		}
	}
	if pe := c.setText(text); pe != errNone {
		return 0, &recordError{field: c.name, reason: c.describe(pe, b[start:i])}
	}
	return i, nil
}

var (
	litNull  = []byte("null")
	litTrue  = []byte("true")
	litFalse = []byte("false")
)

// validScalar checks a bare JSON token: true, false or a number.
func validScalar(t []byte) bool {
	switch t[0] {
	case 't':
		return bytes.Equal(t, litTrue)
	case 'f':
		return bytes.Equal(t, litFalse)
	}
	i := 0
	if t[0] == '-' {
		i++
	}
	digits := 0
	for i < len(t) && t[i]-'0' <= 9 {
		i++
		digits++
	}
	if digits == 0 {
		return false
	}
	if i < len(t) && t[i] == '.' {
		i++
		f := 0
		for i < len(t) && t[i]-'0' <= 9 {
			i++
			f++
		}
		if f == 0 {
			return false
		}
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		i++
		if i < len(t) && (t[i] == '+' || t[i] == '-') {
			i++
		}
		e := 0
		for i < len(t) && t[i]-'0' <= 9 {
			i++
			e++
		}
		if e == 0 {
			return false
		}
	}
	return i == len(t)
}

// lookup maps a key to a column index, or -1. Keys are matched exactly
// first, then ASCII case-insensitively.
func (d *jsonDecoder) lookup(key []byte) int {
	cols := d.cols
	if h := d.hint; h < len(cols) && string(key) == cols[h].name {
		d.hint = h + 1
		return h
	}
	for j := range cols {
		if string(key) == cols[j].name {
			d.hint = j + 1
			return j
		}
	}
	for j := range cols {
		if bytes.EqualFold(key, cols[j].nameB) {
			d.hint = j + 1
			return j
		}
	}
	return -1
}

// Byte classes for the scanner.
const (
	clsQuote   = 1 << iota // '"'
	clsEscape              // '\\'
	clsControl             // < 0x20, invalid inside a string
	clsHigh                // >= 0x80, part of a multi-byte UTF-8 sequence
	clsEnd                 // ends a bare token: space, ',', '}' or ']'
)

var byteClass = func() (t [256]uint8) {
	t['"'] = clsQuote
	t['\\'] = clsEscape
	for c := 0; c < 0x20; c++ {
		t[c] = clsControl
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = clsHigh
	}
	for _, c := range []byte{' ', '\t', '\r', '\n', ',', '}', ']'} {
		t[c] |= clsEnd
	}
	return t
}()

// scanString returns the index of the closing quote of the string whose
// opening quote is at b[i], whether it contains escapes and whether it
// contains non-ASCII bytes.
func scanString(b []byte, i int) (end int, esc, high, ok bool) {
	const stop = clsQuote | clsEscape | clsControl | clsHigh
	for j := i + 1; j < len(b); j++ {
		cls := byteClass[b[j]]
		if cls&stop == 0 {
			continue
		}
		switch cls {
		case clsQuote:
			return j, esc, high, true
		case clsEscape:
			esc = true
			j++
		case clsHigh:
			high = true
		default:
			return 0, false, false, false
		}
	}
	return 0, false, false, false
}

// tokenEnd returns the end of the bare token (number or literal) at b[i].
func tokenEnd(b []byte, i int) int {
	for i < len(b) && byteClass[b[i]]&clsEnd == 0 {
		i++
	}
	return i
}

// skipValue returns the index after the JSON value at b[i]: a string, a
// number, a literal, or an object/array with everything nested in it.
func skipValue(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		end, _, _, ok := scanString(b, i)
		return end + 1, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _, _, ok := scanString(b, j)
				if !ok {
					return 0, false
				}
				j = end
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := tokenEnd(b, i)
	if j == i {
		return 0, false
	}
	if b[i] == 'n' {
		return j, bytes.Equal(b[i:j], litNull)
	}
	return j, validScalar(b[i:j])
}

// unescape appends the decoded JSON string content src to dst. Lone
// surrogates become U+FFFD, as in encoding/json.
func unescape(dst, src []byte) ([]byte, bool) {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i == len(src) {
			return dst, false
		}
		switch src[i] {
		case '"', '\\', '/':
			dst = append(dst, src[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(src[i+1:])
			if !ok {
				return dst, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok2 := rune(-1), false
				if i+2 < len(src) && src[i+1] == '\\' && src[i+2] == 'u' {
					r2, ok2 = hex4(src[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, false
		}
	}
	return dst, true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
