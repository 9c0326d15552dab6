package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkTakeFilterStrings takes 7/8 of 4096 short strings (a
// filter's selection); BenchmarkInterleaveCase assembles a CASE result from
// four one-row literals and a column with nulls (Nexmark q21's shape).
func BenchmarkTakeFilterStrings(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	sb := array.NewStringBuilder(memory.DefaultAllocator)
	for i := 0; i < 4096; i++ {
		sb.Append([]string{"apple", "google", "facebook", "baidu", "channel-1234"}[rng.IntN(5)])
	}
	a := sb.NewStringArray()
	var sel []int32
	for i := 0; i < 4096; i++ {
		if rng.IntN(8) != 0 {
			sel = append(sel, int32(i))
		}
	}
	b.ReportAllocs()
	for range b.N {
		out, _ := Take(memory.DefaultAllocator, a, sel)
		out.Release()
	}
	b.ReportMetric(float64(len(sel)*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkInterleaveCase(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var parts []arrow.Array
	for _, v := range []string{"0", "1", "2", "3"} {
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		sb.Append(v)
		parts = append(parts, sb.NewStringArray())
	}
	sb := array.NewStringBuilder(memory.DefaultAllocator)
	for i := 0; i < 4096; i++ {
		if rng.IntN(3) == 0 {
			sb.AppendNull()
		} else {
			sb.Append("1666711552")
		}
	}
	parts = append(parts, sb.NewStringArray())
	src, pos := make([]int32, 4096), make([]int32, 4096)
	for i := range src {
		src[i] = int32(rng.IntN(5))
		if src[i] == 4 {
			pos[i] = int32(i)
		}
	}
	b.ReportAllocs()
	for range b.N {
		out, _ := Interleave(memory.DefaultAllocator, arrow.BinaryTypes.String, parts, src, pos)
		out.Release()
	}
	b.ReportMetric(float64(len(src)*b.N)/b.Elapsed().Seconds(), "rows/s")
}
