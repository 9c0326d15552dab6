package agg

import (
	"math"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// welford is the running (count, mean, sum of squared deviations) of one
// group, of its values less shift (its first value), so that large
// offsets (values around 1e9 that vary by little) cost no precision.
type welford struct {
	n              float64
	shift, mean, m float64
}

func (w *welford) add(x float64) {
	if w.n == 0 {
		w.shift = x
	}
	w.n++
	x -= w.shift
	d := x - w.mean
	w.mean += d / w.n
	w.m += d * (x - w.mean)
}

// merge adds o into w (Chan et al.'s parallel formula).
func (w *welford) merge(o welford) {
	if o.n == 0 {
		return
	}
	if w.n == 0 {
		*w = o
		return
	}
	n := w.n + o.n
	d := (o.shift - w.shift) + (o.mean - w.mean)
	w.mean += d * o.n / n
	w.m += o.m + d*d*w.n*o.n/n
	w.n = n
}

// stats is STDDEV_SAMP/STDDEV_POP/VAR_SAMP/VAR_POP.
type stats struct {
	fn    string
	scale int32 // DECIMAL input scale
	w     []welford
}

func (a *stats) skipNulls() bool { return true }
func (a *stats) grow(n int)      { a.w = growTo(a.w, n, welford{}) }
func (a *stats) bytes() int64    { return sizeOf(a.w) }

func (a *stats) update(in *input) error {
	switch kindOf(in.arr.DataType()) {
	case kInt32:
		welfordLoop(a.w, in.ids, in.rows, kernels.Values[int32](in.arr))
	case kInt64:
		welfordLoop(a.w, in.ids, in.rows, kernels.Values[int64](in.arr))
	case kFloat64:
		welfordLoop(a.w, in.ids, in.rows, kernels.Values[float64](in.arr))
	case kDecimal:
		vals := kernels.Values[decimal128.Num](in.arr)
		for k, g := range in.ids {
			a.w[g].add(kernels.DecimalToFloat(vals[rowOf(in.rows, k)], a.scale))
		}
	}
	return nil
}

func welfordLoop[T int32 | int64 | float64](w []welford, ids []uint32, rows []int32, vals []T) {
	if rows == nil {
		vals = vals[:len(ids)]
		for k, g := range ids {
			w[g].add(float64(vals[k]))
		}
		return
	}
	rows = rows[:len(ids)]
	for k, g := range ids {
		w[g].add(float64(vals[rows[k]]))
	}
}

func (a *stats) combine(into, from uint32, _ *scratch) error {
	a.w[into].merge(a.w[from])
	return nil
}

func (a *stats) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	samp := a.fn == "stddev_samp" || a.fn == "var_samp"
	sqrt := a.fn == "stddev_samp" || a.fn == "stddev_pop"
	minN := 1.0
	if samp {
		minN = 2
	}
	valid := make(bitset, 0).grow(len(a.w))
	for g := range a.w {
		if a.w[g].n >= minN {
			valid.set(uint32(g))
		}
	}
	vb, nulls := validityOf(alloc, groups, valid)
	defer releaseOnPanic(vb)
	buf, o := newFixed[float64](alloc, len(groups))
	for j, g := range groups {
		w := a.w[g]
		if w.n < minN {
			continue
		}
		d := w.n
		if samp {
			d--
		}
		v := w.m / d
		if v < 0 { // rounding; the true value is >= 0
			v = 0
		}
		if sqrt {
			v = math.Sqrt(v)
		}
		o[j] = v
	}
	return makeArray(sqltypes.Double, len(groups), nulls, vb, buf), nil
}

// ---- APPROX_COUNT_DISTINCT: HyperLogLog ----

const (
	hllP = 7         // 2^7 = 128 registers per group
	hllQ = 64 - hllP // bits of the hash left for the rank
	hllM = 1 << hllP // registers
)

// hll keeps HLLRegisters one-byte registers per group. A value's 64-bit
// hash selects a register by its top hllP bits; the register keeps the
// maximum rank (leading zeros + 1) of the remaining bits.
type hll struct {
	regs []uint8
}

func (a *hll) skipNulls() bool { return true }
func (a *hll) grow(n int)      { a.regs = growTo(a.regs, n*hllM, 0) }
func (a *hll) bytes() int64    { return sizeOf(a.regs) }

func (a *hll) update(in *input) error {
	in.scr.aggU64 = growTo(in.scr.aggU64, len(in.ids), 0)
	h := in.scr.aggU64[:len(in.ids)]
	hashColumn(in.arr, in.rows, h, 0) // unseeded: estimates and saved registers are reproducible
	regs := a.regs
	for k, g := range in.ids {
		x := h[k]
		r := uint8(bits.LeadingZeros64(x<<hllP|1<<(hllP-1))) + 1
		p := &regs[int(g)<<hllP|int(x>>hllQ)]
		if r > *p {
			*p = r
		}
	}
	return nil
}

func (a *hll) combine(into, from uint32, _ *scratch) error {
	d := a.regs[int(into)<<hllP:][:hllM]
	for i, r := range a.regs[int(from)<<hllP:][:hllM] {
		d[i] = max(d[i], r)
	}
	return nil
}

func (a *hll) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	buf, o := newFixed[int64](alloc, len(groups))
	for j, g := range groups {
		o[j] = hllEstimate(a.regs[int(g)<<hllP:][:hllM])
	}
	return makeArray(sqltypes.BigInt, len(groups), 0, nil, buf), nil
}

// hllEstimate is Ertl's improved raw estimator ("New cardinality
// estimation algorithms for HyperLogLog sketches", 2017, algorithm 6):
// unbiased from 0 to far beyond 2^32 without empirical bias tables.
func hllEstimate(regs []uint8) int64 {
	var c [hllQ + 2]float64
	for _, r := range regs {
		c[r]++
	}
	const m = float64(hllM)
	if c[0] == m {
		return 0
	}
	z := m * hllTau(1-c[hllQ+1]/m)
	for k := hllQ; k >= 1; k-- {
		z = 0.5 * (z + c[k])
	}
	z += m * hllSigma(c[0]/m)
	const alphaInf = 0.5 / math.Ln2
	return int64(math.Round(alphaInf * m * m / z))
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		z0 := z
		z += x * y
		y += y
		if z == z0 {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		z0 := z
		y *= 0.5
		z -= (1 - x) * (1 - x) * y
		if z == z0 {
			return z / 3
		}
	}
}
