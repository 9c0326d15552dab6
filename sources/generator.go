package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

var generatorOptions = []string{"rows", "rate", "seed", "start", "step_ms"}

// ticker is one instrument of the trades generator; base is its starting
// price in units of 0.0001.
type ticker struct {
	symbol, sector string
	base           int64
}

var tickers = [...]ticker{
	{"AAPL", "tech", 1_913_400}, {"MSFT", "tech", 3_754_500}, {"GOOG", "tech", 1_398_200},
	{"AMZN", "tech", 1_517_000}, {"NVDA", "tech", 4_812_800}, {"META", "tech", 3_532_900},
	{"TSLA", "auto", 2_485_000}, {"F", "auto", 121_900},
	{"JPM", "finance", 1_701_000}, {"GS", "finance", 3_865_200}, {"BAC", "finance", 336_600},
	{"MS", "finance", 932_500}, {"V", "finance", 2_604_100},
	{"XOM", "energy", 999_800}, {"CVX", "energy", 1_491_600}, {"COP", "energy", 1_160_700},
	{"JNJ", "health", 1_567_400}, {"PFE", "health", 287_900}, {"UNH", "health", 5_264_700},
	{"KO", "consumer", 601_500}, {"WMT", "consumer", 1_576_500},
}

// genColumns are the columns the generator knows, with the SQL type each
// produces natively.
var genColumns = map[string]string{
	"ticker": "VARCHAR", "sector": "VARCHAR", "price": "DECIMAL", "volume": "BIGINT",
	"trade_time": "TIMESTAMP", "id": "BIGINT",
}

func knownGenColumns() string {
	names := make([]string, 0, len(genColumns))
	for n := range genColumns {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// NewGenerator is the factory of the "generator" source connector: a
// deterministic stream of financial trades.
//
// Options: rows (default 1000; 0 = unbounded), rate (rows per second of
// wall time; 0 = as fast as possible), seed (default 42), start (RFC 3339,
// default 2024-01-01T00:00:00Z), step_ms (event-time step per row, default
// 100), batch_size, linger_ms.
//
// Declared columns are filled by name from: ticker VARCHAR, sector VARCHAR,
// price DECIMAL(p,s) (or DOUBLE; a per-ticker random walk with 4 decimal
// digits, rounded half away from zero to the declared scale), volume BIGINT
// (or INT), trade_time TIMESTAMP (start + i*step_ms), id BIGINT (row
// number from 0). Row i is the same for a given seed whatever the rate,
// batch size or declared columns.
func NewGenerator(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
	o, err := newOpts("generator", spec, generatorOptions...)
	if err != nil {
		return nil, err
	}
	g := &generator{spec: spec, o: o}
	if g.batchSize, g.linger, err = o.batching(spec); err != nil {
		return nil, err
	}
	if g.rows, err = o.int("rows", 1000, 0); err != nil {
		return nil, err
	}
	if g.rate, err = o.int("rate", 0, 0); err != nil {
		return nil, err
	}
	if g.stepMs, err = o.int("step_ms", 100, 0); err != nil {
		return nil, err
	}
	seed, err := o.int("seed", 42, -1<<63)
	if err != nil {
		return nil, err
	}
	g.seed = uint64(seed)
	start := o.str("start", "2024-01-01T00:00:00Z")
	t, err := time.Parse(time.RFC3339Nano, start)
	if err != nil {
		return nil, o.errorf("option start: expected an RFC 3339 time, found %q", start)
	}
	g.startMs = t.UnixMilli()
	for _, f := range spec.Schema.Fields() {
		native, ok := genColumns[f.Name]
		if !ok {
			return nil, o.errorf("unknown column %s (the generator produces: %s)", f.Name, knownGenColumns())
		}
		okType := false
		switch f.Name {
		case "ticker", "sector":
			okType = f.Type.ID() == arrow.STRING
		case "price":
			if d, isDec := f.Type.(*arrow.Decimal128Type); isDec {
				// prices stay below 10^6 (see next), so 6 integer digits suffice
				if d.Precision-d.Scale < 6 {
					return nil, o.errorf("column price: %s is too narrow for generated prices (need at least 6 integer digits)", sqltypes.Name(f.Type))
				}
				okType = true
			}
			okType = okType || f.Type.ID() == arrow.FLOAT64
		case "volume":
			okType = f.Type.ID() == arrow.INT64 || f.Type.ID() == arrow.INT32
		case "trade_time":
			okType = arrow.TypeEqual(f.Type, sqltypes.Timestamp)
		case "id":
			okType = f.Type.ID() == arrow.INT64
		}
		if !okType {
			return nil, o.errorf("column %s: declared %s, but the generator produces %s", f.Name, sqltypes.Name(f.Type), native)
		}
	}
	return g, nil
}

// generator emits trades row by row from a PCG seeded with seed, so row i
// never depends on batching or timing.
type generator struct {
	spec      arrowexec.SourceSpec
	o         opts
	batchSize int
	linger    time.Duration
	rows      int64 // 0 = unbounded
	rate      int64
	stepMs    int64
	seed      uint64
	startMs   int64

	rng     *rand.Rand
	pcg     *rand.PCG
	resume  *generatorPosition // Seek: where Open starts
	prices  []int64            // current price per ticker, units of 0.0001
	next    int64              // index of the next row
	t0      time.Time
	rb      *array.RecordBuilder
	timer   *time.Timer
	started bool
	closed  bool
}

var _ arrowexec.Operator = (*generator)(nil)

func (g *generator) Schema() *arrow.Schema { return g.spec.Schema }

func (g *generator) Open(context.Context) error {
	g.pcg = rand.NewPCG(g.seed, g.seed^0x9e3779b97f4a7c15)
	g.rng = rand.New(g.pcg)
	g.prices = make([]int64, len(tickers))
	for i, t := range tickers {
		g.prices[i] = t.base
	}
	if p := g.resume; p != nil {
		if err := g.pcg.UnmarshalBinary(p.RNG); err != nil {
			return g.o.errorf("resuming: %w", err)
		}
		if len(p.Prices) != len(g.prices) {
			return g.o.errorf("resuming: %d prices saved, want %d", len(p.Prices), len(g.prices))
		}
		copy(g.prices, p.Prices)
		g.next = p.Next
	}
	g.rb = array.NewRecordBuilder(g.spec.Alloc, g.spec.Schema)
	return nil
}

// trade is one generated row.
type trade struct {
	id, price, volume, ts int64
	t                     *ticker
}

// gen produces the next row; it draws from the RNG in a fixed order.
func (g *generator) gen() trade {
	k := g.rng.IntN(len(tickers))
	p := g.prices[k]
	// a step of -0.1%..+0.1%, pulled back towards the base beyond 4x either way
	step := p * int64(g.rng.IntN(2001)-1000) / 1_000_000
	base := tickers[k].base
	if p > 4*base {
		step -= p / 1000
	} else if p < base/4 {
		step += p / 1000
	}
	p = max(p+step, 1)
	g.prices[k] = p
	var vol int64
	if g.rng.IntN(10) == 0 {
		vol = 1 + int64(g.rng.IntN(100_000))
	} else {
		vol = 1 + int64(g.rng.IntN(2000))
	}
	t := trade{id: g.next, price: p, volume: vol, ts: g.startMs + g.next*g.stepMs, t: &tickers[k]}
	g.next++
	return t
}

// Next returns the next batch. Without a rate it fills batch_size rows at
// once; with a rate it waits (without spinning, watching ctx) until rows are
// due, and returns a partial batch once its first due row has waited
// linger_ms. After rows rows it returns io.EOF.
func (g *generator) Next(ctx context.Context) (arrowexec.Message, error) {
	if err := ctx.Err(); err != nil {
		return arrowexec.Message{}, err
	}
	if g.rb == nil {
		return arrowexec.Message{}, g.o.errorf("Next called before Open")
	}
	remaining := int64(g.batchSize)
	if g.rows > 0 {
		remaining = min(remaining, g.rows-g.next)
	}
	if remaining <= 0 {
		return arrowexec.Message{}, io.EOF
	}
	n := remaining
	if g.rate > 0 {
		var err error
		if n, err = g.wait(ctx, remaining); err != nil {
			return arrowexec.Message{}, err
		}
	}
	g.rb.Reserve(int(n))
	for range n {
		g.appendRow(g.gen())
	}
	return arrowexec.Message{Batch: g.rb.NewRecordBatch(), Watermark: arrowexec.NoWatermark}, nil
}

// due is the wall time row i may be emitted at.
func (g *generator) due(i int64) time.Time {
	// split to avoid overflowing int64 nanoseconds on long runs
	return g.t0.Add(time.Duration(i/g.rate)*time.Second + time.Duration(i%g.rate)*time.Second/time.Duration(g.rate))
}

// wait blocks until a batch is due and returns its size (1..want).
func (g *generator) wait(ctx context.Context, want int64) (int64, error) {
	if !g.started { // row g.next is due now (on a resumed run too)
		g.started, g.t0 = true, time.Now()
		g.t0 = g.t0.Add(-g.due(g.next).Sub(g.t0))
	}
	for {
		now := time.Now()
		el := now.Sub(g.t0)
		dueRows := int64(el/time.Second)*g.rate + int64(el%time.Second)*g.rate/int64(time.Second) + 1 - g.next
		if dueRows >= want || (dueRows > 0 && !now.Before(g.due(g.next).Add(g.linger))) {
			return min(dueRows, want), nil
		}
		// wake when the batch is full or its first row has lingered
		wake := minTime(g.due(g.next+want-1), g.due(g.next).Add(g.linger))
		d := time.Until(wake)
		if g.timer == nil {
			g.timer = time.NewTimer(d)
		} else {
			g.timer.Reset(d)
		}
		select {
		case <-g.timer.C:
		case <-ctx.Done():
			g.timer.Stop()
			return 0, ctx.Err()
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (g *generator) appendRow(t trade) {
	for i, f := range g.spec.Schema.Fields() {
		switch b := g.rb.Field(i).(type) {
		case *array.StringBuilder:
			if f.Name == "ticker" {
				b.Append(t.t.symbol)
			} else {
				b.Append(t.t.sector)
			}
		case *array.Decimal128Builder:
			b.Append(scalePrice(t.price, f.Type.(*arrow.Decimal128Type).Scale))
		case *array.Float64Builder:
			b.Append(float64(t.price) / 10_000)
		case *array.Int64Builder:
			if f.Name == "id" {
				b.Append(t.id)
			} else {
				b.Append(t.volume)
			}
		case *array.Int32Builder:
			b.Append(int32(t.volume))
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(t.ts))
		default:
			panic(fmt.Sprintf("generator: unexpected builder %T", b))
		}
	}
}

// scalePrice converts a price in units of 0.0001 to the given scale,
// rounding half away from zero. The generator's schema check leaves room
// for every price it draws, so the result always fits.
func scalePrice(p int64, scale int32) decimal128.Num {
	v, _ := kernels.RescaleDecimal(decimal128.FromI64(p), 4, scale, sqltypes.MaxDecimalPrecision)
	return v
}

func (g *generator) Close() error {
	if g.closed {
		return nil
	}
	g.closed = true
	if g.rb != nil {
		g.rb.Release()
	}
	if g.timer != nil {
		g.timer.Stop()
	}
	return nil
}

// generatorPosition is the generator's checkpoint position: the next row
// and the state its values are drawn from.
type generatorPosition struct {
	Next   int64   `json:"next"`
	RNG    []byte  `json:"rng"`
	Prices []int64 `json:"prices"`
}

// Position implements arrowexec.Checkpointable.
func (g *generator) Position() ([]byte, error) {
	if g.pcg == nil {
		if g.resume != nil {
			return json.Marshal(g.resume)
		}
		return nil, g.o.errorf("position asked before Open")
	}
	rng, err := g.pcg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(generatorPosition{Next: g.next, RNG: rng, Prices: g.prices})
}

// Seek implements arrowexec.Checkpointable: Open continues at pos, and
// with a rate, pacing continues from there.
func (g *generator) Seek(pos []byte) error {
	var p generatorPosition
	if err := json.Unmarshal(pos, &p); err != nil {
		return g.o.errorf("bad checkpoint position: %w", err)
	}
	g.resume = &p
	return nil
}
