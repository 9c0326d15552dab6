package kafka

// Exactly-once output (exactly_once = 'true'): the sink's producer is
// transactional, and its records become visible to read_committed
// consumers only when the transaction that holds them commits.
//
// Without checkpoints, every Flush commits: output is visible at flush
// boundaries, and a crash between two flushes loses nothing that was
// visible and shows nothing that was not (the records of the open
// transaction are aborted; the run starts over as without exactly_once).
//
// With checkpoints (the engine calls CommitByCheckpoint), only
// CommitCheckpoint commits, once the checkpoint covering the output is on
// disk. The transaction that makes checkpoint id's output visible also
// commits, in the same transaction, the offset id for partition 0 of the
// sink's topic in the consumer group "<transactional_id>.checkpoints" (an
// AddOffsetsToTxn and a TxnOffsetCommit, as a consume-transform-produce
// application commits its input offsets): the marker is visible exactly
// when the output is. CommittedCheckpoint reads it back, and the engine
// resumes from that checkpoint, so output of a transaction that never
// committed is written again, once. (franz-go commits offsets in a
// transaction only through a GroupTransactSession, which consumes as a
// group member; the sink has no group membership, so it sends the two
// requests itself with the producer's id and epoch and generation -1, like
// the Java producer's sendOffsetsToTransaction(offsets, groupId).)
//
// A transaction whose Flushes produced no record is never begun, and a
// Kafka transaction cannot hold only offsets here (the client would not end
// it), so such a checkpoint's marker is committed with a plain offset
// commit: there is no output it must be atomic with. Recording it matters:
// the engine keeps only the newest checkpoints, so a marker that stayed
// behind while an idle sink let checkpoints pass could name one that is
// gone.
//
// Opening the producer (Open, or CommittedCheckpoint before it) sends
// InitProducerID with the transactional id: Kafka bumps the producer epoch,
// which fences any earlier producer with that id (a crashed or hung run)
// and aborts its open transaction, so its records never become visible.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultTransactionTimeout is the default transaction_timeout_ms: Kafka
// aborts a transaction left open longer. With checkpoints a transaction
// lasts a checkpoint interval (plus the time to write the checkpoint), so
// it must stay above checkpoint_interval_ms; brokers cap it at their
// transaction.max.timeout.ms (15 minutes by default).
const DefaultTransactionTimeout = time.Minute

// txnSink is the kafka sink with exactly_once: the same sink, plus the
// two-phase commit the engine drives at checkpoints. It is a separate type
// so that a sink without exactly_once is not an arrowexec.TransactionalSink
// (the engine would otherwise wait on its commits).
type txnSink struct{ *sink }

var _ arrowexec.TransactionalSink = (*txnSink)(nil)

// parseExactlyOnce reads exactly_once, transactional_id and
// transaction_timeout_ms.
func (s *sink) parseExactlyOnce(o arrowexec.Options) error {
	switch v := strings.ToLower(strings.TrimSpace(o["exactly_once"])); v {
	case "", "false":
		for _, k := range []string{"transactional_id", "transaction_timeout_ms"} {
			if _, ok := o[k]; ok {
				return s.errorf("option %s needs exactly_once = 'true'", k)
			}
		}
		return nil
	case "true":
	default:
		return s.errorf("option exactly_once: expected true or false, found %q", o["exactly_once"])
	}
	switch a := strings.ToLower(o["acks"]); a {
	case "", "all", "-1":
	default:
		return s.errorf("option acks = %q: exactly_once needs acks = all", o["acks"])
	}
	s.exactlyOnce = true
	s.txnID = strings.TrimSpace(o["transactional_id"])
	if _, ok := o["transactional_id"]; ok && s.txnID == "" {
		return s.errorf("option transactional_id is empty")
	}
	if s.txnID == "" {
		s.txnID = defaultTransactionalID(s.spec.Name, s.topic)
	}
	s.txnTimeout = DefaultTransactionTimeout
	if v := o["transaction_timeout_ms"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1000 {
			return s.errorf("option transaction_timeout_ms: expected an integer >= 1000, found %q", v)
		}
		s.txnTimeout = time.Duration(n) * time.Millisecond
	}
	return nil
}

// defaultTransactionalID is the transactional id of a sink that sets none:
// "ferris.<query>.<topic>", the same on every run of the pipeline, so a
// restarted run fences the one before it. Two pipelines with a query of
// the same name writing the same topic would fence each other: give them
// distinct transactional_id options.
func defaultTransactionalID(query, topic string) string {
	return "ferris." + query + "." + topic
}

// checkpointGroup is the consumer group whose committed offset for
// partition 0 of the topic is the last committed checkpoint id.
func (s *sink) checkpointGroup() string { return s.txnID + ".checkpoints" }

// fence initialises the producer ID once (InitProducerID with the
// transactional id), fencing earlier producers with the same id and
// aborting their open transaction.
func (s *sink) fence(ctx context.Context) error {
	if s.fenced {
		return nil
	}
	if _, _, err := s.cl.ProducerID(ctx); err != nil {
		return s.errorf("initialising transactional producer %q: %w", s.txnID, kafkasrc.MarkError(err))
	}
	s.fenced = true
	return nil
}

// begin opens a transaction if none is open (Write, before its first
// record).
func (s *sink) begin() error {
	if !s.exactlyOnce || s.inTxn {
		return nil
	}
	if s.aborted != nil {
		return s.aborted
	}
	if err := s.cl.BeginTransaction(); err != nil {
		return arrowexec.Permanent(s.errorf("beginning a transaction: %w", err))
	}
	s.inTxn = true
	return nil
}

// abort aborts the open transaction because of cause and leaves the sink
// failed: its records since the last commit are gone, and only a recovery
// from the last checkpoint (or a new run) writes them again. The returned
// error is permanent, and every later call returns it.
func (s *sink) abort(ctx context.Context, cause error) error {
	if s.aborted != nil {
		return s.aborted
	}
	s.aborted = arrowexec.Permanent(s.errorf("transaction of %q aborted, its records are not visible (they are written again from the last checkpoint): %w", s.txnID, cause))
	s.mu.Lock()
	if s.err == nil {
		s.err = s.aborted
	}
	s.mu.Unlock()
	if s.inTxn {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.deliveryTimeout)
		defer cancel()
		// Best effort: if the abort does not get through, the next
		// InitProducerID with this transactional id aborts it, and so
		// does the broker after transaction_timeout_ms.
		_ = s.cl.AbortBufferedRecords(actx)
		_ = s.cl.EndTransaction(actx, kgo.TryAbort)
		s.inTxn = false
	}
	return s.aborted
}

// flushTxn waits until the records of the open transaction are
// acknowledged and, with commit, commits it. A failed record aborts the
// transaction. If ctx ends first, the transaction stays open.
func (s *sink) flushTxn(ctx context.Context, commit bool) error {
	if err := s.settle(ctx, false); err != nil {
		return err
	}
	if s.aborted != nil {
		return s.aborted
	}
	if !s.inTxn {
		return nil
	}
	if err := s.cl.Flush(ctx); err != nil {
		return s.errorf("flush: %w", err)
	}
	if err := s.settle(ctx, false); err != nil {
		return err
	}
	if commit {
		return s.commit(ctx, 0, false)
	}
	return nil
}

// commit commits the open transaction, flushed, with the checkpoint marker
// id when marker is set. Without an open transaction only the marker is
// committed (a plain offset commit: there is no output to be atomic with).
func (s *sink) commit(ctx context.Context, id int64, marker bool) error {
	if !s.inTxn {
		if !marker {
			return nil
		}
		return s.commitMarkerAlone(ctx, id)
	}
	if marker {
		if err := s.addMarker(ctx, id); err != nil {
			return s.abort(ctx, fmt.Errorf("recording checkpoint %d: %w", id, err))
		}
	}
	if err := s.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// If the outcome is unknown (the request may have reached the
		// broker), it is committed or aborted as a whole, marker
		// included: recovery resumes from whichever checkpoint the
		// marker then names.
		return s.abort(ctx, fmt.Errorf("commit: %w", err))
	}
	s.inTxn = false
	return nil
}

// addMarker commits offset id for partition 0 of the topic in the
// checkpoint group inside the open transaction.
func (s *sink) addMarker(ctx context.Context, id int64) error {
	pid, epoch, err := s.cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	if s.topicID == ([16]byte{}) { // TxnOffsetCommit v6 names topics by ID
		md, err := kadm.NewClient(s.cl).Metadata(ctx, s.topic)
		if err != nil {
			return err
		}
		if td, ok := md.Topics[s.topic]; ok && td.Err == nil {
			s.topicID = td.ID
		}
	}
	group := s.checkpointGroup()
	err = retryTxn(ctx, func() error {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = s.txnID, pid, epoch, group
		resp, err := req.RequestWith(ctx, s.cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
	if err != nil {
		return fmt.Errorf("AddOffsetsToTxn: %w", err)
	}
	err = retryTxn(ctx, func() error {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = s.txnID, group, pid, epoch
		req.Generation, req.MemberID = -1, ""
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = s.topic, s.topicID
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = 0, id, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, s.cl)
		if err != nil {
			return err
		}
		if len(resp.Topics) == 0 || len(resp.Topics[0].Partitions) == 0 {
			return errors.New("empty response")
		}
		return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
	})
	if err != nil {
		return fmt.Errorf("TxnOffsetCommit: %w", err)
	}
	return nil
}

// retryTxn runs f until it succeeds, fails with an error that is not
// retriable, or ctx ends. CONCURRENT_TRANSACTIONS (the previous
// transaction is still completing) is retried too.
func retryTxn(ctx context.Context, f func() error) error {
	backoff := 20 * time.Millisecond
	for {
		err := f()
		if err == nil || !(kerr.IsRetriable(err) || errors.Is(err, kerr.ConcurrentTransactions)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// commitMarkerAlone records checkpoint id with a plain offset commit.
func (s *sink) commitMarkerAlone(ctx context.Context, id int64) error {
	offsets := make(kadm.Offsets)
	offsets.Add(kadm.Offset{Topic: s.topic, Partition: 0, At: id, LeaderEpoch: -1})
	resp, err := kadm.NewClient(s.cl).CommitOffsets(ctx, s.checkpointGroup(), offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return s.errorf("recording checkpoint %d in group %q: %w", id, s.checkpointGroup(), kafkasrc.MarkError(err))
	}
	return nil
}

// CommitByCheckpoint makes the sink commit only in CommitCheckpoint. Call
// before Open.
func (s *txnSink) CommitByCheckpoint() { s.byCheckpoint = true }

// CommitCheckpoint flushes the open transaction and commits it, with the
// marker that checkpoint id's output is committed. Without an open
// transaction (nothing written since the last commit) only the marker is
// committed. An error aborts the transaction and fails the sink (the
// engine recovers from the last committed checkpoint). It is driven by the
// goroutine that writes.
func (s *txnSink) CommitCheckpoint(ctx context.Context, id int64) error {
	if s.cl == nil || s.closed {
		return s.errorf("commit on a sink that is not open")
	}
	if err := s.flushTxn(ctx, false); err != nil {
		return err
	}
	return s.commit(ctx, id, true)
}

// CommittedCheckpoint returns the newest checkpoint whose output was
// committed (0: none). It initialises the transactional producer first,
// which fences an earlier run's producer and aborts (or lets complete) its
// transaction, so the answer cannot change afterwards. Call before Open;
// the client it creates is the one Open uses.
func (s *txnSink) CommittedCheckpoint(ctx context.Context) (int64, error) {
	if s.closed {
		return 0, s.errorf("sink is closed")
	}
	if err := s.newClient(); err != nil {
		return 0, err
	}
	if err := s.fence(ctx); err != nil {
		return 0, err
	}
	// RequireStable: wait for transactional offsets still being
	// completed rather than read around them.
	resps, err := kadm.NewClient(s.cl).FetchOffsets(kadm.RequireStable(ctx), s.checkpointGroup())
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return 0, nil
		}
		return 0, s.errorf("reading the committed checkpoint (group %q): %w", s.checkpointGroup(), kafkasrc.MarkError(err))
	}
	o, ok := resps.Lookup(s.topic, 0)
	if !ok {
		return 0, nil
	}
	if o.Err != nil {
		return 0, s.errorf("reading the committed checkpoint (group %q): %w", s.checkpointGroup(), kafkasrc.MarkError(o.Err))
	}
	return max(o.At, 0), nil
}
