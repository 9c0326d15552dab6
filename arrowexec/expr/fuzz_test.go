package expr

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// Fuzz targets: each builds a small batch from the fuzz input (sliced at
// offset 1, with NULLs chosen by the input), evaluates expressions
// vectorised, folded and with some columns replaced by literals, and
// compares every row with the reference interpreter. Seeds live under
// testdata/fuzz/<FuzzName>/ and run as regular tests.

// fuzzCheck builds the batch of rows (types given) and checks every
// expression exprs returns over its columns.
func fuzzCheck(t *testing.T, types []arrow.DataType, rows [][]any, exprs func(cols []Expr) []Expr) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	fields := make([]arrow.Field, len(types))
	cols := make([]Expr, len(types))
	for i, ty := range types {
		name := string(rune('a' + i))
		fields[i] = arrow.Field{Name: name, Type: ty, Nullable: true}
		cols[i] = Col(i, name, ty)
	}
	schema := arrow.NewSchema(fields, nil)
	padded := append([][]any{make([]any, len(types))}, rows...) // a NULL row before the slice
	batch := buildBatch(mem, schema, padded, 1)
	defer batch.Release()
	for _, e := range exprs(cols) {
		checkWithFold(t, mem, e, batch, rows)
		// the same with the columns of row 0 as literals
		repl := map[int]Expr{}
		for _, i := range Columns(e) {
			repl[i] = Lit(rows[0][i], types[i])
		}
		checkWithFold(t, mem, Substitute(e, repl), batch, rows)
		// and with only the first column a literal
		if cs := Columns(e); len(cs) > 1 {
			checkWithFold(t, mem, Substitute(e, map[int]Expr{cs[0]: Lit(rows[0][cs[0]], types[cs[0]])}), batch, rows)
		}
	}
}

// nullIf returns nil when bit i of mask is set.
func nullIf(mask uint8, i int, v any) any {
	if mask&(1<<i) != 0 {
		return nil
	}
	return v
}

var fuzzArithTypes = []arrow.DataType{
	sqltypes.Int, sqltypes.BigInt, sqltypes.Double, sqltypes.Decimal(10, 2), sqltypes.Decimal(38, 6),
	sqltypes.Timestamp, sqltypes.Date, sqltypes.Interval, sqltypes.Decimal(5, 5),
}

// fuzzValue makes a value of type ty from the fuzz integers and double.
func fuzzValue(ty arrow.DataType, x int64, f float64) any {
	switch ty.ID() {
	case arrow.INT32:
		return int32(x)
	case arrow.INT64, arrow.TIMESTAMP, arrow.DURATION:
		return x
	case arrow.DATE32:
		return int32(x)
	case arrow.FLOAT64:
		return f
	case arrow.DECIMAL128:
		dt := ty.(*arrow.Decimal128Type)
		v := decimal128.FromI64(x)
		if dt.Precision > 19 {
			v = v.Mul(decimal128.FromI64(x | 1)) // up to 37 digits
		}
		lim := decimal128.GetScaleMultiplier(int(dt.Precision))
		_, r := v.Div(lim) // keep within the precision
		return r
	}
	panic(ty)
}

func FuzzBinaryArith(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint8(1), int64(7), int64(-3), 2.5, uint8(0))
	f.Add(uint8(3), uint8(3), uint8(4), int64(-123456789), int64(1000), -0.5, uint8(4))
	f.Add(uint8(4), uint8(1), uint8(1), int64(math.MinInt64), int64(-1), math.NaN(), uint8(0))
	f.Fuzz(func(t *testing.T, op, lt, rt uint8, a, b int64, d float64, nulls uint8) {
		ops := []string{"+", "-", "*", "/", "%", "=", "<", ">=", "<>"}
		o := ops[int(op)%len(ops)]
		ltyp, rtyp := fuzzArithTypes[int(lt)%len(fuzzArithTypes)], fuzzArithTypes[int(rt)%len(fuzzArithTypes)]
		e := float64(b) / 8
		rows := [][]any{
			{nullIf(nulls, 0, fuzzValue(ltyp, a, d)), nullIf(nulls, 1, fuzzValue(rtyp, b, e))},
			{nullIf(nulls, 2, fuzzValue(ltyp, b, e)), nullIf(nulls, 3, fuzzValue(rtyp, a, d))},
			{nullIf(nulls, 4, fuzzValue(ltyp, a^b, -d)), nullIf(nulls, 5, fuzzValue(rtyp, a>>7, d*e))},
			{nullIf(nulls, 6, fuzzValue(ltyp, -a, 0)), nullIf(nulls, 7, fuzzValue(rtyp, 0, math.Copysign(0, -1)))},
		}
		fuzzCheck(t, []arrow.DataType{ltyp, rtyp}, rows, func(c []Expr) []Expr {
			var out []Expr
			if x, err := Binary(o, c[0], c[1]); err == nil {
				out = append(out, x)
			}
			if x, err := Func("mod", []Expr{c[0], c[1]}); err == nil && o == "%" {
				out = append(out, x)
			}
			if x, err := Unary("-", c[0]); err == nil {
				out = append(out, x)
			}
			for _, name := range []string{"greatest", "least"} {
				if x, err := Func(name, []Expr{c[0], c[1]}); err == nil {
					out = append(out, x)
				}
			}
			return out
		})
	})
}

// validString makes fuzz text valid UTF-8 (Arrow strings are) and short.
func validString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) > 40 {
		s = string([]rune(s)[:40])
	}
	return s
}

func FuzzStringFuncs(f *testing.F) {
	f.Add("a,b,,c", ",", "x", int64(2), int64(3), uint8(0))
	f.Add("héllo wörld", "ö", "日本", int64(-1), int64(0), uint8(0))
	f.Add("😀x😀", "", "(x)", int64(0), int64(-2), uint8(8))
	f.Add("  pad  ", " p", "([a-z]+)", int64(math.MinInt64), int64(math.MaxInt64), uint8(3))
	f.Fuzz(func(t *testing.T, s, d, u string, n, k int64, nulls uint8) {
		s, d, u = validString(s), validString(d), validString(u)
		rows := [][]any{
			{nullIf(nulls, 0, s), nullIf(nulls, 1, d), nullIf(nulls, 2, u), nullIf(nulls, 3, n), nullIf(nulls, 4, k)},
			{d, u, s, k, n},
			{u + s, s, d, nullIf(nulls, 5, -n), k % 7},
			{s + d + s, d, strings.ToUpper(u), n % 5, nullIf(nulls, 6, k%3)},
		}
		types := []arrow.DataType{sqltypes.Varchar, sqltypes.Varchar, sqltypes.Varchar, sqltypes.BigInt, sqltypes.BigInt}
		fuzzCheck(t, types, rows, func(c []Expr) []Expr {
			var out []Expr
			add := func(name string, args ...Expr) {
				if x, err := Func(name, args); err == nil {
					out = append(out, x)
				}
			}
			add("substring", c[0], c[3])
			add("substring", c[0], c[3], c[4])
			for _, tr := range []string{"trim", "btrim", "ltrim", "rtrim"} {
				add(tr, c[0])
				add(tr, c[0], c[1])
			}
			add("replace", c[0], c[1], c[2])
			add("position", c[1], c[0])
			add("strpos", c[0], c[1])
			add("split_part", c[0], c[1], c[3])
			add("split_part", c[0], c[1], c[4])
			add("regexp_match", c[0], c[2])
			add("regexp_extract", c[0], c[2])
			add("regexp_extract", c[0], c[2], c[4])
			add("length", c[0])
			return out
		})
	})
}

func FuzzCastText(f *testing.F) {
	f.Add("2024-02-29T23:59:59.999+01:30", int64(951782400000), 1.5)
	f.Add(" -12.345e2 ", int64(-1), math.Inf(-1))
	f.Add("yes", int64(-62135596800001), 5e-324)
	f.Add("2024-01-01 10:30,123456z", int64(math.MaxInt64), math.NaN())
	f.Fuzz(func(t *testing.T, s string, n int64, d float64) {
		targets := []arrow.DataType{sqltypes.Int, sqltypes.BigInt, sqltypes.Double, sqltypes.Decimal(10, 2),
			sqltypes.Decimal(38, 10), sqltypes.Decimal(5, 0), sqltypes.Boolean, sqltypes.Timestamp, sqltypes.Date}
		texts := []any{s, strings.TrimSpace(s), " " + s + "\t", strconv.FormatInt(n, 10), strconv.FormatFloat(d, 'g', -1, 64)}
		// each text alone (a bad value fails the whole cast), then all together
		for i := range texts {
			rows := [][]any{{texts[i], n, d, int32(n)}, {nil, -n, -d, int32(n >> 32)}}
			types := []arrow.DataType{sqltypes.Varchar, sqltypes.Timestamp, sqltypes.Double, sqltypes.Date}
			fuzzCheck(t, types, rows, func(c []Expr) []Expr {
				var out []Expr
				for _, to := range targets {
					if x, err := Cast(c[0], to); err == nil {
						out = append(out, x)
					}
				}
				if i == 0 { // round trips through text
					for _, x := range c[1:] {
						v, _ := Cast(x, sqltypes.Varchar)
						back, _ := Cast(v, x.Type())
						out = append(out, v, back)
					}
					dateTs, _ := Cast(c[3], sqltypes.Timestamp)
					tt, _ := Func("to_timestamp", []Expr{c[0]})
					out = append(out, dateTs, tt)
					tsDate, _ := Cast(c[1], sqltypes.Date) // an error beyond the DATE range
					out = append(out, tsDate)
				}
				return out
			})
		}
	})
}
