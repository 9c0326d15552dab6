package agg

import (
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// scratch holds the batch-sized buffers of one Update (or Combine). Tables
// borrow one from scratchPool for the duration of a call, so that many
// small tables (one per window, say) do not each keep batch-sized buffers:
// a table holds only per-group state. The pool is a cache, not state:
// nothing survives from one call to the next.
type scratch struct {
	// groupMap.find
	hashes, tmp                     []uint64
	pos                             []uint32
	pending, next, cand, newK, rows []int32
	candG, perm                     []uint32
	eq                              []bool
	// newSlot: the slot of each group the current call created, in id
	// order (valid while the table has not grown during the call)
	newSlot []uint32

	// Table.Update
	ids    []uint32
	nnIDs  [][]uint32 // per spec: groups of the non-NULL rows
	nnRows [][]int32  // per spec: the non-NULL rows
	nnSrc  []arrow.Array

	// one aggregate's update at a time
	aggU32 []uint32
	aggI32 []int32
	aggU64 []uint64

	// Table.Merge
	mFrom, mInto, mMap []uint32

	// distinct (its inner aggregate may use the agg buffers meanwhile)
	dPairs, dIDs []uint32
	dRows        []int32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch(nspecs int) *scratch {
	s := scratchPool.Get().(*scratch)
	for len(s.nnIDs) < nspecs {
		s.nnIDs = append(s.nnIDs, nil)
		s.nnRows = append(s.nnRows, nil)
		s.nnSrc = append(s.nnSrc, nil)
	}
	return s
}

// putScratch returns s to the pool, dropping its references to arrays.
func putScratch(s *scratch) {
	clear(s.nnSrc)
	scratchPool.Put(s)
}
