package agg

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// UpdateIDs is Update for a caller that already knows each row's group:
// it adds the rows selected by sel (nil: all rows) to the groups ids[k]
// (ids[k] belongs to row sel[k], or row k without sel) without hashing
// anything. It is for tables made without key columns whose groups are
// numbered by the caller (session windows address their sessions by id);
// on such a table Update would send every row to group 0, so a table is
// driven by one entry point or the other, not both.
//
// An id below Len names an existing group (a combined-away group's rows go
// to the group it lives on in, as with Update). Ids at or above Len create
// groups, and must do so densely and in order: the first new id to appear
// is Len, the next one Len+1, and so on, which is the numbering Update
// would have given (first-seen order, FirstSeenOrder and FIRST_VALUE /
// LAST_VALUE behave as after Update). ids is only read. Errors are those
// of Update, plus ids that break the numbering rule (no state is changed
// then).
func (t *Table) UpdateIDs(inputs []arrow.Array, sel []int32, ids []uint32) error {
	if t.closed {
		return fmt.Errorf("agg: UpdateIDs on a released Table")
	}
	if t.err != nil {
		return t.err
	}
	if t.groups != nil {
		return fmt.Errorf("agg: UpdateIDs on a table with key columns")
	}
	n, batchLen, err := t.checkArgs(nil, inputs, sel, ids)
	if err != nil || n == 0 {
		return err
	}
	ids = ids[:n]

	// new groups must appear as Len, Len+1, ... in order
	n0 := t.n
	want := uint32(n0)
	for _, g := range ids {
		if g >= want {
			if g != want {
				return fmt.Errorf("agg: UpdateIDs: new group id %d, want %d (ids must be dense, in first-seen order)", g, want)
			}
			want++
		}
	}
	t.n = int(want)

	scr := getScratch(len(t.specs))
	defer putScratch(scr)
	t.growStates()
	if t.n > n0 {
		t.setFirst(ids, sel, n0)
	}
	if t.fwd != nil {
		scr.ids = growTo(scr.ids, n, 0)
		copy(scr.ids, ids)
		ids = scr.ids[:n]
		t.forward(ids)
	}
	return t.apply(ids, inputs, sel, scr, batchLen)
}
