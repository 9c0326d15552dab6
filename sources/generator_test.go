package sources

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

var genSchema = arrow.NewSchema([]arrow.Field{
	field("id", sqltypes.BigInt, false),
	field("ticker", sqltypes.Varchar, false),
	field("sector", sqltypes.Varchar, false),
	field("price", dec(18, 4), false),
	field("volume", sqltypes.BigInt, false),
	field("trade_time", sqltypes.Timestamp, false),
}, nil)

func newGen(t *testing.T, mem memory.Allocator, schema *arrow.Schema, kv ...string) (arrowexec.Operator, error) {
	t.Helper()
	o := arrowexec.Options{"connector": "generator"}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	return NewGenerator(arrowexec.SourceSpec{Name: "trades", Schema: schema, Options: o, Alloc: mem})
}

func TestGeneratorDeterministic(t *testing.T) {
	var first []string
	for _, bs := range []int{1, 3, 4096} {
		mem := checkedAlloc(t)
		g, err := newGen(t, mem, genSchema, "rows", "500", "batch_size", strconv.Itoa(bs), "step_ms", "250")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := drain(t, g, bs)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 500 {
			t.Fatalf("%d rows", len(rows))
		}
		if first == nil {
			first = rows
			continue
		}
		for i := range rows {
			if rows[i] != first[i] {
				t.Fatalf("batch %d row %d: %s, want %s", bs, i, rows[i], first[i])
			}
		}
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	sectors := map[string]bool{}
	tickers := map[string]bool{}
	for i, r := range first {
		f := strings.Split(r, "|")
		if f[0] != strconv.Itoa(i) {
			t.Errorf("row %d id %s", i, f[0])
		}
		if want := start.Add(time.Duration(i) * 250 * time.Millisecond).Format("2006-01-02T15:04:05.000Z"); f[5] != want {
			t.Errorf("row %d time %s, want %s", i, f[5], want)
		}
		price, _ := strconv.ParseFloat(f[3], 64)
		vol, _ := strconv.Atoi(f[4])
		if price <= 0 || len(f[3])-strings.Index(f[3], ".") != 5 || vol < 1 || vol > 100000 {
			t.Errorf("row %d: %s", i, r)
		}
		tickers[f[1]], sectors[f[2]] = true, true
	}
	if len(tickers) < 15 || len(sectors) < 4 {
		t.Errorf("tickers %v sectors %v", tickers, sectors)
	}
	// another seed differs; the same seed with fewer columns gives the same values
	mem := checkedAlloc(t)
	g, _ := newGen(t, mem, genSchema, "rows", "5", "seed", "7")
	other, _ := drain(t, g, 0)
	if other[0] == first[0] && other[1] == first[1] {
		t.Error("seed 7 generated the same rows as seed 42")
	}
	narrow := arrow.NewSchema([]arrow.Field{field("price", dec(10, 2), true), field("ticker", sqltypes.Varchar, true)}, nil)
	g, err := newGen(t, mem, narrow, "rows", "3")
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := drain(t, g, 0)
	for i, r := range rows {
		f := strings.Split(first[i], "|")
		p := f[3]
		want4, _ := strconv.ParseFloat(p, 64)
		got := strings.Split(r, "|")
		if got[1] != f[1] || got[0] != strconv.FormatFloat(want4, 'f', 2, 64) {
			t.Errorf("narrow row %d = %s, wide %s", i, r, first[i])
		}
	}
}

func TestGeneratorErrors(t *testing.T) {
	tests := []struct {
		schema *arrow.Schema
		opts   []string
		want   string
	}{
		{arrow.NewSchema([]arrow.Field{field("colour", sqltypes.Varchar, true)}, nil), nil,
			"unknown column colour (the generator produces: id, price, sector, ticker, trade_time, volume)"},
		{arrow.NewSchema([]arrow.Field{field("ticker", sqltypes.BigInt, true)}, nil), nil,
			"column ticker: declared BIGINT, but the generator produces VARCHAR"},
		{arrow.NewSchema([]arrow.Field{field("price", dec(5, 2), true)}, nil), nil, "too narrow"},
		{genSchema, []string{"start", "yesterday"}, "option start"},
		{genSchema, []string{"rate", "-1"}, "option rate"},
		{genSchema, []string{"rowz", "1"}, `unknown option "rowz"`},
	}
	for _, tc := range tests {
		_, err := newGen(t, memory.NewGoAllocator(), tc.schema, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestGeneratorRate(t *testing.T) {
	mem := checkedAlloc(t)
	g, err := newGen(t, mem, genSchema, "rows", "40", "rate", "400", "batch_size", "8", "linger_ms", "5")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rows, err := drain(t, g, 8)
	if err != nil {
		t.Fatal(err)
	}
	// row 39 is due 39/400 s = 97.5ms after the start
	if el := time.Since(start); el < 95*time.Millisecond || el > 2*time.Second {
		t.Errorf("40 rows at 400/s took %v", el)
	}
	unlimited, _ := newGen(t, mem, genSchema, "rows", "40")
	want, _ := drain(t, unlimited, 0)
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Error("rate-limited rows differ from unlimited ones")
	}

	// an unbounded slow generator stops on cancellation
	g, _ = newGen(t, mem, genSchema, "rows", "0", "rate", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	defer g.Close()
	if err := g.Open(ctx); err != nil {
		t.Fatal(err)
	}
	msg, err := g.Next(ctx) // row 0 is due at once
	if err != nil {
		t.Fatal(err)
	}
	msg.Release()
	if _, err := g.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next after cancel: %v", err)
	}
}
