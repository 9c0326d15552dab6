package arrowexec

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestLimitCheckpoint checks LimitOp's SaveState/LoadState with
// checkStatefulBarrier: limits below, at and beyond the input's length,
// batches of random sizes, a barrier before every message the limit still
// reads (once it has passed n rows it ends without reading on). A limit
// restored without its state would pass too many rows.
func TestLimitCheckpoint(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	rng := rand.New(rand.NewPCG(3, 4))
	src := &countSource{alloc: alloc, n: 40}
	var msgs []Message
	for {
		src.size = 1 + rng.IntN(7)
		m, err := src.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	defer releaseReplay(msgs)
	mattered := false
	for _, n := range []int64{1, 5, 17, 39, 40, 45} {
		var before int64
		for at := 0; at <= len(msgs); at++ {
			if at > 0 {
				before += msgs[at-1].Batch.NumRows()
			}
			if before >= n {
				break
			}
			c := checkStatefulBarrier(t, alloc, testSchema, msgs, at, func(in Operator) (Stateful, error) {
				return NewLimit(in, n), nil
			})
			mattered = mattered || c.stateMatters
		}
	}
	if !mattered {
		t.Fatal("no barrier position where the saved count changed the output: the test checks nothing")
	}
}
