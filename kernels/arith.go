package kernels

import (
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// ArithOp is a binary arithmetic operator.
type ArithOp uint8

// Arithmetic operators.
const (
	Add ArithOp = iota
	Sub
	Mul
	Div
	Mod
)

func (op ArithOp) String() string { return [...]string{"+", "-", "*", "/", "%"}[op] }

// Integer is the set of integer storage types arithmetic works on.
type Integer interface{ ~int32 | ~int64 }

// Arith computes l op r elementwise for operands stored as int32 (INT,
// DATE), int64 (BIGINT, TIMESTAMP, INTERVAL) or float64 (DOUBLE); l and r
// share that storage and the result, of type out, does too (so TIMESTAMP +
// INTERVAL is int64 addition typed TIMESTAMP).
//
// Rules: integer overflow is an error naming the operands ("BIGINT overflow
// in 9223372036854775807 + 1"), never wrap-around; integer division
// truncates toward zero and % takes the sign of the dividend; division or
// modulo by zero yields NULL for every type, DOUBLE included; other DOUBLE
// results follow IEEE 754 (overflow gives ±Inf, NaN propagates).
func Arith(alloc memory.Allocator, op ArithOp, l, r arrow.Array, n int, out arrow.DataType) (arrow.Array, error) {
	switch storageOf(l.DataType()) {
	case arrow.INT32:
		return arith(alloc, op, l, r, n, out, intLoop[int32], intApply[int32])
	case arrow.INT64:
		return arith(alloc, op, l, r, n, out, intLoop[int64], intApply[int64])
	case arrow.FLOAT64:
		return arith(alloc, op, l, r, n, out, floatLoop, floatApply)
	}
	return nil, fmt.Errorf("kernels.Arith: unsupported type %s", l.DataType())
}

// storageOf returns the physical type ID fixed-width values are stored as.
func storageOf(dt arrow.DataType) arrow.Type {
	switch dt.ID() {
	case arrow.INT32, arrow.DATE32:
		return arrow.INT32
	case arrow.INT64, arrow.TIMESTAMP, arrow.DURATION, arrow.DATE64:
		return arrow.INT64
	}
	return dt.ID()
}

func arith[T Integer | float64](alloc memory.Allocator, op ArithOp, l, r arrow.Array, n int, out arrow.DataType,
	loop func(ArithOp, []T, []T, []T, int, int) decStatus, apply func(ArithOp, T, T) (T, decStatus)) (arrow.Array, error) {
	a, b := Values[T](l), Values[T](r)
	ma, mb := bcast(l, n), bcast(r, n)
	validity := andValidity(alloc, n, l, r)
	buf, o := allocFixed[T](alloc, n)
	if loop(op, a, b, o, ma, mb) == decOK {
		return finish(out, n, validity, buf), nil
	}
	// Something special happened somewhere (overflow, division by zero):
	// find it row by row, ignoring NULL rows.
	for i := range o {
		if validity != nil && !bitutil.BitIsSet(validity.Bytes(), i) {
			continue
		}
		switch _, st := apply(op, a[i&ma], b[i&mb]); st {
		case decNull:
			if validity == nil {
				validity = allOnes(alloc, n)
			}
			bitutil.ClearBit(validity.Bytes(), i)
		case decOverflow:
			buf.Release()
			if validity != nil {
				validity.Release()
			}
			return nil, fmt.Errorf("%s overflow in %v %s %v", sqltypes.Name(out), a[i&ma], op, b[i&mb])
		}
	}
	return finish(out, n, validity, buf), nil
}

func minOf[T Integer]() T {
	var z T
	return T(-1) << (unsafe.Sizeof(z)*8 - 1)
}

// mulOvf returns x*y and whether it overflowed T.
func mulOvf[T Integer](x, y T) (T, bool) {
	var z T
	if unsafe.Sizeof(z) == 4 {
		p := int64(x) * int64(y)
		return T(p), p != int64(T(p))
	}
	X, Y := int64(x), int64(y)
	hi, lo := bits.Mul64(uint64(X), uint64(Y))
	h := int64(hi) - (X>>63)&Y - (Y>>63)&X
	return T(lo), h != int64(lo)>>63
}

// intLoop is the branch-light vector loop; it reports whether any row (NULL
// rows included) needs a second look.
func intLoop[T Integer](op ArithOp, a, b, o []T, ma, mb int) decStatus {
	var acc T
	switch op {
	case Add:
		for i := range o {
			x, y := a[i&ma], b[i&mb]
			s := x + y
			acc |= (x ^ s) & (y ^ s)
			o[i] = s
		}
	case Sub:
		for i := range o {
			x, y := a[i&ma], b[i&mb]
			s := x - y
			acc |= (x ^ y) & (x ^ s)
			o[i] = s
		}
	case Mul:
		bad := false
		for i := range o {
			v, ov := mulOvf(a[i&ma], b[i&mb])
			o[i] = v
			bad = bad || ov
		}
		if bad {
			return decOverflow
		}
	case Div, Mod:
		m := minOf[T]()
		bad := false
		for i := range o {
			x, y := a[i&ma], b[i&mb]
			if y == 0 || (y == -1 && x == m) {
				o[i], bad = 0, true
				continue
			}
			if op == Div {
				o[i] = x / y
			} else {
				o[i] = x % y
			}
		}
		if bad {
			return decOverflow
		}
	}
	if acc < 0 {
		return decOverflow
	}
	return decOK
}

// intApply computes one row.
func intApply[T Integer](op ArithOp, x, y T) (T, decStatus) {
	switch op {
	case Add:
		s := x + y
		if (x^s)&(y^s) < 0 {
			return 0, decOverflow
		}
		return s, decOK
	case Sub:
		s := x - y
		if (x^y)&(x^s) < 0 {
			return 0, decOverflow
		}
		return s, decOK
	case Mul:
		if v, ov := mulOvf(x, y); !ov {
			return v, decOK
		}
		return 0, decOverflow
	}
	if y == 0 {
		return 0, decNull
	}
	if op == Mod {
		return x % y, decOK // MinInt % -1 == 0 in Go
	}
	if y == -1 && x == minOf[T]() {
		return 0, decOverflow
	}
	return x / y, decOK
}

func floatLoop(op ArithOp, a, b, o []float64, ma, mb int) decStatus {
	switch op {
	case Add:
		for i := range o {
			o[i] = a[i&ma] + b[i&mb]
		}
	case Sub:
		for i := range o {
			o[i] = a[i&ma] - b[i&mb]
		}
	case Mul:
		for i := range o {
			o[i] = a[i&ma] * b[i&mb]
		}
	case Div, Mod:
		bad := false
		for i := range o {
			v, st := floatApply(op, a[i&ma], b[i&mb])
			o[i] = v
			bad = bad || st != decOK
		}
		if bad {
			return decNull
		}
	}
	return decOK
}

func floatApply(op ArithOp, x, y float64) (float64, decStatus) {
	switch op {
	case Add:
		return x + y, decOK
	case Sub:
		return x - y, decOK
	case Mul:
		return x * y, decOK
	}
	if y == 0 {
		return 0, decNull
	}
	if op == Div {
		return x / y, decOK
	}
	return math.Mod(x, y), decOK
}

// Negate returns -x for INT, BIGINT, DOUBLE, INTERVAL or DECIMAL arrays;
// negating the most negative integer is an overflow error.
func Negate(alloc memory.Allocator, x arrow.Array) (arrow.Array, error) {
	n := x.Len()
	switch x.DataType().ID() {
	case arrow.DECIMAL128:
		zero := Zero(alloc, x.DataType())
		defer zero.Release()
		return DecimalArith(alloc, Sub, zero, x, n, x.DataType().(*arrow.Decimal128Type))
	}
	zero := Zero(alloc, x.DataType())
	defer zero.Release()
	return Arith(alloc, Sub, zero, x, n, x.DataType())
}

// Zero returns a one-row array holding the zero value of a fixed-width type.
func Zero(alloc memory.Allocator, dt arrow.DataType) arrow.Array {
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize(max(dt.(arrow.FixedWidthDataType).BitWidth()/8, 1))
	clear(buf.Bytes())
	return finish(dt, 1, nil, buf)
}
