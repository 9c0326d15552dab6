package expr

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

var testCols = []struct {
	name string
	typ  arrow.DataType
}{
	{"i", sqltypes.Int}, {"b", sqltypes.BigInt}, {"d", sqltypes.Double},
	{"m", sqltypes.Decimal(10, 2)}, {"p", sqltypes.Decimal(18, 4)},
	{"s", sqltypes.Varchar}, {"t", sqltypes.Boolean}, {"j", sqltypes.Int},
}

func col(name string) Expr {
	for i, c := range testCols {
		if c.name == name {
			return Col(i, c.name, c.typ)
		}
	}
	panic(name)
}

// randomBatch builds n+offset rows of random values (~20% NULL) and returns
// the batch sliced at offset, plus the rows as Go values.
func randomBatch(mem memory.Allocator, rng *rand.Rand, n, offset int) (arrow.RecordBatch, [][]any) {
	fields := make([]arrow.Field, len(testCols))
	for i, c := range testCols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	strs := []string{"", "a", "abc", "ABC", "héllo", "日本語", "a%b", "a_b", "x\\y", "  pad  ", "2024-01-01"}
	var rows [][]any
	for r := 0; r < n+offset; r++ {
		row := make([]any, len(testCols))
		for c := range testCols {
			fb := b.Field(c)
			if rng.IntN(5) == 0 {
				fb.AppendNull()
				continue
			}
			switch x := fb.(type) {
			case *array.Int32Builder:
				v := int32(rng.IntN(200) - 100)
				if rng.IntN(10) == 0 {
					v = int32(rng.Uint32())
				}
				x.Append(v)
				row[c] = v
			case *array.Int64Builder:
				v := rng.Int64N(20000) - 10000
				if rng.IntN(20) == 0 {
					v = int64(rng.Uint64())
				}
				x.Append(v)
				row[c] = v
			case *array.Float64Builder:
				v := (rng.Float64() - 0.5) * 1000
				switch rng.IntN(10) {
				case 0:
					v = math.NaN()
				case 1:
					v = 0
				}
				x.Append(v)
				row[c] = v
			case *array.Decimal128Builder:
				p := x.Type().(*arrow.Decimal128Type).Precision
				v := decimal128.FromI64(rng.Int64N(int64(math.Pow10(int(min(p, 12))))) - int64(math.Pow10(int(min(p, 12))))/2)
				if rng.IntN(10) == 0 {
					v = decimal128.Num{}
				}
				x.Append(v)
				row[c] = v
			case *array.StringBuilder:
				v := strs[rng.IntN(len(strs))]
				x.Append(v)
				row[c] = v
			case *array.BooleanBuilder:
				v := rng.IntN(2) == 0
				x.Append(v)
				row[c] = v
			}
		}
		rows = append(rows, row)
	}
	full := b.NewRecordBatch()
	defer full.Release()
	return full.NewSlice(int64(offset), int64(offset+n)), rows[offset:]
}

func equalValues(a, b any) bool {
	if alt, ok := b.(refAlternatives); ok {
		for _, v := range alt {
			if equalValues(a, v) {
				return true
			}
		}
		return false
	}
	if fa, ok := a.(float64); ok {
		fb, ok := b.(float64)
		return ok && (fa == fb || math.IsNaN(fa) && math.IsNaN(fb) || math.Abs(fa-fb) <= 1e-9*math.Abs(fa))
	}
	return a == b
}

// checkAgainstReference evaluates e vectorised and row by row.
func checkAgainstReference(t *testing.T, mem memory.Allocator, e Expr, batch arrow.RecordBatch, rows [][]any) {
	t.Helper()
	ctx := &Context{Alloc: mem, Now: time.Unix(1700000000, 0)}
	got, err := e.Eval(ctx, batch)
	var refErr error
	want := make([]any, len(rows))
	for i, row := range rows {
		v, err := refEval(e, row)
		if err != nil && refErr == nil {
			refErr = err
		}
		want[i] = v
	}
	if err != nil || refErr != nil {
		if (err == nil) != (refErr == nil) {
			t.Errorf("%s: vectorised error %v, reference error %v", e, err, refErr)
		}
		if got != nil {
			got.Release()
		}
		return
	}
	defer got.Release()
	if got.Len() != len(rows) {
		t.Fatalf("%s: %d rows, want %d", e, got.Len(), len(rows))
	}
	for i := range rows {
		if g := valueAt(got, i); !equalValues(g, want[i]) {
			t.Errorf("%s row %d %v: got %v, want %v", e, i, rows[i], g, want[i])
			return
		}
	}
}

func TestPropertiesAgainstReference(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	must := func(e Expr, err error) Expr {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	bin := func(op string, l, r Expr) Expr { return must(Binary(op, l, r)) }
	lit := func(v any, typ arrow.DataType) Expr { return Lit(v, typ) }
	var exprs []Expr
	numeric := []string{"i", "b", "d", "m", "p", "j"}
	for _, op := range []string{"+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">="} {
		for _, l := range numeric {
			for _, r := range numeric {
				exprs = append(exprs, bin(op, col(l), col(r)))
			}
			exprs = append(exprs, bin(op, col(l), lit(int32(7), sqltypes.Int)))
			exprs = append(exprs, bin(op, lit(int64(-3), sqltypes.BigInt), col(l)))
		}
	}
	cmpI := bin(">", col("i"), col("j"))
	for _, op := range []string{"AND", "OR"} {
		exprs = append(exprs, bin(op, col("t"), cmpI), bin(op, col("t"), lit(nil, sqltypes.Boolean)),
			bin(op, lit(true, sqltypes.Boolean), col("t")), bin(op, lit(false, sqltypes.Boolean), cmpI))
	}
	exprs = append(exprs,
		must(Unary("NOT", col("t"))), must(Unary("-", col("i"))), must(Unary("-", col("m"))), must(Unary("-", col("d"))),
		IsNull(col("s"), false), IsNull(col("d"), true),
		must(IsBool(col("t"), true, false)), must(IsBool(col("t"), false, true)),
		must(InList(col("i"), []Expr{lit(int32(1), sqltypes.Int), col("j"), lit(nil, sqltypes.Int)}, false)),
		must(InList(col("s"), []Expr{lit("abc", sqltypes.Varchar), lit("a", sqltypes.Varchar)}, true)),
		// a computed x is evaluated once (evalOnce)
		must(InList(must(Func("lower", []Expr{col("s")})), []Expr{lit("abc", sqltypes.Varchar), lit(nil, sqltypes.Varchar), lit("héllo", sqltypes.Varchar)}, false)),
		must(InList(bin("+", col("i"), col("j")), []Expr{lit(int32(1), sqltypes.Int), lit(int64(-4), sqltypes.BigInt)}, true)),
		must(Between(col("d"), col("i"), lit(int64(100), sqltypes.BigInt), false)),
		must(Between(col("m"), col("p"), col("b"), true)),
		must(Case(nil, []Expr{cmpI, col("t")}, []Expr{col("m"), col("i")}, col("p"))),
		must(Case(col("i"), []Expr{lit(int32(1), sqltypes.Int), col("j")}, []Expr{col("s"), lit("x", sqltypes.Varchar)}, nil)),
		must(Case(nil, []Expr{bin("=", col("j"), lit(int32(0), sqltypes.Int))}, []Expr{lit(nil, sqltypes.Null)}, bin("/", col("i"), col("j")))),
		// conditions that cannot fail are evaluated over the whole batch
		// (evalEager): literal, whole-column and gathered branch values
		must(Case(nil, []Expr{bin("=", col("s"), lit("abc", sqltypes.Varchar)),
			must(InList(col("s"), []Expr{lit("a", sqltypes.Varchar), lit("héllo", sqltypes.Varchar)}, false)), col("t")},
			[]Expr{lit("0", sqltypes.Varchar), lit(nil, sqltypes.Varchar), must(Func("upper", []Expr{col("s")}))}, col("s"))),
		must(Case(nil, []Expr{cmpI}, []Expr{lit("x", sqltypes.Varchar)}, nil)),
		must(Func("coalesce", []Expr{col("i"), col("b"), lit(int64(5), sqltypes.BigInt)})),
		must(Func("CONCAT", []Expr{col("s"), lit("-", sqltypes.Varchar), col("s")})),
		bin("||", col("s"), col("s")),
		must(Func("upper", []Expr{col("s")})), must(Func("Lower", []Expr{col("s")})), must(Func("length", []Expr{col("s")})),
	)
	for _, to := range []arrow.DataType{sqltypes.Int, sqltypes.BigInt, sqltypes.Double, sqltypes.Decimal(12, 1), sqltypes.Decimal(6, 3), sqltypes.Varchar} {
		for _, c := range numeric {
			exprs = append(exprs, must(Cast(col(c), to)))
		}
	}
	exprs = append(exprs, must(Cast(col("s"), sqltypes.Int)), must(Cast(col("t"), sqltypes.Varchar)))
	for _, p := range []string{"a%", "%b", "%b%", "a_b", "a\\%b", "%", "", "_", "%é%", "x\\\\y", "ABC"} {
		exprs = append(exprs, must(Like(col("s"), lit(p, sqltypes.Varchar), false, false)),
			must(Like(col("s"), lit(p, sqltypes.Varchar), true, true)))
	}
	exprs = append(exprs, must(Like(col("s"), col("s"), false, false)))

	rng := rand.New(rand.NewPCG(7, 11))
	for _, size := range []int{1, 3, 100, 1000} {
		for trial := 0; trial < 3; trial++ {
			batch, rows := randomBatch(mem, rng, size, rng.IntN(9))
			for _, e := range exprs {
				checkAgainstReference(t, mem, e, batch, rows)
				if f, err := Fold(e); err == nil {
					checkAgainstReference(t, mem, f, batch, rows)
				}
			}
			batch.Release()
		}
	}
}

func evalConstT(t *testing.T, e Expr, err error) any {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Fold(e)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := IsConst(f)
	if !ok {
		t.Fatalf("%s did not fold", e)
	}
	return v
}

func dec(t *testing.T, s string, p, sc int32) Expr {
	n, err := kernels.ParseDecimal(s, p, sc)
	if err != nil {
		t.Fatal(err)
	}
	return Lit(n, sqltypes.Decimal(p, sc))
}

func TestDecimalRules(t *testing.T) {
	e, err := Binary("*", dec(t, "123.45", 5, 2), dec(t, "67.89", 4, 2))
	if got := e.Type().(*arrow.Decimal128Type); got.Precision != 10 || got.Scale != 4 {
		t.Fatalf("type %s", sqltypes.Name(got))
	}
	if v := evalConstT(t, e, err); kernels.FormatDecimal(v.(decimal128.Num), 4) != "8381.0205" {
		t.Fatalf("123.45*67.89 = %s", kernels.FormatDecimal(v.(decimal128.Num), 4))
	}
	e, err = Binary("/", dec(t, "123.45", 5, 2), dec(t, "67.89", 4, 2))
	s := e.Type().(*arrow.Decimal128Type).Scale
	if v := evalConstT(t, e, err); s != 7 || kernels.FormatDecimal(v.(decimal128.Num), s) != "1.8183827" {
		t.Fatalf("123.45/67.89 = %s (scale %d)", kernels.FormatDecimal(v.(decimal128.Num), s), s)
	}
	e, err = Binary("/", dec(t, "1", 1, 0), dec(t, "0", 1, 0))
	if v := evalConstT(t, e, err); v != nil {
		t.Fatalf("1/0 = %v", v)
	}
	e, err = Binary("-", dec(t, "0", 5, 4), dec(t, "0.5", 5, 4))
	if v := evalConstT(t, e, err); kernels.FormatDecimal(v.(decimal128.Num), 4) != "-0.5000" {
		t.Fatalf("-0.5 = %s", kernels.FormatDecimal(v.(decimal128.Num), 4))
	}
	r, err := Func("round", []Expr{dec(t, "-0.5", 3, 1)})
	if v := evalConstT(t, r, err); kernels.FormatDecimal(v.(decimal128.Num), 0) != "-1" {
		t.Fatalf("round(-0.5) = %v", v)
	}
	r, err = Func("round", []Expr{Lit(-2.5, sqltypes.Double)})
	if v := evalConstT(t, r, err); v != -3.0 {
		t.Fatalf("round(-2.5) = %v", v)
	}
	c, err := Binary("=", dec(t, "1.5", 5, 1), dec(t, "1.50000", 10, 5))
	if v := evalConstT(t, c, err); v != true {
		t.Fatal("1.5 <> 1.50000")
	}
}

func TestErrorsAndNulls(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	e, _ := Binary("*", Lit(int64(math.MaxInt64), sqltypes.BigInt), Lit(int64(2), sqltypes.BigInt))
	if _, err := Fold(e); err == nil || !strings.Contains(err.Error(), "BIGINT overflow in 9223372036854775807 * 2") {
		t.Fatalf("overflow: %v", err)
	}
	for _, op := range []string{"/", "%"} {
		for _, z := range []Expr{Lit(int32(0), sqltypes.Int), Lit(0.0, sqltypes.Double)} {
			e, _ := Binary(op, Lit(int32(5), sqltypes.Int), z)
			if v := evalConstT(t, e, nil); v != nil {
				t.Errorf("5 %s 0 = %v", op, v)
			}
		}
	}
	c, _ := Cast(Lit("abc", sqltypes.Varchar), sqltypes.BigInt)
	if _, err := Fold(c); err == nil || err.Error() != `cannot cast "abc" to BIGINT` {
		t.Fatalf("cast: %v", err)
	}
	if _, err := Binary("+", Lit("a", sqltypes.Varchar), Lit(int64(1), sqltypes.BigInt)); err == nil || err.Error() != "cannot apply + to VARCHAR and BIGINT" {
		t.Fatalf("type error: %v", err)
	}
	if _, err := Func("upper", []Expr{Lit(int64(1), sqltypes.BigInt)}); err == nil || err.Error() != "function upper expects VARCHAR, got BIGINT" {
		t.Fatalf("func type error: %v", err)
	}
	if _, err := Func("foo", nil); err == nil || err.Error() != `unknown function "foo"` {
		t.Fatalf("unknown: %v", err)
	}
	// NULL IN list rules
	in, _ := InList(Lit(int32(1), sqltypes.Int), []Expr{Lit(int32(2), sqltypes.Int), Lit(nil, sqltypes.Null)}, false)
	if v := evalConstT(t, in, nil); v != nil {
		t.Errorf("1 IN (2, NULL) = %v", v)
	}
	in, _ = InList(Lit(int32(1), sqltypes.Int), []Expr{Lit(int32(1), sqltypes.Int), Lit(nil, sqltypes.Null)}, false)
	if v := evalConstT(t, in, nil); v != true {
		t.Errorf("1 IN (1, NULL) = %v", v)
	}
	// three-valued logic truth table
	vals := []any{true, false, nil}
	for _, a := range vals {
		for _, b := range vals {
			and, _ := Binary("AND", Lit(a, sqltypes.Boolean), Lit(b, sqltypes.Boolean))
			or, _ := Binary("OR", Lit(a, sqltypes.Boolean), Lit(b, sqltypes.Boolean))
			wantAnd, wantOr := any(nil), any(nil)
			if a == false || b == false {
				wantAnd = false
			} else if a == true && b == true {
				wantAnd = true
			}
			if a == true || b == true {
				wantOr = true
			} else if a == false && b == false {
				wantOr = false
			}
			if v := evalConstT(t, and, nil); v != wantAnd {
				t.Errorf("%v AND %v = %v", a, b, v)
			}
			if v := evalConstT(t, or, nil); v != wantOr {
				t.Errorf("%v OR %v = %v", a, b, v)
			}
		}
	}
	// NaN = NaN and NaN > Inf
	nan, _ := Binary("=", Lit(math.NaN(), sqltypes.Double), Lit(math.NaN(), sqltypes.Double))
	gt, _ := Binary(">", Lit(math.NaN(), sqltypes.Double), Lit(math.Inf(1), sqltypes.Double))
	if evalConstT(t, nan, nil) != true || evalConstT(t, gt, nil) != true {
		t.Error("NaN ordering")
	}
	// LIKE escapes
	for p, want := range map[string]bool{`a\%b`: true, `a\_b`: false, `a%`: true, `a\\%`: false} {
		l, err := Like(Lit("a%b", sqltypes.Varchar), Lit(p, sqltypes.Varchar), false, false)
		if v := evalConstT(t, l, err); v != want {
			t.Errorf("'a%%b' LIKE %q = %v", p, v)
		}
	}
	if _, err := Like(Lit("a", sqltypes.Varchar), Lit(`a\`, sqltypes.Varchar), false, false); err == nil {
		t.Error("pattern ending with escape accepted")
	}
}

func TestTimeFunctions(t *testing.T) {
	ts := func(s string) Expr {
		ms, err := kernels.ParseTimestamp(s)
		if err != nil {
			t.Fatal(err)
		}
		return Lit(ms, sqltypes.Timestamp)
	}
	str := func(e Expr, err error) string {
		v := evalConstT(t, e, err)
		c, err := Cast(Lit(v, e.Type()), sqltypes.Varchar)
		return evalConstT(t, c, err).(string)
	}
	if got := str(Binary("+", ts("2024-01-01T00:00:00Z"), Lit(int64(5000), sqltypes.Interval))); got != "2024-01-01T00:00:05.000Z" {
		t.Errorf("ts + interval = %s", got)
	}
	if got := str(Binary("-", ts("2024-01-01 00:00:00"), Lit(int64(kernels.MillisPerDay), sqltypes.Interval))); got != "2023-12-31T00:00:00.000Z" {
		t.Errorf("ts - interval = %s", got)
	}
	if got := str(Binary("-", ts("2024-01-02T01:00:00+01:00"), ts("2024-01-01T00:00:00Z"))); got != "1 day 00:00:00" {
		t.Errorf("ts - ts = %s", got)
	}
	cmp, err := Binary(">", ts("2024-03-01T00:00:00Z"), Lit("2024-02-29T23:59:59.999Z", sqltypes.Varchar))
	if v := evalConstT(t, cmp, err); v != true {
		t.Error("ts > varchar literal")
	}
	base := ts("2024-05-15T13:45:30.250+00:00")
	for field, want := range map[string]any{"year": int64(2024), "month": int64(5), "day": int64(15), "hour": int64(13),
		"minute": int64(45), "second": int64(30), "millisecond": int64(30250), "dow": int64(3), "doy": int64(136),
		"quarter": int64(2), "week": int64(20), "epoch": 1715780730.25} {
		e, err := Func("EXTRACT", []Expr{Lit(field, sqltypes.Varchar), base})
		if v := evalConstT(t, e, err); v != want {
			t.Errorf("extract %s = %v want %v", field, v, want)
		}
	}
	for unit, want := range map[string]string{"second": "2024-05-15T13:45:30.000Z", "minute": "2024-05-15T13:45:00.000Z",
		"hour": "2024-05-15T13:00:00.000Z", "day": "2024-05-15T00:00:00.000Z", "week": "2024-05-13T00:00:00.000Z",
		"month": "2024-05-01T00:00:00.000Z", "quarter": "2024-04-01T00:00:00.000Z", "year": "2024-01-01T00:00:00.000Z"} {
		if got := str(Func("date_trunc", []Expr{Lit(unit, sqltypes.Varchar), base})); got != want {
			t.Errorf("date_trunc %s = %s", unit, got)
		}
	}
	if got := str(Func("to_timestamp", []Expr{Lit("2024-01-01T02:00:00+02:00", sqltypes.Varchar)})); got != "2024-01-01T00:00:00.000Z" {
		t.Errorf("to_timestamp = %s", got)
	}
	if got := str(Func("to_timestamp", []Expr{Lit(1.5, sqltypes.Double)})); got != "1970-01-01T00:00:01.500Z" {
		t.Errorf("to_timestamp(1.5) = %s", got)
	}
	now, _ := Func("now", nil)
	if f, _ := Fold(now); f != now {
		t.Error("now() folded")
	}
}
