package expr

import (
	"hash/maphash"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"
)

// fastRegexp is a compiled regular expression with a cheaper search for
// patterns that contain a literal every match must contain (such as
// "channel_id=" in '(&|^)channel_id=([^&]*)'):
//
//   - a subject without the literal cannot match, found with strings.Index
//     (much faster than running the matcher);
//   - when the pattern's part before the literal is at most k bytes wide,
//     no match starts before (first occurrence of the literal) - k, so the
//     matcher runs on the subject from there (moved back to a character
//     start). The pattern then runs on a suffix, so it is used in a variant
//     whose beginning-of-text assertions (^, \A) never match; patterns that
//     look at the character before a position (\b, \B, multi-line ^) are
//     not sliced.
//
// Leftmost-first semantics are kept: every position the sliced search
// tries, the full search tries too, and no earlier position can match.
// Results are those of regexp.Regexp on the whole subject.
//
// Results of FindStringSubmatchIndex are also memoised per subject in a
// small direct-mapped cache, which pays when a column has few distinct
// values (URLs, channels, log levels); it turns itself off when it hits
// less than one lookup in eight.
type fastRegexp struct {
	re     *regexp.Regexp
	lit    string         // a literal every match contains; "" when none
	before int            // bytes of a match before lit, at most; -1: unbounded
	sliced *regexp.Regexp // re with begin-of-text impossible; nil: do not slice
	memo   *reMemo
	seq    *seqMatcher // hand-written matcher; nil: the pattern has not its shape
}

const memoSlots = 1 << 14

// reMemo maps recent subjects to their submatch indexes.
type reMemo struct {
	mu            sync.Mutex
	seed          maphash.Seed
	slots         []memoEntry
	lookups, hits int
	checked, off  bool
}

type memoEntry struct {
	key string
	m   []int
	set bool
}

func compileFast(pattern string) (*fastRegexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	f := &fastRegexp{re: re, before: -1, memo: &reMemo{seed: maphash.MakeSeed()}}
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return f, nil
	}
	tree = tree.Simplify()
	if f.seq = compileSeq(tree, re.NumSubexp()); f.seq != nil {
		f.lit = f.seq.lit // FindAllStringIndex's prefilter
		return f, nil
	}
	f.lit, f.before = requiredLiteral(tree)
	if f.lit == "" || f.before < 0 || lookBehind(tree) {
		return f, nil
	}
	if sl, err := regexp.Compile(noBeginText(tree).String()); err == nil && sl.NumSubexp() == re.NumSubexp() {
		f.sliced = sl
	}
	return f, nil
}

// requiredLiteral returns the longest case-sensitive literal of the
// pattern's top-level concatenation and the largest width (bytes) of what
// precedes it (-1 when unbounded).
func requiredLiteral(re *syntax.Regexp) (string, int) {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if lit, ok := literalOf(re); ok {
		return lit, 0
	}
	if re.Op != syntax.OpConcat {
		return "", -1
	}
	best, before := "", -1
	width := 0
	for _, sub := range re.Sub {
		if lit, ok := literalOf(sub); ok && len(lit) > len(best) {
			best, before = lit, width
		}
		w := maxWidth(sub)
		if w < 0 || width < 0 {
			width = -1
		} else {
			width += w
		}
	}
	return best, before
}

// literalOf returns the text of a case-sensitive literal (possibly
// captured).
func literalOf(re *syntax.Regexp) (string, bool) {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpLiteral || re.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	return string(re.Rune), true
}

// maxWidth is the most bytes re can match, -1 when unbounded.
func maxWidth(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return 0
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
			if re.Flags&syntax.FoldCase != 0 {
				n += utf8.UTFMax // a case variant may be longer
			}
		}
		return n
	case syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return maxWidth(re.Sub[0])
	case syntax.OpRepeat:
		if re.Max < 0 {
			return -1
		}
		w := maxWidth(re.Sub[0])
		if w < 0 {
			return -1
		}
		return w * re.Max
	case syntax.OpConcat, syntax.OpAlternate:
		total := 0
		for _, sub := range re.Sub {
			w := maxWidth(sub)
			if w < 0 {
				return -1
			}
			if re.Op == syntax.OpConcat {
				total += w
			} else {
				total = max(total, w)
			}
		}
		return total
	}
	return -1 // star, plus
}

// lookBehind reports whether re has an assertion that depends on the
// character before a position (other than the beginning of the text).
func lookBehind(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	for _, sub := range re.Sub {
		if lookBehind(sub) {
			return true
		}
	}
	return false
}

// noBeginText returns a copy of re whose beginning-of-text assertions
// never match.
func noBeginText(re *syntax.Regexp) *syntax.Regexp {
	c := *re
	if c.Op == syntax.OpBeginText {
		return &syntax.Regexp{Op: syntax.OpNoMatch}
	}
	c.Sub = make([]*syntax.Regexp, len(re.Sub))
	for i, sub := range re.Sub {
		c.Sub[i] = noBeginText(sub)
	}
	return &c
}

// start returns where the sliced search may start, or -1 for the whole
// subject, and whether the subject can match at all.
func (f *fastRegexp) start(s string) (int, bool) {
	if f.lit == "" {
		return -1, true
	}
	i := strings.Index(s, f.lit)
	if i < 0 {
		return 0, false
	}
	if f.sliced == nil {
		return -1, true
	}
	p := i - f.before
	for p > 0 && !utf8.RuneStart(s[p]) {
		p--
	}
	if p <= 0 {
		return -1, true
	}
	return p, true
}

func (f *fastRegexp) MatchString(s string) bool {
	if f.seq != nil {
		var buf [16]int
		return f.seq.find(s, f.caps(buf[:0]))
	}
	p, ok := f.start(s)
	switch {
	case !ok:
		return false
	case p < 0:
		return f.re.MatchString(s)
	}
	return f.sliced.MatchString(s[p:])
}

// FindStringSubmatchIndex is regexp.Regexp's, on the whole subject. The
// result must not be modified.
func (f *fastRegexp) FindStringSubmatchIndex(s string) []int {
	if f.seq != nil {
		return f.SubmatchInto(nil, s)
	}
	mm := f.memo
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if mm.off {
		return f.find(s)
	}
	if mm.slots == nil {
		mm.slots = make([]memoEntry, memoSlots)
	}
	if !mm.checked && mm.lookups >= 1<<15 {
		mm.checked = true
		if mm.hits < mm.lookups/8 {
			mm.off, mm.slots = true, nil // too few repeats to pay
			return f.find(s)
		}
	}
	e := &mm.slots[maphash.String(mm.seed, s)&(memoSlots-1)]
	mm.lookups++
	if e.set && e.key == s {
		mm.hits++
		return e.m
	}
	m := f.find(s)
	*e = memoEntry{key: strings.Clone(s), m: m, set: true}
	return m
}

// caps returns buf extended to the length of a submatch index slice.
func (f *fastRegexp) caps(buf []int) []int {
	n := 2 * (f.re.NumSubexp() + 1)
	if cap(buf) < n {
		return make([]int, n)
	}
	return buf[:n]
}

// SubmatchInto is FindStringSubmatchIndex writing into dst's storage when
// it is large enough (the result is then valid until the next call with
// dst); nil when there is no match.
func (f *fastRegexp) SubmatchInto(dst []int, s string) []int {
	if f.seq == nil {
		return f.FindStringSubmatchIndex(s)
	}
	m := f.caps(dst[:0])
	if !f.seq.find(s, m) {
		return nil
	}
	return m
}

func (f *fastRegexp) find(s string) []int {
	p, ok := f.start(s)
	switch {
	case !ok:
		return nil
	case p < 0:
		return f.re.FindStringSubmatchIndex(s)
	}
	m := f.sliced.FindStringSubmatchIndex(s[p:])
	for i := range m {
		if m[i] >= 0 {
			m[i] += p
		}
	}
	return m
}

// FindAllStringIndex is regexp.Regexp's, with the literal prefilter only.
func (f *fastRegexp) FindAllStringIndex(s string, n int) [][]int {
	if f.lit != "" && !strings.Contains(s, f.lit) {
		return nil
	}
	return f.re.FindAllStringIndex(s, n)
}

func (f *fastRegexp) NumSubexp() int { return f.re.NumSubexp() }
func (f *fastRegexp) String() string { return f.re.String() }
