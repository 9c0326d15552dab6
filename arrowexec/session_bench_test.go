package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
)

// genPartitionedRows makes n rows as a source reading parts partitions
// chunk by chunk would deliver them: event time advances one millisecond
// per row overall, row i going to partition i%parts; the partitions'
// chunks of chunk rows are read in turn, so each chunk covers a span of
// event time the other partitions deliver later. A row's watermark is the
// minimum over the partitions of the largest event time seen in each,
// minus delay (NoWatermark until every partition has delivered a row).
// Keys are random among keys; every nullEvery-th row (when positive) has
// a NULL key and value, and every lateEvery-th row (when positive) is
// moved back by up to 4*late ms, so some rows are late.
func genPartitionedRows(r *rand.Rand, n, keys, parts, chunk int, delay int64, nullEvery, lateEvery int, late int64) []sessRow {
	per := make([][]int64, parts) // each partition's event times, in order
	for i := range n {
		per[i%parts] = append(per[i%parts], 1000+int64(i))
	}
	seen := make([]int64, parts)
	for p := range seen {
		seen[p] = -1 << 62
	}
	wm := func() int64 {
		m := seen[0]
		for _, v := range seen[1:] {
			m = min(m, v)
		}
		if m == -1<<62 {
			return NoWatermark
		}
		return m - delay
	}
	rows := make([]sessRow, 0, n)
	for c := 0; len(rows) < n; c++ {
		for p := range parts {
			lo := min(c*chunk, len(per[p]))
			hi := min(lo+chunk, len(per[p]))
			for _, ts := range per[p][lo:hi] {
				row := sessRow{key: r.Int64N(int64(keys)), val: r.Int64N(100), ts: ts, wm: wm()}
				if nullEvery > 0 && r.IntN(nullEvery) == 0 {
					row.val = -1
				}
				if lateEvery > 0 && r.IntN(lateEvery) == 0 {
					row.ts -= r.Int64N(4*late + 1)
				}
				rows = append(rows, row)
				seen[p] = max(seen[p], row.ts)
			}
		}
	}
	return rows
}

// BenchmarkSessionPartitioned: 20 keys, one event per ms, SESSION(15 ms),
// rows arriving as chunks of 10,000 from 3 partitions read in turn, the
// watermark the minimum over partitions: tens of seconds of sessions stay
// open (up to about 640 per key), where the same events in order
// (parts=1) keep about one. With update_previous and a minute of allowed
// lateness (keep=60s) every key keeps about 3,000 closed sessions, in
// order or not.
func BenchmarkSessionPartitioned(b *testing.B) {
	for _, keep := range []int64{-1, 60_000} {
		for _, parts := range []int{3, 1} {
			name := fmt.Sprintf("parts=%d", parts)
			if keep >= 0 {
				name += fmt.Sprintf("/keep=%ds", keep/1000)
			}
			b.Run(name, func(b *testing.B) { benchSessionPartitioned(b, parts, keep) })
		}
	}
}

func benchSessionPartitioned(b *testing.B, parts int, keep int64) {
	n := 200_000
	if testing.Short() {
		n = 30_000
	}
	rows := genPartitionedRows(rand.New(rand.NewPCG(1, 2)), n, 20, parts, 10_000, 0, 0, 0, 0)
	cfg := AggregateConfig{
		Keys:   []expr.Expr{expr.Col(0, "k", arrow.PrimitiveTypes.Int64)},
		Specs:  []agg.Spec{{Func: "count_star"}, {Func: "sum", Input: arrow.PrimitiveTypes.Int64}},
		Args:   []expr.Expr{nil, expr.Col(1, "v", arrow.PrimitiveTypes.Int64)},
		Window: &WindowSpec{Kind: Session, Gap: 15}, TimeCol: 2, WMCol: 3,
		Schema: sessTestConfig(15, LateDataSpec{}).Schema,
	}
	if keep >= 0 {
		cfg.Late = LateDataSpec{Strategy: "update_previous", AllowedLateness: keep}
		cfg.Schema = sessTestConfig(15, cfg.Late).Schema
	}
	mem := memory.NewGoAllocator()
	next := func(i int) int64 { return rows[i].wm }
	// the batches, built once
	var msgs []Message
	src := &sessSource{alloc: mem, rows: rows, next: next, size: 4096}
	for {
		m, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	defer releaseReplay(msgs)
	b.ReportAllocs()
	b.ResetTimer()
	out := 0
	for range b.N {
		op, err := NewSessionAggregate(mem, &replaySource{schema: sessInSchema, msgs: msgs}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if err := op.Open(ctx); err != nil {
			b.Fatal(err)
		}
		for {
			m, err := op.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			out += int(m.Rows())
			m.Release()
		}
		op.Close()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	if out == 0 {
		b.Fatal("no output")
	}
}
