package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestFilterSliced filters sliced columns with nulls (and a sliced mask with
// nulls) and compares with a row-by-row reference.
func TestFilterSliced(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(3, 4))
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "d", Type: &arrow.Decimal128Type{Precision: 18, Scale: 4}, Nullable: true},
	}, nil)
	for _, n := range []int{1, 3, 64, 200, 4096} {
		off := rng.IntN(9)
		rb := array.NewRecordBuilder(mem, schema)
		mb := array.NewBooleanBuilder(mem)
		for r := 0; r < n+off; r++ {
			for c := 0; c < 4; c++ {
				if rng.IntN(4) == 0 {
					rb.Field(c).AppendNull()
					continue
				}
				_ = rb.Field(c).AppendValueFromString([]string{"42", "héllo", "true", "1.5"}[c])
			}
			if rng.IntN(5) == 0 {
				mb.AppendNull()
			} else {
				mb.Append(rng.IntN(2) == 0)
			}
		}
		full, fmask := rb.NewRecordBatch(), mb.NewBooleanArray()
		rb.Release()
		mb.Release()
		batch := full.NewSlice(int64(off), int64(off+n))
		mask := array.NewSlice(fmask, int64(off), int64(off+n)).(*array.Boolean)
		out, err := Filter(mem, batch, mask)
		if err != nil {
			t.Fatal(err)
		}
		j := 0
		for i := 0; i < n; i++ {
			if mask.IsNull(i) || !mask.Value(i) {
				continue
			}
			for c := 0; c < 4; c++ {
				a, b := batch.Column(c), out.Column(c)
				if a.IsNull(i) != b.IsNull(j) || (a.IsValid(i) && a.ValueStr(i) != b.ValueStr(j)) {
					t.Fatalf("n=%d row %d col %d: %s vs %s", n, i, c, a.ValueStr(i), b.ValueStr(j))
				}
			}
			j++
		}
		if j != int(out.NumRows()) {
			t.Fatalf("n=%d: %d rows, want %d", n, out.NumRows(), j)
		}
		out.Release()
		batch.Release()
		mask.Release()
		full.Release()
		fmask.Release()
	}
}

func TestDecimalMulExact(t *testing.T) {
	a, _ := ParseDecimal("123.45", 5, 2)
	b, _ := ParseDecimal("67.89", 4, 2)
	d := &decArith{op: Mul, ls: 2, rs: 2, os: 4, max: maxForPrecision[10]}
	v, st := d.apply(a, b)
	if st != decOK || FormatDecimal(v, 4) != "8381.0205" {
		t.Fatalf("got %s", FormatDecimal(v, 4))
	}
}
