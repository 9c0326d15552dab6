package agg

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// groupMap assigns dense ids to distinct key tuples, in first-seen order.
//
// It is an open-addressing hash table with linear probing over a
// power-of-two array of slots. A slot is 0 when empty, else the top 32 bits
// of the key hash (the tag) above id+1; the home slot of a hash is the top
// logCap bits of its tag, so the table can be rehashed from the slots
// alone. The load factor stays at most 1/2, or 3/4 for a dense map.
//
// Lookup is vectorised: keys are hashed column at a time; one pass probes
// every row to its first slot whose tag matches (a candidate) or to an
// empty slot (a new group, inserted at once so later rows of the batch find
// it); keys of new groups are appended column at a time; candidates are
// verified column at a time; rows whose candidate was a tag collision go on
// probing in another round.
type groupMap struct {
	cols []keyCol
	// withPrefix adds a leading uint32 key column that is not an Arrow array
	// (the group id of a distinct-value set).
	withPrefix bool
	prefix     []uint32
	// dense lets the slots fill to 3/4 before the table grows: a
	// distinct-value set holds many more keys than a table has groups, and
	// its 8-byte slots were most of its bytes at 1/2.
	dense bool

	slots  []uint64
	logCap uint
	n      int // groups
	limit  int // the table grows before n exceeds limit

	// s is the scratch of the current call, set by the caller of find.
	s    *scratch
	sink uint64 // defeats dead-code elimination in warm

	// seed is the hash seed of the keys (see hash.go); it may change only
	// while the map is empty.
	seed uint64

	// collide, set only by tests, keeps just the top 3 bits of every hash
	// so that tags collide and the multi-round paths run.
	collide bool
}

const minLogCap = 4

func newGroupMap(cols []keyCol, withPrefix, dense bool) *groupMap {
	m := &groupMap{cols: cols, withPrefix: withPrefix, dense: dense}
	m.setCap(minLogCap)
	return m
}

func (m *groupMap) setCap(logCap uint) {
	m.logCap = logCap
	m.slots = make([]uint64, 1<<logCap)
	m.limit = 1 << (logCap - 1)
	if m.dense {
		m.limit = 3 << (logCap - 2)
	}
}

// grow doubles the slot array and reinserts every slot.
func (m *groupMap) grow() {
	old := m.slots
	m.setCap(m.logCap + 1)
	mask := uint32(len(m.slots) - 1)
	shift := 32 - m.logCap
	for _, s := range old {
		if s == 0 {
			continue
		}
		p := uint32(s>>32) >> shift
		for m.slots[p] != 0 {
			p = (p + 1) & mask
		}
		m.slots[p] = s
	}
}

func (m *groupMap) bytes() int64 {
	b := sizeOf(m.slots) + sizeOf(m.prefix)
	for _, c := range m.cols {
		b += c.bytes()
	}
	return b
}

// hash computes the key hash of each of the len(h) rows.
func (m *groupMap) hash(keys []arrow.Array, rows []int32, prefix []uint32, h []uint64) {
	first := true
	if m.withPrefix {
		for k := range h {
			h[k] = hash64(uint64(prefix[k]), m.seed)
		}
		first = false
	}
	for _, a := range keys {
		if first {
			hashColumn(a, rows, h, m.seed)
			first = false
			continue
		}
		m.s.tmp = growTo(m.s.tmp, len(h), 0)
		t := m.s.tmp[:len(h)]
		hashColumn(a, rows, t, m.seed)
		for k, v := range t {
			h[k] = combine(h[k], v)
		}
	}
}

// find (with m.s set to a scratch) writes into ids[k] the group id of the key at row rows[k] (rows nil:
// row k) of keys (and prefix[k]), creating groups as needed. New groups get
// ids in order of their first row. It returns the number of groups before
// the call: ids at or above it are new.
func (m *groupMap) find(keys []arrow.Array, rows []int32, prefix []uint32, ids []uint32) (int, error) {
	n := len(ids)
	m.s.hashes = growTo(m.s.hashes, n, 0)
	h := m.s.hashes[:n]
	m.hash(keys, rows, prefix, h)
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
	n0 := m.n
	rounds := 0
	fromHome := true
	grew := false
	m.s.newSlot = m.s.newSlot[:0]
	for len(pending) > 0 {
		rounds++
		m.s.cand, m.s.candG, m.s.newK = m.s.cand[:0], m.s.candG[:0], m.s.newK[:0]
		slots := m.slots
		mask := uint32(len(slots) - 1)
		shift := 32 - m.logCap
		deferred := -1
	probe:
		for idx, k := range pending {
			tag := uint32(h[k] >> 32)
			p := m.s.pos[k]
			if fromHome {
				p = tag >> shift
			}
			for {
				s := slots[p&mask]
				if s == 0 {
					if m.n >= m.limit {
						deferred = idx
						break probe
					}
					id := uint32(m.n)
					m.n++
					slots[p&mask] = uint64(tag)<<32 | uint64(id+1)
					m.s.newSlot = append(m.s.newSlot, p&mask)
					ids[k] = id
					m.s.newK = append(m.s.newK, k)
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
		if len(m.s.newK) > 0 {
			if err := m.appendKeys(keys, rows, prefix, m.s.newK); err != nil {
				return n0, err
			}
		}
		next := m.s.next[:0]
		if len(m.s.cand) > 0 {
			next = m.verify(keys, rows, prefix, ids, mask, next)
		}
		fromHome = false
		if deferred >= 0 {
			next = append(next, pending[deferred:]...)
			m.grow()
			fromHome, grew = true, true
		}
		// swap buffers: pending's storage becomes the next round's scratch
		m.s.next = pending[:0]
		pending = next
	}
	m.s.pending = pending[:0]
	if rounds > 1 && m.n > n0 {
		if err := m.renumber(keys, rows, prefix, ids, n0, grew); err != nil {
			return n0, err
		}
	}
	return n0, nil
}

// warm computes the home slot of every hash and loads it once, in a loop
// without dependencies between iterations, so that the cache misses of a
// large table overlap instead of stalling the probe loop one at a time.
func (m *groupMap) warm(h []uint64) {
	slots := m.slots
	shift := 32 - m.logCap
	mask := uint64(len(slots) - 1)
	var x uint64
	for _, v := range h {
		x += slots[(v>>32>>shift)&mask]
	}
	m.sink = x
}

// appendKeys appends the keys of rows ks (positions in the batch) as new
// groups, column at a time.
func (m *groupMap) appendKeys(keys []arrow.Array, rows []int32, prefix []uint32, ks []int32) error {
	m.s.rows = m.s.rows[:0]
	for _, k := range ks {
		m.s.rows = append(m.s.rows, int32(rowOf(rows, int(k))))
	}
	if m.withPrefix {
		for _, k := range ks {
			m.prefix = append(m.prefix, prefix[k])
		}
	}
	for c, a := range keys {
		if err := m.cols[c].appendRows(a, m.s.rows); err != nil {
			return err
		}
	}
	return nil
}

// verify compares the keys of the candidates with their rows column at a
// time; matches get their id, the others are appended to next to probe on
// from the slot after their candidate.
func (m *groupMap) verify(keys []arrow.Array, rows []int32, prefix []uint32, ids []uint32, mask uint32, next []int32) []int32 {
	nc := len(m.s.cand)
	m.s.eq = growTo(m.s.eq, nc, false)[:nc]
	eq := m.s.eq
	for j := range eq {
		eq[j] = true
	}
	if m.withPrefix {
		for j, k := range m.s.cand {
			eq[j] = m.prefix[m.s.candG[j]] == prefix[k]
		}
	}
	if rows == nil {
		m.s.rows = append(m.s.rows[:0], m.s.cand...)
	} else {
		m.s.rows = m.s.rows[:0]
		for _, k := range m.s.cand {
			m.s.rows = append(m.s.rows, rows[k])
		}
	}
	for c, a := range keys {
		m.cols[c].equal(a, m.s.rows, m.s.candG, eq)
	}
	for j, k := range m.s.cand {
		if eq[j] {
			ids[k] = m.s.candG[j]
		} else {
			m.s.pos[k] = (m.s.pos[k] + 1) & mask
			next = append(next, k)
		}
	}
	return next
}

// renumber restores first-seen order among the groups created by this
// batch (ids >= n0) when probing took several rounds: the keys of those
// groups are rewritten in the new order and the slots and ids remapped.
// The slots remapped are those the call recorded (m.s.newSlot), or, when
// the table grew during the call (grew), found by scanning every slot: a
// scan per batch made large tables (COUNT(DISTINCT) sets) quadratic.
func (m *groupMap) renumber(keys []arrow.Array, rows []int32, prefix []uint32, ids []uint32, n0 int, grew bool) error {
	cnt := m.n - n0
	m.s.perm = growTo(m.s.perm, cnt, 0)[:cnt]
	perm := m.s.perm
	for i := range perm {
		perm[i] = ^uint32(0)
	}
	nxt := uint32(n0)
	ordered := true
	m.s.newK = m.s.newK[:0] // first row of each group, in new id order
	for k, id := range ids {
		if int(id) < n0 {
			continue
		}
		o := id - uint32(n0)
		if perm[o] == ^uint32(0) {
			perm[o] = nxt
			ordered = ordered && nxt == id
			nxt++
			m.s.newK = append(m.s.newK, int32(k))
		}
		ids[k] = perm[o]
	}
	if ordered {
		return nil
	}
	for _, c := range m.cols {
		c.truncate(n0)
	}
	if m.withPrefix {
		m.prefix = m.prefix[:n0]
	}
	if err := m.appendKeys(keys, rows, prefix, m.s.newK); err != nil {
		return err
	}
	if !grew && len(m.s.newSlot) == cnt {
		for _, i := range m.s.newSlot {
			s := m.slots[i]
			m.slots[i] = s&^0xffffffff | uint64(perm[uint32(s)-1-uint32(n0)]+1)
		}
		return nil
	}
	for i, s := range m.slots {
		if s == 0 {
			continue
		}
		if id := uint32(s) - 1; int(id) >= n0 {
			m.slots[i] = s&^0xffffffff | uint64(perm[id-uint32(n0)]+1)
		}
	}
	return nil
}
