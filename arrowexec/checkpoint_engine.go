package arrowexec

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"path/filepath"
	"time"
)

// How the engine drives checkpoints (checkpoint.go): setting them up and
// restoring the latest at the start of Run, the barrier at the end of a
// query, and the two-phase commit of transactional sinks.

// Checkpoints returns the checkpoint configuration of the pipeline name
// under these settings: nil unless state_dir is set and
// checkpoint_interval_ms is positive. A relative state_dir resolves against
// base; each pipeline keeps its checkpoints in state_dir/<name>.
func (s Settings) Checkpoints(base, name string, logf func(format string, args ...any)) *CheckpointConfig {
	if s.StateDir == "" || s.CheckpointIntervalMS <= 0 {
		return nil
	}
	dir := s.StateDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(base, dir)
	}
	return &CheckpointConfig{Dir: filepath.Join(dir, name), Interval: time.Duration(s.CheckpointIntervalMS) * time.Millisecond, Logf: logf}
}

// RemoveCheckpoints deletes the checkpoints of cfg (nil: none), so that the
// pipeline starts from scratch next time.
func RemoveCheckpoints(cfg *CheckpointConfig) error {
	if cfg == nil {
		return nil
	}
	return removeCheckpoints(cfg.Dir)
}

// restore loads the latest complete checkpoint of the topology, if any,
// into its sources, operators and sinks. Call before anything opens.
func (c *checkpointer) restore() error {
	c.nextID = max(c.nextID, readLastID(c.cfg.Dir)+1)
	start := time.Now()
	defer func() { c.t.CheckpointStats.RestoreNanos.Store(int64(time.Since(start))) }()
	newest := int64(math.MaxInt64)
	for _, q := range c.t.Queries {
		for _, s := range transactionalSinks(q) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			id, err := s.CommittedCheckpoint(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("query %s: finding its last committed checkpoint: %w", q.Name, err)
			}
			newest = min(newest, id) // output after it was never committed: redo it
		}
	}
	ck, err := loadLatestCheckpoint(c.cfg.Dir, c.cfg.Alloc, newest, c.logf)
	if err != nil || ck == nil {
		return err
	}
	defer ck.release()
	if ck.manifest.Fingerprint != c.fingerprint {
		return fmt.Errorf("state_dir %s holds checkpoint %d of a different pipeline (its queries or schemas changed): remove it, or point state_dir elsewhere, to start from scratch",
			c.cfg.Dir, ck.manifest.ID)
	}
	for _, s := range c.t.Sources {
		r := ck.states[sourceKey(s)]
		if r == nil {
			return fmt.Errorf("checkpoint %d: no position for source %s", ck.manifest.ID, s.Stream)
		}
		enc, _ := r.Value("position")
		pos, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return fmt.Errorf("checkpoint %d: source %s: %w", ck.manifest.ID, s.Stream, err)
		}
		src, _ := SourceAs[Checkpointable](s.Op)
		if err := src.Seek(pos); err != nil {
			return fmt.Errorf("checkpoint %d: source %s: %w", ck.manifest.ID, s.Stream, err)
		}
		if w := c.wm[s]; w != nil {
			if r := ck.states[watermarkKey(s)]; r != nil {
				if err := w.LoadState(r); err != nil {
					return fmt.Errorf("checkpoint %d: source %s: %w", ck.manifest.ID, s.Stream, err)
				}
			}
		}
	}
	for op, key := range c.keys {
		if r := ck.states[key]; r != nil {
			if err := op.LoadState(r); err != nil {
				return fmt.Errorf("checkpoint %d: %s: %w", ck.manifest.ID, key, err)
			}
		}
	}
	for _, q := range c.t.Queries {
		if ck.manifest.finished(q.Name) {
			q.restoredFinished = true
		}
		for i, pos := range ck.manifest.Sinks[q.Name] {
			if pos < 0 || i >= len(q.Sinks) {
				continue
			}
			if rs, ok := unwrapSink(q.Sinks[i]).(ResumableSink); ok {
				if err := rs.ResumeAt(pos); err != nil {
					return fmt.Errorf("checkpoint %d: query %s: sink %d: %w", ck.manifest.ID, q.Name, i+1, err)
				}
			}
		}
	}
	c.logf("resuming from checkpoint %d of %s", ck.manifest.ID, ck.manifest.Created.Format(time.RFC3339))
	c.nextID = max(c.nextID, ck.manifest.ID+1)
	c.t.CheckpointStats.RestoredID.Store(ck.manifest.ID)
	c.t.CheckpointStats.LastID.Store(ck.manifest.ID)
	return nil
}

func unwrapSink(s Sink) Sink {
	for {
		u, ok := s.(interface{ Unwrap() Sink })
		if !ok {
			return s
		}
		s = u.Unwrap()
	}
}

// prepareCheckpoints sets up t's checkpoints, when configured, and restores
// the latest one. Topologies that cannot be checkpointed run without (the
// reason is logged).
func (t *Topology) prepareCheckpoints(commits map[*SourceNode]*commitTracker) (*checkpointer, error) {
	cfg := t.Checkpoints
	if cfg == nil || cfg.Dir == "" || cfg.Interval <= 0 {
		return nil, nil
	}
	ck, err := newCheckpointer(t, *cfg)
	if err != nil {
		if cfg.Logf != nil {
			cfg.Logf("checkpoints off: %v", err)
		}
		return nil, nil
	}
	ck.commits = commits
	for _, q := range t.Queries {
		for _, s := range transactionalSinks(q) {
			s.CommitByCheckpoint()
		}
	}
	if err := ck.restore(); err != nil {
		return nil, err
	}
	return ck, nil
}

// runCheckpoints runs ck's trigger loop; the returned function stops it.
func (t *Topology) runCheckpoints(ctx context.Context, ck *checkpointer) func() {
	if ck == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ck.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// finishCheckpoints, after a run that ended cleanly, removes the
// checkpoints once every source reached its end: there is nothing left to
// resume. After Stop they stay, and the next run resumes from them.
func (t *Topology) finishCheckpoints(ck *checkpointer) error {
	if ck == nil {
		return nil
	}
	ck.mu.Lock()
	all := len(ck.ended) == len(t.Sources)
	ck.mu.Unlock()
	if !all {
		return nil
	}
	return ck.clear()
}

// passBarrier handles a barrier that reached the end of query q: its sinks
// are flushed and their positions recorded, and the barrier goes on to the
// queries reading q's output.
func (t *Topology) passBarrier(ctx context.Context, q *QueryNode, msg Message, to []*Inlet, ck *checkpointer, flush func() error) error {
	if err := flush(); err != nil {
		return err
	}
	pos, err := sinkPositions(q)
	if err != nil {
		return err
	}
	run := ck.queryBarrier(q, msg.Barrier.ID, pos)
	if err := fanout(ctx, msg, to); err != nil {
		return err
	}
	return commitTransactions(ctx, q, run)
}

// commitAtEnd commits the transactional sinks of q, which reached the end
// of its input, marked with the latest checkpoint written. (If the process
// dies before the next checkpoint while other queries go on, recovery
// resumes q before its end and its last output is written again: at least
// once for a query that ends before its pipeline.)
func commitAtEnd(ctx context.Context, q *QueryNode, ck *checkpointer) error {
	id := ck.t.CheckpointStats.LastID.Load()
	for _, s := range transactionalSinks(q) {
		if err := s.CommitCheckpoint(ctx, id); err != nil {
			return WithOperator("sink", fmt.Errorf("committing at the end of input: %w", err))
		}
	}
	return nil
}

// transactionalSinks returns q's TransactionalSinks.
func transactionalSinks(q *QueryNode) []TransactionalSink {
	var out []TransactionalSink
	for _, s := range q.Sinks {
		if ts, ok := unwrapSink(s).(TransactionalSink); ok {
			out = append(out, ts)
		}
	}
	return out
}

// commitTransactions waits until checkpoint run is on disk and then commits
// q's transactional sinks. If the checkpoint is given up, their output
// stays uncommitted until the next one.
func commitTransactions(ctx context.Context, q *QueryNode, run *checkpointRun) error {
	sinks := transactionalSinks(q)
	if run == nil || len(sinks) == 0 {
		return nil
	}
	select {
	case <-run.written:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !run.ok {
		return nil
	}
	for _, s := range sinks {
		if err := s.CommitCheckpoint(ctx, run.id); err != nil {
			return WithOperator("sink", fmt.Errorf("committing checkpoint %d: %w", run.id, err))
		}
	}
	return nil
}

// sinkPositions returns the committed position of each of q's sinks (-1
// for sinks that cannot resume).
func sinkPositions(q *QueryNode) ([]int64, error) {
	pos := make([]int64, len(q.Sinks))
	for i, s := range q.Sinks {
		pos[i] = -1
		if rs, ok := unwrapSink(s).(ResumableSink); ok {
			n, err := rs.Committed()
			if err != nil {
				return nil, WithOperator("sink", fmt.Errorf("checkpoint: %w", err))
			}
			pos[i] = n
		}
	}
	return pos, nil
}
