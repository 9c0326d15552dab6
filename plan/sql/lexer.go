package sql

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// tokKind classifies a token.
type tokKind int

const (
	tEOF      tokKind = iota
	tIdent            // unquoted word (keyword or identifier); val is lower-cased
	tQIdent           // "quoted identifier"; val is unescaped, case kept
	tString           // 'string'; val is unescaped
	tNumber           // 42, 3.14, 1e-3; val is the text
	tDuration         // 500ms, 5s, 1m, 1h, 1d; val is the quantity, unit the normalised unit
	tOp               // operator or punctuation; val is the text
	tError            // lexical error; val is the message. Always the last token.
)

// token is one lexical token. raw is the source text, used in error messages.
type token struct {
	kind tokKind
	pos  ast.Pos
	raw  string
	val  string
	unit string
}

// durationUnits maps the suffixes of the short duration form (5s) to units.
var durationUnits = map[string]string{
	"ms": "MILLISECOND", "s": "SECOND", "m": "MINUTE", "h": "HOUR", "d": "DAY",
}

// lexer turns SQL text into tokens, tracking 1-based line and rune column.
type lexer struct {
	src       string
	off       int
	line, col int
}

// lex returns all tokens of src, ending with tEOF, or with tError at the
// first lexical error.
func lex(src string) []token {
	l := &lexer{src: src, line: 1, col: 1}
	toks := make([]token, 0, len(src)/4+1)
	for {
		t := l.next()
		toks = append(toks, t)
		if t.kind == tEOF || t.kind == tError {
			return toks
		}
	}
}

func (l *lexer) pos() ast.Pos { return ast.Pos{Line: l.line, Col: l.col} }

// byteAt returns the byte i bytes ahead, or 0 past the end.
func (l *lexer) byteAt(i int) byte {
	if l.off+i < len(l.src) {
		return l.src[l.off+i]
	}
	return 0
}

// peekRune returns the rune at the current offset, or -1 at the end.
func (l *lexer) peekRune() rune {
	if l.off >= len(l.src) {
		return -1
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	return r
}

// advance consumes one rune.
func (l *lexer) advance() {
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
}

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
func isDigit(b byte) bool      { return b >= '0' && b <= '9' }

func errTok(pos ast.Pos, format string, args ...any) token {
	return token{kind: tError, pos: pos, val: fmt.Sprintf(format, args...)}
}

// skipSpace skips white space and comments. It returns an error token for an
// unterminated block comment, else a token of kind tEOF (meaning "no error").
func (l *lexer) skipSpace() token {
	for l.off < len(l.src) {
		switch c := l.src[l.off]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.advance()
		case c == '-' && l.byteAt(1) == '-':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
		case c == '/' && l.byteAt(1) == '*':
			start := l.pos()
			l.advance()
			l.advance()
			for !(l.byteAt(0) == '*' && l.byteAt(1) == '/') {
				if l.off >= len(l.src) {
					return errTok(start, "unterminated comment")
				}
				l.advance()
			}
			l.advance()
			l.advance()
		default:
			if r := l.peekRune(); unicode.IsSpace(r) {
				l.advance()
				continue
			}
			return token{}
		}
	}
	return token{}
}

// next returns the next token.
func (l *lexer) next() token {
	if t := l.skipSpace(); t.kind == tError {
		return t
	}
	start, pos := l.off, l.pos()
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: pos}
	}
	c := l.src[l.off]
	switch {
	case c == '\'':
		s, ok := l.quoted('\'')
		if !ok {
			return errTok(pos, "unterminated string literal")
		}
		return token{kind: tString, pos: pos, raw: l.src[start:l.off], val: s}
	case c == '"':
		s, ok := l.quoted('"')
		if !ok {
			return errTok(pos, "unterminated quoted identifier")
		}
		if s == "" {
			return errTok(pos, "empty quoted identifier")
		}
		return token{kind: tQIdent, pos: pos, raw: l.src[start:l.off], val: s}
	case isDigit(c) || c == '.' && isDigit(l.byteAt(1)):
		return l.number(pos)
	case isIdentStart(l.peekRune()):
		for l.off < len(l.src) && isIdentPart(l.peekRune()) {
			l.advance()
		}
		raw := l.src[start:l.off]
		return token{kind: tIdent, pos: pos, raw: raw, val: strings.ToLower(raw)}
	}
	if l.off+1 < len(l.src) {
		switch two := l.src[l.off : l.off+2]; two {
		case "||", "<>", "!=", "<=", ">=", "::":
			l.advance()
			l.advance()
			return token{kind: tOp, pos: pos, raw: two, val: two}
		}
	}
	if strings.IndexByte("+-*/%=<>(),.;", c) >= 0 {
		l.advance()
		return token{kind: tOp, pos: pos, raw: string(c), val: string(c)}
	}
	return errTok(pos, "unexpected character %q", l.peekRune())
}

// quoted scans a literal delimited by q, where a doubled q stands for one.
// It reports false if the closing quote is missing.
func (l *lexer) quoted(q byte) (string, bool) {
	l.advance()
	var b strings.Builder
	for {
		i := strings.IndexByte(l.src[l.off:], q)
		if i < 0 {
			return "", false
		}
		seg := l.src[l.off : l.off+i]
		b.WriteString(seg)
		l.skipText(seg)
		l.advance() // the quote
		if l.byteAt(0) != q {
			return b.String(), true
		}
		b.WriteByte(q)
		l.advance()
	}
}

// skipText advances over s, which must be the text at the current offset.
func (l *lexer) skipText(s string) {
	for _, r := range s {
		if r == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
	}
	l.off += len(s)
}

// number scans a numeric literal or a short duration such as 500ms.
func (l *lexer) number(pos ast.Pos) token {
	start := l.off
	for isDigit(l.byteAt(0)) {
		l.advance()
	}
	if l.byteAt(0) == '.' {
		l.advance()
		for isDigit(l.byteAt(0)) {
			l.advance()
		}
	}
	exp := false
	if e := l.byteAt(0); e == 'e' || e == 'E' {
		d := 1
		if s := l.byteAt(1); s == '+' || s == '-' {
			d = 2
		}
		if isDigit(l.byteAt(d)) {
			exp = true
			for i := 0; i < d; i++ {
				l.advance()
			}
			for isDigit(l.byteAt(0)) {
				l.advance()
			}
		}
	}
	num := l.src[start:l.off]
	if l.off >= len(l.src) || !isIdentPart(l.peekRune()) {
		return token{kind: tNumber, pos: pos, raw: num, val: num}
	}
	sfx := l.off
	for l.off < len(l.src) && isIdentPart(l.peekRune()) {
		l.advance()
	}
	raw := l.src[start:l.off]
	unit, ok := durationUnits[strings.ToLower(l.src[sfx:l.off])]
	if exp || !ok {
		return errTok(pos, "invalid number or duration %q (duration units are ms, s, m, h and d)", raw)
	}
	return token{kind: tDuration, pos: pos, raw: raw, val: num, unit: unit}
}
