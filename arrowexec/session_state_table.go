package arrowexec

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
	"github.com/ferrisstreams/ferris/kernels"
)

// saveTable and loadTable move the aggregate states of a session table's
// groups into a checkpoint and back. agg.Table does not expose partial
// states, so these save each group's result and rebuild an equivalent
// state by replaying a few synthetic rows through UpdateIDs. That works
// for the aggregates whose state is a function of their result and of the
// group's row count:
//
//   - COUNT(*) and COUNT(x): as many rows (x a non-NULL value) as counted;
//   - SUM over BIGINT, DOUBLE and DECIMAL: one row holding the sum; over
//     INT the sum cut into INT-sized parts (no more rows than were summed);
//   - MIN and MAX (DISTINCT or not): one row holding the result;
//   - FIRST_VALUE: the result in the group's first row. Groups are restored
//     in the order they were saved, which SessionOp makes the order their
//     first rows arrived in, so a later Combine picks the same value.
//
// The other rows of a group hold NULL in each argument, which these
// aggregates skip (FIRST_VALUE only looks at the first row). The others
// (AVG, STDDEV/VAR, APPROX_COUNT_DISTINCT, DISTINCT COUNT/SUM, and
// LAST_VALUE, whose Combine needs the order of the groups' last rows) keep
// state their result does not determine: checkSavable rejects them with an
// error wrapping errors.ErrUnsupported. When agg.Table can save its
// partial states, saveSessionTable and loadSessionTable should use that instead and
// every aggregate becomes savable.

// checkSavable reports an error for the first aggregate of specs whose
// state saveSessionTable cannot save.
func checkSavable(specs []agg.Spec) error {
	for _, s := range specs {
		f := s.Func
		ok := false
		switch f {
		case "count_star", "count", "sum":
			ok = !s.Distinct
		case "min", "max", "first_value":
			ok = true
		}
		if f == "sum" && ok {
			switch s.Input.ID() {
			case arrow.INT32, arrow.INT64, arrow.FLOAT64, arrow.DECIMAL128:
			default:
				ok = false
			}
		}
		if !ok {
			name := strings.ToUpper(f)
			if s.Distinct {
				name += "(DISTINCT)"
			}
			return fmt.Errorf("checkpointing the state of %s is not supported yet: %w", name, errors.ErrUnsupported)
		}
	}
	return nil
}

// saveSessionTable returns the states of t's groups as a batch: row i holds
// groups[i]'s results, one column per aggregate.
func saveSessionTable(t *agg.Table, groups []uint32) (arrow.RecordBatch, error) {
	_, results, err := t.Emit(groups)
	if err != nil {
		return nil, err
	}
	return stateBatch(results, len(groups)), nil
}

// loadSessionTable adds one group to t (numbered from t.Len() on) per row of rec,
// a batch saveTable wrote for a table of the same specs, with the state
// that row describes.
func loadSessionTable(alloc memory.Allocator, specs []agg.Spec, t *agg.Table, rec arrow.RecordBatch) error {
	n := int(rec.NumRows())
	if int(rec.NumCols()) != len(specs) {
		return fmt.Errorf("saved aggregate states have %d columns for %d aggregates", rec.NumCols(), len(specs))
	}
	if n == 0 {
		return nil
	}
	// rows per group: enough for every aggregate, exactly the count of
	// COUNT(*)
	need := make([]int, n)
	for g := range need {
		need[g] = 1
	}
	for a, s := range specs {
		col := rec.Column(a)
		for g := range n {
			if col.IsNull(g) {
				continue
			}
			switch s.Func {
			case "count_star", "count":
				need[g] = max(need[g], int(col.(*array.Int64).Value(g)))
			case "sum":
				if s.Input.ID() == arrow.INT32 {
					need[g] = max(need[g], len(int32Parts(col.(*array.Int64).Value(g))))
				}
			}
		}
	}
	ids := make([]uint32, 0, n)
	first := make([]int32, n) // a group's first row
	for g, k := range need {
		first[g] = int32(len(ids))
		for range k {
			ids = append(ids, uint32(t.Len()+g))
		}
	}
	inputs := make([]arrow.Array, len(specs))
	defer overRelease(inputs...)
	for a, s := range specs {
		if s.Func == "count_star" {
			continue
		}
		var err error
		if inputs[a], err = replayArg(alloc, s, rec.Column(a), first, len(ids)); err != nil {
			return fmt.Errorf("%s: %w", strings.ToUpper(s.Func), err)
		}
	}
	return t.UpdateIDs(inputs, nil, ids)
}

// replayArg builds the argument of aggregate s for loadSessionTable's rows (rows
// long; group g's rows start at first[g]) from the saved results res.
func replayArg(alloc memory.Allocator, s agg.Spec, res arrow.Array, first []int32, rows int) (arrow.Array, error) {
	pos := make([]int32, rows) // row of the value to take, -1 for NULL
	for i := range pos {
		pos[i] = -1
	}
	switch {
	case s.Func == "count" && s.Input.ID() == arrow.NULL: // counts nothing
		return array.MakeArrayOfNull(alloc, s.Input, rows), nil
	case s.Func == "count":
		one, err := nonNullValue(alloc, s.Input)
		if err != nil {
			return nil, err
		}
		defer one.Release()
		for g, f := range first {
			for k := range int32(res.(*array.Int64).Value(g)) {
				pos[f+k] = 0
			}
		}
		return kernels.Interleave(alloc, s.Input, []arrow.Array{one}, nil, pos)
	case s.Func == "sum" && s.Input.ID() == arrow.INT32:
		b := array.NewInt32Builder(alloc)
		defer b.Release()
		for g, f := range first {
			if res.IsValid(g) {
				for k, v := range int32Parts(res.(*array.Int64).Value(g)) {
					pos[int(f)+k] = int32(b.Len())
					b.Append(v)
				}
			}
		}
		vals := b.NewArray()
		defer vals.Release()
		return kernels.Interleave(alloc, s.Input, []arrow.Array{vals}, nil, pos)
	}
	// one row holding the result (same kind as the input)
	for g, f := range first {
		if res.IsValid(g) {
			pos[f] = int32(g)
		}
	}
	return kernels.Interleave(alloc, res.DataType(), []arrow.Array{res}, nil, pos)
}

// int32Parts cuts sum into INT values that add up to it.
func int32Parts(sum int64) []int32 {
	var parts []int32
	for sum > math.MaxInt32 {
		parts = append(parts, math.MaxInt32)
		sum -= math.MaxInt32
	}
	for sum < math.MinInt32 {
		parts = append(parts, math.MinInt32)
		sum -= math.MinInt32
	}
	return append(parts, int32(sum))
}

// nonNullValue returns a one-row array of type dt holding a non-NULL value.
func nonNullValue(alloc memory.Allocator, dt arrow.DataType) (arrow.Array, error) {
	b := array.NewBuilder(alloc, dt)
	defer b.Release()
	b.AppendEmptyValue()
	a := b.NewArray()
	if a.IsNull(0) {
		a.Release()
		return nil, fmt.Errorf("no non-NULL value of type %s", dt)
	}
	return a, nil
}

// CheckpointBlocker reports, when the topology is built, an aggregate whose
// session state cannot be saved yet: the pipeline then runs without
// checkpoints instead of failing at its first one.
func (s *SessionOp) CheckpointBlocker() error { return checkSavable(s.cfg.Specs) }
