package arrowexec

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/arrowexec/expr"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// sessStateConfig is sessTestConfig plus aggregates of every kind
// (COUNT, SUM, AVG, MIN/MAX, FIRST_VALUE/LAST_VALUE, STDDEV/VAR,
// APPROX_COUNT_DISTINCT, DISTINCT ones) over v, over v as INT, DOUBLE
// (v/7, whose sums round by how sessions merged) and DECIMAL(12,2).
func sessStateConfig(t *testing.T, gap int64, late LateDataSpec) AggregateConfig {
	t.Helper()
	cfg := sessTestConfig(gap, late)
	v := expr.Col(1, "v", arrow.PrimitiveTypes.Int64)
	cast := func(to arrow.DataType) expr.Expr {
		e, err := expr.Cast(v, to)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// x: v/7 as DOUBLE, so that sums round
	x, err := expr.Binary("/", cast(sqltypes.Double), expr.Lit(7.0, sqltypes.Double))
	if err != nil {
		t.Fatal(err)
	}
	dec := sqltypes.Decimal(12, 2)
	fields := cfg.Schema.Fields()
	add := func(s agg.Spec, arg expr.Expr) {
		rt, err := agg.ResultType(s)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Specs = append(cfg.Specs, s)
		cfg.Args = append(cfg.Args, arg)
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("a%d", len(fields)), Type: rt, Nullable: true})
	}
	add(agg.Spec{Func: "count", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "sum", Input: arrow.PrimitiveTypes.Int32}, cast(arrow.PrimitiveTypes.Int32))
	add(agg.Spec{Func: "sum", Input: sqltypes.Double}, x)
	add(agg.Spec{Func: "sum", Input: dec}, cast(dec))
	add(agg.Spec{Func: "min", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "max", Input: sqltypes.Double, Distinct: true}, x)
	add(agg.Spec{Func: "first_value", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "first_value", Input: sqltypes.Double}, x)
	add(agg.Spec{Func: "avg", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "avg", Input: sqltypes.Double}, x)
	add(agg.Spec{Func: "avg", Input: dec}, cast(dec))
	add(agg.Spec{Func: "stddev_samp", Input: sqltypes.Double}, x)
	add(agg.Spec{Func: "var_pop", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "count", Input: arrow.PrimitiveTypes.Int64, Distinct: true}, v)
	add(agg.Spec{Func: "sum", Input: sqltypes.Double, Distinct: true}, x)
	add(agg.Spec{Func: "approx_count_distinct", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "last_value", Input: arrow.PrimitiveTypes.Int64}, v)
	add(agg.Spec{Func: "last_value", Input: sqltypes.Double}, x)
	cfg.Schema = arrow.NewSchema(fields, nil)
	return cfg
}

// TestSessionCheckpoint checks SessionOp's SaveState/LoadState with
// checkStatefulBarrier (over_state_test.go) for every late-data strategy,
// over random input with merges, late rows and NULL keys and values, at
// batch sizes 1, 3 and random, at barrier positions 0, random and the
// end, with and without small generations (tables rotate, the key
// dictionary is rebuilt).
func TestSessionCheckpoint(t *testing.T) {
	lates := []LateDataSpec{
		{Strategy: "drop"}, {Strategy: "dead_letter"}, {Strategy: "include_in_next_window"},
		{Strategy: "update_previous", AllowedLateness: 15}, {Strategy: "update_previous", AllowedLateness: 60},
		{Strategy: "update_previous"},
	}
	seeds, n := uint64(3), 600
	if testing.Short() {
		seeds, n = 1, 300
	}
	if lightTests() {
		n = 120
	}
	for _, late := range lates {
		t.Run(fmt.Sprintf("%s/%d", late.Strategy, late.AllowedLateness), func(t *testing.T) {
			cfg := sessStateConfig(t, 10, late)
			mattered := 0
			for seed := uint64(1); seed <= seeds; seed++ {
				r := rand.New(rand.NewPCG(seed, 11))
				rows := genSessionRows(r, n, 6+r.IntN(24), 8)
				next := func(i int) int64 {
					if i+1 < len(rows) {
						return rows[i+1].wm
					}
					return max(rows[i].wm, rows[i].ts-5)
				}
				for _, size := range []int{1, 3, 1 + r.IntN(60)} {
					mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
					msgs := materialize(t, &sessSource{alloc: mem, rows: rows, next: next, size: size})
					for _, mc := range []int{0, 4} {
						mattered += checkBarriers(t, mem, sessInSchema, msgs, r, func(in Operator) (Stateful, error) {
							op, err := NewSessionAggregate(mem, in, cfg)
							if err == nil && mc > 0 {
								op.minCompact = mc
							}
							return op, err
						})
					}
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

// TestSessionCheckpointRevisions restores, at every message, a session
// that late rows update again and again (update_previous): its revisions
// go on counting from the saved one.
func TestSessionCheckpointRevisions(t *testing.T) {
	rows := []sessRow{
		{key: 1, val: 1, ts: 0, wm: NoWatermark},
		{key: 1, val: 2, ts: 30, wm: 20}, // closes [0, 10)
		{key: 1, val: 3, ts: 2, wm: 20},  // revision 1
		{key: 1, val: 4, ts: 3, wm: 20},  // revision 2
		{key: 2, val: 5, ts: 31, wm: 21},
		{key: 1, val: 6, ts: 5, wm: 25}, // revision 3
	}
	next := func(i int) int64 { return rows[min(i+1, len(rows)-1)].wm }
	cfg := sessStateConfig(t, 10, LateDataSpec{Strategy: "update_previous", AllowedLateness: 60})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	msgs := materialize(t, &sessSource{alloc: mem, rows: rows, next: next, size: 1})
	defer releaseReplay(msgs)
	for at := range len(msgs) + 1 {
		checkStatefulBarrier(t, mem, sessInSchema, msgs, at, func(in Operator) (Stateful, error) {
			return NewSessionAggregate(mem, in, cfg)
		})
	}
}

// TestSessionCheckpointExact restores, at every message, sessions that
// merge before and after the barrier, under aggregates whose state is
// more than their result (AVG, STDDEV/VAR, COUNT(DISTINCT), SUM(DISTINCT),
// APPROX_COUNT_DISTINCT, LAST_VALUE, DOUBLE sums that round by how
// sessions merged): the output after the barrier must be what the
// uninterrupted operator gives, bit for bit.
func TestSessionCheckpointExact(t *testing.T) {
	rows := []sessRow{
		{key: 1, val: 1, ts: 0, wm: NoWatermark},
		{key: 1, val: 3, ts: 2, wm: NoWatermark},
		{key: 2, val: 10, ts: 3, wm: NoWatermark},
		{key: 1, val: 5, ts: 15, wm: -5},
		{key: 1, val: 3, ts: 16, wm: -5},
		{key: 2, val: 11, ts: 14, wm: -5},
		{key: 1, val: 9, ts: 8, wm: 0}, // merges [0, 12) and [15, 26)
		{key: 1, val: -1, ts: 9, wm: 0},
		{key: 2, val: 13, ts: 6, wm: 0}, // merges [3, 13) and [14, 24)
		{key: 1, val: 6, ts: 30, wm: 20},
		{key: 1, val: 2, ts: 24, wm: 20}, // merges [0, 26) and [30, 40)
		{key: 2, val: 4, ts: 40, wm: 30},
		{key: 1, val: 8, ts: 25, wm: 32}, // late: revises [0, 40) (update_previous)
		{key: 2, val: 3, ts: 60, wm: 50},
	}
	next := func(i int) int64 { return rows[min(i+1, len(rows)-1)].wm }
	for _, late := range []LateDataSpec{{Strategy: "drop"}, {Strategy: "update_previous", AllowedLateness: 60}} {
		t.Run(late.Strategy, func(t *testing.T) {
			cfg := sessStateConfig(t, 10, late)
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			for _, size := range []int{1, 3} {
				msgs := materialize(t, &sessSource{alloc: mem, rows: rows, next: next, size: size})
				mattered := 0
				for at := range len(msgs) + 1 {
					res := checkStatefulBarrier(t, mem, sessInSchema, msgs, at, func(in Operator) (Stateful, error) {
						return NewSessionAggregate(mem, in, cfg)
					})
					if res.stateMatters {
						mattered++
					}
				}
				releaseReplay(msgs)
				if mattered == 0 {
					t.Fatalf("batch size %d: the saved state never changes the output: the test checks nothing", size)
				}
			}
		})
	}
}

// TestSessionCheckpointPartitioned is TestSessionCheckpoint over input
// read chunk by chunk from three partitions (genPartitionedRows), where
// keys hold many open and kept sessions, with lists becoming sets early
// (listMax 2) or at once (0): the saved order of a set, restored as a
// list and made a set again, must give the same output.
func TestSessionCheckpointPartitioned(t *testing.T) {
	lates := []LateDataSpec{
		{Strategy: "drop"}, {Strategy: "include_in_next_window"},
		{Strategy: "update_previous", AllowedLateness: 40}, {Strategy: "update_previous", AllowedLateness: 400},
	}
	for _, late := range lates {
		t.Run(fmt.Sprintf("%s/%d", late.Strategy, late.AllowedLateness), func(t *testing.T) {
			cfg := sessStateConfig(t, 10, late)
			mattered := 0
			r := rand.New(rand.NewPCG(5, 11))
			n := 900
			if lightTests() {
				n = 400
			}
			rows := genPartitionedRows(r, n, 4, 3, 60, 0, 20, 12, 10)
			next := func(i int) int64 {
				if i+1 < len(rows) {
					return rows[i+1].wm
				}
				return max(rows[i].wm, rows[i].ts-5)
			}
			for _, size := range []int{3, 1 + r.IntN(60)} {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				msgs := materialize(t, &sessSource{alloc: mem, rows: rows, next: next, size: size})
				for _, lm := range []int{0, 2} {
					for _, at := range []int{r.IntN(len(msgs) + 1), r.IntN(len(msgs) + 1), len(msgs) / 2} {
						res := checkStatefulBarrier(t, mem, sessInSchema, msgs, at, func(in Operator) (Stateful, error) {
							op, err := NewSessionAggregate(mem, in, cfg)
							if err == nil {
								op.listMax = lm
							}
							return op, err
						})
						if res.stateMatters {
							mattered++
						}
					}
				}
				releaseReplay(msgs)
				mem.AssertSize(t, 0)
			}
			if mattered == 0 {
				t.Fatal("no barrier position where the saved state changes the output: the test checks nothing")
			}
		})
	}
}
