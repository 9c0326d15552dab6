package arrowexec

import (
	"cmp"
	"fmt"
	"slices"
)

var _ Stateful = (*SessionOp)(nil)

// SessionOp's checkpoint state (see Stateful) is its live sessions, open
// and kept (update_previous), with everything that decides their future
// output: bounds, begin order, revision, whether they were emitted, their
// order in their key's lists or sets (for kept sessions starting together,
// the order a late row picks them in), and their aggregate states; plus the
// watermark, the count of sessions begun and the late-row counters.
//
// Tables and blobs: "session.keys" (the GROUP BY tuple of every key with
// a session, row i being key i), "session.aggs" (aggregate states, one
// row per session: see saveSessionTable) and "session" (the rest, with the
// state codec).
//
// Slab slots, generations of tables, key ids and timer entries are not
// saved: LoadState rebuilds them compactly (one key dictionary of the
// live keys, one table of the live sessions, one timer entry per
// session), which changes no output.

// savedSession is one live session in a checkpoint.
type savedSession struct {
	key                       uint32 // row of session.keys
	row                       uint32 // row of session.aggs
	open, emitted             bool
	start, end, seq, revision int64
}

func (s *SessionOp) scalarState(saved *[]savedSession) []any {
	return []any{&s.wm, &s.seq, &s.stats, saved}
}

// SaveState implements Stateful. It does not change the operator. It is
// called between input messages, when no row is pending and every closed
// session has been emitted. Aggregates whose state cannot be saved yet
// (see checkSavable) make it fail with an error wrapping
// errors.ErrUnsupported.
func (s *SessionOp) SaveState(w *StateWriter) error {
	if err := checkSavable(s.cfg.Specs); err != nil {
		return fmt.Errorf("session aggregate: %w", err)
	}
	// aggregate states: per table, its live sessions in begin order
	byTab := map[*sessTable][]int32{}
	for x := range s.sess {
		if t := s.sess[x].tab; t != nil { // nil: a free slot
			byTab[t] = append(byTab[t], int32(x))
		}
	}
	rows := make([]uint32, len(s.sess))
	var n uint32
	for _, t := range s.tabs {
		live := byTab[t]
		if len(live) == 0 {
			continue
		}
		slices.SortFunc(live, func(a, b int32) int { return cmp.Compare(s.sess[a].seq, s.sess[b].seq) })
		gids := make([]uint32, len(live))
		for i, x := range live {
			gids[i], rows[x] = s.sess[x].gid, n
			n++
		}
		rec, err := saveSessionTable(t.t, gids)
		if err != nil {
			return fmt.Errorf("session aggregate: %w", err)
		}
		if err := w.Put("session.aggs", rec); err != nil {
			return err
		}
	}
	// sessions, key by key, each list in order
	var keys []uint32
	var saved []savedSession
	var xs []int32
	for k, kl := range s.keys {
		if kl.empty() {
			continue
		}
		for _, head := range []int32{kl.open, kl.closed} {
			xs = s.members(head, xs[:0])
			for _, x := range xs {
				ss := &s.sess[x]
				saved = append(saved, savedSession{key: uint32(len(keys)), row: rows[x], open: ss.open, emitted: ss.emitted,
					start: ss.start, end: ss.end, seq: ss.seq, revision: ss.revision})
			}
		}
		keys = append(keys, uint32(k))
	}
	if len(keys) > 0 {
		cols, _, err := s.dict.Emit(keys)
		if err != nil {
			return fmt.Errorf("session aggregate: %w", err)
		}
		if err := w.Put("session.keys", stateBatch(cols, len(keys))); err != nil {
			return err
		}
	}
	return putBlob(s.alloc, w, "session", s.scalarState(&saved)...)
}

// LoadState implements Stateful: it is called once, before Open, on an
// operator just built from the same configuration.
func (s *SessionOp) LoadState(r *StateReader) error {
	if err := s.loadState(r); err != nil {
		return fmt.Errorf("session aggregate: loading state: %w", err)
	}
	return s.account()
}

func (s *SessionOp) loadState(r *StateReader) error {
	var saved []savedSession
	if err := loadBlob(r, "session", s.scalarState(&saved)...); err != nil {
		return err
	}
	if s.dict.Len() != 0 || len(s.tabs) != 1 || s.tabs[0].n != 0 {
		return fmt.Errorf("state loaded into an operator that has state")
	}
	var nKeys int
	if t := r.Table("session.keys"); len(t) > 0 {
		if len(t) != 1 {
			return fmt.Errorf("state %q malformed", "session.keys")
		}
		nKeys = int(t[0].NumRows())
		ids := make([]uint32, nKeys)
		if err := s.dict.Update(t[0].Columns(), nil, nil, ids); err != nil {
			return err
		}
		for k, id := range ids {
			if id != uint32(k) {
				return fmt.Errorf("state %q: key %d restored as %d", "session.keys", k, id)
			}
		}
	}
	tab := s.tabs[0]
	for _, rec := range r.Table("session.aggs") {
		if err := loadSessionTable(s.alloc, s.cfg.Specs, tab.t, rec); err != nil {
			return err
		}
	}
	tab.n = tab.t.Len()
	s.keys = make([]keyLists, nKeys)
	tails := make([]keyLists, nKeys) // last session of each list
	for k := range s.keys {
		s.keys[k], tails[k] = keyLists{open: -1, closed: -1}, keyLists{open: -1, closed: -1}
	}
	for _, v := range saved {
		if int(v.key) >= nKeys || int(v.row) >= tab.n {
			return fmt.Errorf("saved session of key %d, row %d: out of range", v.key, v.row)
		}
		idx := int32(len(s.sess))
		s.sess = append(s.sess, session{start: v.start, end: v.end, seq: v.seq, revision: v.revision,
			tab: tab, key: v.key, gid: v.row, next: -1, open: v.open, emitted: v.emitted})
		head, tail := &s.keys[v.key].closed, &tails[v.key].closed
		if v.open {
			head, tail = &s.keys[v.key].open, &tails[v.key].open
		}
		if *tail < 0 {
			*head = idx
		} else {
			s.sess[*tail].next = idx
		}
		*tail = idx
		tab.live++
		s.timer.insert(sessEvent{at: s.due(&s.sess[idx]), idx: idx})
	}
	for k := range s.keys { // long lists become sets, as scans would make them
		for _, head := range []*int32{&s.keys[k].open, &s.keys[k].closed} {
			n := 0
			for x := *head; x >= 0; x = s.sess[x].next {
				n++
			}
			if n > s.listMax {
				s.toSet(head)
			}
		}
	}
	s.timer.setNext()
	s.keyLive = nKeys
	return nil
}

// barrier handles a checkpoint barrier that consume has just applied:
// everything earlier input produced is queued; the state is saved and the
// barrier queued behind it with the operator's watermark.
func (s *SessionOp) barrier(b *Barrier) error {
	if err := b.Save(s); err != nil {
		return err
	}
	s.queue = append(s.queue, Message{Watermark: s.wm, Barrier: b})
	return nil
}
