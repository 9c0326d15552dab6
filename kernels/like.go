package kernels

import (
	"errors"
	"regexp"
	"strings"
)

// LikePattern is a compiled SQL LIKE pattern: % matches any sequence of
// characters, _ exactly one character, and a backslash makes the next
// character literal. Matching is on characters (UTF-8), not bytes. A
// LikePattern is immutable and safe for concurrent use.
type LikePattern struct {
	kind   int // likeExact, likePrefix, likeSuffix, likeContains, likeRegexp
	lit    string
	re     *regexp.Regexp
	folded bool // case-insensitive literal matching
}

const (
	likeExact = iota
	likePrefix
	likeSuffix
	likeContains
	likeRegexp
)

// CompileLike compiles a LIKE (or, with caseInsensitive, ILIKE) pattern.
// A pattern ending in the escape character is an error, as in PostgreSQL.
func CompileLike(pattern string, caseInsensitive bool) (*LikePattern, error) {
	var re strings.Builder
	var lit strings.Builder
	literalOnly := true
	var segs []string // literal segments separated by %
	hasUnderscore := false
	esc := false
	for _, c := range pattern {
		switch {
		case esc:
			re.WriteString(regexp.QuoteMeta(string(c)))
			lit.WriteRune(c)
			esc = false
		case c == '\\':
			esc = true
		case c == '%':
			re.WriteString(".*")
			segs = append(segs, lit.String())
			lit.Reset()
			literalOnly = false
		case c == '_':
			re.WriteString(".")
			hasUnderscore = true
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
			lit.WriteRune(c)
		}
	}
	if esc {
		return nil, errors.New("LIKE pattern must not end with escape character")
	}
	segs = append(segs, lit.String())
	p := &LikePattern{folded: caseInsensitive}
	fold := func(s string) string {
		if caseInsensitive {
			return strings.ToLower(s)
		}
		return s
	}
	switch {
	case hasUnderscore || caseInsensitive && hasSpecialFold(pattern):
	case literalOnly:
		p.kind, p.lit = likeExact, fold(segs[0])
		return p, nil
	case len(segs) == 2 && segs[1] == "":
		p.kind, p.lit = likePrefix, fold(segs[0])
		return p, nil
	case len(segs) == 2 && segs[0] == "":
		p.kind, p.lit = likeSuffix, fold(segs[1])
		return p, nil
	case len(segs) == 3 && segs[0] == "" && segs[2] == "":
		p.kind, p.lit = likeContains, fold(segs[1])
		return p, nil
	}
	flags := "(?s)"
	if caseInsensitive {
		flags = "(?is)"
	}
	r, err := regexp.Compile(flags + "^" + re.String() + "$")
	if err != nil {
		return nil, err
	}
	p.kind, p.re = likeRegexp, r
	return p, nil
}

// hasSpecialFold reports whether lower-casing may change byte lengths or
// needs Unicode case folding beyond ToLower (then the regexp path is used).
func hasSpecialFold(s string) bool {
	for _, c := range s {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// Match reports whether s matches the pattern.
func (p *LikePattern) Match(s string) bool {
	if p.kind == likeRegexp {
		return p.re.MatchString(s)
	}
	if p.folded {
		if hasSpecialFold(s) {
			s = strings.ToLower(s) // correct for case pairs of equal width; regexp covers patterns
		} else {
			s = asciiLower(s)
		}
	}
	switch p.kind {
	case likeExact:
		return s == p.lit
	case likePrefix:
		return strings.HasPrefix(s, p.lit)
	case likeSuffix:
		return strings.HasSuffix(s, p.lit)
	}
	return strings.Contains(s, p.lit)
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
