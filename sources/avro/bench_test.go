package avro

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	hamba "github.com/hamba/avro/v2"
)

const benchSchema = `{"type":"record","name":"Trade","fields":[
 {"name":"id","type":"long"},
 {"name":"ticker","type":"string"},
 {"name":"venue","type":"string"},
 {"name":"price","type":"double"},
 {"name":"bid","type":"double"},
 {"name":"ask","type":"double"},
 {"name":"volume","type":"long"},
 {"name":"qty","type":"int"},
 {"name":"buy","type":"boolean"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

type benchTrade struct {
	ID     int64     `avro:"id"`
	Ticker string    `avro:"ticker"`
	Venue  string    `avro:"venue"`
	Price  float64   `avro:"price"`
	Bid    float64   `avro:"bid"`
	Ask    float64   `avro:"ask"`
	Volume int64     `avro:"volume"`
	Qty    int32     `avro:"qty"`
	Buy    bool      `avro:"buy"`
	TS     time.Time `avro:"ts"`
}

// BenchmarkDecode decodes 10-field Avro records (Confluent framing) into
// Arrow columns, 4096 rows per batch.
func BenchmarkDecode(b *testing.B) {
	reg, cl := testRegistry(b)
	schema := arrow.NewSchema([]arrow.Field{
		field("id", sqltypes.BigInt, false), field("ticker", sqltypes.Varchar, false), field("venue", sqltypes.Varchar, false),
		field("price", sqltypes.Double, false), field("bid", sqltypes.Double, false), field("ask", sqltypes.Double, false),
		field("volume", sqltypes.BigInt, false), field("qty", sqltypes.Int, false), field("buy", sqltypes.Boolean, false),
		field("ts", sqltypes.Timestamp, false),
	}, nil)
	const n = 4096
	tick := []string{"AAPL", "MSFT", "GOOG", "JPM", "XOM"}
	values := make([][]byte, n)
	bytes := 0
	for i := range values {
		values[i] = frame(b, reg, benchSchema, benchTrade{
			ID: int64(i) * 7919, Ticker: tick[i%5], Venue: "XNAS", Price: 100 + float64(i%300)/100, Bid: 99.5, Ask: 100.5,
			Volume: int64(1 + i%2000), Qty: int32(i % 100), Buy: i%2 == 0, TS: time.UnixMilli(1_700_000_000_000 + int64(i)),
		})
		bytes += len(values[i])
	}
	d, err := NewDecoder(schema, cl, memory.NewGoAllocator())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Release()
	if err := d.Resolve(context.Background(), values[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(bytes / n))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if i%n == 0 && i > 0 {
			for _, a := range d.NewArrays() {
				a.Release()
			}
			d.Reserve(n)
		}
		if rerr := d.Append(values[i%n]); rerr != nil {
			b.Fatal(rerr)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/CPU-s")
}

// BenchmarkHambaGeneric is the reference the compiled decoder replaces:
// the same records decoded by hamba/avro into map[string]any, before any
// Arrow builder is touched.
func BenchmarkHambaGeneric(b *testing.B) {
	reg, _ := testRegistry(b)
	s := hamba.MustParse(benchSchema)
	value := frame(b, reg, benchSchema, benchTrade{ID: 1, Ticker: "AAPL", Venue: "XNAS", Price: 1, Bid: 1, Ask: 1, Volume: 1, Qty: 1, TS: time.UnixMilli(1)})
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		var m map[string]any
		if err := hamba.Unmarshal(s, value[5:], &m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "rows/CPU-s")
}

// cpuTime is the user + system CPU time of the process: on a shared
// machine, rows per CPU-second measure the decoder rather than the load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
