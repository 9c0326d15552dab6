package kernels

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// CmpOp is a comparison operator.
type CmpOp uint8

// Comparison operators.
const (
	Eq CmpOp = iota
	Ne
	Lt
	Le
	Gt
	Ge
)

func (op CmpOp) String() string { return [...]string{"=", "<>", "<", "<=", ">", ">="}[op] }

// truth maps the result of a three-way comparison (-1, 0, 1) + 1 to 0 or 1.
var truth = [...][3]byte{
	Eq: {0, 1, 0}, Ne: {1, 0, 1}, Lt: {1, 0, 0}, Le: {1, 1, 0}, Gt: {0, 0, 1}, Ge: {0, 1, 1},
}

// Holds reports whether a three-way comparison result c satisfies op.
func (op CmpOp) Holds(c int) bool { return truth[op][c+1] == 1 }

// CompareFloat is the total order of DOUBLE used by comparisons and sorts,
// following PostgreSQL: NaN equals NaN and sorts above every other value
// (+Inf included); -0 equals 0.
func CompareFloat(x, y float64) int {
	if x != x || y != y {
		switch {
		case x != x && y != y:
			return 0
		case x != x:
			return 1
		}
		return -1
	}
	return cmp.Compare(x, y)
}

// Compare computes l op r elementwise into a BOOLEAN array; a row is NULL
// when either side is. l and r have the same type (DECIMAL operands may
// differ in scale and are compared exactly), one of BOOLEAN (false < true),
// INT, BIGINT, DOUBLE (see CompareFloat), DECIMAL, VARCHAR (byte-wise, i.e.
// code point order), TIMESTAMP, DATE, INTERVAL.
func Compare(alloc memory.Allocator, op CmpOp, l, r arrow.Array, n int) (arrow.Array, error) {
	validity := andValidity(alloc, n, l, r)
	vbuf := allocBitmap(alloc, n)
	out := vbuf.Bytes()
	tbl := truth[op]
	ma, mb := bcast(l, n), bcast(r, n)
	switch storageOf(l.DataType()) {
	case arrow.INT32:
		cmpInt(op, n, Values[int32](l), Values[int32](r), ma, mb, out)
	case arrow.INT64:
		cmpInt(op, n, Values[int64](l), Values[int64](r), ma, mb, out)
	case arrow.FLOAT64:
		cmpOrdered(tbl, n, Values[float64](l), Values[float64](r), ma, mb, out)
	case arrow.DECIMAL128:
		as, bs := l.DataType().(*arrow.Decimal128Type).Scale, r.DataType().(*arrow.Decimal128Type).Scale
		a, b := Values[decimal128.Num](l), Values[decimal128.Num](r)
		for i := 0; i < n; i++ {
			out[i>>3] |= tbl[CompareDecimal(a[i&ma], as, b[i&mb], bs)+1] << (i & 7)
		}
	case arrow.STRING:
		a, b := l.(*array.String), r.(*array.String)
		if (op == Eq || op == Ne) && (ma == 0) != (mb == 0) {
			if ma == 0 {
				a, b = b, a
			}
			eqStringScalar(a, b.Value(0), n, op == Ne, out)
			break
		}
		for i := 0; i < n; i++ {
			out[i>>3] |= tbl[strings.Compare(a.Value(i&ma), b.Value(i&mb))+1] << (i & 7)
		}
	case arrow.BOOL:
		a, b := l.(*array.Boolean), r.(*array.Boolean)
		for i := 0; i < n; i++ {
			out[i>>3] |= tbl[cmpBool(a.Value(i&ma), b.Value(i&mb))+1] << (i & 7)
		}
	default:
		vbuf.Release()
		if validity != nil {
			validity.Release()
		}
		return nil, fmt.Errorf("kernels.Compare: unsupported type %s", l.DataType())
	}
	return finish(arrow.FixedWidthTypes.Boolean, n, validity, vbuf), nil
}

// eqStringScalar sets bit i of out when row i of a equals v (differs, with
// ne), comparing lengths first and reading the offsets and bytes directly.
func eqStringScalar(a *array.String, v string, n int, ne bool, out []byte) {
	offs := a.ValueOffsets()
	var data []byte
	if buf := a.Data().Buffers()[2]; buf != nil {
		data = buf.Bytes()
	}
	want := int32(len(v))
	for i := 0; i < n; i++ {
		s, e := offs[i], offs[i+1]
		eq := e-s == want && string(data[s:e]) == v
		out[i>>3] |= b2u(eq != ne) << (i & 7)
	}
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case y:
		return -1
	}
	return 1
}

// cmpInt is the vector loop for integer storage, one loop per operator.
func cmpInt[T Integer](op CmpOp, n int, a, b []T, ma, mb int, out []byte) {
	switch op {
	case Eq:
		for i := 0; i < n; i++ {
			out[i>>3] |= b2u(a[i&ma] == b[i&mb]) << (i & 7)
		}
	case Ne:
		for i := 0; i < n; i++ {
			out[i>>3] |= b2u(a[i&ma] != b[i&mb]) << (i & 7)
		}
	case Lt:
		for i := 0; i < n; i++ {
			out[i>>3] |= b2u(a[i&ma] < b[i&mb]) << (i & 7)
		}
	case Le:
		for i := 0; i < n; i++ {
			out[i>>3] |= b2u(a[i&ma] <= b[i&mb]) << (i & 7)
		}
	case Gt:
		for i := 0; i < n; i++ {
			out[i>>3] |= b2u(a[i&ma] > b[i&mb]) << (i & 7)
		}
	case Ge:
		for i := 0; i < n; i++ {
			out[i>>3] |= b2u(a[i&ma] >= b[i&mb]) << (i & 7)
		}
	}
}

func b2u(b bool) byte {
	var x byte
	if b {
		x = 1
	}
	return x
}

// cmpOrdered is the vector loop for integer and float storage; the NaN test
// compiles away for integers.
func cmpOrdered[T int32 | int64 | float64](tbl [3]byte, n int, a, b []T, ma, mb int, out []byte) {
	for i := 0; i < n; i++ {
		x, y := a[i&ma], b[i&mb]
		c := cmp.Compare(x, y)
		if x != x || y != y {
			c = CompareFloat(float64(x), float64(y))
		}
		out[i>>3] |= tbl[c+1] << (i & 7)
	}
}
