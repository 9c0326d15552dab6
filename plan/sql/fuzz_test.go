package sql

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// fuzzSeeds are the reference examples (whole and one statement at a time), the
// expression cases and a few malformed inputs.
func fuzzSeeds(f *testing.F) []string {
	seed := readSeed(f)
	seeds := append([]string{seed}, strings.Split(seed, ";")...)
	for _, c := range exprCases {
		seeds = append(seeds, "SELECT "+c.src+" AS x FROM t")
	}
	return append(seeds, "SELECT 'abc", "CREATE STREAM x (a INT", "SELECT (a + b FROM t",
		"SET x = 5s;", "SELECT * FROM a, b LEFT JOIN c ON a.x = c.x WITHIN 5m")
}

// FuzzParse checks that Parse never panics, that errors carry a valid
// position, and that a parsed query printed by FormatQuery parses back to
// the same text.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		stmts, err := Parse(src)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || se.Pos.Line < 1 || se.Pos.Col < 1 || se.Msg == "" {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		for _, s := range stmts {
			var q *ast.Select
			switch s := s.(type) {
			case *ast.SelectStatement:
				q = s.Query
			case *ast.CreateAs:
				q = s.Query
			default:
				continue
			}
			text := FormatQuery(q)
			again, err := Parse(text)
			if err != nil {
				t.Fatalf("reparse of %q: %v", text, err)
			}
			if got := FormatQuery(again[0].(*ast.SelectStatement).Query); got != text {
				t.Fatalf("round trip changed\n%s\n%s", text, got)
			}
		}
	})
}

// FuzzParseExpr checks that Format output parses back to the same text.
func FuzzParseExpr(f *testing.F) {
	for _, c := range exprCases {
		f.Add(c.src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := ParseExpr(src)
		if err != nil {
			return
		}
		text := Format(e)
		e2, err := ParseExpr(text)
		if err != nil {
			t.Fatalf("reparse of %q: %v", text, err)
		}
		if got := Format(e2); got != text {
			t.Fatalf("round trip changed\n%s\n%s", text, got)
		}
	})
}
