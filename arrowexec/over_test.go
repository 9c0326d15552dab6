package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

var overDec = sqltypes.Decimal(10, 2)

var overInSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "k", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "v", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "d", Type: overDec, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: timestampMS},
	{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64},
}, nil)

const (
	oID = iota
	oK
	oV
	oX
	oD
	oS
	oTS
	oWM
)

type overRow struct {
	id     int64
	k, v   *int64
	x      *float64
	d      *int64 // unscaled, scale 2
	s      *string
	ts, wm int64
}

// overSource replays rows in batches whose sizes come from size(); each
// message carries the watermark of its last row. Batches are sliced out
// of a larger one now and then, to exercise array offsets.
type overSource struct {
	alloc memory.Allocator
	rows  []overRow
	size  func() int
	i     int
}

func (s *overSource) Schema() *arrow.Schema      { return overInSchema }
func (s *overSource) Open(context.Context) error { return nil }
func (s *overSource) Close() error               { return nil }
func (s *overSource) Next(ctx context.Context) (Message, error) {
	if s.i >= len(s.rows) {
		return Message{}, io.EOF
	}
	n := min(s.size(), len(s.rows)-s.i)
	pad := s.i % 2 // a leading row sliced away
	b := array.NewRecordBuilder(s.alloc, overInSchema)
	defer b.Release()
	put := func(r overRow) {
		b.Field(oID).(*array.Int64Builder).Append(r.id)
		for c, p := range map[int]*int64{oK: r.k, oV: r.v} {
			if p != nil {
				b.Field(c).(*array.Int64Builder).Append(*p)
			} else {
				b.Field(c).(*array.Int64Builder).AppendNull()
			}
		}
		if r.x != nil {
			b.Field(oX).(*array.Float64Builder).Append(*r.x)
		} else {
			b.Field(oX).(*array.Float64Builder).AppendNull()
		}
		if r.d != nil {
			b.Field(oD).(*array.Decimal128Builder).Append(decimal128.FromI64(*r.d))
		} else {
			b.Field(oD).(*array.Decimal128Builder).AppendNull()
		}
		if r.s != nil {
			b.Field(oS).(*array.StringBuilder).Append(*r.s)
		} else {
			b.Field(oS).(*array.StringBuilder).AppendNull()
		}
		b.Field(oTS).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ts))
		b.Field(oWM).(*array.Int64Builder).Append(r.wm)
	}
	if pad > 0 {
		put(s.rows[s.i])
	}
	for j := 0; j < n; j++ {
		put(s.rows[s.i+j])
	}
	s.i += n
	full := b.NewRecordBatch()
	if pad == 0 {
		return Message{Batch: full, Watermark: s.rows[s.i-1].wm}, nil
	}
	defer full.Release()
	return Message{Batch: full.NewSlice(int64(pad), full.NumRows()), Watermark: s.rows[s.i-1].wm}, nil
}

// genOverRows makes n rows: event times mostly increasing, some out of
// order within delay, some late, ties; few keys; NULLs everywhere.
func genOverRows(r *rand.Rand, n int, delay int64) []overRow {
	var rows []overRow
	t, run := int64(1000), int64(math.MinInt64)
	i64 := func(v int64) *int64 { return &v }
	strs := []string{"ant", "bee", "cat", "", "dog"}
	for i := 0; i < n; i++ {
		switch x := r.IntN(20); {
		case x < 10:
			t += r.Int64N(3)
		case x < 11:
			t += 12 + r.Int64N(15)
		}
		ts := t
		switch x := r.IntN(10); {
		case x < 2:
			ts -= r.Int64N(delay + 1)
		case x < 3:
			ts -= delay + 1 + r.Int64N(20)
		}
		wm := int64(NoWatermark)
		if run != math.MinInt64 {
			wm = run - delay
		}
		row := overRow{id: int64(i), ts: ts, wm: wm}
		if r.IntN(10) > 0 {
			row.k = i64(r.Int64N(3))
		}
		if r.IntN(6) > 0 {
			row.v = i64(r.Int64N(40) - 10)
		}
		if r.IntN(6) > 0 {
			x := float64(r.IntN(40)-8) / 4
			row.x = &x
		}
		if r.IntN(6) > 0 {
			row.d = i64(r.Int64N(2000) - 500)
		}
		if r.IntN(6) > 0 {
			row.s = &strs[r.IntN(len(strs))]
		}
		rows = append(rows, row)
		run = max(run, ts)
	}
	return rows
}

func overCol(i int) expr.Expr {
	f := overInSchema.Field(i)
	return expr.Col(i, f.Name, f.Type)
}

// overTestCalls are the calls the property test checks, over spec 0
// (PARTITION BY k) and spec 1 (PARTITION BY s); withLead adds LEADs.
func overTestCalls(withLead bool, whole1 bool) []OverCall {
	f := func(n int64) OverFrame { return OverFrame{Preceding: n} }
	un := OverFrame{Preceding: -1}
	v, x, d, s := overCol(oV), overCol(oX), overCol(oD), overCol(oS)
	big, dbl := sqltypes.BigInt, sqltypes.Double
	calls := []OverCall{
		{Func: "row_number", Type: big},
		{Func: "rank", Type: big},
		{Func: "dense_rank", Type: big},
		{Func: "lag", Arg: v, Offset: 2, Default: expr.Lit(int64(-1), big), Type: big},
		{Func: "lag", Arg: s, Offset: 1, Type: sqltypes.Varchar},
		{Func: "lag", Arg: d, Offset: 0, Type: overDec},
		{Func: "first_value", Arg: v, Frame: f(2), Type: big},
		{Func: "first_value", Arg: s, Frame: un, Type: sqltypes.Varchar},
		{Func: "last_value", Arg: x, Frame: un, Type: dbl},
		{Func: "count_star", Frame: f(3), Type: big},
		{Func: "count", Arg: v, Frame: un, Type: big},
		{Func: "count", Arg: x, Frame: f(1), Type: big},
		{Func: "sum", Arg: v, Frame: f(3), Type: big},
		{Func: "avg", Arg: v, Frame: un, Type: dbl},
		{Func: "sum", Arg: d, Frame: f(2), Type: sqltypes.Decimal(38, 2)},
		{Func: "avg", Arg: d, Frame: f(4), Type: sqltypes.Decimal(38, 6)},
		{Func: "min", Arg: v, Frame: f(2), Type: big},
		{Func: "max", Arg: s, Frame: f(1), Type: sqltypes.Varchar},
		{Func: "max", Arg: x, Frame: un, Type: dbl},
		{Func: "min", Arg: d, Frame: un, Type: overDec},
		{Func: "min", Arg: x, Frame: f(0), Type: dbl},
		{Func: "sum", Arg: x, Frame: f(2), Type: dbl},
		{Func: "stddev_samp", Arg: x, Frame: f(3), Type: dbl},
		{Func: "var_pop", Arg: v, Frame: un, Type: dbl},
		{Func: "row_number", Spec: 1, Type: big},
		{Func: "sum", Arg: v, Spec: 1, Frame: f(1), Type: big},
		{Func: "avg", Arg: d, Spec: 1, Frame: un, Type: sqltypes.Decimal(38, 6)},
		{Func: "lag", Arg: x, Spec: 1, Offset: 1, Default: expr.Lit(0.5, dbl), Type: dbl},
		{Func: "rank", Spec: 2, Type: big},
		{Func: "dense_rank", Spec: 2, Type: big},
		{Func: "sum", Arg: x, Spec: 2, Frame: f(1), Type: dbl},
		{Func: "first_value", Arg: d, Spec: 2, Frame: un, Type: overDec},
		{Func: "max", Arg: d, Spec: 2, Frame: f(3), Type: overDec},
	}
	if whole1 {
		for i := range calls {
			if calls[i].Spec == 1 && calls[i].Func != "lag" && calls[i].Func != "row_number" {
				calls[i].Frame = OverFrame{WholePartition: true}
			}
		}
	}
	if withLead {
		calls = append(calls,
			OverCall{Func: "lead", Arg: v, Offset: 1, Type: big},
			OverCall{Func: "lead", Arg: s, Offset: 3, Default: expr.Lit("zz", sqltypes.Varchar), Type: sqltypes.Varchar},
			OverCall{Func: "lead", Arg: d, Offset: 0, Type: overDec})
	}
	return calls
}

func overTestConfig(specs []OverSpec, calls []OverCall, win *WindowSpec, ordered bool) OverConfig {
	fields := append([]arrow.Field(nil), overInSchema.Fields()[:oWM]...)
	if win != nil {
		fields = append(fields, arrow.Field{Name: "window_start", Type: sqltypes.Timestamp}, arrow.Field{Name: "window_end", Type: sqltypes.Timestamp})
	}
	for i, c := range calls {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("c%d_%s", i, c.Func), Type: c.Type, Nullable: true})
	}
	if win == nil {
		fields = append(fields, arrow.Field{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	}
	return OverConfig{Query: "q", Source: "s", Specs: specs, Calls: calls, Window: win, TimeCol: oTS, WMCol: oWM,
		Ordered: ordered, Late: LateDataSpec{Strategy: "drop"}, Schema: arrow.NewSchema(fields, nil)}
}

// renderCell formats row i of a for comparison: DOUBLE to 6 decimals
// (moving sums and variances round differently from the reference).
func renderCell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "NULL"
	}
	switch a := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return fmtF(a.Value(i))
	case *array.Decimal128:
		return kernels.FormatDecimal(a.Value(i), a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.String:
		return strconv.Quote(a.Value(i))
	case *array.Timestamp:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	}
	return a.ValueStr(i)
}

func fmtF(f float64) string {
	s := fmt.Sprintf("%.6f", f)
	if s == "-0.000000" {
		s = "0.000000"
	}
	return s
}

// overOut is one output row: window start (or ""), id, rendered results.
type overOut struct {
	win string
	id  int64
	res string
}

func (r overOut) String() string { return fmt.Sprintf("%s#%d %s", r.win, r.id, r.res) }

// runOver drains an OverOp over rows at the given batch sizes, checking
// that output watermarks never go back and that no row is behind the
// previous output watermark (downstream, none would be late).
func runOver(t *testing.T, alloc memory.Allocator, rows []overRow, size func() int, cfg OverConfig) ([]overOut, AggregateStats) {
	t.Helper()
	ctx := context.Background()
	op, err := NewOver(alloc, &overSource{alloc: alloc, rows: rows, size: size}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	var out []overOut
	lastWM := int64(NoWatermark)
	first := overInSchema.NumFields() - 1
	if cfg.Window != nil {
		first += 2
	}
	for {
		m, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Watermark < lastWM {
			t.Fatalf("watermark went back from %d to %d", lastWM, m.Watermark)
		}
		if b := m.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				o := overOut{id: b.Column(oID).(*array.Int64).Value(i)}
				if cfg.Window != nil {
					o.win = renderCell(b.Column(oWM), i)
				} else {
					key := b.Column(int(b.NumCols()) - 1).(*array.Int64).Value(i)
					if cfg.Ordered {
						key = int64(b.Column(oTS).(*array.Timestamp).Value(i))
					}
					if key < lastWM && lastWM != NoWatermark && cfg.Late.Strategy != "include_in_next_window" {
						t.Fatalf("row %d (key %d) emitted after watermark %d", o.id, key, lastWM)
					}
				}
				var cells []string
				for c := first; c < first+len(cfg.Calls); c++ {
					cells = append(cells, renderCell(b.Column(c), i))
				}
				o.res = strings.Join(cells, " ")
				out = append(out, o)
			}
		}
		lastWM = max(lastWM, m.Watermark)
		m.Release()
	}
	if lastWM != FinalWatermark {
		t.Fatalf("final watermark %d", lastWM)
	}
	return out, op.Stats()
}

// ---- the reference: row at a time, by the definitions ----

type refSpec struct {
	part  func(r *overRow) string
	order []refOrder
}

type refOrder struct {
	key        func(r *overRow) any // int64, float64, string or nil (NULL)
	desc, nfst bool
}

func refCompareOrder(o []refOrder, a, b *overRow) int {
	for _, ob := range o {
		x, y := ob.key(a), ob.key(b)
		c := 0
		switch {
		case x == nil && y == nil:
		case x == nil:
			c = 1
			if ob.nfst {
				c = -1
			}
		case y == nil:
			c = -1
			if ob.nfst {
				c = 1
			}
		default:
			switch x := x.(type) {
			case int64:
				c = cmpOrdered(x, y.(int64))
			case float64:
				c = cmpOrdered(x, y.(float64))
			case string:
				c = cmpOrdered(x, y.(string))
			}
			if ob.desc {
				c = -c
			}
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// refRun evaluates calls over rows taken in processing order (seq); peers
// by specs' order keys. It returns results by id.
func refRun(seq []*overRow, specs []refSpec, calls []OverCall, sortWithin bool) map[int64][]string {
	res := map[int64][]string{}
	for _, r := range seq {
		res[r.id] = make([]string, len(calls))
	}
	for si, sp := range specs {
		var order []string
		parts := map[string][]*overRow{}
		for _, r := range seq {
			p := sp.part(r)
			if _, ok := parts[p]; !ok {
				order = append(order, p)
			}
			parts[p] = append(parts[p], r)
		}
		for _, p := range order {
			rows := parts[p]
			if sortWithin {
				sort.SliceStable(rows, func(i, j int) bool { return refCompareOrder(sp.order, rows[i], rows[j]) < 0 })
			}
			for ci, c := range calls {
				if c.Spec != si {
					continue
				}
				for i, r := range rows {
					res[r.id][ci] = refCall(c, rows, i, sp.order)
				}
			}
		}
	}
	return res
}

func refCall(c OverCall, rows []*overRow, i int, order []refOrder) string {
	lo := 0
	hi := i
	switch {
	case c.Frame.WholePartition:
		hi = len(rows) - 1
	case c.Frame.Preceding >= 0:
		lo = max(0, i-int(c.Frame.Preceding))
	}
	frame := rows[lo : hi+1]
	get := func(r *overRow) any {
		switch e := c.Arg.String(); e {
		case "v":
			if r.v == nil {
				return nil
			}
			return *r.v
		case "x":
			if r.x == nil {
				return nil
			}
			return *r.x
		case "d":
			if r.d == nil {
				return nil
			}
			return *r.d
		case "s":
			if r.s == nil {
				return nil
			}
			return *r.s
		}
		panic(c.Arg.String())
	}
	render := func(v any) string {
		switch v := v.(type) {
		case nil:
			return "NULL"
		case int64:
			if c.Arg != nil && c.Arg.String() == "d" {
				return kernels.FormatDecimal(decimal128.FromI64(v), 2)
			}
			return strconv.FormatInt(v, 10)
		case float64:
			return fmtF(v)
		case string:
			return strconv.Quote(v)
		}
		panic(v)
	}
	def := func() string {
		if c.Default == nil {
			return "NULL"
		}
		v, _ := expr.IsConst(c.Default)
		return render(v)
	}
	peer := func(a, b int) bool { return len(order) == 0 || refCompareOrder(order, rows[a], rows[b]) == 0 }
	switch c.Func {
	case "row_number":
		return strconv.Itoa(i + 1)
	case "rank":
		j := i
		for j > 0 && peer(j-1, i) {
			j--
		}
		return strconv.Itoa(j + 1)
	case "dense_rank":
		n := 1
		for j := 1; j <= i; j++ {
			if !peer(j-1, j) {
				n++
			}
		}
		return strconv.Itoa(n)
	case "lag":
		if i-int(c.Offset) < 0 {
			return def()
		}
		return render(get(rows[i-int(c.Offset)]))
	case "lead":
		if i+int(c.Offset) >= len(rows) {
			return def()
		}
		return render(get(rows[i+int(c.Offset)]))
	case "first_value":
		return render(get(frame[0]))
	case "last_value":
		return render(get(frame[len(frame)-1]))
	case "count_star":
		return strconv.Itoa(len(frame))
	}
	var vals []any
	for _, r := range frame {
		if v := get(r); v != nil {
			vals = append(vals, v)
		}
	}
	if c.Func == "count" {
		return strconv.Itoa(len(vals))
	}
	if len(vals) == 0 {
		return "NULL"
	}
	isDec := c.Arg.String() == "d"
	switch c.Func {
	case "sum", "avg":
		switch vals[0].(type) {
		case int64:
			var s int64
			for _, v := range vals {
				s += v.(int64)
			}
			if c.Func == "sum" {
				return render(s)
			}
			if !isDec {
				return fmtF(float64(s) / float64(len(vals)))
			}
			// DECIMAL(38,6): sum (scale 2) / count, half away from zero
			num, n := s*10000, int64(len(vals))
			q, rem := num/n, num%n
			if 2*abs64(rem) >= n {
				if num < 0 {
					q--
				} else {
					q++
				}
			}
			return kernels.FormatDecimal(decimal128.FromI64(q), 6)
		case float64:
			var s float64
			for _, v := range vals {
				s += v.(float64)
			}
			if c.Func == "avg" {
				s /= float64(len(vals))
			}
			return fmtF(s)
		}
	case "min", "max":
		best := vals[0]
		for _, v := range vals[1:] {
			less := false
			switch b := best.(type) {
			case int64:
				less = v.(int64) < b
			case float64:
				less = v.(float64) < b
			case string:
				less = v.(string) < b
			}
			if less == (c.Func == "min") && v != best {
				best = v
			}
		}
		return render(best)
	case "stddev_samp", "var_pop":
		var fs []float64
		for _, v := range vals {
			switch v := v.(type) {
			case int64:
				fs = append(fs, float64(v))
			case float64:
				fs = append(fs, v)
			}
		}
		n := float64(len(fs))
		if c.Func == "stddev_samp" && len(fs) < 2 {
			return "NULL"
		}
		var mean float64
		for _, f := range fs {
			mean += f
		}
		mean /= n
		var m2 float64
		for _, f := range fs {
			m2 += (f - mean) * (f - mean)
		}
		if c.Func == "var_pop" {
			return fmtF(m2 / n)
		}
		return fmtF(math.Sqrt(m2 / (n - 1)))
	}
	panic(c.Func)
}

func cmpOrdered[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func keyPart(r *overRow) string {
	if r.k == nil {
		return "null"
	}
	return strconv.FormatInt(*r.k, 10)
}

func strPart(r *overRow) string {
	if r.s == nil {
		return "null"
	}
	return "s:" + *r.s
}

func tsKey(r *overRow) any { return r.ts }

func vKey(r *overRow) any {
	if r.v == nil {
		return nil
	}
	return *r.v
}

func xKey(r *overRow) any {
	if r.x == nil {
		return nil
	}
	return *r.x
}

func dKey(r *overRow) any {
	if r.d == nil {
		return nil
	}
	return *r.d
}

func sKey(r *overRow) any {
	if r.s == nil {
		return nil
	}
	return *r.s
}

func keyStrPart(r *overRow) string { return keyPart(r) + "/" + strPart(r) }

// refStreaming is the reference of an un-windowed query: rows in
// processing order (arrival, or (ts, arrival) without the late ones).
func refStreaming(rows []overRow, specs []refSpec, calls []OverCall, ordered bool) []overOut {
	var seq []*overRow
	for i := range rows {
		r := &rows[i]
		if ordered && r.ts < r.wm {
			continue // late: dropped
		}
		seq = append(seq, r)
	}
	if ordered {
		sort.SliceStable(seq, func(i, j int) bool { return seq[i].ts < seq[j].ts })
	}
	res := refRun(seq, specs, calls, false)
	var out []overOut
	for _, r := range seq {
		out = append(out, overOut{id: r.id, res: strings.Join(res[r.id], " ")})
	}
	return out
}

// refWindowed is the reference of a windowed query: each row in its open
// windows, windows by end.
func refWindowed(rows []overRow, specs []refSpec, calls []OverCall, w *WindowSpec) []overOut {
	wins := map[int64][]*overRow{}
	for i := range rows {
		r := &rows[i]
		for s := kernels.FloorDiv(r.ts, w.Advance) * w.Advance; s > r.ts-w.Size; s -= w.Advance {
			if s+w.Size > r.wm {
				wins[s] = append(wins[s], r)
			}
		}
	}
	var starts []int64
	for s := range wins {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	var out []overOut
	for _, s := range starts {
		seq := wins[s]
		res := refRun(seq, specs, calls, true)
		ws := strconv.FormatInt(s, 10)
		for _, r := range seq {
			out = append(out, overOut{win: ws, id: r.id, res: strings.Join(res[r.id], " ")})
		}
	}
	return out
}

func sortedOut(o []overOut) []string {
	var s []string
	for _, r := range o {
		s = append(s, r.String())
	}
	slices.Sort(s)
	return s
}

func diffOut(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: row %d differs\n got  %s\n want %s", what, i, got[i], want[i])
		}
	}
	t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
}

// TestOverMatchesReference runs random streams with out-of-order, late
// and NULL values through OverOp at random batch sizes (and sliced
// batches) and checks every call of every row against a row-at-a-time
// evaluation of the definitions: un-windowed in arrival order, ordered
// by event time (with LEAD, whose rows complete later), tumbling and
// sliding windows.
func TestOverMatchesReference(t *testing.T) {
	const delay = 6
	byK := OverSpec{PartitionBy: []expr.Expr{overCol(oK)}}
	byS := OverSpec{PartitionBy: []expr.Expr{overCol(oS)}}
	refK := refSpec{part: keyPart}
	refS := refSpec{part: strPart}
	ordTS := []OverOrder{{Expr: overCol(oTS)}}
	refTS := []refOrder{{key: tsKey}}
	// windowed: spec 0 ordered by v DESC NULLS FIRST then x ASC NULLS LAST
	winOrd := []OverOrder{{Expr: overCol(oV), Desc: true, NullsFirst: true}, {Expr: overCol(oX)}}
	refWinOrd := []refOrder{{key: vKey, desc: true, nfst: true}, {key: xKey}}
	// spec 2: windowed, one partition ordered by s DESC NULLS LAST, d ASC
	// NULLS FIRST; else PARTITION BY k, s
	win2 := OverSpec{OrderBy: []OverOrder{{Expr: overCol(oS), Desc: true}, {Expr: overCol(oD), NullsFirst: true}}}
	refWin2 := refSpec{part: func(*overRow) string { return "" }, order: []refOrder{{key: sKey, desc: true}, {key: dKey, nfst: true}}}
	byKS := []expr.Expr{overCol(oK), overCol(oS)}
	type mode struct {
		name    string
		win     *WindowSpec
		ordered bool
		lead    bool
	}
	modes := []mode{
		{name: "arrival", lead: false},
		{name: "arrival-lead", lead: true},
		{name: "ordered", ordered: true},
		{name: "ordered-lead", ordered: true, lead: true},
		{name: "tumbling", win: &WindowSpec{Kind: Tumbling, Size: 10, Advance: 10}, lead: true},
		{name: "sliding", win: &WindowSpec{Kind: Sliding, Size: 20, Advance: 5}, lead: true},
	}
	seeds := uint64(4)
	if testing.Short() {
		seeds = 1
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		rows := genOverRows(r, 250+r.IntN(250), delay)
		for _, m := range modes {
			t.Run(fmt.Sprintf("%s/seed%d", m.name, seed), func(t *testing.T) {
				var specs []OverSpec
				var rspecs []refSpec
				calls := overTestCalls(m.lead, m.win != nil)
				switch {
				case m.win != nil:
					specs = []OverSpec{{PartitionBy: byK.PartitionBy, OrderBy: winOrd}, byS, win2}
					rspecs = []refSpec{{part: keyPart, order: refWinOrd}, refS, refWin2}
				case m.ordered:
					// spec 2 has no ORDER BY: rows in event-time order, all peers
					specs = []OverSpec{{PartitionBy: byK.PartitionBy, OrderBy: ordTS}, {PartitionBy: byS.PartitionBy, OrderBy: ordTS}, {PartitionBy: byKS}}
					rspecs = []refSpec{{part: keyPart, order: refTS}, {part: strPart, order: refTS}, {part: keyStrPart}}
				default:
					specs = []OverSpec{byK, byS, {PartitionBy: byKS}}
					rspecs = []refSpec{refK, refS, {part: keyStrPart}}
				}
				cfg := overTestConfig(specs, calls, m.win, m.ordered)
				var want []overOut
				if m.win != nil {
					want = refWindowed(rows, rspecs, calls, m.win)
				} else {
					want = refStreaming(rows, rspecs, calls, m.ordered)
				}
				var first []string
				sizes := map[string]func() int{
					"1":      func() int { return 1 },
					"3":      func() int { return 3 },
					"random": func() int { return 1 + r.IntN(40) },
					"all":    func() int { return 1 << 20 },
				}
				for _, name := range []string{"1", "3", "random", "all"} {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					got, _ := runOver(t, mem, rows, sizes[name], cfg)
					mem.AssertSize(t, 0)
					var g []string
					for _, o := range got {
						g = append(g, o.String())
					}
					if first == nil {
						first = g
					} else {
						diffOut(t, "batch size "+name+" vs 1 (order included)", g, first)
					}
					if !m.lead || m.win != nil {
						// without LEAD rows come out in processing order
						var w []string
						for _, o := range want {
							w = append(w, o.String())
						}
						if m.win != nil { // windows by end; rows in spec 0's order: compare sets per window
							diffOut(t, "batch size "+name, sortedOut(got), sortedOut(want))
						} else {
							diffOut(t, "batch size "+name, g, w)
						}
					} else {
						diffOut(t, "batch size "+name, sortedOut(got), sortedOut(want))
					}
				}
			})
		}
	}
}

// TestOverLateRows checks late-row handling of an ordered query: dropped
// and counted, dead-lettered, or processed at their watermark.
func TestOverLateRows(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	rows := []overRow{
		{id: 0, k: i64(1), v: i64(1), ts: 10, wm: NoWatermark},
		{id: 1, k: i64(1), v: i64(2), ts: 20, wm: 5},
		{id: 2, k: i64(1), v: i64(3), ts: 12, wm: 15}, // late
		{id: 3, k: i64(1), v: i64(4), ts: 16, wm: 15},
	}
	spec := []OverSpec{{PartitionBy: []expr.Expr{overCol(oK)}, OrderBy: []OverOrder{{Expr: overCol(oTS)}}}}
	calls := []OverCall{{Func: "lag", Arg: overCol(oV), Offset: 1, Type: sqltypes.BigInt}}
	for _, tc := range []struct {
		strategy string
		want     string
		stats    AggregateStats
		dead     int
	}{
		{"drop", "#0 NULL|#3 1|#1 4", AggregateStats{LateDropped: 1}, 0},
		{"dead_letter", "#0 NULL|#3 1|#1 4", AggregateStats{LateDeadLettered: 1}, 1},
		{"include_in_next_window", "#0 NULL|#2 1|#3 3|#1 4", AggregateStats{LateRedirected: 1}, 0},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			cfg := overTestConfig(spec, calls, nil, true)
			cfg.Late.Strategy = tc.strategy
			dl := &countingDeadLetter{}
			cfg.DeadLetter = dl
			got, stats := runOver(t, mem, rows, func() int { return 1 }, cfg)
			var parts []string
			for _, o := range got {
				parts = append(parts, o.String())
			}
			if s := strings.Join(parts, "|"); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
			if stats != tc.stats {
				t.Errorf("stats %+v, want %+v", stats, tc.stats)
			}
			if dl.n != tc.dead {
				t.Errorf("%d dead letters, want %d", dl.n, tc.dead)
			}
		})
	}
}

type countingDeadLetter struct{ n int }

func (d *countingDeadLetter) DeadLetter(context.Context, DeadLetterRecord) error { d.n++; return nil }

// TestOverMemoryLimit: state over many partitions fails the query with an
// error wrapping resource.ErrMemoryLimit.
func TestOverMemoryLimit(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var rows []overRow
	for i := range 20000 {
		k, v := int64(i), int64(i)
		rows = append(rows, overRow{id: int64(i), k: &k, v: &v, ts: int64(i), wm: int64(i - 1)})
	}
	spec := []OverSpec{{PartitionBy: []expr.Expr{overCol(oK)}}}
	calls := []OverCall{{Func: "avg", Arg: overCol(oV), Frame: OverFrame{Preceding: 4}, Type: sqltypes.Double}}
	rm := resource.NewManager(mem, 256<<10)
	op, err := NewOver(rm.Query("q"), &overSource{alloc: memory.NewGoAllocator(), rows: rows, size: func() int { return 1000 }}, overTestConfig(spec, calls, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	err = func() (err error) {
		defer resource.Recover(&err)
		ctx := context.Background()
		if err := op.Open(ctx); err != nil {
			return err
		}
		for {
			m, err := op.Next(ctx)
			if err != nil {
				return err
			}
			m.Release()
		}
	}()
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, resource.ErrMemoryLimit) {
		t.Fatalf("got %v, want an error wrapping ErrMemoryLimit", err)
	}
	if rm.Used() != 0 {
		t.Fatalf("%d bytes still accounted after Close", rm.Used())
	}
}

// TestOverLeadStateIsCompacted: quiet partitions' pending rows must not
// keep every batch they came in alive; and they hold the output watermark
// back to the oldest of them.
func TestOverLeadStateIsCompacted(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var rows []overRow
	for i := range 50000 {
		k, v := int64(1), int64(i)
		if i%500 == 0 {
			k = int64(-i) - 1 // a partition of one row: it waits for its LEAD until the end
		}
		rows = append(rows, overRow{id: int64(i), k: &k, v: &v, ts: int64(i), wm: int64(i - 1)})
	}
	spec := []OverSpec{{PartitionBy: []expr.Expr{overCol(oK)}}}
	calls := []OverCall{{Func: "lead", Arg: overCol(oV), Offset: 1, Type: sqltypes.BigInt}}
	op, err := NewOver(mem, &overSource{alloc: mem, rows: rows, size: func() int { return 500 }}, overTestConfig(spec, calls, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	n, maxChunks, maxLive := 0, 0, int64(0)
	var lastWM int64 = NoWatermark
	for {
		m, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n += int(m.Rows())
		lastWM = m.Watermark
		if m.Watermark != FinalWatermark && m.Watermark > 0 {
			t.Fatalf("output watermark %d passed the waiting row's watermark", m.Watermark)
		}
		m.Release()
		maxChunks = max(maxChunks, len(op.lead.chunks))
		maxLive = max(maxLive, op.lead.liveRows)
	}
	if n != len(rows) || lastWM != FinalWatermark {
		t.Fatalf("%d rows, final watermark %d", n, lastWM)
	}
	if maxLive > 6000 {
		t.Fatalf("up to %d rows retained for at most 101 pending rows (%d chunks)", maxLive, maxChunks)
	}
}

// oneRun describes n rows of one partition, positions 0..n-1.
func oneRun(n int) *overRows {
	r := &overRows{n: n, pids: make([]uint32, n), pos: make([]int64, n), parts: 1}
	for i := range r.pos {
		r.pos[i] = int64(i)
	}
	return r
}

func evalStrings(t *testing.T, alloc memory.Allocator, c OverCall, arg arrow.Array) string {
	t.Helper()
	e, err := newOverEval(&c)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.eval(alloc, oneRun(arg.Len()), arg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if !arrow.TypeEqual(out.DataType(), c.Type) {
		t.Fatalf("%s: result type %s, want %s", c.Func, out.DataType(), c.Type)
	}
	var s []string
	for i := 0; i < out.Len(); i++ {
		s = append(s, out.ValueStr(i))
	}
	return strings.Join(s, " ")
}

// TestOverNonFiniteDoubles: an infinity or NaN leaving a moving frame
// does not poison the sums and variances after it.
func TestOverNonFiniteDoubles(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := array.NewFloat64Builder(mem)
	b.AppendValues([]float64{1, math.Inf(1), 2, 3, math.NaN(), 4, 5, math.Inf(-1), math.Inf(1), 6, 7}, nil)
	x := b.NewArray()
	b.Release()
	defer x.Release()
	dbl := sqltypes.Double
	for _, tc := range []struct {
		c    OverCall
		want string
	}{
		{OverCall{Func: "sum", Arg: expr.Col(0, "x", dbl), Frame: OverFrame{Preceding: 1}, Type: dbl},
			"1 +Inf +Inf 5 NaN NaN 9 -Inf NaN +Inf 13"},
		{OverCall{Func: "avg", Arg: expr.Col(0, "x", dbl), Frame: OverFrame{Preceding: 1}, Type: dbl},
			"1 +Inf +Inf 2.5 NaN NaN 4.5 -Inf NaN +Inf 6.5"},
		{OverCall{Func: "var_samp", Arg: expr.Col(0, "x", dbl), Frame: OverFrame{Preceding: 1}, Type: dbl},
			"(null) NaN NaN 0.5 NaN NaN 0.5 NaN NaN NaN 0.5"},
		{OverCall{Func: "max", Arg: expr.Col(0, "x", dbl), Frame: OverFrame{Preceding: 1}, Type: dbl},
			"1 +Inf +Inf 3 NaN NaN 5 5 +Inf +Inf 7"},
	} {
		if got := evalStrings(t, mem, tc.c, x); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.c.Func, got, tc.want)
		}
	}
}

// TestOverEvalTypes: LAG, FIRST_VALUE, MIN and MAX over every value type,
// with NULLs, over sliced input.
func TestOverEvalTypes(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	build := func(dt arrow.DataType, vals ...string) arrow.Array {
		// a leading "9" row is sliced away
		a, _, err := array.FromJSON(mem, dt, strings.NewReader("["+strings.Join(append([]string{vals[0]}, vals...), ",")+"]"))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Release()
		return array.NewSlice(a, 1, int64(a.Len()))
	}
	cases := []struct {
		dt   arrow.DataType
		vals []string
		lag  string // LAG(x, 1)
		fv   string // FIRST_VALUE over 1 PRECEDING
		min  string // MIN over 1 PRECEDING
		max  string // MAX unbounded
	}{
		{sqltypes.Int, []string{"3", "null", "1", "2"}, "(null) 3 (null) 1", "3 3 (null) 1", "3 3 1 1", "3 3 3 3"},
		{sqltypes.Boolean, []string{"true", "false", "null", "true"}, "(null) true false (null)", "true true false (null)", "true false false true", "true true true true"},
		{sqltypes.Varchar, []string{`"b"`, `"a"`, "null", `"c"`}, `(null) b a (null)`, `b b a (null)`, `b a a c`, `b b b c`},
		{sqltypes.Date, []string{"10", "5", "7", "null"}, "(null) 1970-01-11 1970-01-06 1970-01-08", "1970-01-11 1970-01-11 1970-01-06 1970-01-08", "1970-01-11 1970-01-06 1970-01-06 1970-01-08", "1970-01-11 1970-01-11 1970-01-11 1970-01-11"},
		{sqltypes.Decimal(10, 2), []string{`"1.50"`, `"-2.25"`, "null", `"3"`}, "(null) 1.5 -2.25 (null)", "1.5 1.5 -2.25 (null)", "1.5 -2.25 -2.25 3", "1.5 1.5 1.5 3"},
	}
	for _, tc := range cases {
		x := build(tc.dt, tc.vals...)
		arg := expr.Col(0, "x", tc.dt)
		for _, c := range []struct {
			call OverCall
			want string
		}{
			{OverCall{Func: "lag", Arg: arg, Offset: 1, Type: tc.dt}, tc.lag},
			{OverCall{Func: "first_value", Arg: arg, Frame: OverFrame{Preceding: 1}, Type: tc.dt}, tc.fv},
			{OverCall{Func: "min", Arg: arg, Frame: OverFrame{Preceding: 1}, Type: tc.dt}, tc.min},
			{OverCall{Func: "max", Arg: arg, Frame: OverFrame{Preceding: -1}, Type: tc.dt}, tc.max},
		} {
			if got := evalStrings(t, mem, c.call, x); got != c.want {
				t.Errorf("%s(%s): got %s, want %s", c.call.Func, sqltypes.Name(tc.dt), got, c.want)
			}
		}
		x.Release()
	}
}

// TestOverVarianceMovingFrameIsStable: moving variances and standard
// deviations over values around 1e9 agree with a two-pass computation of
// each frame, and a frame of equal values has exactly zero variance even
// after varied values have left it (the inverse update alone leaves
// their rounding errors behind).
func TestOverVarianceMovingFrameIsStable(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := rand.New(rand.NewPCG(7, 11))
	var xs []float64
	for range 3 { // varied stretches, then runs of one value
		for range 400 {
			xs = append(xs, 1e9+r.Float64()*1000)
		}
		c := 1e9 + r.Float64()*1000
		for range 100 {
			xs = append(xs, c)
		}
	}
	b := array.NewFloat64Builder(mem)
	b.AppendValues(xs, nil)
	x := b.NewArray()
	b.Release()
	defer x.Release()
	dbl := sqltypes.Double
	for _, frame := range []int64{2, 7, 60} {
		for _, fn := range []string{"var_pop", "var_samp", "stddev_pop", "stddev_samp"} {
			c := OverCall{Func: fn, Arg: expr.Col(0, "x", dbl), Frame: OverFrame{Preceding: frame}, Type: dbl}
			e, err := newOverEval(&c)
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.eval(mem, oneRun(len(xs)), x, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := out.(*array.Float64)
			for i := int(frame) + 1; i < len(xs); i++ {
				// two passes over the values less the frame's first
				// (exact: all are within a factor of 2 of each other)
				win := xs[i-int(frame) : i+1]
				var mean, m2 float64
				for _, v := range win {
					mean += v - win[0]
				}
				mean /= float64(len(win))
				equal := true
				for _, v := range win {
					m2 += (v - win[0] - mean) * (v - win[0] - mean)
					equal = equal && v == win[0]
				}
				want := m2 / float64(len(win))
				if fn == "var_samp" || fn == "stddev_samp" {
					want = m2 / float64(len(win)-1)
				}
				if fn == "stddev_pop" || fn == "stddev_samp" {
					want = math.Sqrt(want)
				}
				g := got.Value(i)
				if equal && g != 0 {
					out.Release()
					t.Fatalf("%s over %d preceding, row %d: %g over equal values, want 0", fn, frame, i, g)
				}
				if !equal && math.Abs(g-want) > 1e-12*want {
					out.Release()
					t.Fatalf("%s over %d preceding, row %d: %.17g, two-pass %.17g", fn, frame, i, g, want)
				}
			}
			out.Release()
		}
	}
}
