package expr

import (
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// seqMatcher is a hand-written matcher for regular expressions that are a
// plain sequence around a required literal, such as Nexmark q21's
// '(&|^)channel_id=([^&]*)' or '[?&]id=(\d+)$': what precedes the literal
// has a few fixed byte widths, what follows it never needs backtracking
// over a repetition. Its results are those of regexp.Regexp (leftmost
// match, leftmost-first/Perl preference among matches starting there,
// submatch indexes in bytes), at a fraction of the cost: the literal is
// found with strings.Index and each candidate start is checked directly.
//
// The shape, detected from regexp/syntax (never from the pattern text):
// a concatenation, captures allowed around any part, of
//
//   - literals (case-sensitive; no U+FFFD, which matches invalid bytes);
//   - ^ and $ (\A, \z; not multi-line);
//   - one-character classes (and .), and x? of a literal or class;
//   - alternations whose branches are each a literal, ^, the empty string
//     or a one-character class, without captures inside;
//   - one repetition (*, +, ?, {n,m}, greedy or not) of a one-character
//     class, followed by nothing but the ends of captures and $;
//
// where some literal L is preceded only by literals, ^, ASCII-only classes
// and alternations of those (so a candidate start is a fixed number of
// bytes before an occurrence of L, and any match start found is a
// character boundary, as regexp's are).
type seqMatcher struct {
	elems      []seqElem
	lit        string // the required literal
	bmin, bmax int    // bytes before lit in a match: at least, at most
	ncap       int    // capture groups
}

type seqKind uint8

const (
	sLit seqKind = iota
	sBegin
	sEnd
	sClass
	sAlt // alts, tried in order
	sRep // class repeated min..max (max < 0: unbounded)
	sCapOpen
	sCapClose
)

type seqElem struct {
	kind   seqKind
	lit    string
	class  *runeSet
	alts   []seqElem // sLit, sBegin, sClass; sLit "" is the empty string
	min    int
	max    int
	greedy bool
	atEnd  bool // sRep: a $ follows (set by compileSeq)
	cap    int
}

// runeSet is a character class: sorted, non-overlapping inclusive ranges,
// with a bitmap for ASCII.
type runeSet struct {
	ascii     [2]uint64
	ranges    []rune // lo, hi pairs (as syntax.Regexp.Rune)
	onlyASCII bool
}

func newRuneSet(ranges []rune) *runeSet {
	s := &runeSet{ranges: ranges, onlyASCII: true}
	for i := 0; i < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		if hi >= utf8.RuneSelf {
			s.onlyASCII = false
		}
		for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
			s.ascii[r>>6] |= 1 << (r & 63)
		}
	}
	return s
}

func (s *runeSet) has(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 0 && s.ascii[r>>6]&(1<<(r&63)) != 0
	}
	rs := s.ranges
	lo, hi := 0, len(rs)/2
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case r < rs[2*m]:
			hi = m
		case r > rs[2*m+1]:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}

// next decodes the character at s[i:] as regexp does (an invalid byte is
// U+FFFD of width 1).
func next(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// compileSeq returns the matcher for re (simplified), nil when re does not
// have the shape.
func compileSeq(re *syntax.Regexp, ncap int) *seqMatcher {
	if re.Flags&syntax.FoldCase != 0 {
		return nil
	}
	m := &seqMatcher{ncap: ncap}
	if !m.flatten(re) {
		return nil
	}
	// a repetition only before the ends of captures and $
	for i, e := range m.elems {
		if e.kind != sRep {
			continue
		}
		for _, f := range m.elems[i+1:] {
			if f.kind != sCapClose && f.kind != sEnd {
				return nil
			}
			m.elems[i].atEnd = m.elems[i].atEnd || f.kind == sEnd
		}
	}
	// the longest literal preceded only by fixed-width ASCII-safe parts
	lo, hi := 0, 0
	for _, e := range m.elems {
		if e.kind == sLit && len(e.lit) > len(m.lit) {
			m.lit, m.bmin, m.bmax = e.lit, lo, hi
		}
		wlo, whi, ok := prefixWidth(e)
		if !ok {
			break
		}
		lo, hi = lo+wlo, hi+whi
	}
	if m.lit == "" {
		return nil
	}
	return m
}

// prefixWidth gives the widths in bytes an element may match, when it may
// precede the required literal.
func prefixWidth(e seqElem) (lo, hi int, ok bool) {
	switch e.kind {
	case sLit:
		return len(e.lit), len(e.lit), true
	case sBegin, sCapOpen, sCapClose:
		return 0, 0, true
	case sClass:
		return 1, 1, e.class.onlyASCII
	case sAlt:
		lo, hi = -1, 0
		for _, a := range e.alts {
			l, h, ok := prefixWidth(a)
			if !ok {
				return 0, 0, false
			}
			if lo < 0 || l < lo {
				lo = l
			}
			hi = max(hi, h)
		}
		return lo, hi, true
	}
	return 0, 0, false
}

// atom converts a one-position node (literal, ^, empty, class).
func atom(re *syntax.Regexp) (seqElem, bool) {
	if re.Flags&syntax.FoldCase != 0 {
		return seqElem{}, false
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if r == utf8.RuneError || !utf8.ValidRune(r) {
				return seqElem{}, false
			}
		}
		return seqElem{kind: sLit, lit: string(re.Rune)}, true
	case syntax.OpEmptyMatch:
		return seqElem{kind: sLit}, true
	case syntax.OpBeginText:
		return seqElem{kind: sBegin}, true
	case syntax.OpEndText:
		return seqElem{kind: sEnd}, true
	case syntax.OpCharClass:
		return seqElem{kind: sClass, class: newRuneSet(re.Rune)}, true
	case syntax.OpAnyCharNotNL:
		return seqElem{kind: sClass, class: newRuneSet([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune})}, true
	case syntax.OpAnyChar:
		return seqElem{kind: sClass, class: newRuneSet([]rune{0, utf8.MaxRune})}, true
	}
	return seqElem{}, false
}

// oneChar converts a node matching exactly one character to its class.
func oneChar(re *syntax.Regexp) (*runeSet, bool) {
	if re.Op == syntax.OpLiteral && len(re.Rune) == 1 && re.Flags&syntax.FoldCase == 0 {
		r := re.Rune[0]
		return newRuneSet([]rune{r, r}), true
	}
	e, ok := atom(re)
	if !ok || e.kind != sClass {
		return nil, false
	}
	return e.class, true
}

func (m *seqMatcher) flatten(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !m.flatten(s) {
				return false
			}
		}
		return true
	case syntax.OpCapture:
		m.elems = append(m.elems, seqElem{kind: sCapOpen, cap: re.Cap})
		if !m.flatten(re.Sub[0]) {
			return false
		}
		m.elems = append(m.elems, seqElem{kind: sCapClose, cap: re.Cap})
		return true
	case syntax.OpEmptyMatch:
		return true
	case syntax.OpAlternate:
		var alts []seqElem
		for _, s := range re.Sub {
			a, ok := atom(s)
			if !ok || a.kind == sEnd {
				return false
			}
			alts = append(alts, a)
		}
		m.elems = append(m.elems, seqElem{kind: sAlt, alts: alts})
		return true
	case syntax.OpQuest, syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		greedy := re.Flags&syntax.NonGreedy == 0
		if re.Op == syntax.OpQuest {
			// x? of a fixed atom: the alternation (x|) or, lazily, (|x)
			if a, ok := atom(re.Sub[0]); ok && (a.kind == sLit || a.kind == sClass) {
				alts := []seqElem{a, {kind: sLit}}
				if !greedy {
					alts[0], alts[1] = alts[1], alts[0]
				}
				m.elems = append(m.elems, seqElem{kind: sAlt, alts: alts})
				return true
			}
		}
		cls, ok := oneChar(re.Sub[0])
		if !ok {
			return false
		}
		lo, hi := re.Min, re.Max
		switch re.Op {
		case syntax.OpQuest:
			lo, hi = 0, 1
		case syntax.OpStar:
			lo, hi = 0, -1
		case syntax.OpPlus:
			lo, hi = 1, -1
		}
		m.elems = append(m.elems, seqElem{kind: sRep, class: cls, min: lo, max: hi, greedy: greedy})
		return true
	}
	a, ok := atom(re)
	if !ok {
		return false
	}
	m.elems = append(m.elems, a)
	return true
}

// find returns the leftmost-first match of s in caps (2 * (ncap+1)
// indexes, which it sets) and whether there is one.
func (m *seqMatcher) find(s string, caps []int) bool {
	for i := range caps {
		caps[i] = -1
	}
	for p := 0; p <= len(s); p++ {
		from := p + m.bmin
		if from > len(s) {
			return false
		}
		j := strings.Index(s[from:], m.lit)
		if j < 0 {
			return false
		}
		// a match at p has the literal at p+bmin .. p+bmax
		if i := from + j; i-m.bmax > p {
			p = i - m.bmax
		}
		if end, ok := m.at(s, 0, p, caps); ok {
			caps[0], caps[1] = p, end
			return true
		}
	}
	return false
}

// at matches elements k... at s[pos:], returning the end of the match.
func (m *seqMatcher) at(s string, k, pos int, caps []int) (int, bool) {
	for ; k < len(m.elems); k++ {
		e := &m.elems[k]
		switch e.kind {
		case sLit:
			if !strings.HasPrefix(s[pos:], e.lit) {
				return 0, false
			}
			pos += len(e.lit)
		case sBegin:
			if pos != 0 {
				return 0, false
			}
		case sEnd:
			if pos != len(s) {
				return 0, false
			}
		case sClass:
			if pos >= len(s) {
				return 0, false
			}
			r, w := next(s, pos)
			if !e.class.has(r) {
				return 0, false
			}
			pos += w
		case sCapOpen:
			caps[2*e.cap] = pos
		case sCapClose:
			caps[2*e.cap+1] = pos
		case sAlt:
			for ai := range e.alts { // by reference: a seqElem is large
				np, ok := e.alts[ai].one(s, pos)
				if !ok {
					continue
				}
				if end, ok := m.at(s, k+1, np, caps); ok {
					return end, true
				}
			}
			return 0, false
		case sRep:
			// only the ends of captures and $ follow: greedy takes the
			// longest run, lazy the shortest, and with $ the run must end
			// the text (whatever the preference, one length does)
			n := 0
			cls := e.class
			for pos < len(s) && (e.max < 0 || n < e.max) && (e.greedy || e.atEnd || n < e.min) {
				if c := s[pos]; c < utf8.RuneSelf { // ASCII: the class's bitmap, inline
					if cls.ascii[c>>6]&(1<<(c&63)) == 0 {
						break
					}
					pos++
					n++
					continue
				}
				r, w := utf8.DecodeRuneInString(s[pos:])
				if !cls.has(r) {
					break
				}
				pos += w
				n++
			}
			if n < e.min {
				return 0, false
			}
		}
	}
	return pos, true
}

// one matches an alternation branch at s[pos:].
func (a *seqElem) one(s string, pos int) (int, bool) {
	switch a.kind {
	case sLit:
		if strings.HasPrefix(s[pos:], a.lit) {
			return pos + len(a.lit), true
		}
	case sBegin:
		return pos, pos == 0
	case sClass:
		if pos < len(s) {
			if r, w := next(s, pos); a.class.has(r) {
				return pos + w, true
			}
		}
	}
	return 0, false
}
