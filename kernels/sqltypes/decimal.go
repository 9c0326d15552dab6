package sqltypes

import "github.com/apache/arrow-go/v18/arrow"

// DecimalOf returns the DECIMAL type an exact numeric type takes part in
// decimal arithmetic as: INT as DECIMAL(10,0), BIGINT as DECIMAL(19,0), a
// DECIMAL as itself. ok is false for other types.
func DecimalOf(dt arrow.DataType) (t *arrow.Decimal128Type, ok bool) {
	switch dt.ID() {
	case arrow.INT32:
		return &arrow.Decimal128Type{Precision: 10, Scale: 0}, true
	case arrow.INT64:
		return &arrow.Decimal128Type{Precision: 19, Scale: 0}, true
	case arrow.DECIMAL128:
		return dt.(*arrow.Decimal128Type), true
	}
	return nil, false
}

// adjustDecimal caps precision at 38 the way SQL Server and Spark do: when
// the exact result would need more than 38 digits, integer digits are kept
// and the scale is reduced, but never below min(scale, 6).
func adjustDecimal(p, s int32) (int32, int32) {
	if p <= MaxDecimalPrecision {
		return p, s
	}
	intDigits := p - s
	minScale := min(s, 6)
	s = max(MaxDecimalPrecision-intDigits, minScale)
	return MaxDecimalPrecision, s
}

// DecimalResult returns the result type of l op r for DECIMAL operands
// (op one of + - * / %):
//
//   - -  scale max(s1,s2), precision max(p1-s1, p2-s2) + scale + 1
//   - scale s1+s2,      precision p1+p2+1
//     /    scale max(6, s1+p2+1), precision p1-s1+s2 + scale
//     %    scale max(s1,s2), precision min(p1-s1, p2-s2) + scale
//
// A precision above 38 is brought back to 38 by reducing the scale as SQL
// Server and Spark do (integer digits are kept, the scale never goes below
// min(scale, 6)); values that still do not fit are an overflow error at
// evaluation time.
func DecimalResult(op string, l, r *arrow.Decimal128Type) *arrow.Decimal128Type {
	p1, s1, p2, s2 := l.Precision, l.Scale, r.Precision, r.Scale
	var p, s int32
	switch op {
	case "+", "-":
		s = max(s1, s2)
		p = max(p1-s1, p2-s2) + s + 1
	case "*":
		s = s1 + s2
		p = p1 + p2 + 1
	case "/":
		s = max(6, s1+p2+1)
		p = p1 - s1 + s2 + s
	case "%":
		s = max(s1, s2)
		p = min(p1-s1, p2-s2) + s
	}
	p, s = adjustDecimal(p, s)
	if p < 1 {
		p = 1
	}
	return &arrow.Decimal128Type{Precision: p, Scale: s}
}
