package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ferrisstreams/ferris/plan/ast"
)

// ErrNotSupported is wrapped by errors for syntax that parses but whose
// execution is not implemented yet.
var ErrNotSupported = errors.New("not supported yet")

// Error is a planning error at a position in the SQL text.
type Error struct {
	Pos ast.Pos
	Msg string
	Err error // optional wrapped cause (e.g. ErrNotSupported)
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(pos ast.Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func notSupported(pos ast.Pos, what string) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf("%s is %v", what, ErrNotSupported), Err: ErrNotSupported}
}

// at wraps err at pos unless it already carries a position.
func at(pos ast.Pos, err error) error {
	var pe *Error
	if errors.As(err, &pe) {
		return err
	}
	return &Error{Pos: pos, Msg: err.Error(), Err: err}
}

// suggest returns ` (did you mean "x"?)` for the closest candidate within a
// small edit distance, or "".
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || len(name) <= bestD {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and adjacent transpositions ("pirce" → "price")
// each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
