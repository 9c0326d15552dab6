package expr

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

// seqPieces are the parts random patterns are made of: prefixes that may
// precede the required literal, the literal, and what may follow it.
var (
	seqPrefixes = []string{``, `^`, `&`, `(&|^)`, `(^|&)`, `[?&]`, `(x|yy|)`, `(a?)`, `a??`, `[^a-z]`, `\A`, `(é|&)`, `.`, `(?:&|^)`}
	seqLits     = []string{`channel_id=`, `=`, `a=`, `é=`, `&&`, `ab`, `日本`}
	seqSuffixes = []string{``, `([^&]*)`, `([^&]*?)`, `([^&]+)`, `(\d+)`, `(\d*)$`, `([^&]*)$`, `$`, `(.)`, `.`, `(x|é|)`,
		`[a-c]{1,2}`, `(a*)`, `([^=]{0,3})`, `(.*)`, `(?s:.*)`, `(b+?)`, `([a-c]?)`, `x?y`, `(é*)`, `[^é]+`}
	seqAlphabet = []string{"&", "=", "a", "b", "c", "x", "yy", "é", "日本", "0", "12", "channel_id=", "a=", "?", "\xff", "\xc3", "\n", "", "&&", "ab"}
)

func randomSubject(rng *rand.Rand) string {
	var sb strings.Builder
	for range rng.IntN(10) {
		sb.WriteString(seqAlphabet[rng.IntN(len(seqAlphabet))])
	}
	return sb.String()
}

// checkSeq compares the fast path with regexp on one pattern and subject.
func checkSeq(t *testing.T, f *fastRegexp, s string) {
	t.Helper()
	want := f.re.FindStringSubmatchIndex(s)
	if got := f.FindStringSubmatchIndex(s); !slices.Equal(got, want) {
		t.Fatalf("%s on %q: %v, want %v", f.re, s, got, want)
	}
	var buf [4]int
	if got := f.SubmatchInto(buf[:], s); !slices.Equal(got, want) {
		t.Fatalf("%s on %q (into): %v, want %v", f.re, s, got, want)
	}
	if got, want := f.MatchString(s), f.re.MatchString(s); got != want {
		t.Fatalf("%s on %q: match %v, want %v", f.re, s, got, want)
	}
}

// TestSeqMatcherAgainstRegexp builds random patterns of the hand-written
// matcher's shape and checks it against regexp on random subjects
// ('&', '=', multi-byte and invalid UTF-8, empty).
func TestSeqMatcherAgainstRegexp(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	handled := 0
	for range 600 {
		p := seqPrefixes[rng.IntN(len(seqPrefixes))] + seqLits[rng.IntN(len(seqLits))] + seqSuffixes[rng.IntN(len(seqSuffixes))]
		if rng.IntN(4) == 0 {
			p = seqPrefixes[rng.IntN(len(seqPrefixes))] + p
		}
		f, err := compileFast(p)
		if err != nil {
			t.Fatal(err)
		}
		if f.seq != nil {
			handled++
		}
		for range 300 {
			checkSeq(t, f, randomSubject(rng))
		}
	}
	if handled < 300 {
		t.Errorf("only %d of 600 random patterns take the hand-written path", handled)
	}
}

// TestSeqMatcherShape: which patterns get the hand-written matcher.
func TestSeqMatcherShape(t *testing.T) {
	for p, want := range map[string]bool{
		`(&|^)channel_id=([^&]*)`: true,
		`[?&]id=(\d+)$`:           true,
		`id=`:                     true,
		`^abc$`:                   true,
		`x?abc`:                   true,
		`(?i)abc`:                 false, // case folding
		`\babc`:                   false, // looks behind
		`(?m)^abc`:                false,
		`[^&]abc`:                 false, // a non-ASCII class before the literal
		`abc[^&]*x`:               false, // a repetition not at the end
		`(a|b)+=x`:                false,
		`\x{FFFD}=`:               false, // U+FFFD matches invalid bytes
		`[0-9]+`:                  false, // no literal
		`(a(b)|c)=`:               false, // a capture inside an alternation
	} {
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := compileSeq(re.Simplify(), regexp.MustCompile(p).NumSubexp()) != nil; got != want {
			t.Errorf("%s: hand-written %v, want %v", p, got, want)
		}
	}
}

// FuzzSeqMatcher compares the regular-expression fast paths with regexp
// for fuzzed patterns and subjects.
func FuzzSeqMatcher(f *testing.F) {
	f.Add(`(&|^)channel_id=([^&]*)`, "https://x/?a=1&channel_id=12&b")
	f.Add(`[?&]id=(\d+)$`, "?id=12&id=3")
	f.Add(`(x|yy|)ab([^&]*?)$`, "yyab\xffé&")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		fr, err := compileFast(pattern)
		if err != nil {
			return
		}
		checkSeq(t, fr, s)
	})
}
