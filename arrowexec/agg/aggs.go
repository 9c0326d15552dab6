package agg

import (
	"fmt"
	"math/big"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// input is the argument of one aggregate for one batch: position k is
// array row rows[k] (rows nil: row k) of group ids[k]. For aggregates that
// skip NULLs every referenced row is non-NULL.
type input struct {
	arr  arrow.Array
	ids  []uint32
	rows []int32
	// seq is the sequence number of batch row 0; position k has
	// seq+rows[k] (FIRST_VALUE/LAST_VALUE order rows across batches and
	// tables with it).
	seq uint64
	// pick is scratch with one entry per group, all -1 (nil unless an
	// aggregate of the table needsPick); an aggregate that uses it restores
	// it.
	pick []int32
	scr  *scratch
}

// aggregator keeps the states of one aggregate call for every group.
// Its methods work a batch (or a group) at a time.
type aggregator interface {
	// skipNulls reports whether update must only see non-NULL rows.
	skipNulls() bool
	// grow makes room for groups 0..n-1 (new groups empty).
	grow(n int)
	update(in *input) error
	// combine merges the state of group from into group into.
	combine(into, from uint32, scr *scratch) error
	// merge folds the states of src, the same aggregate of another table,
	// into this one (see mergeArgs).
	merge(src aggregator, m *mergeArgs) error
	// reset drops every group, keeping the memory.
	reset()
	// emit returns the results of groups as a new array.
	emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error)
	bytes() int64
	// save adds the columns of every group's state (state.go); load
	// reads them back into the aggregate grown to the saved groups.
	save(o *stateOut)
	load(in *stateIn)
}

func newAggregator(alloc memory.Allocator, s Spec) (aggregator, error) {
	rt, err := ResultType(s)
	if err != nil {
		return nil, err
	}
	f := canonical(s.Func)
	if s.Distinct && (f == "min" || f == "max" || f == "approx_count_distinct") {
		s.Distinct = false // DISTINCT does not change these
	}
	if s.Distinct {
		inner, err := newAggregator(alloc, Spec{Func: f, Input: s.Input})
		if err != nil {
			return nil, err
		}
		return newDistinct(alloc, inner, s.Input)
	}
	in := s.Input
	k := kindOf(in)
	switch f {
	case "count_star":
		return &countAgg{star: true}, nil
	case "count":
		return &countAgg{}, nil
	case "sum":
		switch k {
		case kInt32:
			return &sumInt[int32]{}, nil
		case kInt64:
			return &sumInt[int64]{}, nil
		case kFloat64:
			return &sumFloat{}, nil
		case kDecimal:
			return &sumWide{in: k, out: rt, scale: scaleOf(in)}, nil
		}
	case "avg":
		switch k {
		case kInt32, kInt64, kDecimal:
			return &sumWide{in: k, avg: true, out: rt, scale: scaleOf(in)}, nil
		case kFloat64:
			return &sumFloat{avg: true}, nil
		}
	case "min", "max":
		return newMinMax(in, f == "max"), nil
	case "first_value", "last_value":
		return &firstLast{last: f == "last_value", vals: newStore(in)}, nil
	case "stddev_samp", "stddev_pop", "var_samp", "var_pop":
		return &stats{fn: f, scale: scaleOf(in)}, nil
	case "approx_count_distinct":
		return &hll{}, nil
	}
	return nil, fmt.Errorf("agg: %s(%s) has no implementation", f, sqltypes.Name(in))
}

// needsPick reports whether a uses input.pick.
func needsPick(a aggregator) bool {
	switch a.(type) {
	case *firstLast, *mmString:
		return true
	}
	return false
}

func scaleOf(dt arrow.DataType) int32 {
	if d, ok := dt.(*arrow.Decimal128Type); ok {
		return d.Scale
	}
	return 0
}

func overflow(fn, what string) error {
	return fmt.Errorf("%s overflow: %s out of range: %w", fn, what, ErrOverflow)
}

// ---- COUNT ----

type countAgg struct {
	star bool
	n    []int64
}

func (a *countAgg) skipNulls() bool { return !a.star }
func (a *countAgg) grow(n int)      { a.n = growTo(a.n, n, 0) }
func (a *countAgg) bytes() int64    { return sizeOf(a.n) }

func (a *countAgg) update(in *input) error {
	c := a.n
	for _, g := range in.ids {
		c[g]++
	}
	return nil
}

func (a *countAgg) combine(into, from uint32, _ *scratch) error {
	a.n[into] += a.n[from]
	a.n[from] = 0
	return nil
}

func (a *countAgg) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return emitFixed(alloc, sqltypes.BigInt, groups, a.n, nil), nil
}

// ---- SUM of INT/BIGINT ----

type sumInt[T int32 | int64] struct {
	sums []int64
	nn   bitset // group has a non-NULL value
}

func (a *sumInt[T]) skipNulls() bool { return true }
func (a *sumInt[T]) grow(n int)      { a.sums = growTo(a.sums, n, 0); a.nn = a.nn.grow(n) }
func (a *sumInt[T]) bytes() int64    { return sizeOf(a.sums) + sizeOf(a.nn) }

func (a *sumInt[T]) update(in *input) error {
	vals := kernels.Values[T](in.arr)
	sums, nn := a.sums, a.nn
	var ovf int64
	if in.rows == nil {
		vals = vals[:len(in.ids)]
		for k, g := range in.ids {
			x, v := sums[g], int64(vals[k])
			s := x + v
			ovf |= (s ^ x) & (s ^ v)
			sums[g] = s
			nn[g>>6] |= 1 << (g & 63)
		}
	} else {
		rows := in.rows[:len(in.ids)]
		for k, g := range in.ids {
			x, v := sums[g], int64(vals[rows[k]])
			s := x + v
			ovf |= (s ^ x) & (s ^ v)
			sums[g] = s
			nn[g>>6] |= 1 << (g & 63)
		}
	}
	if ovf < 0 {
		return overflow("SUM", "BIGINT")
	}
	return nil
}

func (a *sumInt[T]) combine(into, from uint32, _ *scratch) error {
	x, v := a.sums[into], a.sums[from]
	s := x + v
	if (s^x)&(s^v) < 0 {
		return overflow("SUM", "BIGINT")
	}
	a.sums[into] = s
	if a.nn.get(from) {
		a.nn.set(into)
	}
	return nil
}

func (a *sumInt[T]) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return emitFixed(alloc, sqltypes.BigInt, groups, a.sums, a.nn), nil
}

// ---- SUM and AVG of DOUBLE ----

type sumFloat struct {
	avg  bool
	sums []float64
	n    []int64
}

func (a *sumFloat) skipNulls() bool { return true }
func (a *sumFloat) grow(n int)      { a.sums = growTo(a.sums, n, 0); a.n = growTo(a.n, n, 0) }
func (a *sumFloat) bytes() int64    { return sizeOf(a.sums) + sizeOf(a.n) }

func (a *sumFloat) update(in *input) error {
	vals := kernels.Values[float64](in.arr)
	sums, cnt := a.sums, a.n
	if in.rows == nil {
		vals = vals[:len(in.ids)]
		for k, g := range in.ids {
			sums[g] += vals[k]
			cnt[g]++
		}
		return nil
	}
	rows := in.rows[:len(in.ids)]
	for k, g := range in.ids {
		sums[g] += vals[rows[k]]
		cnt[g]++
	}
	return nil
}

func (a *sumFloat) combine(into, from uint32, _ *scratch) error {
	a.sums[into] += a.sums[from]
	a.n[into] += a.n[from]
	return nil
}

func (a *sumFloat) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	vb, nulls := countValidity(alloc, groups, a.n)
	defer releaseOnPanic(vb)
	buf, o := newFixed[float64](alloc, len(groups))
	for j, g := range groups {
		o[j] = a.sums[g]
		if a.avg && a.n[g] > 0 {
			o[j] /= float64(a.n[g])
		}
	}
	return makeArray(sqltypes.Double, len(groups), nulls, vb, buf), nil
}

// ---- SUM of DECIMAL, AVG of INT/BIGINT/DECIMAL: 128-bit sums ----

// i128 is a two's complement 128-bit integer.
type i128 struct {
	lo uint64
	hi int64
}

func (x i128) num() decimal128.Num { return decimal128.New(x.hi, x.lo) }

func (x i128) big() *big.Int { return x.num().BigInt() }

type sumWide struct {
	in    kind // kInt32, kInt64 or kDecimal
	avg   bool
	out   arrow.DataType
	scale int32 // input scale (DECIMAL)
	sums  []i128
	n     []int64
}

func (a *sumWide) skipNulls() bool { return true }
func (a *sumWide) grow(n int)      { a.sums = growTo(a.sums, n, i128{}); a.n = growTo(a.n, n, 0) }
func (a *sumWide) bytes() int64    { return sizeOf(a.sums) + sizeOf(a.n) }

func (a *sumWide) name() string {
	if a.avg {
		return "AVG"
	}
	return "SUM"
}

func (a *sumWide) update(in *input) error {
	var ovf int64
	switch a.in {
	case kInt32:
		addWideInt(a.sums, a.n, in.ids, in.rows, kernels.Values[int32](in.arr))
	case kInt64:
		addWideInt(a.sums, a.n, in.ids, in.rows, kernels.Values[int64](in.arr))
	case kDecimal:
		ovf = addWideDec(a.sums, a.n, in.ids, in.rows, kernels.Values[decimal128.Num](in.arr))
	}
	if ovf < 0 {
		return overflow(a.name(), "128-bit DECIMAL sum")
	}
	return nil
}

// addWideInt adds integers into 128-bit sums; it cannot overflow before
// 2^64 rows.
func addWideInt[T int32 | int64](sums []i128, cnt []int64, ids []uint32, rows []int32, vals []T) {
	if rows == nil {
		vals = vals[:len(ids)]
		for k, g := range ids {
			v := int64(vals[k])
			s := &sums[g]
			var c uint64
			s.lo, c = bits.Add64(s.lo, uint64(v), 0)
			s.hi += v>>63 + int64(c)
			cnt[g]++
		}
		return
	}
	rows = rows[:len(ids)]
	for k, g := range ids {
		v := int64(vals[rows[k]])
		s := &sums[g]
		var c uint64
		s.lo, c = bits.Add64(s.lo, uint64(v), 0)
		s.hi += v>>63 + int64(c)
		cnt[g]++
	}
}

// addWideDec adds decimals into 128-bit sums; the result is negative if a
// sum overflowed.
func addWideDec(sums []i128, cnt []int64, ids []uint32, rows []int32, vals []decimal128.Num) int64 {
	var ovf int64
	if rows == nil {
		vals = vals[:len(ids)]
		for k, g := range ids {
			v := vals[k]
			s := &sums[g]
			lo, c := bits.Add64(s.lo, v.LowBits(), 0)
			vh := v.HighBits()
			hi := s.hi + vh + int64(c)
			ovf |= (hi ^ s.hi) & (hi ^ vh)
			s.lo, s.hi = lo, hi
			cnt[g]++
		}
		return ovf
	}
	rows = rows[:len(ids)]
	for k, g := range ids {
		v := vals[rows[k]]
		s := &sums[g]
		lo, c := bits.Add64(s.lo, v.LowBits(), 0)
		vh := v.HighBits()
		hi := s.hi + vh + int64(c)
		ovf |= (hi ^ s.hi) & (hi ^ vh)
		s.lo, s.hi = lo, hi
		cnt[g]++
	}
	return ovf
}

func (a *sumWide) combine(into, from uint32, _ *scratch) error {
	x, v := a.sums[into], a.sums[from]
	lo, c := bits.Add64(x.lo, v.lo, 0)
	hi := x.hi + v.hi + int64(c)
	if (hi^x.hi)&(hi^v.hi) < 0 {
		return overflow(a.name(), "128-bit sum")
	}
	a.sums[into] = i128{lo, hi}
	a.n[into] += a.n[from]
	return nil
}

// decimalSums returns the sums of groups as a DECIMAL array of type dt;
// for SUM (not AVG) a sum must fit DECIMAL(38,s).
func (a *sumWide) decimalSums(alloc memory.Allocator, groups []uint32, dt arrow.DataType) (arrow.Array, error) {
	vb, nulls := countValidity(alloc, groups, a.n)
	defer releaseOnPanic(vb)
	buf, o := newFixed[decimal128.Num](alloc, len(groups))
	for j, g := range groups {
		o[j] = a.sums[g].num()
		if !a.avg && a.n[g] > 0 {
			if _, ok := kernels.RescaleDecimal(o[j], 0, 0, 38); !ok {
				buf.Release()
				if vb != nil {
					vb.Release()
				}
				return nil, overflow("SUM", sqltypes.Name(a.out))
			}
		}
	}
	return makeArray(dt, len(groups), nulls, vb, buf), nil
}

func (a *sumWide) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	if a.avg && a.in != kDecimal { // AVG of integers: DOUBLE
		vb, nulls := countValidity(alloc, groups, a.n)
		defer releaseOnPanic(vb)
		buf, o := newFixed[float64](alloc, len(groups))
		for j, g := range groups {
			s, c := a.sums[g], a.n[g]
			switch {
			case c == 0:
			case s.hi == int64(s.lo)>>63 && int64(s.lo) < 1<<53 && int64(s.lo) > -(1<<53):
				o[j] = float64(int64(s.lo)) / float64(c) // one rounding
			default:
				o[j], _ = new(big.Rat).SetFrac(s.big(), big.NewInt(c)).Float64()
			}
		}
		return makeArray(a.out, len(groups), nulls, vb, buf), nil
	}
	if !a.avg {
		return a.decimalSums(alloc, groups, a.out)
	}
	// AVG(DECIMAL): sum / count with the decimal kernel (exact, rounded
	// half away from zero to the result scale).
	sums, err := a.decimalSums(alloc, groups, sqltypes.Decimal(38, a.scale))
	if err != nil {
		return nil, err
	}
	defer sums.Release()
	cb, cs := newFixed[decimal128.Num](alloc, len(groups))
	for j, g := range groups {
		cs[j] = decimal128.FromI64(max(a.n[g], 1))
	}
	counts := makeArray(sqltypes.Decimal(19, 0), len(groups), 0, nil, cb)
	defer counts.Release()
	out, err := kernels.DecimalArith(alloc, kernels.Div, sums, counts, len(groups), a.out.(*arrow.Decimal128Type))
	if err != nil {
		return nil, fmt.Errorf("AVG overflow: %w: %w", ErrOverflow, err)
	}
	return out, nil
}
