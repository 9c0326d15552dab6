package agg

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

// firstLast is FIRST_VALUE/LAST_VALUE: the value (NULL included) of the
// group's first/last row in update order. seq numbers rows across batches
// so that Combine can tell which group's row came first/last.
type firstLast struct {
	last bool
	vals store
	has  bitset
	seq  []uint64
}

func (a *firstLast) skipNulls() bool { return false }

func (a *firstLast) grow(n int) {
	a.vals.grow(n)
	a.has = a.has.grow(n)
	a.seq = growTo(a.seq, n, 0)
}

func (a *firstLast) bytes() int64 {
	return a.vals.bytes() + sizeOf(a.has) + sizeOf(a.seq)
}

func (a *firstLast) update(in *input) error {
	pick := in.pick
	seen := in.scr.aggU32[:0] // groups of the batch
	if a.last {
		for k, g := range in.ids {
			if pick[g] < 0 {
				seen = append(seen, g)
			}
			pick[g] = int32(k)
		}
	} else {
		for k, g := range in.ids {
			if pick[g] < 0 && !a.has.get(g) {
				seen = append(seen, g)
				pick[g] = int32(k)
			}
		}
	}
	rows := in.scr.aggI32[:0]
	for _, g := range seen {
		k := int(pick[g])
		pick[g] = -1
		r := rowOf(in.rows, k)
		rows = append(rows, int32(r))
		a.seq[g] = in.seq + uint64(r)
		a.has.set(g)
	}
	in.scr.aggU32, in.scr.aggI32 = seen, rows
	return a.vals.setRows(in.arr, seen, rows)
}

func (a *firstLast) combine(into, from uint32, _ *scratch) error {
	if !a.has.get(from) {
		return nil
	}
	if a.has.get(into) && (a.last && a.seq[from] < a.seq[into] || !a.last && a.seq[from] > a.seq[into]) {
		return nil
	}
	a.has.set(into)
	a.seq[into] = a.seq[from]
	return a.vals.copyGroup(into, from)
}

func (a *firstLast) emit(alloc memory.Allocator, groups []uint32) (arrow.Array, error) {
	return a.vals.emit(alloc, groups), nil
}

// store holds one nullable value of a SQL type per group; new groups hold
// NULL.
type store interface {
	grow(n int)
	// setRows sets group groups[j] to row rows[j] of a (NULL included).
	setRows(a arrow.Array, groups []uint32, rows []int32) error
	copyGroup(dst, src uint32) error
	// copyFrom sets group dst to group g of src, a store of the same type.
	copyFrom(dst uint32, src store, g uint32) error
	reset()
	emit(alloc memory.Allocator, groups []uint32) arrow.Array
	bytes() int64
	// save and load write and read the values as one column (state.go).
	save(o *stateOut, name string)
	load(in *stateIn, name string)
}

func newStore(dt arrow.DataType) store {
	switch kindOf(dt) {
	case kInt32:
		return &fixedStore[int32]{dt: dt}
	case kInt64:
		return &fixedStore[int64]{dt: dt}
	case kFloat64:
		return &fixedStore[float64]{dt: dt}
	case kDecimal:
		return &fixedStore[decimal128.Num]{dt: dt}
	case kBool:
		return &boolStore{}
	case kString:
		return &stringStore{}
	}
	return nullStore{}
}

type fixedStore[T kernels.Fixed] struct {
	dt    arrow.DataType
	vals  []T
	valid bitset
}

func (s *fixedStore[T]) grow(n int) {
	var z T
	s.vals = growTo(s.vals, n, z)
	s.valid = s.valid.grow(n)
}

func (s *fixedStore[T]) setRows(a arrow.Array, groups []uint32, rows []int32) error {
	vals := kernels.Values[T](a)
	bm, off := validBits(a)
	for j, g := range groups {
		r := int(rows[j])
		ok := bm == nil || bit(bm, off+r)
		s.valid.put(g, ok)
		if ok {
			s.vals[g] = vals[r]
		}
	}
	return nil
}

func (s *fixedStore[T]) copyGroup(dst, src uint32) error {
	s.vals[dst] = s.vals[src]
	s.valid.put(dst, s.valid.get(src))
	return nil
}

func (s *fixedStore[T]) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	return emitFixed(alloc, s.dt, groups, s.vals, s.valid)
}

func (s *fixedStore[T]) bytes() int64 { return sizeOf(s.vals) + sizeOf(s.valid) }

type boolStore struct{ vals, valid bitset }

func (s *boolStore) grow(n int) { s.vals, s.valid = s.vals.grow(n), s.valid.grow(n) }

func (s *boolStore) setRows(a arrow.Array, groups []uint32, rows []int32) error {
	vb, voff := boolCol(a)
	bm, off := validBits(a)
	for j, g := range groups {
		r := int(rows[j])
		ok := bm == nil || bit(bm, off+r)
		s.valid.put(g, ok)
		s.vals.put(g, ok && bit(vb, voff+r))
	}
	return nil
}

func (s *boolStore) copyGroup(dst, src uint32) error {
	s.vals.put(dst, s.vals.get(src))
	s.valid.put(dst, s.valid.get(src))
	return nil
}

func (s *boolStore) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	return emitBools(alloc, groups, s.vals, s.valid)
}

func (s *boolStore) bytes() int64 { return sizeOf(s.vals) + sizeOf(s.valid) }

// stringStore keeps VARCHAR values copied into one append-only arena: group
// g's value is data[off[g]:off[g]+ln[g]]. Replaced values become garbage;
// the arena is compacted when garbage exceeds half of it.
type stringStore struct {
	off, ln []uint32
	data    []byte
	garbage int
	valid   bitset
}

func (s *stringStore) grow(n int) {
	s.off, s.ln = growTo(s.off, n, 0), growTo(s.ln, n, 0)
	s.valid = s.valid.grow(n)
}

func (s *stringStore) get(g uint32) []byte { return s.data[s.off[g] : s.off[g]+s.ln[g]] }

// set copies b as group g's (non-NULL) value.
func (s *stringStore) set(g uint32, b []byte) error {
	s.garbage += int(s.ln[g])
	if len(b) <= int(s.ln[g]) { // fits in place
		s.garbage -= len(b)
		copy(s.data[s.off[g]:], b)
		s.ln[g] = uint32(len(b))
		s.valid.set(g)
		return nil
	}
	if s.garbage > 1<<16 && s.garbage > len(s.data)/2 {
		s.compact()
	}
	if len(s.data)+len(b) > math.MaxUint32 {
		return fmt.Errorf("agg: VARCHAR aggregate state exceeds 4 GiB")
	}
	s.off[g], s.ln[g] = uint32(len(s.data)), uint32(len(b))
	s.data = append(s.data, b...)
	s.valid.set(g)
	return nil
}

func (s *stringStore) setNull(g uint32) {
	s.garbage += int(s.ln[g])
	s.ln[g] = 0
	s.valid.clr(g)
}

func (s *stringStore) compact() {
	data := make([]byte, 0, len(s.data)-s.garbage+len(s.data)/4)
	for g := range s.off {
		o := len(data)
		data = append(data, s.get(uint32(g))...)
		s.off[g] = uint32(o)
	}
	s.data, s.garbage = data, 0
}

func (s *stringStore) setRows(a arrow.Array, groups []uint32, rows []int32) error {
	offs, data := strCol(a)
	bm, off := validBits(a)
	for j, g := range groups {
		r := rows[j]
		if bm != nil && !bit(bm, off+int(r)) {
			s.setNull(g)
			continue
		}
		if err := s.set(g, data[offs[r]:offs[r+1]]); err != nil {
			return err
		}
	}
	return nil
}

func (s *stringStore) copyGroup(dst, src uint32) error {
	if !s.valid.get(src) {
		s.setNull(dst)
		return nil
	}
	// src's bytes may move if set compacts: copy them first.
	return s.set(dst, append([]byte(nil), s.get(src)...))
}

func (s *stringStore) emit(alloc memory.Allocator, groups []uint32) arrow.Array {
	return emitStrings(alloc, groups, s.valid, s.get)
}

func (s *stringStore) bytes() int64 {
	return sizeOf(s.off) + sizeOf(s.ln) + sizeOf(s.data) + sizeOf(s.valid)
}

type nullStore struct{}

func (nullStore) grow(int)                                     {}
func (nullStore) setRows(arrow.Array, []uint32, []int32) error { return nil }
func (nullStore) copyGroup(uint32, uint32) error               { return nil }
func (nullStore) bytes() int64                                 { return 0 }
func (nullStore) emit(_ memory.Allocator, groups []uint32) arrow.Array {
	return array.NewNull(len(groups))
}
