package arrowexec

import (
	"fmt"
	"strconv"

	"github.com/ferrisstreams/ferris/arrowexec/agg"
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
// a session, row i being key i), "session.aggs.<i>" (the i-th saved
// session table, whole: agg.Table.SaveState) and "session" (the rest, with
// the state codec).
//
// Session tables are saved exactly, dead and combined-away groups
// included, rather than rebuilt from the live sessions' results: DOUBLE
// sums, AVG and STDDEV/VAR round by how rows were grouped and combined,
// DISTINCT sets replay in their insertion order, LAST_VALUE compares the
// sequence numbers of rows, and only the raw accumulators carry all of
// that. The tables saved are those with live sessions and the current one
// (which receives new sessions), in their order; a table whose sessions
// have all ended holds no state any session can reach, and compact would
// release it. A saved table is as large as the memory the operator holds
// for it, dead groups included (see SessionOp on generations): a
// checkpoint grows with the state the operator reserves, not with its
// live sessions alone.
//
// Slab slots, key ids and timer entries are not saved: LoadState rebuilds
// them compactly (one key dictionary of the live keys, one timer entry per
// session), which changes no output.

// savedSession is one live session in a checkpoint.
type savedSession struct {
	key                       uint32 // row of session.keys
	tab, gid                  uint32 // its group: gid of table session.aggs.<tab>
	open, emitted             bool
	start, end, seq, revision int64
}

func (s *SessionOp) scalarState(saved *[]savedSession, tabs *int) []any {
	return []any{&s.wm, &s.seq, &s.stats, saved, tabs}
}

// sessTableName is the name of the i-th saved session table.
func sessTableName(i int) string { return "session.aggs." + strconv.Itoa(i) }

// SaveState implements Stateful. It does not change the operator. It is
// called between input messages, when no row is pending and every closed
// session has been emitted.
func (s *SessionOp) SaveState(w *StateWriter) error {
	// aggregate states: the tables sessions live in, and the current one
	live := map[*sessTable]uint32{}
	for i, t := range s.tabs {
		if t.live == 0 && i < len(s.tabs)-1 {
			continue
		}
		if t.t.Len() != t.n {
			return fmt.Errorf("session aggregate: internal error: saving a table of %d groups for %d sessions", t.t.Len(), t.n)
		}
		name := sessTableName(len(live))
		live[t] = uint32(len(live))
		rec, err := t.t.SaveState(s.alloc)
		if err != nil {
			return fmt.Errorf("session aggregate: %s: %w", name, err)
		}
		if err := w.Put(name, rec); err != nil {
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
				saved = append(saved, savedSession{key: uint32(len(keys)), tab: live[ss.tab], gid: ss.gid,
					open: ss.open, emitted: ss.emitted, start: ss.start, end: ss.end, seq: ss.seq, revision: ss.revision})
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
	nTabs := len(live)
	return putBlob(s.alloc, w, "session", s.scalarState(&saved, &nTabs)...)
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
	var nTabs int
	if err := loadBlob(r, "session", s.scalarState(&saved, &nTabs)...); err != nil {
		return err
	}
	if s.dict.Len() != 0 || len(s.tabs) != 1 || s.tabs[0].n != 0 {
		return fmt.Errorf("state loaded into an operator that has state")
	}
	if nTabs < 1 {
		return fmt.Errorf("state %q: %d session tables", "session", nTabs)
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
	// the fresh (empty) table is replaced by the saved ones, the last
	// saved one current
	s.tabs[0].t.Release()
	s.tabs = s.tabs[:0]
	for i := range nTabs {
		t, err := agg.NewTable(s.alloc, nil, s.cfg.Specs)
		if err != nil {
			return err
		}
		s.tabs = append(s.tabs, &sessTable{t: t})
		if err := loadTable(r, sessTableName(i), t); err != nil {
			return err
		}
		s.tabs[i].n = t.Len()
	}
	s.keys = make([]keyLists, nKeys)
	tails := make([]keyLists, nKeys) // last session of each list
	for k := range s.keys {
		s.keys[k], tails[k] = keyLists{open: -1, closed: -1}, keyLists{open: -1, closed: -1}
	}
	for _, v := range saved {
		if int(v.key) >= nKeys || int(v.tab) >= nTabs || int(v.gid) >= s.tabs[v.tab].n {
			return fmt.Errorf("saved session of key %d, table %d, group %d: out of range", v.key, v.tab, v.gid)
		}
		tab := s.tabs[v.tab]
		idx := int32(len(s.sess))
		s.sess = append(s.sess, session{start: v.start, end: v.end, seq: v.seq, revision: v.revision,
			tab: tab, key: v.key, gid: v.gid, next: -1, open: v.open, emitted: v.emitted})
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
