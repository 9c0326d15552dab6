package sources

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

var tradesSchema = arrow.NewSchema([]arrow.Field{
	field("ticker", sqltypes.Varchar, true),
	field("sector", sqltypes.Varchar, true),
	field("price", dec(18, 4), true),
	field("volume", sqltypes.BigInt, true),
	field("trade_time", sqltypes.Timestamp, true),
}, nil)

// BenchmarkJSONDecode decodes ~100-byte trade records from a JSON lines
// file into Arrow batches of 4096 rows.
func BenchmarkJSONDecode(b *testing.B) {
	const rows = 200_000
	tick := []string{"AAPL", "MSFT", "GOOG", "JPM", "XOM"}
	sect := []string{"tech", "tech", "tech", "finance", "energy"}
	var sb strings.Builder
	for i := range rows {
		k := i % len(tick)
		fmt.Fprintf(&sb, `{"ticker":"%s","sector":"%s","price":%d.%04d,"volume":%d,"trade_time":"2024-01-01T%02d:%02d:%02d.%03dZ"}`+"\n",
			tick[k], sect[k], 100+i%300, i%10000, 1+i%2000, i/3600000%24, i/60000%60, i/1000%60, i%1000)
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "trades.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(sb.Len()))
	ctx := context.Background()
	spec := arrowexec.SourceSpec{Name: "trades", Schema: tradesSchema, Alloc: memory.NewGoAllocator(),
		Options: arrowexec.Options{"path": path, "format": "json"}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		src, err := NewFile(spec)
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Open(ctx); err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			msg, err := src.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += int(msg.Rows())
			msg.Release()
		}
		src.Close()
		if n != rows {
			b.Fatalf("%d rows", n)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
