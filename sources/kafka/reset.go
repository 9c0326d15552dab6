package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// What the source does when the brokers lose what it had read: a broker
// restarted without its data (the in-memory broker of `ferris dev`), a
// topic deleted and created again, a partition truncated by an unclean
// leader election. The client reconnects to restarted brokers by itself;
// the source then finds, from what its polls report:
//
//   - the topic gone (a fetch finds its topic ID unknown: the client never
//     reads a topic recreated under a new ID): once every queued record was
//     returned, reconnect closes the client and creates it again, and every
//     partition starts over at the group's committed offset, else at
//     start_offset;
//   - a partition ending below the offset the source read to
//     (kgo.ErrDataLoss; a position restored from a checkpoint taken before
//     the topic was recreated, or a truncated log): rewind moves it to
//     start_offset (its first offset for earliest; for latest its end,
//     where the client put it). The source cannot tell a recreated
//     partition from a truncated one, so with earliest a truncated
//     partition is read again from its start: duplicates rather than loss.
//
// Either is logged (a warning naming the stream, topic and partitions) and
// counted (OffsetResets). Rows returned before stay returned, and offsets
// the source would commit for them are dropped, so that no commit skips
// records of the new partitions.
//
// A group member the coordinator forgot (after its restart) rejoins by
// itself: rejoining logs it instead of failing the source. brokerLog logs
// brokers that cannot be reached, and when they can be again.

var _ arrowexec.OffsetResetReporter = (*source)(nil)

// OffsetResets implements arrowexec.OffsetResetReporter: how many times
// the source followed start_offset because the brokers lost its offsets
// (per partition for a lost partition, once for a lost topic). It is safe
// for concurrent use.
func (s *source) OffsetResets() int64 { return s.resets.Load() }

func (s *source) logger() *slog.Logger {
	if s.spec.Logger != nil {
		return s.spec.Logger
	}
	return slog.Default()
}

// startName is start_offset's value, for logs.
func (s *source) startName() string {
	if s.startLatest {
		return "latest"
	}
	return "earliest"
}

// noteLost records a partition the brokers truncated below the offset the
// source read to; Next rewinds it (rewind).
func (s *source) noteLost(l *kgo.ErrDataLoss) {
	if l.Topic != s.topic {
		return
	}
	if s.lost == nil {
		s.lost = map[int32]*kgo.ErrDataLoss{}
	}
	s.lost[l.Partition] = l
}

// noteGone records that the topic was deleted or recreated: Next
// reconnects once the records queued were returned.
func (s *source) noteGone() {
	if s.gone {
		return
	}
	s.gone = true
	s.resets.Add(1)
	s.logger().Warn(fmt.Sprintf("kafka source: topic %s was deleted or recreated (a broker restarted without its data?); its offsets are gone: reconnecting and following start_offset %s", s.topic, s.startName()),
		"stream", s.spec.Name, "topic", s.topic, "group", s.group)
}

// rejoining reports (and logs) an error of a poll that only says the group
// coordinator forgot this member, as after its restart: the client rejoins
// by itself.
func (s *source) rejoining(err error) bool {
	var gs *kgo.ErrGroupSession
	if !errors.As(err, &gs) || !(errors.Is(err, kerr.GroupIDNotFound) || errors.Is(err, kerr.UnknownMemberID)) {
		return false
	}
	s.logger().Warn("kafka source: the consumer group coordinator forgot this member (broker restarted?); rejoining",
		"stream", s.spec.Name, "topic", s.topic, "group", s.group, "error", err)
	return true
}

// rewind moves the partitions in s.lost to start_offset and forgets what
// was returned and committed of them.
func (s *source) rewind(ctx context.Context) error {
	var starts map[int32]int64
	if !s.startLatest {
		var err error
		if starts, err = s.listOffsets(ctx, s.adm.ListStartOffsets); err != nil {
			return MarkError(err)
		}
	}
	lost := s.lost
	s.lost = nil
	set := make(map[int32]kgo.EpochOffset, len(lost))
	s.commitMu.Lock()
	s.mu.Lock()
	for p, l := range lost {
		to := kgo.EpochOffset{Epoch: l.ResetToEpoch, Offset: l.ResetTo}
		if start, ok := starts[p]; ok && start < to.Offset {
			to = kgo.EpochOffset{Epoch: -1, Offset: start}
		}
		if st := s.parts[p]; st != nil {
			s.buffered -= st.len()
			clear(st.queue)
			st.queue, st.head = st.queue[:0], 0
			if s.bounded {
				st.next = to.Offset
			}
		}
		delete(s.returned, p)
		delete(s.committed, p)
		delete(s.floor, p)
		s.starts[p] = to
		set[p] = to
		s.logger().Warn(fmt.Sprintf("kafka source: the brokers lost offsets of partition %d of topic %s (it ends below where the source read to); following start_offset %s", p, s.topic, s.startName()),
			"stream", s.spec.Name, "topic", s.topic, "partition", p, "read_to", l.ConsumedTo, "now_at", to.Offset)
	}
	s.dropMarksLocked()
	s.mu.Unlock()
	s.commitMu.Unlock()
	s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{s.topic: set})
	s.resets.Add(int64(len(lost)))
	return nil
}

// dropMarksLocked makes Commit ignore every mark made so far (their
// offsets may be of partitions the brokers lost). s.mu and s.commitMu are
// held.
func (s *source) dropMarksLocked() {
	s.version++
	s.commitVersion = s.version
}

// reconnect reads the topic anew after the brokers lost it (s.gone): the
// client is closed (leaving the group) and created again, and the
// partitions start at the group's committed offsets, else at start_offset.
// If that fails the next Next tries again; the error is transient.
func (s *source) reconnect(ctx context.Context) error {
	s.gone = false
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.closing.Store(true) // onRevoked must not wait for commitMu
	s.cl.CloseAllowingRebalance()
	s.closing.Store(false)
	s.mu.Lock()
	s.saved = nil
	s.dropMarksLocked()
	s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		s.gone = true
		return arrowexec.Transient(s.errorf("reconnecting after topic %s was lost: %w", s.topic, err))
	}
	return nil
}

// brokerLog is a client hook logging a broker that cannot be reached (once,
// until it can be again) and its return, so that an outage shows in the
// log. It is safe for concurrent use.
type brokerLog struct {
	s    *source
	mu   sync.Mutex
	down map[string]bool
}

var _ kgo.HookBrokerConnect = (*brokerLog)(nil)

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (h *brokerLog) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if errors.Is(err, context.Canceled) { // the client is closing
		return
	}
	addr := net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
	h.mu.Lock()
	was := h.down[addr]
	h.down[addr] = err != nil
	h.mu.Unlock()
	s := h.s
	switch {
	case err != nil && !was:
		s.logger().Warn("kafka source: cannot reach broker "+addr+"; retrying", "stream", s.spec.Name, "topic", s.topic, "error", err)
	case err == nil && was:
		s.logger().Info("kafka source: reached broker "+addr+" again", "stream", s.spec.Name, "topic", s.topic)
	}
}
