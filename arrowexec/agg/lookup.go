package agg

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// NoGroup is the id Find reports for a key that has no group.
const NoGroup = ^uint32(0)

// Find writes into ids the group id of the key of each row selected by sel
// (nil: every row), or NoGroup when the table has no group for that key.
// Unlike Update it never creates groups or touches aggregate states, so a
// table built once can be probed by an unbounded stream of keys without
// growing. NULL keys are looked up like any other value (a group whose key
// is NULL matches them); callers implementing SQL equality skip rows with
// NULL keys. Rows of a combined-away group's key get the group it was
// combined into. ids must have room for len(sel) (or batch length)
// entries. Not safe for concurrent use with other calls on the table.
func (t *Table) Find(keys []arrow.Array, sel []int32, ids []uint32) error {
	if t.closed {
		return fmt.Errorf("agg: Find on a released Table")
	}
	if len(keys) != len(t.keyTypes) {
		return fmt.Errorf("agg: Find got %d keys, want %d", len(keys), len(t.keyTypes))
	}
	n := len(sel)
	if sel == nil {
		if len(keys) == 0 {
			return fmt.Errorf("agg: Find without keys needs a selection")
		}
		n = keys[0].Len()
	}
	for i, a := range keys {
		if !arrow.TypeEqual(a.DataType(), t.keyTypes[i]) {
			return fmt.Errorf("agg: Find key %d is %s, want %s", i, a.DataType(), t.keyTypes[i])
		}
		if sel == nil && a.Len() != n {
			return fmt.Errorf("agg: Find key %d has %d rows, want %d", i, a.Len(), n)
		}
	}
	if len(ids) < n {
		return fmt.Errorf("agg: Find needs room for %d ids, got %d", n, len(ids))
	}
	ids = ids[:n]
	if n == 0 {
		return nil
	}
	if t.groups == nil {
		id := NoGroup
		if t.n > 0 {
			id = 0
		}
		for k := range ids {
			ids[k] = id
		}
		return nil
	}
	scr := getScratch(0)
	defer putScratch(scr)
	t.groups.s = scr
	t.groups.lookup(keys, sel, ids)
	t.groups.s = nil
	if t.fwd != nil {
		for k, g := range ids {
			if g != NoGroup && t.fwd[g] != g {
				ids[k] = t.find(g)
			}
		}
	}
	return nil
}

// lookup (with m.s set to a scratch) is find without insertion: ids[k] is
// the group of the key at row rows[k] (rows nil: row k), or NoGroup. It
// probes like find: hashes column at a time, one pass to the first slot
// whose tag matches or to an empty slot (absent), candidates verified
// column at a time, tag collisions probing on in another round.
func (m *groupMap) lookup(keys []arrow.Array, rows []int32, ids []uint32) {
	n := len(ids)
	m.s.hashes = growTo(m.s.hashes, n, 0)
	h := m.s.hashes[:n]
	m.hash(keys, rows, nil, h)
	if m.collide {
		for k := range h {
			h[k] &= 7 << 61
		}
	}
	m.s.pos = growTo(m.s.pos, n, 0)
	m.s.pending = growTo(m.s.pending, n, 0)[:n]
	for k := range m.s.pending {
		m.s.pending[k] = int32(k)
	}
	pending := m.s.pending
	m.warm(h)
	slots := m.slots
	mask := uint32(len(slots) - 1)
	shift := 32 - m.logCap
	fromHome := true
	for len(pending) > 0 {
		m.s.cand, m.s.candG = m.s.cand[:0], m.s.candG[:0]
		for _, k := range pending {
			tag := uint32(h[k] >> 32)
			p := m.s.pos[k]
			if fromHome {
				p = tag >> shift
			}
			for {
				s := slots[p&mask]
				if s == 0 {
					ids[k] = NoGroup
					break
				}
				if uint32(s>>32) == tag {
					m.s.cand = append(m.s.cand, k)
					m.s.candG = append(m.s.candG, uint32(s)-1)
					m.s.pos[k] = p & mask
					break
				}
				p++
			}
		}
		next := m.s.next[:0]
		if len(m.s.cand) > 0 {
			next = m.verify(keys, rows, nil, ids, mask, next)
		}
		fromHome = false
		m.s.next = pending[:0]
		pending = next
	}
	m.s.pending = pending[:0]
}
