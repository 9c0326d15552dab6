package expr

import (
	"regexp"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// fnRegexpCount is REGEXP_COUNT(s, re): BIGINT, the number of
// non-overlapping matches of re in s, scanning left to right (Go RE2
// syntax, as REGEXP_MATCH; PostgreSQL 15, Oracle, Snowflake and Trino have
// the same function). A constant pattern without metacharacters is
// counted as plain text (strings.Count), so REGEXP_COUNT(s, 'c') is a fast
// character count (Nexmark q14's count_char). An empty pattern matches at
// every character boundary: the length in characters plus one.
func fnRegexpCount(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 2, 2, varcharArg, varcharArg); err != nil {
		return nil, err
	}
	if v, ok := IsConst(args[1]); ok && v != nil && regexp.QuoteMeta(v.(string)) == v.(string) {
		lit := v.(string)
		return call(name, args, sqltypes.BigInt, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			s := strs(a[0], n)
			return kernels.MapFixed(ctx.Alloc, sqltypes.BigInt, n, a, func(i int) (int64, bool, error) {
				return int64(strings.Count(s(i), lit)), true, nil
			})
		}), nil
	}
	matcherFor, err := regexpFor(args[1])
	if err != nil {
		return nil, err
	}
	return call(name, args, sqltypes.BigInt, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s, p := strs(a[0], n), strs(a[1], n)
		get := matcherFor()
		return kernels.MapFixed(ctx.Alloc, sqltypes.BigInt, n, a, func(i int) (int64, bool, error) {
			re, err := get(p(i))
			if err != nil {
				return 0, false, err
			}
			return int64(len(re.FindAllStringIndex(s(i), -1))), true, nil
		})
	}), nil
}
