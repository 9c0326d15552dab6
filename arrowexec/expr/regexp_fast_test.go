package expr

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestFastRegexpAgainstRegexp checks the literal prefilter and sliced
// search against regexp on the whole subject, over random subjects built
// from pieces that make the literals, anchors and multi-byte characters
// meet at every offset.
func TestFastRegexpAgainstRegexp(t *testing.T) {
	patterns := []string{
		`(&|^)channel_id=([^&]*)`, `channel_id=(\d+)`, `^abc`, `abc$`, `a.c`, `..abc`, `(x|yy)abc(z*)`,
		`\babc`, `(?m)^abc`, `(?i)abc`, `é.abc`, `[^&]{2}abc`, `a+bc`, `abc|xyz`, `(ab)(c)`, `\Aabc`, `(^|&)abc`,
		`x?abc`, `.{0,3}abc.`, `日.`, `本語`,
	}
	pieces := []string{"a", "b", "c", "abc", "&", "channel_id=", "12", "x", "yy", "é", "日", "本語", "\xff", "\n", " ", "z"}
	rng := rand.New(rand.NewPCG(7, 11))
	for _, p := range patterns {
		f, err := compileFast(p)
		if err != nil {
			t.Fatal(err)
		}
		re := f.re
		for range 3000 {
			var s string
			for range rng.IntN(8) {
				s += pieces[rng.IntN(len(pieces))]
			}
			if got, want := f.MatchString(s), re.MatchString(s); got != want {
				t.Fatalf("%s on %q: match %v, want %v", p, s, got, want)
			}
			if got, want := f.FindStringSubmatchIndex(s), re.FindStringSubmatchIndex(s); !slices.Equal(got, want) {
				t.Fatalf("%s on %q: %v, want %v", p, s, got, want)
			}
			if got, want := f.FindAllStringIndex(s, -1), re.FindAllStringIndex(s, -1); len(got) != len(want) {
				t.Fatalf("%s on %q: %d matches, want %d", p, s, len(got), len(want))
			}
		}
	}
	// the optimisation applies where expected
	f, _ := compileFast(`(&|^)channel_id=([^&]*)`)
	if f.seq == nil || f.seq.lit != "channel_id=" || f.seq.bmin != 0 || f.seq.bmax != 1 {
		t.Errorf("q21's pattern: hand-written matcher %+v", f.seq)
	}
	if f, _ := compileFast(`[^&]{2}abc`); f.seq != nil || f.lit != "abc" || f.before != 8 || f.sliced == nil {
		t.Errorf("[^&]{2}abc: literal %q, before %d, sliced %v, seq %v", f.lit, f.before, f.sliced != nil, f.seq != nil)
	}
	if f, _ := compileFast(`\babc`); f.sliced != nil {
		t.Error(`\b is sliced`)
	}
}

func BenchmarkRegexpExtractChannelID(b *testing.B) {
	subjects := []string{
		"https://www.nexmark.com/abc/d_ef/ghi/item.htm?query=1&channel_id=1666711552",
		"https://www.nexmark.com/abc/d_ef/ghi/item.htm?query=1",
	}
	f, _ := compileFast(`(&|^)channel_id=([^&]*)`)
	b.Run("fast", func(b *testing.B) {
		var buf []int
		for i := range b.N {
			if m := f.SubmatchInto(buf, subjects[i&1]); m != nil {
				buf = m
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for i := range b.N {
			f.re.FindStringSubmatchIndex(subjects[i&1])
		}
	})
}
