package expr

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// Func builds a call of a scalar function (name case-insensitive). Unless
// noted, a NULL argument gives NULL. Supported:
//
//	COALESCE(a, ...)            first non-NULL (later args evaluated lazily)
//	NULLIF(a, b)                NULL if a = b else a
//	GREATEST(a, ...), LEAST     skip NULLs (NULL only if all are), PostgreSQL
//	UPPER(s), LOWER(s)
//	LENGTH(s), CHAR_LENGTH(s)   INT, in characters
//	SUBSTRING(s, start[, len])  1-based, in characters, PostgreSQL rules for
//	                            start < 1; SUBSTR is an alias; len < 0 is an error
//	TRIM/BTRIM(s[, chars]), LTRIM, RTRIM   chars defaults to ' '
//	CONCAT(a, ...)              VARCHAR, skips NULLs, never NULL
//	REPLACE(s, from, to)        every occurrence; empty from leaves s
//	POSITION(sub, s)            INT, 1-based in characters, 0 when absent;
//	                            STRPOS(s, sub) has the arguments swapped
//	SPLIT_PART(s, delim, n)     n-th field (1-based, negative from the end),
//	                            '' when out of range; n = 0 is an error
//	REGEXP_MATCH(s, re)         BOOLEAN, Go RE2 syntax, unanchored
//	REGEXP_EXTRACT(s, re[, g])  VARCHAR group g (default: 1 if re has a
//	                            capture group, else 0 = whole match); NULL
//	                            when there is no match
//	REGEXP_COUNT(s, re)         BIGINT, non-overlapping matches (see
//	                            fnRegexpCount; literal patterns fast)
//	ABS, SIGN                   same type (SIGN of DECIMAL is DECIMAL(1,0))
//	ROUND(x[, d])               half away from zero; exact for DECIMAL (d
//	                            must then be a constant; scale becomes d)
//	FLOOR, CEIL, CEILING        DOUBLE stays DOUBLE, DECIMAL gets scale 0
//	SQRT, LN, LOG10, EXP, POWER/POW   DOUBLE; a result that is not a real
//	                            number (SQRT/LN/LOG10 of a negative, LN of 0,
//	                            POWER(-8, 1/3)) is NULL rather than NaN
//	MOD(a, b)                   a % b
//	EXTRACT(field, t) / DATE_PART   see extractField
//	DATE_TRUNC(unit, t)         TIMESTAMP; units second minute hour day week
//	                            (Monday) month quarter year (and millisecond)
//	CURRENT_TIMESTAMP(), NOW()  Context.Now as TIMESTAMP; never folded
//	TO_TIMESTAMP(s)             parses ISO 8601 / RFC 3339 (see
//	                            kernels.ParseTimestamp); bad text is an error
//	TO_TIMESTAMP(x[, unit])     epoch number in unit 's' (default, fractions
//	                            allowed), 'ms' or 'us'; rounded to the ms
//	TO_TIMESTAMP_MS(x)          epoch milliseconds
func Func(name string, args []Expr) (Expr, error) {
	lname := strings.ToLower(name)
	f, ok := functions[lname]
	if !ok {
		return nil, fmt.Errorf("unknown function %q", name)
	}
	return f(lname, args)
}

// FuncNames returns the names (lower case) of the scalar functions Func
// knows, sorted.
func FuncNames() []string {
	names := make([]string, 0, len(functions))
	for n := range functions {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

type builder func(name string, args []Expr) (Expr, error)

// functions is the immutable function table.
var functions map[string]builder

func init() {
	functions = map[string]builder{
		"coalesce": func(_ string, a []Expr) (Expr, error) { return Coalesce(a) },
		"nullif":   fnNullif,
		"greatest": fnGreatestLeast, "least": fnGreatestLeast,
		"upper": fnCase, "lower": fnCase,
		"length": fnLength, "char_length": fnLength, "character_length": fnLength,
		"substring": fnSubstring, "substr": fnSubstring,
		"trim": fnTrim, "btrim": fnTrim, "ltrim": fnTrim, "rtrim": fnTrim,
		"concat":   fnConcat,
		"replace":  fnReplace,
		"position": fnPosition, "strpos": fnPosition,
		"split_part":   fnSplitPart,
		"regexp_match": fnRegexpMatch, "regexp_like": fnRegexpMatch,
		"regexp_extract": fnRegexpExtract,
		"regexp_count":   fnRegexpCount,
		"abs":            fnAbs, "sign": fnSign,
		"round": fnRound, "floor": fnFloorCeil, "ceil": fnFloorCeil, "ceiling": fnFloorCeil,
		"sqrt": fnMath, "ln": fnMath, "log10": fnMath, "exp": fnMath, "power": fnMath, "pow": fnMath,
		"mod": func(_ string, a []Expr) (Expr, error) {
			return fixedArgs("mod", a, 2, func() (Expr, error) { return Binary("%", a[0], a[1]) })
		},
		"extract": fnExtract, "date_part": fnExtract,
		"date_trunc":        fnDateTrunc,
		"current_timestamp": fnNow, "now": fnNow,
		"to_timestamp": fnToTimestamp, "to_timestamp_ms": fnToTimestamp,
	}
}

func fixedArgs(name string, args []Expr, n int, f func() (Expr, error)) (Expr, error) {
	if len(args) != n {
		return nil, fmt.Errorf("function %s expects %d arguments, got %d", name, n, len(args))
	}
	return f()
}

func argCount(name string, args []Expr, lo, hi int) error {
	if len(args) < lo || len(args) > hi {
		if lo == hi {
			return fmt.Errorf("function %s expects %d arguments, got %d", name, lo, len(args))
		}
		return fmt.Errorf("function %s expects %d to %d arguments, got %d", name, lo, hi, len(args))
	}
	return nil
}

// expect checks args[i] has kind want (NULL literals are converted).
func expect(name string, args []Expr, i int, want arrow.DataType) error {
	t := args[i].Type()
	if isNullType(t) {
		args[i] = Lit(nil, want)
		return nil
	}
	if t.ID() != want.ID() {
		return fmt.Errorf("function %s expects %s, got %s", name, typeName(want), typeName(t))
	}
	return nil
}

func expectNumeric(name string, args []Expr, i int) error {
	t := args[i].Type()
	if isNullType(t) {
		args[i] = Lit(nil, sqltypes.Double)
		return nil
	}
	if !sqltypes.IsNumeric(t) {
		return fmt.Errorf("function %s expects a number, got %s", name, typeName(t))
	}
	return nil
}

// expectBigInt checks args[i] is an integer (NULL literals are converted)
// and widens it to BIGINT.
func expectBigInt(name string, args []Expr, i int) error {
	if isNullType(args[i].Type()) {
		args[i] = Lit(nil, sqltypes.BigInt)
	}
	if !isInteger(args[i].Type()) {
		return fmt.Errorf("function %s expects BIGINT, got %s", name, typeName(args[i].Type()))
	}
	args[i] = implicitCast(args[i], sqltypes.BigInt)
	return nil
}

// argKind checks (and may convert in place) argument i of a call.
type argKind func(name string, args []Expr, i int) error

var (
	varcharArg argKind = func(name string, args []Expr, i int) error { return expect(name, args, i, sqltypes.Varchar) }
	numericArg argKind = expectNumeric
	bigintArg  argKind = expectBigInt
)

// signature checks that a call has lo to hi arguments and that each
// argument present has the kind given for its position, in order.
func signature(name string, args []Expr, lo, hi int, kinds ...argKind) error {
	if err := argCount(name, args, lo, hi); err != nil {
		return err
	}
	for i := range min(len(args), len(kinds)) {
		if err := kinds[i](name, args, i); err != nil {
			return err
		}
	}
	return nil
}

func call(name string, args []Expr, t arrow.DataType, k kernelFn) *opExpr {
	return &opExpr{name: strings.ToUpper(name), args: args, typ: t, kernel: k, bcast: true}
}

// Typed accessors honouring broadcast.
func strs(a arrow.Array, n int) func(int) string {
	s, m := a.(*array.String), kernels.Broadcast(a, n, -1)
	return func(i int) string { return s.Value(i & m) }
}

func i64s(a arrow.Array, n int) func(int) int64 {
	m := kernels.Broadcast(a, n, -1)
	switch x := a.(type) {
	case *array.Int32:
		return func(i int) int64 { return int64(x.Value(i & m)) }
	case *array.Timestamp:
		return func(i int) int64 { return int64(x.Value(i & m)) }
	case *array.Duration:
		return func(i int) int64 { return int64(x.Value(i & m)) }
	}
	x := a.(*array.Int64)
	return func(i int) int64 { return x.Value(i & m) }
}

func f64s(a arrow.Array, n int) func(int) float64 {
	x, m := a.(*array.Float64), kernels.Broadcast(a, n, -1)
	return func(i int) float64 { return x.Value(i & m) }
}

// ---- conditional ----

func fnNullif(name string, args []Expr) (Expr, error) {
	if err := argCount(name, args, 2, 2); err != nil {
		return nil, err
	}
	eq, err := Binary("=", args[0], args[1])
	if err != nil {
		return nil, fmt.Errorf("function nullif: %w", err)
	}
	return Case(nil, []Expr{eq}, []Expr{Lit(nil, args[0].Type())}, args[0])
}

func fnGreatestLeast(name string, args []Expr) (Expr, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("function %s expects at least 1 argument", name)
	}
	t, err := commonType(strings.ToUpper(name), args)
	if err != nil {
		return nil, err
	}
	conv := make([]Expr, len(args))
	for i, a := range args {
		conv[i] = implicitCast(a, t)
	}
	op := kernels.Gt
	if name == "least" {
		op = kernels.Lt
	}
	return &opExpr{name: strings.ToUpper(name), args: conv, typ: t, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		if isNullType(t) {
			return array.NewNull(n), nil
		}
		// src[i] is the argument currently winning row i (-1 while NULL).
		src := make([]int32, n)
		pos := make([]int32, n)
		for i := range pos {
			pos[i] = int32(i)
			src[i] = -1
			if a[0].IsValid(i) {
				src[i] = 0
			}
		}
		for k := 1; k < len(a); k++ {
			best, err := kernels.Interleave(ctx.Alloc, t, a, src, pos)
			if err != nil {
				return nil, err
			}
			c, err := kernels.Compare(ctx.Alloc, op, a[k], best, n)
			best.Release()
			if err != nil {
				return nil, err
			}
			cb := c.(*array.Boolean)
			for i := 0; i < n; i++ {
				if a[k].IsValid(i) && (src[i] < 0 || (cb.IsValid(i) && cb.Value(i))) {
					src[i] = int32(k)
				}
			}
			c.Release()
		}
		return kernels.Interleave(ctx.Alloc, t, a, src, pos)
	}}, nil
}

// ---- strings ----

func fnCase(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 1, varcharArg); err != nil {
		return nil, err
	}
	f, lo, hi := strings.ToUpper, byte('a'), byte('z')
	if name == "lower" {
		f, lo, hi = strings.ToLower, 'A', 'Z'
	}
	return call(name, args, sqltypes.Varchar, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		// an all-ASCII column is mapped in one pass over its bytes
		if col, ok := a[0].(*array.String); ok && col.Len() == n {
			if out, ok := kernels.CaseASCII(ctx.Alloc, col, lo, hi); ok {
				return out, nil
			}
		}
		s := strs(a[0], n)
		// ASCII strings are converted in a reused buffer, without
		// allocating a string per row; others by strings.ToUpper/ToLower
		var buf []byte
		return kernels.MapBytes(ctx.Alloc, n, a, func(i int) ([]byte, bool, error) {
			v := s(i)
			buf = buf[:0]
			for k := 0; k < len(v); k++ {
				c := v[k]
				if c >= utf8.RuneSelf {
					return append(buf[:0], f(v)...), true, nil
				}
				if c >= lo && c <= hi {
					c ^= 0x20
				}
				buf = append(buf, c)
			}
			return buf, true, nil
		})
	}), nil
}

func fnLength(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 1, varcharArg); err != nil {
		return nil, err
	}
	return call(name, args, sqltypes.Int, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s := strs(a[0], n)
		return kernels.MapFixed(ctx.Alloc, sqltypes.Int, n, a, func(i int) (int32, bool, error) {
			return int32(utf8.RuneCountInString(s(i))), true, nil
		})
	}), nil
}

// Substring returns the characters of s in [start, start+length) (1-based;
// length < 0 means to the end), the PostgreSQL way.
func Substring(s string, start, length int64) string {
	end := int64(math.MaxInt64)
	if length >= 0 {
		end = start + length
		if end < start { // overflow
			end = math.MaxInt64
		}
	}
	if start < 1 {
		start = 1
	}
	if end <= start {
		return ""
	}
	var b, e = -1, len(s)
	ci := int64(1)
	for bi := range s {
		if ci == start {
			b = bi
		}
		if ci == end {
			e = bi
			break
		}
		ci++
	}
	if b < 0 {
		return ""
	}
	return s[b:e]
}

func fnSubstring(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 2, 3, varcharArg, bigintArg, bigintArg); err != nil {
		return nil, err
	}
	return call(name, args, sqltypes.Varchar, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s, st := strs(a[0], n), i64s(a[1], n)
		ln := func(int) int64 { return -1 }
		if len(a) == 3 {
			ln = i64s(a[2], n)
		}
		return kernels.MapString(ctx.Alloc, n, a, func(i int) (string, bool, error) {
			l := ln(i)
			if len(a) == 3 && l < 0 {
				return "", false, fmt.Errorf("negative substring length not allowed")
			}
			return Substring(s(i), st(i), l), true, nil
		})
	}), nil
}

func fnTrim(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 2, varcharArg, varcharArg); err != nil {
		return nil, err
	}
	trim := strings.Trim
	switch name {
	case "ltrim":
		trim = strings.TrimLeft
	case "rtrim":
		trim = strings.TrimRight
	}
	return call(name, args, sqltypes.Varchar, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s := strs(a[0], n)
		chars := func(int) string { return " " }
		if len(a) == 2 {
			chars = strs(a[1], n)
		}
		return kernels.MapString(ctx.Alloc, n, a, func(i int) (string, bool, error) { return trim(s(i), chars(i)), true, nil })
	}), nil
}

func fnConcat(name string, args []Expr) (Expr, error) {
	conv := make([]Expr, len(args))
	for i, a := range args {
		if isNullType(a.Type()) {
			a = Lit(nil, sqltypes.Varchar)
		}
		conv[i] = implicitCast(a, sqltypes.Varchar)
	}
	return &opExpr{name: "CONCAT", args: conv, typ: sqltypes.Varchar, bcast: true, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		get := make([]func(int) string, len(a))
		for k := range a {
			get[k] = strs(a[k], n)
		}
		var sb strings.Builder
		return kernels.MapString(ctx.Alloc, n, nil, func(i int) (string, bool, error) {
			sb.Reset()
			for k, x := range a {
				if x.IsValid(kernels.Broadcast(x, n, i)) {
					sb.WriteString(get[k](i))
				}
			}
			return sb.String(), true, nil
		})
	}}, nil
}

func fnReplace(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 3, 3, varcharArg, varcharArg, varcharArg); err != nil {
		return nil, err
	}
	return call(name, args, sqltypes.Varchar, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s, from, to := strs(a[0], n), strs(a[1], n), strs(a[2], n)
		return kernels.MapString(ctx.Alloc, n, a, func(i int) (string, bool, error) {
			f := from(i)
			if f == "" {
				return s(i), true, nil
			}
			return strings.ReplaceAll(s(i), f, to(i)), true, nil
		})
	}), nil
}

func fnPosition(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 2, 2, varcharArg, varcharArg); err != nil {
		return nil, err
	}
	if name == "strpos" {
		args = []Expr{args[1], args[0]}
	}
	return call("position", args, sqltypes.Int, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		sub, s := strs(a[0], n), strs(a[1], n)
		return kernels.MapFixed(ctx.Alloc, sqltypes.Int, n, a, func(i int) (int32, bool, error) {
			str := s(i)
			k := strings.Index(str, sub(i))
			if k < 0 {
				return 0, true, nil
			}
			return int32(utf8.RuneCountInString(str[:k]) + 1), true, nil
		})
	}), nil
}

// SplitPart returns field n of s split by delim, PostgreSQL style.
func SplitPart(s, delim string, n int64) (string, error) {
	if n == 0 {
		return "", fmt.Errorf("field position must not be zero")
	}
	if delim == "" {
		if s == "" || (n != 1 && n != -1) {
			return "", nil
		}
		return s, nil
	}
	// scan for the field instead of splitting: no allocation. Fields are
	// counted from the left (as strings.Split does) even for n < 0, which
	// matters when the delimiter overlaps itself.
	if n < 0 {
		n += int64(strings.Count(s, delim)) + 2
		if n < 1 {
			return "", nil
		}
	}
	for ; n > 1; n-- {
		i := strings.Index(s, delim)
		if i < 0 {
			return "", nil
		}
		s = s[i+len(delim):]
	}
	if i := strings.Index(s, delim); i >= 0 {
		s = s[:i]
	}
	return s, nil
}

func fnSplitPart(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 3, 3, varcharArg, varcharArg, bigintArg); err != nil {
		return nil, err
	}
	return call(name, args, sqltypes.Varchar, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s, d, k := strs(a[0], n), strs(a[1], n), i64s(a[2], n)
		return kernels.MapString(ctx.Alloc, n, a, func(i int) (string, bool, error) {
			v, err := SplitPart(s(i), d(i), k(i))
			return v, true, err
		})
	}), nil
}

// matcher returns the compiled regular expression for a pattern value.
type matcher func(pattern string) (*fastRegexp, error)

// regexpFor returns, for the pattern argument, a function that each kernel
// call uses to get its matcher: the pattern is compiled once when it is a
// constant (errors surface at construction), else per distinct pattern
// value within a call.
func regexpFor(pattern Expr) (func() matcher, error) {
	if v, ok := IsConst(pattern); ok && v != nil {
		re, err := compileFast(v.(string))
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression: %w", err)
		}
		static := matcher(func(string) (*fastRegexp, error) { return re, nil })
		return func() matcher { return static }, nil
	}
	return dynRegexp, nil
}

func dynRegexp() matcher {
	var last string
	var re *fastRegexp
	return func(p string) (*fastRegexp, error) {
		if re != nil && p == last {
			return re, nil
		}
		r, err := compileFast(p)
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression: %w", err)
		}
		re, last = r, p
		return re, nil
	}
}

func fnRegexpMatch(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 2, 2, varcharArg, varcharArg); err != nil {
		return nil, err
	}
	matcherFor, err := regexpFor(args[1])
	if err != nil {
		return nil, err
	}
	return call("regexp_match", args, sqltypes.Boolean, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		s, p := strs(a[0], n), strs(a[1], n)
		get := matcherFor()
		return kernels.MapBool(ctx.Alloc, n, a, func(i int) (bool, bool, error) {
			re, err := get(p(i))
			if err != nil {
				return false, false, err
			}
			return re.MatchString(s(i)), true, nil
		})
	}), nil
}

func fnRegexpExtract(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 2, 3, varcharArg, varcharArg, bigintArg); err != nil {
		return nil, err
	}
	matcherFor, err := regexpFor(args[1])
	if err != nil {
		return nil, err
	}
	return call(name, args, sqltypes.Varchar, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		p := strs(a[1], n)
		get := matcherFor()
		group := func(int) int64 { return -1 }
		if len(a) == 3 {
			group = i64s(a[2], n)
		}
		// a pattern that is one value for the batch is looked up once (on
		// the first row that needs it: a NULL-only batch never compiles it)
		var fixed *fastRegexp
		onePattern := kernels.Broadcast(a[1], n, 1) == 0 || n == 1
		var buf []int
		// the group is a substring of the subject: copied into the result
		// in one pass, no string per row
		return kernels.MapSubstring(ctx.Alloc, n, a[0].(*array.String), a, func(i int, s string) (int, int, bool, error) {
			re := fixed
			if re == nil {
				var err error
				if re, err = get(p(i)); err != nil {
					return 0, 0, false, err
				}
				if onePattern {
					fixed = re
				}
			}
			g := group(i)
			if g < 0 {
				g = 0
				if re.NumSubexp() > 0 {
					g = 1
				}
			}
			if g > int64(re.NumSubexp()) {
				return 0, 0, false, fmt.Errorf("regexp_extract: group %d does not exist in %q", g, re.String())
			}
			m := re.SubmatchInto(buf, s)
			if m != nil && re.seq != nil && cap(m) > cap(buf) {
				buf = m // storage for the next rows (kept only when it grew: no write per row)
			}
			if m == nil || m[2*g] < 0 {
				return 0, 0, false, nil
			}
			return m[2*g], m[2*g+1], true, nil
		})
	}), nil
}

// ---- math ----

func fnAbs(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 1, numericArg); err != nil {
		return nil, err
	}
	t := args[0].Type()
	neg, _ := Unary("-", args[0])
	isNeg, err := Binary("<", args[0], Lit(int32(0), sqltypes.Int))
	if err != nil {
		return nil, err
	}
	if t.ID() == arrow.FLOAT64 {
		return mapDouble(name, args, math.Abs), nil
	}
	// integers and decimals: CASE WHEN x < 0 THEN -x ELSE x END (overflow of
	// -MinInt is an error)
	return Case(nil, []Expr{isNeg}, []Expr{neg}, args[0])
}

func fnSign(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 1, numericArg); err != nil {
		return nil, err
	}
	t := args[0].Type()
	out := t
	if t.ID() == arrow.DECIMAL128 {
		out = sqltypes.Decimal(1, 0)
	}
	return call(name, args, out, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		sign := signOf(a[0], n)
		switch out.ID() {
		case arrow.INT32:
			return kernels.MapFixed(ctx.Alloc, out, n, a, func(i int) (int32, bool, error) { return int32(sign(i)), true, nil })
		case arrow.INT64:
			return kernels.MapFixed(ctx.Alloc, out, n, a, func(i int) (int64, bool, error) { return int64(sign(i)), true, nil })
		case arrow.DECIMAL128:
			return kernels.MapFixed(ctx.Alloc, out, n, a, func(i int) (decimal128.Num, bool, error) {
				return decimal128.FromI64(int64(sign(i))), true, nil
			})
		}
		x := f64s(a[0], n)
		return kernels.MapFixed(ctx.Alloc, out, n, a, func(i int) (float64, bool, error) {
			if v := x(i); v != v {
				return v, true, nil
			}
			return float64(sign(i)), true, nil
		})
	}), nil
}

// mapDouble is a call of f over the single DOUBLE argument.
func mapDouble(name string, args []Expr, f func(float64) float64) Expr {
	return call(name, args, sqltypes.Double, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		x := f64s(a[0], n)
		return kernels.MapFixed(ctx.Alloc, sqltypes.Double, n, a, func(i int) (float64, bool, error) { return f(x(i)), true, nil })
	})
}

func signOf(a arrow.Array, n int) func(int) int {
	if x, ok := a.(*array.Decimal128); ok {
		m := kernels.Broadcast(a, n, -1)
		return func(i int) int { return x.Value(i & m).Sign() }
	}
	if _, ok := a.(*array.Float64); ok {
		get := f64s(a, n)
		return func(i int) int { return sign(get(i)) }
	}
	get := i64s(a, n)
	return func(i int) int { return sign(get(i)) }
}

// sign is -1, 0 or 1 as v is negative, zero (or NaN) or positive.
func sign[T int64 | float64](v T) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func fnRound(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 2, numericArg, bigintArg); err != nil {
		return nil, err
	}
	digits := Expr(Lit(int64(0), sqltypes.BigInt))
	if len(args) == 2 {
		digits = args[1]
	}
	x := args[0]
	t := x.Type()
	switch t.ID() {
	case arrow.DECIMAL128:
		dv, ok := IsConst(digits)
		if !ok {
			return nil, fmt.Errorf("function round: digits of a DECIMAL must be a constant")
		}
		if dv == nil {
			return Lit(nil, t), nil
		}
		dt := t.(*arrow.Decimal128Type)
		d := dv.(int64)
		s := int32(max(min(d, int64(dt.Scale)), 0))
		out := sqltypes.Decimal(min(dt.Precision-dt.Scale+s+1, sqltypes.MaxDecimalPrecision), s)
		return call(name, []Expr{x, digits}, out, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			v := a[0].(*array.Decimal128)
			m := kernels.Broadcast(a[0], n, -1)
			return kernels.MapFixed(ctx.Alloc, out, n, a[:1], func(i int) (decimal128.Num, bool, error) {
				r, ok := roundDecimal(v.Value(i&m), dt.Scale, d, out.(*arrow.Decimal128Type))
				if !ok {
					return r, false, fmt.Errorf("%s overflow in round(%s, %d)", typeName(out), kernels.FormatDecimal(v.Value(i&m), dt.Scale), d)
				}
				return r, true, nil
			})
		}), nil
	case arrow.FLOAT64:
		return call(name, []Expr{x, digits}, t, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			v, d := f64s(a[0], n), i64s(a[1], n)
			return kernels.MapFixed(ctx.Alloc, t, n, a, func(i int) (float64, bool, error) {
				return RoundFloat(v(i), d(i)), true, nil
			})
		}), nil
	}
	// integers: only negative digits change anything
	return call(name, []Expr{x, digits}, t, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		v, d := i64s(a[0], n), i64s(a[1], n)
		f := func(i int) (int64, bool, error) {
			x, k := v(i), d(i)
			if k >= 0 {
				return x, true, nil
			}
			if k < -18 {
				return 0, true, nil
			}
			p := int64(math.Pow10(int(-k)))
			q, r := x/p, x%p
			if 2*abs64(r) >= p {
				if x < 0 {
					q--
				} else {
					q++
				}
			}
			res := q * p
			if res/p != q {
				return 0, false, fmt.Errorf("%s overflow in round(%d, %d)", typeName(t), x, k)
			}
			return res, true, nil
		}
		if t.ID() == arrow.INT32 {
			return kernels.MapFixed(ctx.Alloc, t, n, a, func(i int) (int32, bool, error) {
				r, ok, err := f(i)
				if err == nil && int64(int32(r)) != r {
					err = fmt.Errorf("INT overflow in round(%d, %d)", v(i), d(i))
				}
				return int32(r), ok, err
			})
		}
		return kernels.MapFixed(ctx.Alloc, t, n, a, f)
	}), nil
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// RoundFloat rounds x to d decimal digits, half away from zero.
func RoundFloat(x float64, d int64) float64 {
	if d == 0 {
		return math.Round(x)
	}
	if d > 308 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	if d < -308 { // 10^-d exceeds every finite double
		return math.Copysign(0, x)
	}
	p := math.Pow10(int(d))
	r := math.Round(x*p) / p
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return x
	}
	return r
}

// roundDecimal rounds v (scale s) to d digits and expresses it at out's
// scale.
func roundDecimal(v decimal128.Num, s int32, d int64, out *arrow.Decimal128Type) (decimal128.Num, bool) {
	if d < 0 {
		k := int32(min(-d, 38))
		r, ok := kernels.RescaleDecimal(v, s, -k, 38) // a scale of -k: units of 10^k
		if !ok {
			return r, false
		}
		return kernels.RescaleDecimal(r, -k, out.Scale, out.Precision)
	}
	return kernels.RescaleDecimal(v, s, out.Scale, out.Precision)
}

func fnFloorCeil(name string, args []Expr) (Expr, error) {
	if err := signature(name, args, 1, 1, numericArg); err != nil {
		return nil, err
	}
	t := args[0].Type()
	ceil := name != "floor"
	switch t.ID() {
	case arrow.INT32, arrow.INT64:
		return args[0], nil
	case arrow.FLOAT64:
		if ceil {
			return mapDouble(name, args, math.Ceil), nil
		}
		return mapDouble(name, args, math.Floor), nil
	}
	dt := t.(*arrow.Decimal128Type)
	out := sqltypes.Decimal(min(dt.Precision-dt.Scale+1, sqltypes.MaxDecimalPrecision), 0)
	return call(name, args, out, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		v, m := a[0].(*array.Decimal128), kernels.Broadcast(a[0], n, -1)
		one := decimal128.FromI64(1)
		return kernels.MapFixed(ctx.Alloc, out, n, a, func(i int) (decimal128.Num, bool, error) {
			x := v.Value(i & m)
			p := decimal128.GetScaleMultiplier(int(dt.Scale))
			q, r := x.Div(p) // truncates toward zero
			if r.Sign() != 0 && (r.Sign() > 0) == ceil {
				if ceil {
					q = q.Add(one)
				} else {
					q = q.Sub(one)
				}
			}
			return q, true, nil
		})
	}), nil
}

func fnMath(name string, args []Expr) (Expr, error) {
	want := 1
	if name == "power" || name == "pow" {
		want = 2
	}
	if err := argCount(name, args, want, want); err != nil {
		return nil, err
	}
	for i := range args {
		if err := expectNumeric(name, args, i); err != nil {
			return nil, err
		}
		args[i] = implicitCast(args[i], sqltypes.Double)
	}
	var f func(x, y float64) float64
	switch name {
	case "sqrt":
		f = func(x, _ float64) float64 { return math.Sqrt(x) }
	case "ln":
		f = func(x, _ float64) float64 { return notInf(math.Log(x), x == 0) }
	case "log10":
		f = func(x, _ float64) float64 { return notInf(math.Log10(x), x == 0) }
	case "exp":
		f = func(x, _ float64) float64 { return math.Exp(x) }
	default:
		f = math.Pow
	}
	return call(name, args, sqltypes.Double, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		x := f64s(a[0], n)
		y := func(int) float64 { return 0 }
		if len(a) == 2 {
			y = f64s(a[1], n)
		}
		return kernels.MapFixed(ctx.Alloc, sqltypes.Double, n, a, func(i int) (float64, bool, error) {
			xv, yv := x(i), y(i)
			r := f(xv, yv)
			if r != r && xv == xv && yv == yv { // not a real number
				return 0, false, nil
			}
			return r, true, nil
		})
	}), nil
}

// notInf turns the -Inf of log(0) into NaN (hence NULL).
func notInf(v float64, zero bool) float64 {
	if zero {
		return math.NaN()
	}
	return v
}

// ---- date and time ----

// constString returns the value of a constant VARCHAR argument.
func constString(name string, e Expr) (string, error) {
	v, ok := IsConst(e)
	s, isStr := v.(string)
	if !ok || !isStr {
		return "", fmt.Errorf("function %s expects a constant VARCHAR field name", name)
	}
	return strings.ToLower(s), nil
}

// timestampArg converts a DATE or TIMESTAMP argument (or VARCHAR text) to
// TIMESTAMP.
func timestampArg(name string, e Expr) (Expr, error) {
	switch e.Type().ID() {
	case arrow.TIMESTAMP:
		return e, nil
	case arrow.DATE32, arrow.STRING:
		return implicitCast(e, sqltypes.Timestamp), nil
	case arrow.NULL:
		return Lit(nil, sqltypes.Timestamp), nil
	}
	return nil, fmt.Errorf("function %s expects TIMESTAMP, got %s", name, typeName(e.Type()))
}

// extractField computes EXTRACT(field FROM ts) for ts in ms since the
// epoch (UTC). Fields: year, month, day, hour, minute, second (integer
// seconds 0..59), millisecond (seconds*1000 + ms, as PostgreSQL), dow
// (0 = Sunday), doy (1..366), week (ISO 8601), quarter, isodow (1 = Monday),
// isoyear; all BIGINT. epoch is DOUBLE seconds since the epoch with the
// milliseconds as a fraction.
func extractField(field string, ms int64) (int64, bool) {
	t := time.UnixMilli(ms).UTC()
	switch field {
	case "year", "years":
		return int64(t.Year()), true
	case "month", "months":
		return int64(t.Month()), true
	case "day", "days":
		return int64(t.Day()), true
	case "hour", "hours":
		return int64(t.Hour()), true
	case "minute", "minutes":
		return int64(t.Minute()), true
	case "second", "seconds":
		return int64(t.Second()), true
	case "millisecond", "milliseconds":
		return int64(t.Second())*1000 + int64(t.Nanosecond()/1e6), true
	case "dow":
		return int64(t.Weekday()), true
	case "isodow":
		return int64((t.Weekday()+6)%7 + 1), true
	case "doy":
		return int64(t.YearDay()), true
	case "week":
		_, w := t.ISOWeek()
		return int64(w), true
	case "isoyear":
		y, _ := t.ISOWeek()
		return int64(y), true
	case "quarter":
		return int64((t.Month()-1)/3 + 1), true
	}
	return 0, false
}

// fieldAndTimestamp checks the arguments of EXTRACT and DATE_TRUNC: a
// constant field or unit name (lower-cased) and a TIMESTAMP.
func fieldAndTimestamp(name string, args []Expr) (string, Expr, error) {
	if err := argCount(name, args, 2, 2); err != nil {
		return "", nil, err
	}
	field, err := constString(name, args[0])
	if err != nil {
		return "", nil, err
	}
	ts, err := timestampArg(name, args[1])
	if err != nil {
		return "", nil, err
	}
	return field, ts, nil
}

// mapTimestamp calls f on each TIMESTAMP of ts; field, the constant first
// argument, is kept only for display.
func mapTimestamp[O kernels.Fixed](name string, field, ts Expr, out arrow.DataType, f func(ms int64) O) Expr {
	return call(name, []Expr{field, ts}, out, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		t := i64s(a[1], n)
		return kernels.MapFixed(ctx.Alloc, out, n, a[1:], func(i int) (O, bool, error) { return f(t(i)), true, nil })
	})
}

func fnExtract(name string, args []Expr) (Expr, error) {
	field, ts, err := fieldAndTimestamp(name, args)
	if err != nil {
		return nil, err
	}
	if field == "epoch" {
		return mapTimestamp(name, args[0], ts, sqltypes.Double, func(ms int64) float64 { return float64(ms) / 1000 }), nil
	}
	if _, ok := extractField(field, 0); !ok {
		return nil, fmt.Errorf("function %s: unknown field %q", name, field)
	}
	return mapTimestamp(name, args[0], ts, sqltypes.BigInt, func(ms int64) int64 {
		v, _ := extractField(field, ms)
		return v
	}), nil
}

// TruncTimestamp truncates ms since the epoch to the start of unit (UTC):
// millisecond, second, minute, hour, day, week (Monday), month, quarter,
// year. ok is false for an unknown unit.
func TruncTimestamp(unit string, ms int64) (int64, bool) {
	fixed := map[string]int64{"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": kernels.MillisPerDay}
	if d, ok := fixed[unit]; ok {
		return kernels.FloorDiv(ms, d) * d, true
	}
	t := time.UnixMilli(ms).UTC()
	y, m, d := t.Date()
	switch unit {
	case "week":
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return day.AddDate(0, 0, -int((t.Weekday()+6)%7)).UnixMilli(), true
	case "month":
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), true
	case "quarter":
		return time.Date(y, (m-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), true
	case "year":
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), true
	}
	return 0, false
}

func fnDateTrunc(name string, args []Expr) (Expr, error) {
	unit, ts, err := fieldAndTimestamp(name, args)
	if err != nil {
		return nil, err
	}
	unit = strings.TrimSuffix(unit, "s")
	if _, ok := TruncTimestamp(unit, 0); !ok {
		return nil, fmt.Errorf("function %s: unknown unit %q", name, unit)
	}
	return mapTimestamp(name, args[0], ts, sqltypes.Timestamp, func(ms int64) int64 {
		v, _ := TruncTimestamp(unit, ms)
		return v
	}), nil
}

func fnNow(name string, args []Expr) (Expr, error) {
	if err := argCount(name, args, 0, 0); err != nil {
		return nil, err
	}
	return &opExpr{name: strings.ToUpper(name), typ: sqltypes.Timestamp, volatile: true, kernel: func(ctx *Context, _ []arrow.Array, n int) (arrow.Array, error) {
		return kernels.MapFixed(ctx.Alloc, sqltypes.Timestamp, n, nil, func(int) (int64, bool, error) {
			return ctx.Now.UnixMilli(), true, nil
		})
	}}, nil
}

func fnToTimestamp(name string, args []Expr) (Expr, error) {
	if err := argCount(name, args, 1, 2); err != nil {
		return nil, err
	}
	x := args[0]
	if isNullType(x.Type()) {
		return Lit(nil, sqltypes.Timestamp), nil
	}
	if x.Type().ID() == arrow.STRING {
		if len(args) != 1 {
			return nil, fmt.Errorf("function %s expects 1 argument with VARCHAR, got %d", name, len(args))
		}
		return call(name, args, sqltypes.Timestamp, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			s := strs(a[0], n)
			return kernels.MapFixed(ctx.Alloc, sqltypes.Timestamp, n, a, func(i int) (int64, bool, error) {
				v, err := kernels.ParseTimestamp(s(i))
				if err != nil {
					return 0, false, fmt.Errorf("cannot cast %q to TIMESTAMP", s(i))
				}
				return v, true, nil
			})
		}), nil
	}
	if !sqltypes.IsNumeric(x.Type()) {
		return nil, fmt.Errorf("function %s expects VARCHAR or a number, got %s", name, typeName(x.Type()))
	}
	unit := "s"
	if name == "to_timestamp_ms" {
		unit = "ms"
		if len(args) != 1 {
			return nil, fmt.Errorf("function %s expects 1 argument, got %d", name, len(args))
		}
	}
	if len(args) == 2 {
		u, err := constString(name, args[1])
		if err != nil {
			return nil, err
		}
		unit = u
	}
	scale := map[string]float64{"s": 1000, "ms": 1, "us": 0.001}[unit]
	if scale == 0 {
		return nil, fmt.Errorf("function %s: unknown unit %q (expected 's', 'ms' or 'us')", name, unit)
	}
	if isInteger(x.Type()) && unit != "us" {
		mul, err := Binary("*", implicitCast(x, sqltypes.BigInt), Lit(int64(scale), sqltypes.BigInt))
		if err != nil {
			return nil, err
		}
		return &opExpr{name: "TO_TIMESTAMP", args: []Expr{mul}, typ: sqltypes.Timestamp, kernel: func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
			d := a[0].Data()
			out := array.NewData(sqltypes.Timestamp, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
			defer out.Release()
			return array.MakeFromData(out), nil
		}}, nil
	}
	x = implicitCast(x, sqltypes.Double)
	return call(name, []Expr{x}, sqltypes.Timestamp, func(ctx *Context, a []arrow.Array, n int) (arrow.Array, error) {
		v := f64s(a[0], n)
		return kernels.MapFixed(ctx.Alloc, sqltypes.Timestamp, n, a, func(i int) (int64, bool, error) {
			ms := v(i) * scale
			if unit == "us" { // divide: multiplying by the inexact 0.001 can miss by 1 ulp
				ms = v(i) / 1000
			}
			ms = math.Round(ms)
			if ms != ms || ms >= math.MaxInt64 || ms < math.MinInt64 {
				return 0, false, fmt.Errorf("timestamp out of range: %s", kernels.FormatDouble(v(i)))
			}
			return int64(ms), true, nil
		})
	}), nil
}
