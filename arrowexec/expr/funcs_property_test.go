package expr

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// funcCols is the schema of the function property test: every type, with
// value generators aimed at the edges of each function.
var funcCols = []struct {
	name string
	typ  arrow.DataType
	gen  func(rng *rand.Rand, ext bool) any
}{
	{"i", sqltypes.Int, genInt},
	{"b", sqltypes.BigInt, genBigInt},
	{"d", sqltypes.Double, genDouble},
	{"m", sqltypes.Decimal(10, 2), func(rng *rand.Rand, ext bool) any { return genDecimal(rng, 10) }},
	{"p", sqltypes.Decimal(38, 6), func(rng *rand.Rand, ext bool) any { return genDecimal(rng, 38) }},
	{"s", sqltypes.Varchar, genString},
	{"u", sqltypes.Varchar, func(rng *rand.Rand, ext bool) any { return pick(rng, delimiters) }},
	{"t", sqltypes.Boolean, func(rng *rand.Rand, ext bool) any { return rng.IntN(2) == 0 }},
	{"ts", sqltypes.Timestamp, genTimestamp},
	{"dt", sqltypes.Date, genDate},
	{"iv", sqltypes.Interval, genInterval},
	{"n", sqltypes.BigInt, genPosition},
	{"k", sqltypes.BigInt, genLength},
	{"re", sqltypes.Varchar, genRegexp},
	{"tx", sqltypes.Varchar, genTimestampText},
	{"nx", sqltypes.Varchar, genNumberText},
	{"bx", sqltypes.Varchar, genBoolText},
}

func fcol(name string) Expr {
	for i, c := range funcCols {
		if c.name == name {
			return Col(i, c.name, c.typ)
		}
	}
	panic(name)
}

func pick[T any](rng *rand.Rand, vs []T) T { return vs[rng.IntN(len(vs))] }

// rarely is true about once in n draws.
func rarely(rng *rand.Rand, n int) bool { return rng.IntN(n) == 0 }

func genInt(rng *rand.Rand, ext bool) any {
	if rarely(rng, 10) && ext {
		return pick(rng, []int32{0, 1, -1, math.MaxInt32, math.MinInt32, math.MinInt32 + 1})
	}
	return int32(rng.IntN(400) - 200)
}

func genBigInt(rng *rand.Rand, ext bool) any {
	switch rng.IntN(12) {
	case 0:
		if !ext {
			return int64(0)
		}
		return pick(rng, []int64{0, math.MaxInt64, math.MinInt64, math.MaxInt32 + 1, -1_700_000_000})
	case 1:
		if ext {
			return int64(rng.Uint64())
		}
	}
	return rng.Int64N(40000) - 20000
}

func genDouble(rng *rand.Rand, ext bool) any {
	switch rng.IntN(14) {
	case 0:
		if !ext {
			return pick(rng, []float64{0, math.Copysign(0, -1), 0.5, -0.5, 2.5, -1.5})
		}
		return pick(rng, []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 1e300, -1e-300, 5e-324, 0.5, -0.5, 2.5, -1.5})
	case 1, 2: // decimal-looking values, where rounding is delicate
		return float64(rng.IntN(200001)-100000) / pick(rng, []float64{10, 100, 1000, 8})
	case 3:
		return (rng.Float64() - 0.5) * math.Pow10(rng.IntN(20)-10)
	}
	return (rng.Float64() - 0.5) * 1000
}

func genDecimal(rng *rand.Rand, precision int32) any {
	if rarely(rng, 10) {
		return decimal128.Num{}
	}
	digits := min(precision, 12)
	if precision > 18 && rarely(rng, 3) { // large: up to 37 digits
		hi := rng.Int64N(1e18) - 5e17
		return decimal128.FromI64(hi).Mul(decimal128.FromI64(1e18)).Add(decimal128.FromI64(rng.Int64N(1e18)))
	}
	lim := int64(math.Pow10(int(digits)))
	return decimal128.FromI64(rng.Int64N(lim) - lim/2)
}

var (
	runesForStrings = []rune("ab,.- é日😀%_\\xAZß")
	fixedStrings    = []string{"", "a", "abc", "ABC", "héllo", "日本語", "a,b,,c", ",", "a%b", "a_b", "x\\y", "  pad  ",
		"\tTab\n", "ßtraße", "ǅ", "İstanbul", "😀x😀", "aaa", "ababab", "a.b.c", "--x--", "é", "e\u0301", "2024-02-29", "0", "-12.50", "AbC,dEf"}
	delimiters = []string{"", ",", "a", "b", "ab", " ", "é", "日", "😀", "--", ".", "x", "aa", "ba", "é日", ",,", "%", "\\"}
	regexps    = []string{"", "a", "^a", "b$", "(a)(b)?", "([a-z]+)", "(é|日)+", ".", `\d+`, "(x)", "a|(b)", "(?i)ABC", "^$", "[,.]", "(a+)(,)?"}
)

func genString(rng *rand.Rand, ext bool) any {
	if rarely(rng, 2) {
		return pick(rng, fixedStrings)
	}
	r := make([]rune, rng.IntN(9))
	for i := range r {
		r[i] = pick(rng, runesForStrings)
	}
	return string(r)
}

func genPosition(rng *rand.Rand, ext bool) any {
	switch {
	case ext && rarely(rng, 300):
		return int64(0) // SPLIT_PART error
	case ext && rarely(rng, 30):
		return pick(rng, []int64{math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, 400, -400, 309, -309})
	}
	v := rng.Int64N(18) - 6
	if v == 0 {
		v = 1
	}
	return v
}

func genLength(rng *rand.Rand, ext bool) any {
	switch {
	case ext && rarely(rng, 300):
		return int64(-1) // SUBSTRING error
	case rarely(rng, 30):
		return pick(rng, []int64{math.MaxInt64, math.MaxInt64 - 3, 1 << 40})
	}
	return rng.Int64N(9)
}

func genRegexp(rng *rand.Rand, ext bool) any {
	if ext && rarely(rng, 300) {
		return "(" // invalid
	}
	return pick(rng, regexps)
}

var leapDays = []string{"1600-02-29", "1896-02-28", "1900-02-28", "1900-03-01", "1904-02-29", "1968-02-29",
	"2000-02-29", "2024-02-29", "2023-12-31", "2100-03-01", "2400-02-29", "0004-02-29", "1969-12-31", "1970-01-01"}

func genTimestamp(rng *rand.Rand, ext bool) any {
	switch rng.IntN(10) {
	case 0:
		d, _ := time.Parse("2006-01-02", pick(rng, leapDays))
		return d.UnixMilli() + pick(rng, []int64{0, 1, -1, msPerDay - 1, rng.Int64N(msPerDay)})
	case 1:
		return pick(rng, []int64{0, -1, 1, 1 << 40, -(1 << 40), 253402300799999, -62135596800000, -62135596800001})
	case 2: // far from the epoch
		if ext {
			return rng.Int64N(2*(1<<48)) - (1 << 48)
		}
	}
	const span = 600 * 365 * msPerDay // ±600 years
	return rng.Int64N(2*span) - span
}

func genDate(rng *rand.Rand, ext bool) any {
	if rarely(rng, 5) {
		d, _ := time.Parse("2006-01-02", pick(rng, leapDays))
		return int32(d.Unix()/86400) + int32(rng.IntN(3)-1)
	}
	if ext && rarely(rng, 40) {
		return pick(rng, []int32{math.MaxInt32, math.MinInt32, 2932896, -719528})
	}
	return int32(rng.IntN(400000) - 200000)
}

func genInterval(rng *rand.Rand, ext bool) any {
	switch rng.IntN(10) {
	case 0:
		if !ext {
			return pick(rng, []int64{0, 1, -1, msPerDay, -msPerDay, 7 * msPerDay})
		}
		return pick(rng, []int64{0, 1, -1, msPerDay, -msPerDay, 7 * msPerDay, math.MaxInt64, math.MinInt64})
	case 1:
		return rng.Int64N(2*366*msPerDay) - 366*msPerDay
	}
	return rng.Int64N(2*msPerDay) - msPerDay
}

// timestampTextLayouts render timestamps the ways ParseTimestamp accepts.
var timestampTextLayouts = []string{
	"2006-01-02T15:04:05Z07:00", "2006-01-02 15:04:05", "2006-01-02t15:04:05.000z", "2006-01-02T15:04",
	"2006-01-02T15:04:05.999999999-0700", "2006-01-02 15:04:05,000000+07", "2006-01-02", " 2006-01-02T15:04:05.1Z ",
	"2006-01-02T15:04-07:00", time.RFC1123Z, time.RFC1123, time.ANSIC, "2006-01-02 15:04:05 MST",
}

func genTimestampText(rng *rand.Rand, ext bool) any {
	if ext && rarely(rng, 300) {
		return pick(rng, []string{"2023-02-29", "not a time", "2024-13-01T00:00:00Z"})
	}
	ms := genTimestamp(rng, false).(int64)
	ms = ms%(8000*365*msPerDay) + 0 // four-digit years
	t := time.UnixMilli(ms).UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		t = time.UnixMilli(ms % (200 * 365 * msPerDay)).UTC()
	}
	if rarely(rng, 2) {
		t = t.In(time.FixedZone("XYZ", (rng.IntN(48)-24)*1800))
	}
	return t.Format(pick(rng, timestampTextLayouts))
}

func genNumberText(rng *rand.Rand, ext bool) any {
	if ext && rarely(rng, 300) {
		return pick(rng, []string{"abc", "1.2.3", "", "0x10"})
	}
	return pick(rng, []string{"0", "12", " -7 ", "+3", "123456", "-2147483648", "2147483647", "1000000"})
}

func genBoolText(rng *rand.Rand, ext bool) any {
	if ext && rarely(rng, 300) {
		return pick(rng, []string{"maybe", "", "tru"})
	}
	return pick(rng, []string{"t", "TRUE", " yes ", "Y", "on", "1", "f", "False", "NO", "n", "Off", "0"})
}

// funcBatch builds n+offset random rows (~20% NULL) over funcCols and
// returns the batch sliced at offset, plus its rows as Go values. With ext
// the rows include extreme values (overflows, NaN, invalid text) that make
// most large batches fail; without, errors are rare.
func funcBatch(mem memory.Allocator, rng *rand.Rand, n, offset int, ext bool) (arrow.RecordBatch, [][]any) {
	fields := make([]arrow.Field, len(funcCols))
	for i, c := range funcCols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	rows := make([][]any, n+offset)
	for r := range rows {
		rows[r] = make([]any, len(funcCols))
		for c, fc := range funcCols {
			if !rarely(rng, 5) {
				rows[r][c] = fc.gen(rng, ext)
			}
		}
	}
	return buildBatch(mem, arrow.NewSchema(fields, nil), rows, offset), rows[offset:]
}

// buildBatch appends rows (Go values, nil for NULL) to a batch of schema
// and returns it sliced from offset.
func buildBatch(mem memory.Allocator, schema *arrow.Schema, rows [][]any, offset int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for _, row := range rows {
		for c, v := range row {
			fb := b.Field(c)
			if v == nil {
				fb.AppendNull()
				continue
			}
			switch x := fb.(type) {
			case *array.Int32Builder:
				x.Append(v.(int32))
			case *array.Int64Builder:
				x.Append(v.(int64))
			case *array.Float64Builder:
				x.Append(v.(float64))
			case *array.Decimal128Builder:
				x.Append(v.(decimal128.Num))
			case *array.StringBuilder:
				x.Append(v.(string))
			case *array.BooleanBuilder:
				x.Append(v.(bool))
			case *array.TimestampBuilder:
				x.Append(arrow.Timestamp(v.(int64)))
			case *array.Date32Builder:
				x.Append(arrow.Date32(v.(int32)))
			case *array.DurationBuilder:
				x.Append(arrow.Duration(v.(int64)))
			default:
				panic(fb.Type())
			}
		}
	}
	full := b.NewRecordBatch()
	defer full.Release()
	return full.NewSlice(int64(offset), int64(len(rows)))
}

// funcExprs returns the expressions the property test checks: every
// function of funcs.go, temporal arithmetic and the temporal and BOOLEAN
// casts, over columns and constants.
func funcExprs(t testing.TB) []Expr {
	must := func(e Expr, err error) Expr {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	fn := func(name string, args ...Expr) Expr { t.Helper(); return must(Func(name, args)) }
	bin := func(op string, l, r Expr) Expr { t.Helper(); return must(Binary(op, l, r)) }
	cast := func(x Expr, to arrow.DataType) Expr { t.Helper(); return must(Cast(x, to)) }
	vc := func(s string) Expr { return Lit(s, sqltypes.Varchar) }
	bi := func(v int64) Expr { return Lit(v, sqltypes.BigInt) }
	c := fcol
	var out []Expr
	add := func(es ...Expr) { out = append(out, es...) }

	// strings
	add(fn("substring", c("s"), c("n")), fn("SUBSTRING", c("s"), c("n"), c("k")), fn("substr", c("s"), c("i")),
		fn("substring", c("s"), bi(2), bi(3)), fn("substring", vc("héllo wörld"), c("n"), c("k")),
		fn("substring", c("s"), bi(-2), c("k")), fn("substring", c("s"), c("n"), bi(math.MaxInt64)),
		fn("substr", c("s"), c("i"), c("k")))
	for _, f := range []string{"trim", "btrim", "ltrim", "rtrim"} {
		add(fn(f, c("s")), fn(f, c("s"), c("u")), fn(f, c("s"), vc("a ")), fn(f, vc(" xx日 "), c("u")))
	}
	add(fn("replace", c("s"), c("u"), vc("<>")), fn("replace", c("s"), c("u"), c("s")), fn("replace", c("s"), vc(""), c("u")),
		fn("replace", c("s"), vc("a"), c("u")), fn("replace", vc("aaa"), c("u"), vc("é")))
	add(fn("position", c("u"), c("s")), fn("strpos", c("s"), c("u")), fn("position", vc("b"), c("s")),
		fn("position", c("u"), vc("abcé日,")), fn("strpos", c("s"), vc("")))
	add(fn("split_part", c("s"), c("u"), c("n")), fn("split_part", c("s"), vc(","), c("n")),
		fn("split_part", c("s"), c("u"), bi(-1)), fn("split_part", vc("a,b,,c"), c("u"), c("n")),
		fn("split_part", c("s"), vc(""), c("n")), fn("split_part", c("s"), vc(","), c("i")))
	add(fn("regexp_match", c("s"), c("re")), fn("regexp_match", c("s"), vc("^a")), fn("regexp_like", c("s"), vc("(é|日)")),
		fn("regexp_match", vc("abc"), c("re")))
	add(fn("regexp_extract", c("s"), c("re")), fn("regexp_extract", c("s"), c("re"), bi(0)),
		fn("regexp_extract", c("s"), vc("([a-z]+),([a-z]*)"), bi(2)), fn("regexp_extract", c("s"), c("re"), bi(-1)),
		fn("regexp_extract", c("s"), vc("[a-c]+")), fn("regexp_extract", c("s"), vc("(a)|(b)"), bi(2)))
	add(fn("regexp_count", c("s"), c("re")), fn("regexp_count", c("s"), vc("a")), fn("regexp_count", c("s"), vc("")),
		fn("regexp_count", c("s"), vc("[a-c]+")), fn("regexp_count", c("s"), c("u")), fn("regexp_count", vc("aXaa日a"), c("u")))

	// math
	for _, x := range []string{"i", "b", "d", "m", "p"} {
		add(fn("abs", c(x)), fn("sign", c(x)), fn("floor", c(x)), fn("ceil", c(x)), fn("ceiling", c(x)), fn("round", c(x)),
			fn("sqrt", c(x)), fn("ln", c(x)), fn("log10", c(x)), fn("exp", c(x)), fn("power", c(x), c("d")), fn("mod", c(x), c("i")))
	}
	add(fn("round", c("d"), c("n")), fn("round", c("d"), bi(2)), fn("round", c("d"), bi(-1)), fn("round", c("d"), bi(-400)),
		fn("round", c("i"), c("n")), fn("round", c("b"), c("n")), fn("round", c("b"), bi(-2)), fn("round", c("i"), bi(-1)))
	for _, d := range []int64{1, -1, 3, -12, -30, 10, 0} {
		add(fn("round", c("m"), bi(d)), fn("round", c("p"), bi(d)))
	}
	add(fn("pow", c("d"), Lit(1.0/3, sqltypes.Double)), fn("power", c("i"), Lit(0.5, sqltypes.Double)),
		fn("power", c("m"), c("n")), fn("power", c("d"), c("i")), fn("mod", c("d"), c("m")), fn("mod", c("p"), c("m")),
		fn("mod", c("b"), c("n")))
	add(fn("greatest", c("i"), c("b"), c("d")), fn("least", c("i"), c("b")), fn("greatest", c("m"), c("p"), c("i")),
		fn("least", c("s"), c("u")), fn("greatest", c("ts"), c("dt")), fn("least", c("d"), Lit(nil, sqltypes.Null)),
		fn("greatest", c("i")), fn("least", c("dt"), Lit(nil, sqltypes.Date), c("dt")), fn("greatest", c("iv"), c("iv")),
		fn("least", c("m"), Lit(decimal128.FromI64(5), sqltypes.Decimal(3, 1))))
	add(fn("nullif", c("i"), c("b")), fn("nullif", c("s"), c("u")), fn("nullif", c("d"), Lit(0.0, sqltypes.Double)),
		fn("nullif", c("ts"), c("dt")), fn("nullif", c("m"), c("i")))

	// date and time
	for _, f := range []string{"year", "month", "day", "hour", "minute", "second", "millisecond", "dow", "isodow",
		"doy", "week", "isoyear", "quarter", "epoch", "YEARS", "Milliseconds"} {
		add(fn("extract", vc(f), c("ts")))
	}
	for _, f := range []string{"year", "week", "dow", "doy", "isoyear", "epoch"} {
		add(fn("date_part", vc(f), c("dt")), fn("extract", vc(f), c("tx")))
	}
	for _, u := range []string{"millisecond", "second", "minute", "hour", "day", "week", "month", "quarter", "year", "Days", "weeks"} {
		add(fn("date_trunc", vc(u), c("ts")))
	}
	add(fn("date_trunc", vc("week"), c("dt")), fn("date_trunc", vc("month"), c("tx")))
	add(fn("to_timestamp", c("tx")), fn("to_timestamp", c("i")), fn("to_timestamp", c("b")), fn("to_timestamp_ms", c("b")),
		fn("to_timestamp", c("i"), vc("ms")), fn("to_timestamp", c("b"), vc("s")))
	for _, x := range []string{"d", "m", "b", "i"} {
		for _, u := range []string{"", "s", "ms", "us"} {
			args := []Expr{c(x)}
			if u != "" {
				args = append(args, vc(u))
			}
			e := must(Func("to_timestamp", args))
			if u == "" {
				u = "s"
			}
			add(&unitHint{Expr: e, unit: u})
		}
		add(fn("to_timestamp_ms", c(x)))
	}
	add(bin("+", c("ts"), c("iv")), bin("+", c("iv"), c("ts")), bin("-", c("ts"), c("iv")), bin("-", c("ts"), c("ts")),
		bin("+", c("iv"), c("iv")), bin("-", c("iv"), c("iv")), bin("*", c("iv"), c("d")), bin("*", c("iv"), c("i")),
		bin("*", c("i"), c("iv")), bin("/", c("iv"), c("d")), bin("/", c("iv"), c("b")), bin("*", c("m"), c("iv")),
		bin("+", c("ts"), Lit(int64(msPerDay), sqltypes.Interval)), bin("-", Lit(int64(0), sqltypes.Timestamp), c("ts")),
		bin("+", c("ts"), vc("1 day 02:00:00")), must(Unary("-", c("iv"))))
	add(bin("+", c("dt"), c("i")), bin("-", c("dt"), c("i")), bin("+", c("i"), c("dt")), bin("-", c("dt"), c("dt")),
		bin("+", c("dt"), c("iv")), bin("-", c("dt"), c("iv")), bin("+", c("iv"), c("dt")), bin("+", c("dt"), c("b")),
		bin("-", c("dt"), Lit(int32(1), sqltypes.Int)), bin("<", c("ts"), c("dt")), bin("=", c("dt"), c("ts")),
		bin(">=", c("ts"), c("tx")), bin("<>", c("dt"), vc("2024-02-29")))

	// casts
	add(cast(c("ts"), sqltypes.Date), cast(c("dt"), sqltypes.Timestamp), cast(c("ts"), sqltypes.Varchar),
		cast(c("dt"), sqltypes.Varchar), cast(c("tx"), sqltypes.Timestamp), cast(c("tx"), sqltypes.Date),
		cast(c("bx"), sqltypes.Boolean), cast(c("t"), sqltypes.Int), cast(c("t"), sqltypes.BigInt),
		cast(c("i"), sqltypes.Boolean), cast(c("b"), sqltypes.Boolean), cast(c("t"), sqltypes.Varchar),
		cast(cast(c("ts"), sqltypes.Varchar), sqltypes.Timestamp), cast(cast(c("dt"), sqltypes.Varchar), sqltypes.Date),
		cast(cast(c("t"), sqltypes.Varchar), sqltypes.Boolean), cast(cast(c("d"), sqltypes.Varchar), sqltypes.Double),
		cast(c("nx"), sqltypes.Int), cast(c("nx"), sqltypes.BigInt), cast(c("nx"), sqltypes.Double),
		cast(c("nx"), sqltypes.Decimal(14, 3)), cast(c("nx"), sqltypes.Decimal(11, 1)), cast(cast(c("nx"), sqltypes.Int), sqltypes.Boolean),
		cast(cast(c("ts"), sqltypes.Date), sqltypes.Varchar), cast(c("iv"), sqltypes.Varchar))
	return out
}

// substituteSome replaces a random subset of e's columns by literals of
// their values in row, so that kernels see broadcast operands and Fold
// sees constant sub-trees.
func substituteSome(rng *rand.Rand, e Expr, row []any) Expr {
	repl := map[int]Expr{}
	for _, i := range Columns(e) {
		if rng.IntN(2) == 0 {
			repl[i] = Lit(row[i], funcCols[i].typ)
		}
	}
	return Substitute(e, repl)
}

// checkWithFold checks e and Fold(e) against the reference; a Fold error
// (a constant sub-tree failing) must be an error of the reference too.
func checkWithFold(t *testing.T, mem memory.Allocator, e Expr, batch arrow.RecordBatch, rows [][]any) {
	t.Helper()
	checkAgainstReference(t, mem, e, batch, rows)
	f, err := Fold(e)
	if err != nil {
		for _, row := range rows {
			if _, rerr := refEval(e, row); rerr != nil {
				return
			}
		}
		if len(rows) > 0 {
			t.Errorf("%s: Fold error %v, but the reference has none", e, err)
		}
		return
	}
	checkAgainstReference(t, mem, f, batch, rows)
}

func TestFunctionsAgainstReference(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	exprs := funcExprs(t)
	rng := rand.New(rand.NewPCG(3, 5))
	sizes, trials := []int{1, 3, 64, 500}, 3
	if testing.Short() {
		sizes, trials = []int{1, 3, 64}, 2
	}
	for _, size := range sizes {
		for trial := range trials {
			batch, rows := funcBatch(mem, rng, size, rng.IntN(9), trial%2 == 1)
			for _, e := range exprs {
				checkWithFold(t, mem, e, batch, rows)
				if size <= 3 {
					checkWithFold(t, mem, substituteSome(rng, e, rows[0]), batch, rows)
				}
			}
			batch.Release()
		}
	}
	// every function of the table is exercised
	seen := map[string]bool{}
	for _, e := range exprs {
		walk(e, func(x Expr) {
			if o, ok := x.(*opExpr); ok {
				seen[strings.ToLower(o.name)] = true
			}
		})
	}
	var missing []string
	for name := range functions {
		if !seen[name] && !slices.Contains([]string{"coalesce", "nullif", "abs", "mod", "strpos", "regexp_like",
			"upper", "lower", "length", "char_length", "character_length", "concat", "current_timestamp", "now",
			"date_part", "pow", "ceiling", "substr", "to_timestamp_ms"}, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("functions not covered: %v", missing)
	}
}
