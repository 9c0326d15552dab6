package kernels

import (
	"math/big"
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// u128 is an unsigned 128-bit magnitude, the one helper type behind
// DECIMAL parsing, rendering and arithmetic: they work on sign + magnitude
// so that overflow checks stay simple and exact.
type u128 struct{ hi, lo uint64 }

// pow10 holds 10^0 .. 10^38.
var pow10 = func() (p [39]u128) {
	p[0] = u128{0, 1}
	for i := 1; i < len(p); i++ {
		p[i], _ = p[i-1].mul64(10)
	}
	return p
}()

// maxForPrecision holds 10^p - 1, the largest magnitude of DECIMAL(p, s).
var maxForPrecision = func() (m [39]u128) {
	for i := range m {
		m[i] = pow10[i].sub(u128{0, 1})
	}
	return m
}()

func absNum(n decimal128.Num) (u128, bool) {
	if n.HighBits() < 0 {
		n = n.Negate()
		return u128{uint64(n.HighBits()), n.LowBits()}, true
	}
	return u128{uint64(n.HighBits()), n.LowBits()}, false
}

// num converts a magnitude and sign back to a two's complement decimal.
// The magnitude must be below 2^127.
func (u u128) num(neg bool) decimal128.Num {
	n := decimal128.New(int64(u.hi), u.lo)
	if neg {
		return n.Negate()
	}
	return n
}

func (u u128) isZero() bool { return u.hi == 0 && u.lo == 0 }

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi:
		return -1
	case u.hi > v.hi:
		return 1
	case u.lo < v.lo:
		return -1
	case u.lo > v.lo:
		return 1
	}
	return 0
}

func (u u128) add(v u128) (u128, bool) {
	lo, c := bits.Add64(u.lo, v.lo, 0)
	hi, c := bits.Add64(u.hi, v.hi, c)
	return u128{hi, lo}, c != 0
}

func (u u128) sub(v u128) u128 {
	lo, b := bits.Sub64(u.lo, v.lo, 0)
	hi, _ := bits.Sub64(u.hi, v.hi, b)
	return u128{hi, lo}
}

// mulAdd returns u*m + a and whether it overflowed 128 bits.
func (u u128) mulAdd(m, a uint64) (u128, bool) {
	h1, lo := bits.Mul64(u.lo, m)
	h2, hiLo := bits.Mul64(u.hi, m)
	hi, c := bits.Add64(hiLo, h1, 0)
	lo, c2 := bits.Add64(lo, a, 0)
	hi, c3 := bits.Add64(hi, 0, c2)
	return u128{hi, lo}, h2 != 0 || c != 0 || c3 != 0
}

// mul64 returns u*m and whether it overflowed 128 bits. It is mulAdd(m, 0)
// written out so that it stays within the inlining budget.
func (u u128) mul64(m uint64) (u128, bool) {
	h1, l1 := bits.Mul64(u.lo, m)
	h2, l2 := bits.Mul64(u.hi, m)
	hi, c := bits.Add64(h1, l2, 0)
	return u128{hi, l1}, h2 != 0 || c != 0
}

// mul returns u*v and whether it overflowed 128 bits.
func (u u128) mul(v u128) (u128, bool) {
	if u.hi != 0 && v.hi != 0 {
		return u128{}, true
	}
	if u.hi != 0 {
		return u.mul64(v.lo)
	}
	return v.mul64(u.lo)
}

// divmod64 divides u by d (d > 0).
func (u u128) divmod64(d uint64) (u128, uint64) {
	qh := u.hi / d
	r := u.hi % d
	ql, r := bits.Div64(r, u.lo, d)
	return u128{qh, ql}, r
}

// scaleUp returns u*10^k and whether it overflowed 128 bits (0 <= k <= 38).
func (u u128) scaleUp(k int32) (u128, bool) {
	if k == 0 {
		return u, false
	}
	return u.mul(pow10[k])
}

// scaleDown returns u/10^k rounded half away from zero (0 <= k <= 38).
func (u u128) scaleDown(k int32) u128 {
	if k == 0 {
		return u
	}
	if k <= 19 {
		q, r := u.divmod64(pow10[k].lo)
		if r >= pow10[k].lo/2 { // 10^k is even for k >= 1
			q, _ = q.add(u128{0, 1})
		}
		return q
	}
	q1, _ := u.divmod64(pow10[19].lo)
	q, r2 := q1.divmod64(pow10[k-19].lo)
	// the full remainder is r2*10^19 + r1 and 10^k/2 = 5*10^(k-1) is a
	// multiple of 10^19, so only r2 decides.
	if r2 >= 5*pow10[k-20].lo {
		q, _ = q.add(u128{0, 1})
	}
	return q
}

// fromBig converts a non-negative big.Int to u128; ok is false if it does
// not fit.
func fromBig(b *big.Int) (u128, bool) {
	if b.BitLen() > 128 {
		return u128{}, false
	}
	var lo, hi big.Int
	lo.And(b, new(big.Int).SetUint64(^uint64(0)))
	hi.Rsh(b, 64)
	return u128{hi.Uint64(), lo.Uint64()}, true
}
