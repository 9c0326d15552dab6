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

// TestTakeInterleaveReference gathers random sliced columns with nulls
// (strings of every length, short and long, multi-byte) by selections
// (increasing with runs, as a filter's; shuffled; repeated; with -1) and
// interleaves several parts, comparing each row with a row-at-a-time
// reference.
func TestTakeInterleaveReference(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(11, 12))
	types := []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.Binary, arrow.PrimitiveTypes.Int64,
		arrow.PrimitiveTypes.Int32, arrow.FixedWidthTypes.Boolean, &arrow.Decimal128Type{Precision: 18, Scale: 2}}
	words := []string{"", "a", "é", "日本語", "channel_id=42", "0123456789abcdefXYZ", "https://www.nexmark.com/item.htm?query=1&channel_id=7"}
	gen := func(dt arrow.DataType, n int, nulls bool) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		for i := 0; i < n; i++ {
			if nulls && rng.IntN(4) == 0 {
				b.AppendNull()
				continue
			}
			var v string
			switch dt.ID() {
			case arrow.STRING, arrow.BINARY:
				v = words[rng.IntN(len(words))] + string(rune('a'+i%26)) // distinct neighbours
				if rng.IntN(3) == 0 {
					v = words[rng.IntN(len(words))]
				}
				if dt.ID() == arrow.BINARY {
					b.(*array.BinaryBuilder).Append([]byte(v))
					continue
				}
			case arrow.BOOL:
				v = []string{"true", "false"}[rng.IntN(2)]
			default:
				v = string(rune('0'+rng.IntN(10))) + string(rune('0'+rng.IntN(10)))
			}
			if err := b.AppendValueFromString(v); err != nil {
				t.Fatal(err)
			}
		}
		return b.NewArray()
	}
	selections := func(m, n int) [][]int32 {
		var inc, shuf, rep, neg []int32
		for i := 0; i < m; i++ {
			if rng.IntN(8) != 0 { // a filter keeping 7/8: runs
				inc = append(inc, int32(i))
			}
		}
		for i := 0; i < n; i++ {
			shuf = append(shuf, int32(rng.IntN(m)))
			rep = append(rep, int32(i%3%m))
			k := int32(rng.IntN(m))
			if rng.IntN(5) == 0 {
				k = -1
			}
			neg = append(neg, k)
		}
		return [][]int32{inc, shuf, rep, neg, {}}
	}
	same := func(a arrow.Array, i int, b arrow.Array, j int) bool {
		if a == nil || i < 0 {
			return b.IsNull(j)
		}
		return a.IsNull(i) == b.IsNull(j) && (a.IsNull(i) || a.ValueStr(i) == b.ValueStr(j))
	}
	for _, dt := range types {
		for _, nulls := range []bool{false, true} {
			for _, m := range []int{1, 5, 200} {
				off := rng.IntN(7)
				full := gen(dt, m+off+3, nulls)
				a := array.NewSlice(full, int64(off), int64(off+m))
				for _, pos := range selections(m, 150) {
					got, err := Take(mem, a, pos)
					if err != nil {
						t.Fatal(err)
					}
					for j, k := range pos {
						if !same(a, int(k), got, j) {
							t.Fatalf("%s nulls %v take row %d (<- %d): %s, want %s", dt, nulls, j, k, got.ValueStr(j), a.ValueStr(int(k)))
						}
					}
					got.Release()
				}
				// three parts, sliced differently; src -1 gives NULL
				var parts []arrow.Array
				for p := 0; p < 3; p++ {
					f := gen(dt, m+p+2, nulls)
					parts = append(parts, array.NewSlice(f, int64(p), int64(p+m)))
					f.Release()
				}
				n := 300
				src, pos := make([]int32, n), make([]int32, n)
				for j := range src {
					src[j], pos[j] = int32(rng.IntN(3)), int32(rng.IntN(m))
					if j > 0 && rng.IntN(2) == 0 && pos[j-1] >= 0 && int(pos[j-1])+1 < m { // a run
						src[j], pos[j] = src[j-1], pos[j-1]+1
					}
					if rng.IntN(9) == 0 {
						src[j] = -1
					}
				}
				got, err := Interleave(mem, dt, parts, src, pos)
				if err != nil {
					t.Fatal(err)
				}
				for j := range src {
					var p arrow.Array
					if src[j] >= 0 {
						p = parts[src[j]]
					}
					if !same(p, int(pos[j]), got, j) {
						t.Fatalf("%s nulls %v interleave row %d: %s", dt, nulls, j, got.ValueStr(j))
					}
				}
				got.Release()
				for _, p := range parts {
					p.Release()
				}
				a.Release()
				full.Release()
			}
		}
	}
}
