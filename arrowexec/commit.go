package arrowexec

import (
	"context"
	"sync"
	"time"
)

// DefaultCommitInterval is how often queries that can vouch for their
// input flush their sinks and let committing sources commit.
const DefaultCommitInterval = time.Second

// committerOf finds the Committer under a source operator (through a
// WatermarkAssigner), or nil.
func committerOf(op Operator) Committer {
	for op != nil {
		if c, ok := op.(Committer); ok {
			return c
		}
		w, ok := op.(*WatermarkAssigner)
		if !ok {
			return nil
		}
		op = w.input
	}
	return nil
}

// passesRowsThrough reports whether every row a query reads leaves it (or
// is dropped for good) before its next read: an operator tree of filters,
// projections and limits over inlets. Only such a query can vouch that the
// input it consumed has reached its sinks once they are flushed; a query
// holding rows in state (windows, aggregates, joins) vouches only at the end
// of its input, until checkpoints cover its state.
func passesRowsThrough(op Operator) bool {
	switch o := op.(type) {
	case *Inlet:
		return true
	case *FilterOp:
		return passesRowsThrough(o.input)
	case *ProjectOp:
		return passesRowsThrough(o.input)
	case *LimitOp:
		return passesRowsThrough(o.input)
	case *Instrumented:
		return passesRowsThrough(o.in)
	}
	return false
}

// commitTracker commits a source's positions once every query reading it
// has made the rows before them durable (at-least-once): it remembers the
// source's mark after each message (by sequence number) and commits the
// newest mark that every reader has acknowledged.
type commitTracker struct {
	src Committer

	mu      sync.Mutex
	marks   []seqMark        // ascending seq, not yet committed
	acked   map[*Inlet]int64 // per reader: highest durable seq
	readers []*Inlet
	done    int64 // highest committed seq
}

type seqMark struct {
	seq  int64
	mark any
}

func newCommitTracker(src Committer, readers []*Inlet) *commitTracker {
	t := &commitTracker{src: src, acked: map[*Inlet]int64{}, readers: readers}
	for _, r := range readers {
		t.acked[r] = 0
	}
	return t
}

// record remembers the source's mark after message seq.
func (t *commitTracker) record(seq int64) {
	m := t.src.Mark()
	t.mu.Lock()
	t.marks = append(t.marks, seqMark{seq, m})
	t.mu.Unlock()
}

// ack records that reader has made every message up to seq durable, and
// commits what every reader has acknowledged.
func (t *commitTracker) ack(ctx context.Context, reader *Inlet, seq int64) error {
	t.mu.Lock()
	if seq > t.acked[reader] {
		t.acked[reader] = seq
	}
	low := seq
	for _, r := range t.readers {
		low = min(low, t.acked[r])
	}
	var mark any
	n := 0
	for n < len(t.marks) && t.marks[n].seq <= low {
		mark = t.marks[n].mark
		n++
	}
	t.marks = append(t.marks[:0], t.marks[n:]...)
	if mark == nil || low <= t.done {
		t.mu.Unlock()
		return nil
	}
	t.done = low
	t.mu.Unlock()
	return t.src.Commit(ctx, mark)
}
