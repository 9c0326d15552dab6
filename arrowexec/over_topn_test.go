package arrowexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// overTopNConfig is a windowed ROW_NUMBER() OVER (PARTITION BY k ORDER BY
// v DESC NULLS FIRST, d) (ties on both keys and NULLs in both are
// common), pruned to n rows per partition and window when n > 0.
func overTopNConfig(win *WindowSpec, late string, n int64) OverConfig {
	specs := []OverSpec{{PartitionBy: []expr.Expr{overCol(oK)},
		OrderBy: []OverOrder{{Expr: overCol(oV), Desc: true, NullsFirst: true}, {Expr: overCol(oD)}}}}
	cfg := overTestConfig(specs, []OverCall{{Func: "row_number", Type: sqltypes.BigInt}}, win, false)
	cfg.Late.Strategy = late
	cfg.DeadLetter = &countingDeadLetter{}
	cfg.TopN = n
	return cfg
}

// runOverTopN drains an OverOp; each output row is rendered with the
// output watermark of its message and all its columns, in output order.
// keep drops rows ranked above it (the reader's filter; 0 keeps all).
// It also returns the largest window state held (bytes) after any call.
func runOverTopN(t *testing.T, alloc memory.Allocator, rows []overRow, size func() int, cfg OverConfig, slack int, keep int64) ([]string, AggregateStats, int64) {
	t.Helper()
	ctx := context.Background()
	op, err := NewOver(alloc, &overSource{alloc: alloc, rows: rows, size: size}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if slack >= 0 {
		op.pruneSlack = slack
	}
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	var out []string
	var peak int64
	rn := overInSchema.NumFields() + 1 // visible columns, window_start, window_end
	for {
		m, err := op.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, op.win.bytes)
		if b := m.Batch; b != nil {
			for i := 0; i < int(b.NumRows()); i++ {
				if keep > 0 && b.Column(rn).(*array.Int64).Value(i) > keep {
					continue
				}
				s := fmt.Sprintf("wm=%d", m.Watermark)
				for c := 0; c < int(b.NumCols()); c++ {
					s += " " + renderCell(b.Column(c), i)
				}
				out = append(out, s)
			}
		}
		m.Release()
	}
	return out, op.Stats(), peak
}

// TestOverWindowedTopNMatchesUnpruned checks that a windowed ROW_NUMBER
// pruned to N rows per partition and window emits exactly the rows the
// unpruned ranking emits with rank <= N: same rows, ranks, columns,
// order and message watermarks, and the same late-row counts, over
// random input with ties, NULLs, late rows and several windows, at batch
// sizes 1, 3 and larger, pruning often (small slack) or only at close.
func TestOverWindowedTopNMatchesUnpruned(t *testing.T) {
	wins := map[string]*WindowSpec{
		"tumbling": {Kind: Tumbling, Size: 40, Advance: 40},
		"sliding":  {Kind: Sliding, Size: 60, Advance: 20},
	}
	seeds, n := uint64(4), 400
	if testing.Short() {
		seeds, n = 2, 200
	}
	for wname, win := range wins {
		for _, late := range []string{"drop", "dead_letter", "include_in_next_window"} {
			t.Run(wname+"/"+late, func(t *testing.T) {
				pruned := 0
				for seed := uint64(1); seed <= seeds; seed++ {
					r := rand.New(rand.NewPCG(seed, 11))
					rows := genOverRows(r, n+r.IntN(n), 6)
					for _, topN := range []int64{1, 2, 5} {
						for _, size := range []int{1, 3, 1024} {
							for _, slack := range []int{0, 3, -1} {
								mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
								sz := func() int { return size }
								want, wstats, wpeak := runOverTopN(t, mem, rows, sz, overTopNConfig(win, late, 0), -1, topN)
								got, gstats, gpeak := runOverTopN(t, mem, rows, sz, overTopNConfig(win, late, topN), slack, 0)
								what := fmt.Sprintf("seed %d N=%d batch %d slack %d", seed, topN, size, slack)
								diffOut(t, what, got, want)
								if gstats != wstats {
									t.Errorf("%s: stats %+v, unpruned %+v", what, gstats, wstats)
								}
								if gpeak < wpeak {
									pruned++
								}
								mem.AssertSize(t, 0)
							}
						}
					}
				}
				if pruned == 0 {
					t.Fatal("pruning never held less state than the unpruned ranking: the test checks nothing")
				}
			})
		}
	}
}

// TestOverWindowedTopNStateIsBounded checks that with N = 1 a window over
// many rows of few partitions holds a small fraction of what the
// unpruned ranking holds.
func TestOverWindowedTopNStateIsBounded(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r := rand.New(rand.NewPCG(5, 5))
	rows := genOverRows(r, 30000, 6)
	win := &WindowSpec{Kind: Tumbling, Size: 1 << 40, Advance: 1 << 40} // one window
	sz := func() int { return 256 }
	want, _, full := runOverTopN(t, mem, rows, sz, overTopNConfig(win, "drop", 0), -1, 1)
	got, _, pruned := runOverTopN(t, mem, rows, sz, overTopNConfig(win, "drop", 1), -1, 0)
	diffOut(t, "one window, N=1", got, want)
	if len(got) != 4 { // k in 0..2 and NULL
		t.Errorf("%d rows, want one per partition (4)", len(got))
	}
	if pruned*10 > full {
		t.Errorf("pruned state peaked at %d bytes, unpruned %d: want under a tenth", pruned, full)
	}
	t.Logf("peak window state: pruned %d bytes, unpruned %d", pruned, full)
}

// TestOverWindowedTopNCheckpoint checks SaveState/LoadState of a pruned
// windowed ranking with checkStatefulBarrier: windows holding pruned
// chunks and fresh batches are saved and restored.
func TestOverWindowedTopNCheckpoint(t *testing.T) {
	seeds, n := uint64(3), 150
	if testing.Short() {
		seeds, n = 1, 80
	}
	for _, win := range []*WindowSpec{{Kind: Tumbling, Size: 30, Advance: 30}, {Kind: Sliding, Size: 30, Advance: 10}} {
		t.Run(fmt.Sprint(win.Size, "/", win.Advance), func(t *testing.T) {
			cfg := overTopNConfig(win, "include_in_next_window", 2)
			mattered := 0
			for seed := uint64(1); seed <= seeds; seed++ {
				r := rand.New(rand.NewPCG(seed, 9))
				rows := genOverRows(r, n+r.IntN(n), 6)
				for _, size := range []int{1, 3, 1 + r.IntN(40)} {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					msgs := materialize(t, &overSource{alloc: mem, rows: rows, size: func() int { return size }})
					mattered += checkBarriers(t, mem, overInSchema, msgs, r, func(in Operator) (Stateful, error) {
						op, err := NewOver(mem, in, cfg)
						if err == nil {
							op.pruneSlack = 2
						}
						return op, err
					})
					releaseReplay(msgs)
					mem.AssertSize(t, 0)
				}
			}
			if mattered == 0 {
				t.Fatal("no barrier position where the saved state changes the output: the test checks nothing")
			}
		})
	}
}

// TestOverWindowedTopNConfig checks the configurations NewOver refuses.
func TestOverWindowedTopNConfig(t *testing.T) {
	src := &overSource{rows: nil, size: func() int { return 1 }}
	cfg := overTopNConfig(nil, "drop", 1)
	if _, err := NewOver(memory.NewGoAllocator(), src, cfg); err == nil {
		t.Error("TopN without a window accepted")
	}
	win := &WindowSpec{Kind: Tumbling, Size: 10, Advance: 10}
	cfg = overTestConfig(cfg.Specs, []OverCall{{Func: "rank", Type: sqltypes.BigInt}}, win, false)
	cfg.TopN = 1
	if _, err := NewOver(memory.NewGoAllocator(), src, cfg); err == nil {
		t.Error("TopN over RANK accepted")
	}
}
