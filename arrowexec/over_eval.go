package arrowexec

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// overRows describes a run of rows in processing order for the calls of
// one window specification: each row's partition id and its position in
// its partition (0 for a partition's first row ever).
type overRows struct {
	n    int
	pids []uint32
	pos  []int64
	// newPeer[k] is set when row k's ORDER BY values differ from those of
	// the previous row of its partition; nil without ORDER BY (all rows of
	// a partition are peers).
	newPeer []bool
	parts   int // partition ids are below parts
}

// overEval computes one window function call over runs of rows, keeping
// per-partition state between runs. eval returns the results of the run's
// rows (a new array owned by the caller); arg and def are the call's
// argument and LAG default over the run (nil when the call has none).
// Calls are made once per run, never per row.
type overEval interface {
	eval(alloc memory.Allocator, r *overRows, arg, def arrow.Array) (arrow.Array, error)
	bytes() int64
	// state lists pointers to the fields that carry state between runs,
	// for checkpoints (over_state.go); scratch and configuration are not
	// listed.
	state() []any
}

// newOverEval returns the evaluator of c (not LEAD, which the operator
// handles itself).
func newOverEval(c *OverCall) (overEval, error) {
	frame := c.Frame.Preceding
	if c.Frame.WholePartition {
		frame = -1 // evaluated as a running frame, then broadcast
	}
	switch c.Func {
	case "row_number":
		return &rowNumberEval{}, nil
	case "rank", "dense_rank":
		return &rankEval{dense: c.Func == "dense_rank"}, nil
	case "count_star":
		return &countEval{star: true, frame: frame}, nil
	case "count":
		e := &countEval{frame: frame}
		if frame >= 0 {
			e.ring = &overRing[bool]{size: frame + 1}
		}
		return e, nil
	case "lag", "first_value", "min", "max":
		return newTypedEval(c, frame)
	case "last_value":
		return &lastValueEval{}, nil
	case "sum", "avg":
		avg := c.Func == "avg"
		switch c.Arg.Type().ID() {
		case arrow.INT32:
			return newSumInt[int32](avg, frame), nil
		case arrow.INT64:
			return newSumInt[int64](avg, frame), nil
		case arrow.FLOAT64:
			e := &sumFloatEval{avg: avg, frame: frame}
			if frame >= 0 {
				e.ring = &overRing[float64]{size: frame + 1}
			}
			return e, nil
		case arrow.DECIMAL128:
			e := &sumDecEval{avg: avg, frame: frame, in: c.Arg.Type().(*arrow.Decimal128Type), out: c.Type}
			if frame >= 0 {
				e.ring = &overRing[decimal128.Num]{size: frame + 1}
			}
			return e, nil
		}
	case "stddev_samp", "stddev_pop", "var_samp", "var_pop":
		e := &varEval{fn: c.Func, frame: frame}
		if frame >= 0 {
			e.ring = &overRing[float64]{size: frame + 1}
		}
		return e, nil
	}
	return nil, fmt.Errorf("window function %s(%s) is not supported", c.Func, typeNameOf(c.Arg))
}

func typeNameOf(e interface{ Type() arrow.DataType }) string {
	if e == nil {
		return ""
	}
	return sqltypes.Name(e.Type())
}

// newTypedEval instantiates LAG, FIRST_VALUE, MIN and MAX for the Go type
// of the argument.
func newTypedEval(c *OverCall, frame int64) (overEval, error) {
	switch goTypeOf(c.Arg.Type()) {
	case "int32":
		return typedEval[int32](c, frame), nil
	case "int64":
		return typedEval[int64](c, frame), nil
	case "float64":
		return typedEval[float64](c, frame), nil
	case "decimal":
		return typedEval[decimal128.Num](c, frame), nil
	case "bool":
		return typedEval[bool](c, frame), nil
	case "string":
		return typedEval[string](c, frame), nil
	}
	return nil, fmt.Errorf("%s(%s) is not supported", c.Func, sqltypes.Name(c.Arg.Type()))
}

func typedEval[T overVal](c *OverCall, frame int64) overEval {
	switch c.Func {
	case "lag":
		e := &lagEval[T]{n: c.Offset, typ: c.Type}
		if c.Offset > 0 {
			e.ring = &overRing[T]{size: c.Offset}
		}
		return e
	case "first_value":
		e := &firstValueEval[T]{frame: frame, typ: c.Type}
		if frame >= 0 {
			e.ring = &overRing[T]{size: frame + 1}
		}
		return e
	}
	return &minMaxEval[T]{max: c.Func == "max", frame: frame, typ: c.Type, less: overLess[T]()}
}

// overLess is the SQL order of T: numbers, DECIMAL by value, VARCHAR
// byte-wise, false < true; DOUBLE NaN above every number (as MIN/MAX of
// the aggregates).
func overLess[T overVal]() func(a, b T) bool {
	var f any
	var z T
	switch any(z).(type) {
	case int32:
		f = func(a, b int32) bool { return a < b }
	case int64:
		f = func(a, b int64) bool { return a < b }
	case float64:
		f = func(a, b float64) bool { return a < b || (b != b && a == a) }
	case decimal128.Num:
		f = func(a, b decimal128.Num) bool { return a.Less(b) }
	case bool:
		f = func(a, b bool) bool { return !a && b }
	case string:
		f = func(a, b string) bool { return a < b }
	}
	return f.(func(a, b T) bool)
}

// ---- ROW_NUMBER, RANK, DENSE_RANK ----

type rowNumberEval struct{ out []int64 }

func (e *rowNumberEval) bytes() int64 { return 0 }

func (e *rowNumberEval) eval(alloc memory.Allocator, r *overRows, _, _ arrow.Array) (arrow.Array, error) {
	e.out = overResize(e.out, r.n)
	for k, c := range r.pos[:r.n] {
		e.out[k] = c + 1
	}
	return overFixed(alloc, sqltypes.BigInt, e.out, nil), nil
}

// rankEval: RANK is the position of the first row of the current row's
// peer group (+1); DENSE_RANK counts the peer groups so far.
type rankEval struct {
	dense bool
	rank  []int64 // per partition: rank of its last row
	out   []int64
}

func (e *rankEval) bytes() int64 { return int64(cap(e.rank)) * 8 }

func (e *rankEval) eval(alloc memory.Allocator, r *overRows, _, _ arrow.Array) (arrow.Array, error) {
	e.rank = overGrow(e.rank, r.parts)
	e.out = overResize(e.out, r.n)
	rank, out := e.rank, e.out
	for k := 0; k < r.n; k++ {
		p, c := r.pids[k], r.pos[k]
		switch {
		case c == 0:
			rank[p] = 1
		case r.newPeer != nil && r.newPeer[k]:
			if e.dense {
				rank[p]++
			} else {
				rank[p] = c + 1
			}
		}
		out[k] = rank[p]
	}
	return overFixed(alloc, sqltypes.BigInt, out, nil), nil
}

// overGrow extends s with zero values to at least n elements.
func overGrow[T any](s []T, n int) []T {
	if len(s) >= n {
		return s
	}
	if cap(s) >= n {
		old := len(s)
		s = s[:n]
		clear(s[old:])
		return s
	}
	out := make([]T, n, max(n, 2*cap(s)))
	copy(out, s)
	return out
}

// ---- COUNT ----

type countEval struct {
	sink  int64 // keeps warm loads
	star  bool
	frame int64           // rows preceding in the frame; -1 unbounded
	cnt   []int64         // per partition: non-NULL values in the frame
	ring  *overRing[bool] // bounded COUNT(x): whether each recent row was non-NULL
	out   []int64
	valid []bool
}

func (e *countEval) bytes() int64 {
	n := int64(cap(e.cnt)) * 8
	if e.ring != nil {
		n += e.ring.bytes()
	}
	return n
}

func (e *countEval) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	e.out = overResize(e.out, r.n)
	out := e.out
	if e.star {
		for k, c := range r.pos[:r.n] {
			if e.frame >= 0 {
				c = min(c, e.frame)
			}
			out[k] = c + 1
		}
		return overFixed(alloc, sqltypes.BigInt, out, nil), nil
	}
	e.cnt = overGrow(e.cnt, r.parts)
	valid := overValid(arg, &e.valid)
	if e.ring != nil {
		e.ring.grow(r.parts)
	}
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			if e.ring != nil {
				e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
			}
			e.sink += overWarmState(e.cnt, r.pids[k:to])
		}
		p, c := r.pids[k], r.pos[k]
		ok := valid == nil || valid[k]
		if e.ring != nil {
			if old, _, had := e.ring.put(p, c, ok, true); had && old {
				e.cnt[p]--
			}
		}
		if ok {
			e.cnt[p]++
		}
		out[k] = e.cnt[p]
	}
	return overFixed(alloc, sqltypes.BigInt, out, nil), nil
}

// ---- SUM and AVG ----

// sumIntEval sums INT or BIGINT values exactly in 128 bits: SUM is BIGINT
// (an error past its range), AVG is DOUBLE (the exact sum divided once).
type sumIntEval[T int32 | int64] struct {
	sink  int64 // keeps warm loads
	avg   bool
	frame int64
	sums  []wide
	cnt   []int64
	ring  *overRing[int64]
	outI  []int64
	outF  []float64
	ok    []bool
	valid []bool
}

func newSumInt[T int32 | int64](avg bool, frame int64) *sumIntEval[T] {
	e := &sumIntEval[T]{avg: avg, frame: frame}
	if frame >= 0 {
		e.ring = &overRing[int64]{size: frame + 1}
	}
	return e
}

func (e *sumIntEval[T]) bytes() int64 {
	n := int64(cap(e.sums))*16 + int64(cap(e.cnt))*8
	if e.ring != nil {
		n += e.ring.bytes()
	}
	return n
}

func (e *sumIntEval[T]) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	e.sums, e.cnt = overGrow(e.sums, r.parts), overGrow(e.cnt, r.parts)
	if e.ring != nil {
		e.ring.grow(r.parts)
	}
	vals := kernels.Values[T](arg)
	valid := overValid(arg, &e.valid)
	e.ok = overResize(e.ok, r.n)
	if e.avg {
		e.outF = overResize(e.outF, r.n)
	} else {
		e.outI = overResize(e.outI, r.n)
	}
	sums, cnt := e.sums, e.cnt
	overflow := false
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			if e.ring != nil {
				e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
			}
			e.sink += overWarmState(sums, r.pids[k:to]) + overWarmState(cnt, r.pids[k:to])
		}
		p := r.pids[k]
		v := int64(vals[k])
		ok := valid == nil || valid[k]
		if e.ring != nil {
			if old, oldOK, had := e.ring.put(p, r.pos[k], v, ok); had && oldOK {
				sums[p], _ = sums[p].sub(wideOf(old)) // cannot leave 128 bits: fewer than 2^64 values
				cnt[p]--
			}
		}
		if ok {
			sums[p], _ = sums[p].add(wideOf(v))
			cnt[p]++
		}
		e.ok[k] = cnt[p] > 0
		switch {
		case cnt[p] == 0:
		case e.avg:
			e.outF[k] = sums[p].div(cnt[p])
		default:
			s, fits := sums[p].int64()
			overflow = overflow || !fits
			e.outI[k] = s
		}
	}
	if overflow {
		return nil, fmt.Errorf("SUM overflow: the sum leaves the BIGINT range: %w", agg.ErrOverflow)
	}
	if e.avg {
		return overFixed(alloc, sqltypes.Double, e.outF[:r.n], e.ok[:r.n]), nil
	}
	return overFixed(alloc, sqltypes.BigInt, e.outI[:r.n], e.ok[:r.n]), nil
}

// sumDecEval sums DECIMAL(p,s) exactly in 128 bits: SUM is DECIMAL(38,s)
// (an error past 38 digits), AVG is the exact quotient rounded half away
// from zero to the result scale (the AVG aggregate's rule).
type sumDecEval struct {
	avg   bool
	frame int64
	in    *arrow.Decimal128Type
	out   arrow.DataType
	sums  []wide
	cnt   []int64
	ring  *overRing[decimal128.Num]
	outS  []decimal128.Num
	outC  []decimal128.Num
	ok    []bool
	valid []bool
	sink  int64
}

func (e *sumDecEval) bytes() int64 {
	n := int64(cap(e.sums))*16 + int64(cap(e.cnt))*8
	if e.ring != nil {
		n += e.ring.bytes()
	}
	return n
}

func (e *sumDecEval) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	e.sums, e.cnt = overGrow(e.sums, r.parts), overGrow(e.cnt, r.parts)
	if e.ring != nil {
		e.ring.grow(r.parts)
	}
	vals := kernels.Values[decimal128.Num](arg)
	valid := overValid(arg, &e.valid)
	e.ok = overResize(e.ok, r.n)
	e.outS = overResize(e.outS, r.n)
	if e.avg {
		e.outC = overResize(e.outC, r.n)
	}
	sums, cnt := e.sums, e.cnt
	var ovf bool
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			if e.ring != nil {
				e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
			}
			e.sink += overWarmState(sums, r.pids[k:to]) + overWarmState(cnt, r.pids[k:to])
		}
		p := r.pids[k]
		v := vals[k]
		ok := valid == nil || valid[k]
		if e.ring != nil {
			if old, oldOK, had := e.ring.put(p, r.pos[k], v, ok); had && oldOK {
				var o bool
				sums[p], o = sums[p].sub(wideOfNum(old))
				ovf = ovf || o
				cnt[p]--
			}
		}
		if ok {
			var o bool
			sums[p], o = sums[p].add(wideOfNum(v))
			ovf = ovf || o
			cnt[p]++
		}
		e.ok[k] = cnt[p] > 0
		e.outS[k] = sums[p].num()
		if e.avg {
			e.outC[k] = decimal128.FromI64(max(cnt[p], 1))
		}
	}
	name := "SUM"
	if e.avg {
		name = "AVG"
	}
	if ovf {
		return nil, fmt.Errorf("%s overflow: the 128-bit DECIMAL sum overflowed: %w", name, agg.ErrOverflow)
	}
	if !e.avg {
		for k, s := range e.outS[:r.n] {
			if _, fits := kernels.RescaleDecimal(s, 0, 0, 38); e.ok[k] && !fits {
				return nil, fmt.Errorf("SUM overflow: the sum does not fit %s: %w", sqltypes.Name(e.out), agg.ErrOverflow)
			}
		}
		return overFixed(alloc, e.out, e.outS[:r.n], e.ok[:r.n]), nil
	}
	if out, ok := e.avgFast(alloc, r.n); ok {
		return out, nil
	}
	sums2 := overFixed(alloc, sqltypes.Decimal(38, e.in.Scale), e.outS[:r.n], e.ok[:r.n])
	defer sums2.Release()
	counts := overFixed(alloc, sqltypes.Decimal(19, 0), e.outC[:r.n], nil)
	defer counts.Release()
	out, err := kernels.DecimalArith(alloc, kernels.Div, sums2, counts, r.n, e.out.(*arrow.Decimal128Type))
	if err != nil {
		return nil, fmt.Errorf("AVG overflow: %w: %w", agg.ErrOverflow, err)
	}
	return out, nil
}

// avgFast divides the run's sums by their counts in 64-bit integers when
// every scaled sum fits (the common case), with the same rounding as the
// decimal kernel: half away from zero.
func (e *sumDecEval) avgFast(alloc memory.Allocator, n int) (arrow.Array, bool) {
	outScale := e.out.(*arrow.Decimal128Type).Scale
	if outScale-e.in.Scale > 18 {
		return nil, false
	}
	mul := int64(1)
	for range outScale - e.in.Scale {
		mul *= 10
	}
	limit := int64(math.MaxInt64) / mul
	for k, s := range e.outS[:n] {
		if v, fits := wideOfNum(s).int64(); e.ok[k] && (!fits || v > limit || v < -limit) {
			return nil, false
		}
	}
	for k, s := range e.outS[:n] {
		if !e.ok[k] {
			continue
		}
		v, _ := wideOfNum(s).int64()
		num, c := v*mul, e.outC[k].LowBits()
		q, rem := num/int64(c), num%int64(c)
		if rem < 0 {
			rem = -rem
		}
		if uint64(rem) >= c-uint64(rem) { // 2*rem >= c: round away from zero
			if num < 0 {
				q--
			} else {
				q++
			}
		}
		e.outS[k] = decimal128.FromI64(q)
	}
	return overFixed(alloc, e.out, e.outS[:n], e.ok[:n]), true
}

// sumFloatEval sums DOUBLE values with Neumaier's compensated summation,
// so that subtracting the values leaving a bounded frame does not let
// rounding errors build up; infinities and NaNs are counted apart (so one
// leaving the frame does not poison later sums).
type sumFloatEval struct {
	sink         int64 // keeps warm loads
	avg          bool
	frame        int64
	sum, comp    []float64
	cnt          []int64
	pinf, ninf   []int64
	nan          []int64
	ring         *overRing[float64]
	out          []float64
	ok, valid    []bool
	hasNonFinite bool
}

func (e *sumFloatEval) bytes() int64 {
	n := int64(cap(e.sum)+cap(e.comp)+cap(e.cnt)+cap(e.pinf)+cap(e.ninf)+cap(e.nan)) * 8
	if e.ring != nil {
		n += e.ring.bytes()
	}
	return n
}

// neumaier adds x to the compensated sum (s, c).
func neumaier(s, c, x float64) (float64, float64) {
	t := s + x
	if math.Abs(s) >= math.Abs(x) {
		c += (s - t) + x
	} else {
		c += (x - t) + s
	}
	return t, c
}

func (e *sumFloatEval) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	np := r.parts
	e.sum, e.comp, e.cnt = overGrow(e.sum, np), overGrow(e.comp, np), overGrow(e.cnt, np)
	if e.ring != nil {
		e.ring.grow(np)
	}
	vals := kernels.Values[float64](arg)
	valid := overValid(arg, &e.valid)
	e.ok = overResize(e.ok, r.n)
	e.out = overResize(e.out, r.n)
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			if e.ring != nil {
				e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
			}
			e.sink += overWarmState(e.sum, r.pids[k:to]) + overWarmState(e.comp, r.pids[k:to]) + overWarmState(e.cnt, r.pids[k:to])
		}
		p := r.pids[k]
		v := vals[k]
		ok := valid == nil || valid[k]
		if e.ring != nil {
			if old, oldOK, had := e.ring.put(p, r.pos[k], v, ok); had && oldOK {
				if old-old != 0 {
					e.nonFinite(p, old, -1)
				} else {
					e.sum[p], e.comp[p] = neumaier(e.sum[p], e.comp[p], -old)
				}
				e.cnt[p]--
			}
		}
		if ok {
			if v-v != 0 { // ±Inf or NaN
				e.nonFinite(p, v, 1)
			} else {
				e.sum[p], e.comp[p] = neumaier(e.sum[p], e.comp[p], v)
			}
			e.cnt[p]++
		}
		c := e.cnt[p]
		e.ok[k] = c > 0
		if c == 0 {
			continue
		}
		s := e.sum[p] + e.comp[p]
		if e.hasNonFinite {
			s = e.special(p, s)
		}
		if e.avg {
			s /= float64(c)
		}
		e.out[k] = s
	}
	return overFixed(alloc, sqltypes.Double, e.out[:r.n], e.ok[:r.n]), nil
}

// nonFinite counts (d = 1) or uncounts (d = -1) an infinity or NaN of
// partition p.
func (e *sumFloatEval) nonFinite(p uint32, v float64, d int64) {
	if !e.hasNonFinite {
		e.hasNonFinite = true
	}
	n := len(e.sum)
	e.pinf, e.ninf, e.nan = overGrow(e.pinf, n), overGrow(e.ninf, n), overGrow(e.nan, n)
	switch {
	case math.IsInf(v, 1):
		e.pinf[p] += d
	case math.IsInf(v, -1):
		e.ninf[p] += d
	default:
		e.nan[p] += d
	}
}

// special applies the infinities and NaNs of partition p's frame to its
// finite sum s.
func (e *sumFloatEval) special(p uint32, s float64) float64 {
	if int(p) >= len(e.pinf) {
		return s
	}
	switch pi, ni := e.pinf[p] > 0, e.ninf[p] > 0; {
	case e.nan[p] > 0 || (pi && ni):
		return math.NaN()
	case pi:
		return math.Inf(1)
	case ni:
		return math.Inf(-1)
	}
	return s
}

// ---- STDDEV and VARIANCE ----

// varEval keeps Welford's running mean and sum of squared deviations,
// adding entering values and removing leaving ones (the inverse update),
// of the values less a per-partition shift (the first value counted since
// the state was last empty or recomputed), so that large offsets (values
// around 1e9 that vary by little) cost no precision. Input is converted
// to DOUBLE. The inverse update lets rounding errors
// of values long gone linger, so a bounded frame is recomputed from its
// ring (a fresh Welford pass) once its partition has had as many updates
// as the ring holds (amortised O(1) a row), and a frame whose values are
// all equal (the run of equal values reaches its count) has exactly zero
// variance.
type varEval struct {
	sink     int64 // keeps warm loads
	fn       string
	frame    int64
	n        []int64
	mean, m2 []float64 // of the values less shift
	shift    []float64
	bad      []int64 // infinities and NaNs in the frame
	ring     *overRing[float64]
	// bounded frames only, per partition: rows since the last recompute,
	// and the length and value of the run of equal values ending the frame
	since, run []int64
	last       []float64
	out        []float64
	ok         []bool
	valid      []bool
}

func (e *varEval) bytes() int64 {
	n := int64(cap(e.n)+cap(e.mean)+cap(e.m2)+cap(e.shift)+cap(e.bad)+cap(e.since)+cap(e.run)+cap(e.last)) * 8
	if e.ring != nil {
		n += e.ring.bytes()
	}
	return n
}

func (e *varEval) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	if arg.DataType().ID() != arrow.FLOAT64 {
		f, err := kernels.Cast(alloc, arg, sqltypes.Double)
		if err != nil {
			return nil, err
		}
		defer f.Release()
		arg = f
	}
	np := r.parts
	e.n, e.mean, e.m2, e.bad = overGrow(e.n, np), overGrow(e.mean, np), overGrow(e.m2, np), overGrow(e.bad, np)
	e.shift = overGrow(e.shift, np)
	if e.ring != nil {
		e.ring.grow(np)
		e.since, e.run, e.last = overGrow(e.since, np), overGrow(e.run, np), overGrow(e.last, np)
	}
	vals := kernels.Values[float64](arg)
	valid := overValid(arg, &e.valid)
	e.ok = overResize(e.ok, r.n)
	e.out = overResize(e.out, r.n)
	samp := e.fn == "stddev_samp" || e.fn == "var_samp"
	sqrt := e.fn == "stddev_samp" || e.fn == "stddev_pop"
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			if e.ring != nil {
				e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
			}
			e.sink += overWarmState(e.n, r.pids[k:to]) + overWarmState(e.mean, r.pids[k:to]) + overWarmState(e.m2, r.pids[k:to])
		}
		p := r.pids[k]
		v := vals[k]
		ok := valid == nil || valid[k]
		if e.ring != nil {
			if old, oldOK, had := e.ring.put(p, r.pos[k], v, ok); had && oldOK {
				e.remove(p, old)
			}
		}
		if ok {
			e.add(p, v)
		}
		if e.ring != nil {
			e.settle(p, r.pos[k], v, ok)
		}
		n := e.n[p]
		switch {
		case n == 0 || (samp && n < 2):
			e.ok[k] = false
			continue
		case e.bad[p] > 0:
			e.out[k] = math.NaN()
		default:
			m2 := max(e.m2[p], 0)
			if samp {
				m2 /= float64(n - 1)
			} else {
				m2 /= float64(n)
			}
			if sqrt {
				m2 = math.Sqrt(m2)
			}
			e.out[k] = m2
		}
		e.ok[k] = true
	}
	return overFixed(alloc, sqltypes.Double, e.out[:r.n], e.ok[:r.n]), nil
}

func (e *varEval) add(p uint32, x float64) {
	e.n[p]++
	if x-x != 0 {
		e.bad[p]++
		return
	}
	good := float64(e.n[p] - e.bad[p])
	if good == 1 {
		e.shift[p] = x
	}
	x -= e.shift[p]
	d := x - e.mean[p]
	e.mean[p] += d / good
	e.m2[p] += d * (x - e.mean[p])
}

// settle bounds the rounding error of partition p's bounded frame, which
// now ends at position c with value v (ok false: NULL).
func (e *varEval) settle(p uint32, c int64, v float64, ok bool) {
	if ok {
		if e.run[p] > 0 && v == e.last[p] {
			e.run[p]++
		} else {
			e.run[p], e.last[p] = 1, v
		}
	}
	good := e.n[p] - e.bad[p]
	switch {
	case e.bad[p] == 0 && good > 0 && e.run[p] >= good: // all equal
		e.shift[p], e.mean[p], e.m2[p], e.since[p] = e.last[p], 0, 0, 0
	case e.since[p]+1 >= e.ring.size:
		e.n[p], e.bad[p], e.mean[p], e.m2[p], e.since[p] = 0, 0, 0, 0, 0
		for q := max(0, c-e.ring.size+1); q <= c; q++ {
			if x, ok := e.ring.get(p, q); ok {
				e.add(p, x)
			}
		}
	default:
		e.since[p]++
	}
}

func (e *varEval) remove(p uint32, x float64) {
	e.n[p]--
	if x-x != 0 {
		e.bad[p]--
		return
	}
	good := float64(e.n[p] - e.bad[p])
	if good == 0 {
		e.mean[p], e.m2[p] = 0, 0
		return
	}
	x -= e.shift[p]
	d := x - e.mean[p]
	e.mean[p] -= d / good
	e.m2[p] -= d * (x - e.mean[p])
}

// ---- MIN and MAX ----

// minMaxEval keeps, per partition, the best value so far (unbounded
// frame) or a monotonic overDeque of the frame's candidates: each value is
// pushed once and popped at most once, so a row costs O(1) amortised.
type minMaxEval[T overVal] struct {
	max   bool
	frame int64
	typ   arrow.DataType
	less  func(a, b T) bool
	best  []T
	has   []bool
	dq    []overDeque[T]
	dqN   int64
	vbuf  []T
	out   []T
	ok    []bool
	valid []bool
}

type overDQEntry[T any] struct {
	v   T
	pos int64
}

// overDeque is a ring buffer of entries.
type overDeque[T any] struct {
	buf     []overDQEntry[T]
	head, n int
}

func (d *overDeque[T]) front() *overDQEntry[T] { return &d.buf[d.head] }
func (d *overDeque[T]) back() *overDQEntry[T]  { return &d.buf[(d.head+d.n-1)%len(d.buf)] }
func (d *overDeque[T]) popFront()              { d.head = (d.head + 1) % len(d.buf); d.n-- }
func (d *overDeque[T]) popBack()               { d.n-- }

// pushBack appends e and reports how many slots the buffer grew by.
func (d *overDeque[T]) pushBack(e overDQEntry[T]) int {
	grown := 0
	if d.n == len(d.buf) {
		nb := make([]overDQEntry[T], max(2, 2*len(d.buf)))
		for i := 0; i < d.n; i++ {
			nb[i] = d.buf[(d.head+i)%len(d.buf)]
		}
		grown = len(nb) - len(d.buf)
		d.buf, d.head = nb, 0
	}
	d.buf[(d.head+d.n)%len(d.buf)] = e
	d.n++
	return grown
}

func (e *minMaxEval[T]) bytes() int64 {
	var z overDQEntry[T]
	return int64(cap(e.best))*16 + int64(cap(e.dq))*40 + e.dqN*int64(sizeOfEntry(z))
}

func sizeOfEntry[T any](e overDQEntry[T]) int {
	switch any(e.v).(type) {
	case int32:
		return 16
	case string:
		return 40
	case decimal128.Num:
		return 24
	}
	return 16
}

// better reports whether a should win over b for this function.
func (e *minMaxEval[T]) better(a, b T) bool {
	if e.max {
		return e.less(b, a)
	}
	return e.less(a, b)
}

func (e *minMaxEval[T]) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	vals := overRead(arg, &e.vbuf)
	valid := overValid(arg, &e.valid)
	e.out = overResize(e.out, r.n)
	e.ok = overResize(e.ok, r.n)
	if e.frame < 0 {
		e.best, e.has = overGrow(e.best, r.parts), overGrow(e.has, r.parts)
		for k := 0; k < r.n; k++ {
			p := r.pids[k]
			if valid == nil || valid[k] {
				if v := vals[k]; !e.has[p] || e.better(v, e.best[p]) {
					e.best[p], e.has[p] = v, true
				}
			}
			e.out[k], e.ok[k] = e.best[p], e.has[p]
		}
		return overBuild(alloc, e.typ, e.out[:r.n], e.ok[:r.n]), nil
	}
	e.dq = overGrow(e.dq, r.parts)
	for k := 0; k < r.n; k++ {
		p, c := r.pids[k], r.pos[k]
		d := &e.dq[p]
		for d.n > 0 && d.front().pos < c-e.frame {
			d.popFront()
		}
		if valid == nil || valid[k] {
			v := vals[k]
			for d.n > 0 && !e.better(d.back().v, v) {
				d.popBack()
			}
			e.dqN += int64(d.pushBack(overDQEntry[T]{v: v, pos: c}))
		}
		if d.n > 0 {
			e.out[k], e.ok[k] = d.front().v, true
		} else {
			var z T
			e.out[k], e.ok[k] = z, false
		}
	}
	return overBuild(alloc, e.typ, e.out[:r.n], e.ok[:r.n]), nil
}

// ---- FIRST_VALUE, LAST_VALUE, LAG ----

// firstValueEval: the value of the frame's first row (NULL included).
type firstValueEval[T overVal] struct {
	sink  int64 // keeps warm loads
	frame int64
	typ   arrow.DataType
	first []T
	fok   []bool
	ring  *overRing[T]
	vbuf  []T
	out   []T
	ok    []bool
	valid []bool
}

func (e *firstValueEval[T]) bytes() int64 {
	n := int64(cap(e.first))*16 + int64(cap(e.fok))
	if e.ring != nil {
		n += e.ring.bytes()
	}
	return n
}

func (e *firstValueEval[T]) eval(alloc memory.Allocator, r *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	vals := overRead(arg, &e.vbuf)
	valid := overValid(arg, &e.valid)
	e.out = overResize(e.out, r.n)
	e.ok = overResize(e.ok, r.n)
	if e.ring == nil {
		e.first, e.fok = overGrow(e.first, r.parts), overGrow(e.fok, r.parts)
		for k := 0; k < r.n; k++ {
			p := r.pids[k]
			if r.pos[k] == 0 {
				e.first[p], e.fok[p] = vals[k], valid == nil || valid[k]
			}
			e.out[k], e.ok[k] = e.first[p], e.fok[p]
		}
		return overBuild(alloc, e.typ, e.out[:r.n], e.ok[:r.n]), nil
	}
	e.ring.grow(r.parts)
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
		}
		p, c := r.pids[k], r.pos[k]
		e.ring.put(p, c, vals[k], valid == nil || valid[k])
		e.out[k], e.ok[k] = e.ring.get(p, max(0, c-e.frame))
	}
	return overBuild(alloc, e.typ, e.out[:r.n], e.ok[:r.n]), nil
}

// lastValueEval: frames end at the current row, so LAST_VALUE is the
// row's own value (whole-partition frames are broadcast by the caller).
type lastValueEval struct{}

func (*lastValueEval) bytes() int64 { return 0 }

func (*lastValueEval) eval(_ memory.Allocator, _ *overRows, arg, _ arrow.Array) (arrow.Array, error) {
	arg.Retain()
	return arg, nil
}

// lagEval: the value n rows before in the partition, else the default
// (NULL without one).
type lagEval[T overVal] struct {
	sink  int64 // keeps warm loads
	n     int64
	typ   arrow.DataType
	ring  *overRing[T]
	vbuf  []T
	dbuf  []T
	out   []T
	ok    []bool
	valid []bool
	dval  []bool
}

func (e *lagEval[T]) bytes() int64 {
	if e.ring == nil {
		return 0
	}
	return e.ring.bytes()
}

func (e *lagEval[T]) eval(alloc memory.Allocator, r *overRows, arg, def arrow.Array) (arrow.Array, error) {
	if e.n == 0 {
		arg.Retain()
		return arg, nil
	}
	vals := overRead(arg, &e.vbuf)
	valid := overValid(arg, &e.valid)
	var defs []T
	var dvalid []bool
	if def != nil {
		defs = overRead(def, &e.dbuf)
		dvalid = overValid(def, &e.dval)
	}
	e.out = overResize(e.out, r.n)
	e.ok = overResize(e.ok, r.n)
	e.ring.grow(r.parts)
	for k := 0; k < r.n; k++ {
		if k%overWarm == 0 {
			to := min(k+overWarm, r.n)
			e.sink += e.ring.warm(r.pids[k:to], r.pos[k:to])
		}
		old, oldOK, had := e.ring.put(r.pids[k], r.pos[k], vals[k], valid == nil || valid[k])
		switch {
		case had:
			e.out[k], e.ok[k] = old, oldOK
		case defs != nil:
			e.out[k], e.ok[k] = defs[k], dvalid == nil || dvalid[k]
		default:
			var z T
			e.out[k], e.ok[k] = z, false
		}
	}
	return overBuild(alloc, e.typ, e.out[:r.n], e.ok[:r.n]), nil
}
