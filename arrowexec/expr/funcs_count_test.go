package expr

import (
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

func TestRegexpCount(t *testing.T) {
	vc := func(s string) Expr { return Lit(s, sqltypes.Varchar) }
	for _, c := range []struct {
		s, re string
		want  any
	}{
		{"abcabc", "c", int64(2)},
		{"cccc", "cc", int64(2)}, // non-overlapping, left to right
		{"abc", "", int64(4)},
		{"héllo", "", int64(6)}, // characters, not bytes
		{"", "x", int64(0)},
		{"a1b22c333", "[0-9]+", int64(3)},
		{"a.b.c", ".", int64(5)}, // a metacharacter: any character
		{"a.b.c", `\.`, int64(2)},
	} {
		e, err := Func("REGEXP_COUNT", []Expr{vc(c.s), vc(c.re)})
		if got := evalConstT(t, e, err); got != c.want {
			t.Errorf("REGEXP_COUNT(%q, %q) = %v, want %v", c.s, c.re, got, c.want)
		}
	}
	e, err := Func("regexp_count", []Expr{Lit(nil, sqltypes.Varchar), vc("a")})
	if got := evalConstT(t, e, err); got != nil {
		t.Errorf("NULL input: %v", got)
	}
	if _, err := Func("regexp_count", []Expr{vc("a"), vc("(")}); err == nil || !strings.Contains(err.Error(), "invalid regular expression") {
		t.Errorf("bad pattern: %v", err)
	}
	if _, err := Func("regexp_count", []Expr{Lit(int64(1), sqltypes.BigInt), vc("a")}); err == nil {
		t.Error("a BIGINT subject is accepted")
	}
}

// TestSplitPartScan checks the allocation-free SplitPart against
// strings.Split, overlapping delimiters and negative positions included.
func TestSplitPartScan(t *testing.T) {
	ref := func(s, d string, n int64) string {
		var parts []string
		switch {
		case d == "" && s != "":
			parts = []string{s}
		case d != "":
			parts = strings.Split(s, d)
		}
		if n < 0 {
			n += int64(len(parts)) + 1
		}
		if n < 1 || n > int64(len(parts)) {
			return ""
		}
		return parts[n-1]
	}
	for _, s := range []string{"", "a", "aaa", "aaaa", "a,b,,c", ",", ",,", "https://www.nexmark.com/ab/c_d/efg/item.htm?query=1", "日,本,語"} {
		for _, d := range []string{"", ",", "aa", "a", "/", "本"} {
			for n := int64(-6); n <= 6; n++ {
				if n == 0 {
					continue
				}
				got, err := SplitPart(s, d, n)
				if err != nil || got != ref(s, d, n) {
					t.Errorf("SplitPart(%q, %q, %d) = %q, %v; want %q", s, d, n, got, err, ref(s, d, n))
				}
			}
		}
	}
}

// TestInListComputedOnce: IN over a computed value evaluates it once.
func TestInListComputedOnce(t *testing.T) {
	x, err := Func("lower", []Expr{Col(0, "s", sqltypes.Varchar)})
	if err != nil {
		t.Fatal(err)
	}
	in, err := InList(x, []Expr{Lit("a", sqltypes.Varchar), Lit("b", sqltypes.Varchar)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in.(*evalOnce); !ok {
		t.Fatalf("%T, want evalOnce", in)
	}
	n := 0
	walk(in, func(e Expr) {
		if o, ok := e.(*opExpr); ok && strings.EqualFold(o.name, "lower") {
			n++
		}
	})
	if n != 1 {
		t.Errorf("LOWER appears %d times in %s", n, in)
	}
}
