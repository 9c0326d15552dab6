package arrowexec

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// SaveState implements Stateful: the watermark and partition count (blob
// "topn"), the partition keys in partition id order ("topn.keys") and the
// kept rows ("topn.rows": partition id, the payload columns, the ORDER BY
// keys), partition by partition, best first.
func (o *TopNOp) SaveState(w *StateWriter) error {
	parts := int64(o.nParts)
	if err := putBlob(o.alloc, w, "topn", &o.wm, &parts); err != nil {
		return err
	}
	if o.parts != nil && o.nParts > 0 {
		keys, _, err := o.parts.Emit(overIota(o.nParts))
		if err != nil {
			return fmt.Errorf("PARTITION BY: %w", err)
		}
		if err := w.Put("topn.keys", stateBatch(keys, o.nParts)); err != nil {
			return err
		}
	}
	if o.nslots == 0 {
		return nil
	}
	var slots []int32
	var pids []int64
	for p, list := range o.top {
		for _, s := range list {
			slots = append(slots, s)
			pids = append(pids, int64(p))
		}
	}
	cols := []arrow.Array{overBuild(o.alloc, arrow.PrimitiveTypes.Int64, pids, nil)}
	for _, c := range o.cols {
		cols = append(cols, c.build(o.alloc, slots))
	}
	return w.Put("topn.rows", stateBatch(cols, len(slots)))
}

// LoadState implements Stateful: it is called once, before Open, on an
// operator just built from the same configuration.
func (o *TopNOp) LoadState(r *StateReader) error {
	if err := o.loadState(r); err != nil {
		return fmt.Errorf("top-N: loading state: %w", err)
	}
	return o.account()
}

func (o *TopNOp) loadState(r *StateReader) error {
	var parts int64
	if err := loadBlob(r, "topn", &o.wm, &parts); err != nil {
		return err
	}
	o.nParts = int(parts)
	if o.parts != nil && parts > 0 {
		t := r.Table("topn.keys")
		if len(t) != 1 || t[0].NumRows() != parts {
			return fmt.Errorf("state %q missing or malformed", "topn.keys")
		}
		ids := make([]uint32, parts)
		if err := o.parts.Update(t[0].Columns(), nil, nil, ids); err != nil {
			return fmt.Errorf("state %q: %w", "topn.keys", err)
		}
		for k, id := range ids {
			if id != uint32(k) {
				return fmt.Errorf("state %q: partition %d restored as %d", "topn.keys", k, id)
			}
		}
	}
	o.growParts()
	for _, b := range r.Table("topn.rows") {
		if int(b.NumCols()) != len(o.cols)+1 {
			return fmt.Errorf("state %q: %d columns, want %d", "topn.rows", b.NumCols(), len(o.cols)+1)
		}
		pid, ok := b.Column(0).(*array.Int64)
		if !ok {
			return fmt.Errorf("state %q: bad partition column", "topn.rows")
		}
		for k, c := range o.cols {
			c.begin(b.Column(k + 1))
		}
		for i := 0; i < int(b.NumRows()); i++ {
			p := pid.Value(i)
			if p < 0 || p >= parts {
				return fmt.Errorf("state %q: partition %d out of range", "topn.rows", p)
			}
			slot := o.newSlot()
			for _, c := range o.cols {
				c.put(slot, i)
			}
			o.top[p] = append(o.top[p], slot)
		}
		for _, c := range o.cols {
			c.end()
		}
	}
	return nil
}
