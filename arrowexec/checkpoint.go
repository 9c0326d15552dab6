package arrowexec

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Checkpoints (docs/design.md, "The checkpoint protocol"): every
// CheckpointConfig.Interval the coordinator asks every source to send a barrier (Message.Barrier) after its next
// message. A source records its position (Checkpointable) and its
// watermark state as it sends the barrier; each Stateful operator saves its
// state when the barrier passes it (operators with several inputs align
// first); a query that receives the barrier from its root flushes its sinks
// and records how far their committed output reaches (ResumableSink). When
// every source and query has answered, the checkpoint is written to
// CheckpointConfig.Dir (checkpoint_store.go). On the next Run, the latest
// complete checkpoint is restored before anything opens: sources seek to
// their positions, operators load their state, file sinks are cut back to
// their committed length, and processing resumes as if the process had
// never stopped.

// Checkpointable is a source whose read position checkpoints save.
type Checkpointable interface {
	// Position encodes the position just after the last message Next
	// returned (after io.EOF: the end). An error means the source cannot
	// be checkpointed (a pipe, a terminal).
	Position() ([]byte, error)
	// Seek, called before Open, makes the source start at a position
	// Position returned.
	Seek(pos []byte) error
}

// ResumableSink is a sink a checkpoint can cut back: its output up to a
// committed position is kept on recovery and the rest dropped, so with a
// resumable sink output is exactly once. Other sinks are at least once
// across a recovery (output since the last checkpoint is written again).
type ResumableSink interface {
	Sink
	// Committed returns the position the sink's output reaches once
	// flushed (for a file: its length).
	Committed() (int64, error)
	// ResumeAt, called before Open, makes Open keep the output before pos,
	// drop the rest and write after it.
	ResumeAt(pos int64) error
}

// TransactionalSink is a sink whose output becomes visible only with the
// checkpoint that covers it (Kafka transactions: exactly_once), a two-phase
// commit: the query flushes it at a barrier, waits until the checkpoint is
// on disk, and then has it commit. Without checkpoints it commits at every
// Flush.
type TransactionalSink interface {
	Sink
	// CommitByCheckpoint, called before Open when the topology
	// checkpoints, makes the sink commit only in CommitCheckpoint.
	CommitByCheckpoint()
	// CommitCheckpoint makes the output written so far visible, recording
	// with it, atomically, that checkpoint id's output is committed. It is
	// called between writes, from the query's goroutine.
	CommitCheckpoint(ctx context.Context, id int64) error
	// CommittedCheckpoint, called before Open on recovery, returns the
	// newest checkpoint whose output was committed (0: none). The
	// topology resumes from that checkpoint: output written after it was
	// never made visible and is written again.
	CommittedCheckpoint(ctx context.Context) (int64, error)
}

// CheckpointConfig turns checkpoints on for a topology.
type CheckpointConfig struct {
	// Dir holds this topology's checkpoints (state_dir, or a directory in
	// it per pipeline).
	Dir string
	// Interval between checkpoints (checkpoint_interval_ms).
	Interval time.Duration
	// Keep is how many complete checkpoints are kept (default 2: the
	// latest and one to fall back on if it turns out to be damaged).
	Keep int
	// Alloc holds restored state; nil means the Go allocator.
	Alloc memory.Allocator
	// Logf, when set, receives notes: checkpoints skipped as damaged,
	// checkpointing disabled and why.
	Logf func(format string, args ...any)
}

// CheckpointStats are live counters of a topology's checkpoints.
type CheckpointStats struct {
	Completed, Failed atomic.Int64
	LastID            atomic.Int64
	LastBytes         atomic.Int64 // size of the last checkpoint's files
	LastNanos         atomic.Int64 // time from trigger to written
	RestoredID        atomic.Int64 // checkpoint this run started from (0: none)
	RestoreNanos      atomic.Int64 // time to read and load it
	lastFailure       atomic.Pointer[string]
}

// fail records why a checkpoint could not be taken or written.
func (s *CheckpointStats) fail(why string) { s.lastFailure.Store(&why) }

// AllFailed returns an error when checkpoints were attempted during the
// run and every one failed (not merely cut short by the end of the run),
// naming the last failure; nil otherwise.
func (s *CheckpointStats) AllFailed() error {
	why := s.lastFailure.Load()
	if why == nil || s.Completed.Load() > 0 {
		return nil
	}
	return fmt.Errorf("no checkpoint could be written (%d failed); the last: %s", s.Failed.Load(), *why)
}

// checkpointer coordinates one run's checkpoints.
type checkpointer struct {
	cfg         CheckpointConfig
	t           *Topology
	fingerprint string
	keys        map[Stateful]string // operator state keys
	wm          map[*SourceNode]*WatermarkAssigner
	pending     map[*SourceNode]*atomic.Pointer[Barrier]
	// commits are the committing sources' trackers (commit.go): once a
	// checkpoint is on disk, everything before its barrier is durable.
	commits map[*SourceNode]*commitTracker
	// kick asks the loop for a checkpoint now (a final one before Stop
	// drains); final, if one is in flight, asks for another after it.
	kick  chan struct{}
	final atomic.Bool

	mu       sync.Mutex
	nextID   int64
	cur      *checkpointRun
	ended    map[*SourceNode]sourceEnd // sources at their end: final position
	finished map[*QueryNode][]int64    // queries ended cleanly: final sink positions
	disabled string                    // why no further checkpoint can complete
	failedID int64                     // the last checkpoint that could not be written
	// progress is closed (and replaced) when a checkpoint is written or
	// checkpoints stop: finalCheckpoint waits on it.
	progress chan struct{}
}

// notify wakes finalCheckpoint (c.mu held).
func (c *checkpointer) notify() {
	close(c.progress)
	c.progress = make(chan struct{})
}

// checkpointRun is one checkpoint in flight.
type checkpointRun struct {
	id       int64
	start    time.Time
	states   map[string]*StateWriter
	sinks    map[string][]int64
	finished map[string]bool
	sources  map[*SourceNode]bool  // still to answer
	queries  map[*QueryNode]bool   // still to answer
	seqs     map[*SourceNode]int64 // each source's last message before the barrier
	done     chan struct{}
	written  chan struct{} // closed once written (ok) or given up
	ok       bool
}

// settle records whether the run's checkpoint is on disk and wakes the
// queries waiting for it (c.mu held, or the run no longer current).
func (r *checkpointRun) settle(ok bool) {
	select {
	case <-r.written:
	default:
		r.ok = ok
		close(r.written)
	}
}

// stateless are the operators with nothing to save: they pass barriers
// through as watermark-only messages.
func stateless(op Operator) bool {
	switch op.(type) {
	case *Inlet, *FilterOp, *ProjectOp, *Instrumented:
		return true
	}
	return false
}

// operatorInputs returns the inputs of op (tree walks).
func operatorInputs(op Operator) []Operator {
	switch o := op.(type) {
	case *Instrumented:
		return []Operator{o.in}
	case interface{ readerInputs() []Operator }:
		return o.readerInputs()
	case interface{ unaryInput() Operator }:
		return []Operator{o.unaryInput()}
	}
	return nil
}

func (r *inputReaders) readerInputs() []Operator { return r.inputs[:] }

// newCheckpointer prepares checkpoints for t, or explains why t cannot be
// checkpointed (an operator or source that cannot save its state).
func newCheckpointer(t *Topology, cfg CheckpointConfig) (*checkpointer, error) {
	if cfg.Keep <= 0 {
		cfg.Keep = 2
	}
	if cfg.Alloc == nil {
		cfg.Alloc = memory.DefaultAllocator
	}
	c := &checkpointer{cfg: cfg, t: t, keys: map[Stateful]string{}, wm: map[*SourceNode]*WatermarkAssigner{},
		pending: map[*SourceNode]*atomic.Pointer[Barrier]{}, nextID: 1, kick: make(chan struct{}, 1),
		ended: map[*SourceNode]sourceEnd{}, finished: map[*QueryNode][]int64{}, progress: make(chan struct{})}
	var desc strings.Builder
	for _, s := range t.Sources {
		if _, ok := SourceAs[Checkpointable](s.Op); !ok {
			return nil, fmt.Errorf("source %s (%T) cannot save its read position", s.Stream, s.Op)
		}
		if w, ok := s.Op.(*WatermarkAssigner); ok {
			c.wm[s] = w
		}
		c.pending[s] = &atomic.Pointer[Barrier]{}
		fmt.Fprintf(&desc, "source %s %s\n", s.Stream, s.Op.Schema())
	}
	for _, q := range t.Queries {
		fmt.Fprintf(&desc, "query %s -> %s sinks=%d\n", q.Name, q.Output, len(q.Sinks))
		for _, sk := range q.Sinks {
			if b, ok := unwrapSink(sk).(interface{ CheckpointBlocker() error }); ok {
				if err := b.CheckpointBlocker(); err != nil {
					return nil, fmt.Errorf("query %s: %w", q.Name, err)
				}
			}
		}
		i := 0
		var walk func(op Operator) error
		walk = func(op Operator) error {
			key := fmt.Sprintf("query/%s/%d", q.Name, i)
			i++
			fmt.Fprintf(&desc, "  %s %T %s\n", key, op, op.Schema())
			if st, ok := op.(Stateful); ok {
				c.keys[st] = key
			} else if !stateless(op) {
				return fmt.Errorf("query %s: operator %T cannot save its state", q.Name, op)
			}
			for _, in := range operatorInputs(op) {
				if err := walk(in); err != nil {
					return err
				}
			}
			return nil
		}
		if err := walk(q.Root); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256([]byte(desc.String()))
	c.fingerprint = hex.EncodeToString(sum[:])
	return c, nil
}

func (c *checkpointer) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

// sourceKey and watermarkKey name a source's entries in a checkpoint.
func sourceKey(s *SourceNode) string    { return "source/" + s.Stream }
func watermarkKey(s *SourceNode) string { return "watermark/" + s.Stream }

// run triggers checkpoints every interval until ctx ends, writing each
// once every participant has answered.
func (c *checkpointer) run(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	defer c.abort()
	for {
		var done chan struct{}
		c.mu.Lock()
		if c.cur != nil {
			done = c.cur.done
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if done == nil {
				c.trigger()
			}
		case <-c.kick:
			if done == nil {
				c.trigger()
				c.final.Store(false)
			} // else: final makes the one in flight be followed by another
		case <-done:
			c.complete(ctx)
			if c.final.CompareAndSwap(true, false) {
				c.trigger()
			}
		}
	}
}

// finalCheckpoint, when Stop drains the topology, takes a checkpoint first
// (waiting at most wait), so that the next run resumes where this one
// stopped: the work between the last periodic checkpoint and the stop is
// not done twice, and transactional sinks commit it.
func (c *checkpointer) finalCheckpoint(ctx context.Context, wait time.Duration) {
	if c == nil {
		return
	}
	c.mu.Lock()
	want := c.nextID // a checkpoint started from now on
	if c.cur != nil {
		want = c.cur.id + 1
	}
	c.mu.Unlock()
	c.final.Store(true)
	select {
	case c.kick <- struct{}{}:
	default:
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		off, progress := c.disabled != "" || c.failedID >= want, c.progress
		c.mu.Unlock()
		if off || c.t.CheckpointStats.LastID.Load() >= want {
			return
		}
		select {
		case <-progress:
		case <-timeout.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// trigger starts a checkpoint: every source still running is asked for a
// barrier.
func (c *checkpointer) trigger() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled != "" || c.cur != nil {
		return
	}
	run := &checkpointRun{id: c.nextID, start: time.Now(), states: map[string]*StateWriter{},
		sinks: map[string][]int64{}, finished: map[string]bool{},
		sources: map[*SourceNode]bool{}, queries: map[*QueryNode]bool{}, seqs: map[*SourceNode]int64{},
		done: make(chan struct{}), written: make(chan struct{})}
	c.nextID++
	for s, end := range c.ended {
		end.put(run, s)
	}
	for _, q := range c.t.Queries {
		if pos, ok := c.finished[q]; ok {
			run.sinks[q.Name], run.finished[q.Name] = pos, true
		} else {
			run.queries[q] = true
		}
	}
	b := &Barrier{ID: run.id, save: c.saveOperator}
	c.cur = run
	for _, s := range c.t.Sources {
		if _, ok := c.ended[s]; !ok {
			run.sources[s] = true
			c.pending[s].Store(b)
		}
	}
	c.checkDone()
}

// barrierFor returns the barrier source s is asked to send, if any.
func (c *checkpointer) barrierFor(s *SourceNode) *Barrier {
	if c == nil {
		return nil
	}
	return c.pending[s].Swap(nil)
}

// sourceState is a source's position and watermark state.
func (c *checkpointer) sourceState(s *SourceNode) (*StateWriter, *StateWriter, error) {
	src, _ := SourceAs[Checkpointable](s.Op)
	pos, err := src.Position()
	if err != nil {
		return nil, nil, err
	}
	p := &StateWriter{}
	p.SetValue("position", base64.StdEncoding.EncodeToString(pos))
	var wm *StateWriter
	if w := c.wm[s]; w != nil {
		wm = &StateWriter{}
		if err := w.SaveState(wm); err != nil {
			return nil, nil, err
		}
	}
	return p, wm, nil
}

// sourceBarrier records source s's state for checkpoint b after its
// message seq; the source then sends the barrier.
func (c *checkpointer) sourceBarrier(s *SourceNode, b *Barrier, seq int64) {
	pos, wm, err := c.sourceState(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.disable(fmt.Sprintf("source %s: %v", s.Stream, err))
		return
	}
	run := c.cur
	if run == nil || run.id != b.ID { // given up meanwhile (values only: nothing to release)
		return
	}
	run.states[sourceKey(s)] = pos
	if wm != nil {
		run.states[watermarkKey(s)] = wm
	}
	run.seqs[s] = seq
	delete(run.sources, s)
	c.checkDone()
}

// sourceEnded records that source s reached its end (err nil) or failed.
func (c *checkpointer) sourceEnded(s *SourceNode, err error) {
	if c == nil {
		return
	}
	var pos, wm *StateWriter
	if err == nil {
		pos, wm, err = c.sourceState(s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.disable(fmt.Sprintf("source %s ended: %v", s.Stream, err))
		return
	}
	end := sourceEnd{pos, wm}
	c.ended[s] = end
	if run := c.cur; run != nil && run.sources[s] {
		end.put(run, s)
		delete(run.sources, s)
		c.checkDone()
	}
}

// sourceEnd is the state of a source at its end (values only).
type sourceEnd struct{ pos, wm *StateWriter }

// put files copies of the end state in run.
func (e sourceEnd) put(run *checkpointRun, s *SourceNode) {
	run.states[sourceKey(s)] = e.pos.clone()
	if e.wm != nil {
		run.states[watermarkKey(s)] = e.wm.clone()
	}
}

// saveOperator is every barrier's save: it files op's state in the
// checkpoint in flight.
func (c *checkpointer) saveOperator(op Stateful, w *StateWriter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	key, ok := c.keys[op]
	if !ok || c.cur == nil {
		w.Release()
		if !ok {
			return fmt.Errorf("operator %T is not part of the topology", op)
		}
		return nil
	}
	if old := c.cur.states[key]; old != nil {
		old.Release()
	}
	c.cur.states[key] = w
	return nil
}

// queryBarrier records that the barrier of checkpoint id reached the end of
// query q, whose sinks, flushed, reach positions.
// It returns the checkpoint in flight (nil if it was given up).
func (c *checkpointer) queryBarrier(q *QueryNode, id int64, positions []int64) *checkpointRun {
	if c == nil { // a barrier the topology did not ask for (tests)
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if run := c.cur; run != nil && run.id == id && run.queries[q] {
		run.sinks[q.Name] = positions
		delete(run.queries, q)
		c.checkDone()
		return run
	}
	return nil
}

// queryEnded records that q ended: cleanly (its sinks flushed, reaching
// positions) or with an error, after which no checkpoint can complete (it
// would skip the failed query on recovery).
func (c *checkpointer) queryEnded(q *QueryNode, positions []int64, err error) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.disable(fmt.Sprintf("query %s failed", q.Name))
		return
	}
	c.finished[q] = positions
	if run := c.cur; run != nil && run.queries[q] {
		run.sinks[q.Name], run.finished[q.Name] = positions, true
		delete(run.queries, q)
		c.checkDone()
	}
}

// finalCheckpointWait bounds the checkpoint Stop takes before draining.
const finalCheckpointWait = 30 * time.Second

// errStopped ends a source drained by Topology.Stop: no further checkpoint
// (the next run resumes from the last one), and nothing to report.
var errStopped = errors.New("stopped before its end")

// disable stops checkpointing for the rest of the run (c.mu held).
func (c *checkpointer) disable(why string) {
	if c.disabled == "" {
		c.disabled = why
		c.notify()
		if !strings.HasSuffix(why, errStopped.Error()) {
			c.logf("checkpoints stopped: %s", why)
			c.t.CheckpointStats.fail(why)
		}
	}
	if run := c.cur; run != nil {
		c.cur = nil
		run.release()
		run.settle(false)
		c.t.CheckpointStats.Failed.Add(1)
	}
}

// checkDone closes the run's done channel once everyone answered (c.mu held).
func (c *checkpointer) checkDone() {
	if run := c.cur; run != nil && len(run.sources) == 0 && len(run.queries) == 0 {
		select {
		case <-run.done:
		default:
			close(run.done)
		}
	}
}

// complete writes the finished checkpoint.
// Sources that commit (Kafka) commit the positions it covers.
func (c *checkpointer) complete(ctx context.Context) {
	c.mu.Lock()
	run := c.cur
	c.cur = nil
	c.mu.Unlock()
	if run == nil {
		return
	}
	defer run.release()
	m := &manifest{ID: run.id, Fingerprint: c.fingerprint, Created: time.Now().UTC(), Sinks: run.sinks}
	for q := range run.finished {
		m.Finished = append(m.Finished, q)
	}
	sort.Strings(m.Finished)
	n, err := writeCheckpoint(ctx, c.cfg.Dir, m, run.states, c.cfg.Keep)
	run.settle(err == nil)
	st := &c.t.CheckpointStats
	if err != nil {
		st.Failed.Add(1)
		if ctx.Err() == nil { // not the end of the run
			c.logf("checkpoint %d not written: %v", run.id, err)
			st.fail(fmt.Sprintf("checkpoint %d not written: %v", run.id, err))
		}
		c.mu.Lock()
		c.failedID = run.id
		c.notify() // a final checkpoint that failed ends finalCheckpoint's wait
		c.mu.Unlock()
		return
	}
	st.Completed.Add(1)
	st.LastID.Store(run.id)
	st.LastBytes.Store(n)
	st.LastNanos.Store(int64(time.Since(run.start)))
	c.mu.Lock()
	c.notify()
	c.mu.Unlock()
	for s, seq := range run.seqs {
		if tr := c.commits[s]; tr != nil && seq > 0 {
			for _, in := range tr.readers {
				if err := tr.ack(ctx, in, seq); err != nil {
					c.logf("checkpoint %d: committing %s: %v", run.id, s.Stream, err)
					break
				}
			}
		}
	}
}

// abort drops a checkpoint in flight (the run is over).
func (c *checkpointer) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.cur.release()
		c.cur.settle(false)
		c.cur = nil
	}
	for _, p := range c.pending {
		p.Store(nil)
	}
}

// clear removes the checkpoints after a run that processed all its input:
// there is nothing to resume.
// The last id is kept: ids keep growing across runs, so that a
// transactional sink's committed-checkpoint marker from an earlier run
// never names a checkpoint of a later one.
func (c *checkpointer) clear() error {
	c.mu.Lock()
	last := c.nextID - 1
	c.mu.Unlock()
	if err := writeLastID(c.cfg.Dir, last); err != nil {
		return err
	}
	return removeCheckpoints(c.cfg.Dir)
}

func (r *checkpointRun) release() {
	for _, w := range r.states {
		w.Release()
	}
	r.states = nil
}

// clone copies a writer holding only values.
func (w *StateWriter) clone() *StateWriter {
	c := &StateWriter{}
	for k, v := range w.values {
		c.SetValue(k, v)
	}
	return c
}
