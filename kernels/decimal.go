package kernels

import (
	"fmt"
	"math/big"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// decStatus is the outcome of one decimal operation.
type decStatus uint8

const (
	decOK       decStatus = iota
	decNull               // division by zero: the result is NULL
	decOverflow           // the result does not fit
)

// decArith carries what a decimal operation needs besides its operands.
type decArith struct {
	op         ArithOp
	ls, rs, os int32 // operand and result scales
	max        u128  // largest magnitude of the result precision
}

// apply computes a op b for one row.
func (d *decArith) apply(a, b decimal128.Num) (decimal128.Num, decStatus) {
	ua, na := absNum(a)
	ub, nb := absNum(b)
	switch d.op {
	case Add, Sub:
		s := max(d.ls, d.rs)
		var o1, o2 bool
		ua, o1 = ua.scaleUp(s - d.ls)
		ub, o2 = ub.scaleUp(s - d.rs)
		if o1 || o2 {
			return decimal128.Num{}, decOverflow
		}
		if d.op == Sub {
			nb = !nb
		}
		var r u128
		neg := na
		if na == nb {
			var c bool
			if r, c = ua.add(ub); c {
				return decimal128.Num{}, decOverflow
			}
		} else if ua.cmp(ub) >= 0 {
			r = ua.sub(ub)
		} else {
			r, neg = ub.sub(ua), nb
		}
		return d.finish(r, neg, s)
	case Mul:
		r, o := ua.mul(ub)
		if o {
			return d.slow(a, b)
		}
		return d.finish(r, na != nb, d.ls+d.rs)
	case Div:
		if ub.isZero() {
			return decimal128.Num{}, decNull
		}
		e := d.os + d.rs - d.ls // result = a * 10^e / b
		if e >= 0 && e <= 38 && ub.hi == 0 {
			num, o := ua.scaleUp(e)
			if !o {
				q, r := num.divmod64(ub.lo)
				if r >= ub.lo-r { // 2r >= b
					q, _ = q.add(u128{0, 1})
				}
				return d.finish(q, na != nb, d.os)
			}
		}
		return d.slow(a, b)
	case Mod:
		if ub.isZero() {
			return decimal128.Num{}, decNull
		}
		s := max(d.ls, d.rs)
		var o1, o2 bool
		ua, o1 = ua.scaleUp(s - d.ls)
		ub, o2 = ub.scaleUp(s - d.rs)
		if o1 || o2 || ub.hi != 0 {
			return d.slow(a, b)
		}
		_, r := ua.divmod64(ub.lo)
		return d.finish(u128{0, r}, na, s)
	}
	return decimal128.Num{}, decOverflow
}

// finish brings a magnitude computed at scale s to the result scale and
// checks it against the result precision.
func (d *decArith) finish(r u128, neg bool, s int32) (decimal128.Num, decStatus) {
	if s > d.os {
		r = r.scaleDown(s - d.os)
	} else if s < d.os {
		var o bool
		if r, o = r.scaleUp(d.os - s); o {
			return decimal128.Num{}, decOverflow
		}
	}
	if r.cmp(d.max) > 0 {
		return decimal128.Num{}, decOverflow
	}
	return r.num(neg), decOK
}

// slow computes a op b with big.Int when 128-bit intermediates overflow.
func (d *decArith) slow(a, b decimal128.Num) (decimal128.Num, decStatus) {
	ba, bb := a.BigInt(), b.BigInt()
	ten := big.NewInt(10)
	pow := func(k int32) *big.Int { return new(big.Int).Exp(ten, big.NewInt(int64(k)), nil) }
	var num, den *big.Int
	switch d.op {
	case Mul: // a*b at scale ls+rs, brought to os
		num = new(big.Int).Mul(ba, bb)
		if k := d.ls + d.rs - d.os; k > 0 {
			den = pow(k)
		} else {
			num.Mul(num, pow(-k))
		}
	case Div: // a*10^(os+rs-ls) / b
		num, den = ba, new(big.Int).Set(bb)
		if e := d.os + d.rs - d.ls; e >= 0 {
			num = new(big.Int).Mul(ba, pow(e))
		} else {
			den.Mul(den, pow(-e))
		}
	case Mod:
		s := max(d.ls, d.rs)
		x := new(big.Int).Mul(ba, pow(s-d.ls))
		y := new(big.Int).Mul(bb, pow(s-d.rs))
		num = new(big.Int).Rem(x, y)
		if k := s - d.os; k > 0 {
			den = pow(k)
		}
	}
	if den != nil {
		num = roundQuo(num, den)
	}
	u, ok := fromBig(new(big.Int).Abs(num))
	if !ok || u.cmp(d.max) > 0 {
		return decimal128.Num{}, decOverflow
	}
	return u.num(num.Sign() < 0), decOK
}

// roundQuo returns num/den rounded half away from zero.
func roundQuo(num, den *big.Int) *big.Int {
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	r.Abs(r).Lsh(r, 1)
	if r.CmpAbs(den) >= 0 {
		if num.Sign()*den.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}

// DecimalMulInt computes l * r for a DECIMAL l and an INT or BIGINT r (the
// integer taking part as DECIMAL(10,0) / DECIMAL(19,0)) without
// materialising r as decimals; out is the type sqltypes.DecimalResult
// gives. Overflow is an error.
func DecimalMulInt(alloc memory.Allocator, l, r arrow.Array, n int, out *arrow.Decimal128Type) (arrow.Array, error) {
	d := &decArith{op: Mul, ls: l.DataType().(*arrow.Decimal128Type).Scale, os: out.Scale, max: maxForPrecision[out.Precision]}
	var b []int64
	if r.DataType().ID() == arrow.INT32 {
		b32 := Values[int32](r)
		b = make([]int64, len(b32))
		for i, v := range b32 {
			b[i] = int64(v)
		}
	} else {
		b = Values[int64](r)
	}
	a := Values[decimal128.Num](l)
	ma, mb := bcast(l, n), bcast(r, n)
	validity := andValidity(alloc, n, l, r)
	buf, o := allocFixed[decimal128.Num](alloc, n)
	var bad decStatus
	fast := d.ls == d.os
	for i := range o {
		x, y := a[i&ma], b[i&mb]
		if fast && int64(x.LowBits())>>63 == x.HighBits() {
			v, st := mul64to128(int64(x.LowBits()), y, d.max)
			o[i] = v
			bad |= st
			continue
		}
		v, st := d.apply(x, decimal128.FromI64(y))
		o[i] = v
		bad |= st
	}
	if bad != decOK {
		for i := range o {
			if validity != nil && !bitutil.BitIsSet(validity.Bytes(), i) {
				continue
			}
			if _, st := d.apply(a[i&ma], decimal128.FromI64(b[i&mb])); st != decOK {
				buf.Release()
				if validity != nil {
					validity.Release()
				}
				return nil, fmt.Errorf("%s overflow in %s * %d", decName(out), FormatDecimal(a[i&ma], d.ls), b[i&mb])
			}
		}
	}
	return finish(out, n, validity, buf), nil
}

// DecimalArith computes l op r over two DECIMAL arrays (any scales) into a
// new array of type out, exactly; results are rounded half away from zero
// to out's scale. Division or modulo by zero yields NULL. A result that does
// not fit out's precision is an error.
func DecimalArith(alloc memory.Allocator, op ArithOp, l, r arrow.Array, n int, out *arrow.Decimal128Type) (arrow.Array, error) {
	d := &decArith{
		op: op,
		ls: l.DataType().(*arrow.Decimal128Type).Scale,
		rs: r.DataType().(*arrow.Decimal128Type).Scale,
		os: out.Scale, max: maxForPrecision[out.Precision],
	}
	a, b := Values[decimal128.Num](l), Values[decimal128.Num](r)
	ma, mb := bcast(l, n), bcast(r, n)
	validity := andValidity(alloc, n, l, r)
	buf, o := allocFixed[decimal128.Num](alloc, n)
	var bad decStatus
	if op == Mul && d.ls+d.rs == d.os {
		// Fast path (e.g. DECIMAL(18,4) * BIGINT): 64x64 -> 128-bit products
		// need no rescaling.
		for i := range o {
			x, y := a[i&ma], b[i&mb]
			if int64(x.LowBits())>>63 == x.HighBits() && int64(y.LowBits())>>63 == y.HighBits() {
				v, st := mul64to128(int64(x.LowBits()), int64(y.LowBits()), d.max)
				o[i] = v
				bad |= st
				continue
			}
			v, st := d.apply(x, y)
			o[i] = v
			bad |= st
		}
	} else {
		for i := range o {
			v, st := d.apply(a[i&ma], b[i&mb])
			o[i] = v
			bad |= st
		}
	}
	if bad != decOK {
		// Rare: find what happened row by row, ignoring NULL rows.
		for i := range o {
			if validity != nil && !bitutil.BitIsSet(validity.Bytes(), i) {
				continue
			}
			switch v, st := d.apply(a[i&ma], b[i&mb]); st {
			case decNull:
				if validity == nil {
					validity = allOnes(alloc, n)
				}
				bitutil.ClearBit(validity.Bytes(), i)
				o[i] = v
			case decOverflow:
				buf.Release()
				if validity != nil {
					validity.Release()
				}
				return nil, fmt.Errorf("%s overflow in %s %s %s", decName(out),
					FormatDecimal(a[i&ma], d.ls), op, FormatDecimal(b[i&mb], d.rs))
			}
		}
	}
	return finish(out, n, validity, buf), nil
}

func decName(t *arrow.Decimal128Type) string {
	return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale)
}

// mul64to128 multiplies two int64 into a 128-bit decimal, checking the
// magnitude against max.
func mul64to128(x, y int64, max u128) (decimal128.Num, decStatus) {
	ux, nx := uint64(x), x < 0
	if nx {
		ux = -ux
	}
	uy, ny := uint64(y), y < 0
	if ny {
		uy = -uy
	}
	var r u128
	r.hi, r.lo = bits.Mul64(ux, uy)
	if r.cmp(max) > 0 {
		return decimal128.Num{}, decOverflow
	}
	return r.num(nx != ny), decOK
}

// CompareDecimal compares a (scale as) with b (scale bs) exactly.
func CompareDecimal(a decimal128.Num, as int32, b decimal128.Num, bs int32) int {
	if as == bs {
		return a.Cmp(b)
	}
	ua, na := absNum(a)
	ub, nb := absNum(b)
	if na != nb {
		if ua.isZero() && ub.isZero() {
			return 0
		}
		if na {
			return -1
		}
		return 1
	}
	var o bool
	if as < bs {
		ua, o = ua.scaleUp(bs - as)
	} else {
		ub, o = ub.scaleUp(as - bs)
	}
	var c int
	switch {
	case o && as < bs:
		c = 1 // |a| rescaled exceeds 2^128 > |b|
	case o:
		c = -1
	default:
		c = ua.cmp(ub)
	}
	if na {
		return -c
	}
	return c
}

// RescaleDecimal converts an unscaled value from scale from to scale to,
// rounding half away from zero, and checks it fits precision.
func RescaleDecimal(n decimal128.Num, from, to, precision int32) (decimal128.Num, bool) {
	u, neg := absNum(n)
	switch {
	case u.isZero():
		return decimal128.Num{}, true
	case from-to > 38:
		return decimal128.Num{}, true // rounds to zero
	case to-from > 38:
		return decimal128.Num{}, false
	}
	if to >= from {
		var o bool
		if u, o = u.scaleUp(to - from); o {
			return decimal128.Num{}, false
		}
	} else {
		u = u.scaleDown(from - to)
	}
	if u.cmp(maxForPrecision[precision]) > 0 {
		return decimal128.Num{}, false
	}
	return u.num(neg), true
}
