package kafka

import (
	"encoding/json"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// position is the JSON form of the source's checkpointed position.
type position struct {
	Topic      string         `json:"topic"`
	Partitions []partitionPos `json:"partitions"`
}

// partitionPos is where one partition continues: the offset after the
// last record returned (or the offset the partition started at, when none
// was), with the leader epoch of that record (-1: unknown).
type partitionPos struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	Epoch     int32 `json:"epoch"`
}

// Position implements arrowexec.Checkpointable. It encodes, as JSON with
// the topic name, the offset of every partition after the records in the
// messages Next returned so far; records fetched or queued but not
// returned are not counted. A partition that returned nothing yet is at
// the offset it started at, when known (always without a group; with a
// group once its committed offset or start_offset was resolved). It uses
// the same bookkeeping as Mark (returned offsets), kept without a group
// too.
//
// With a group the position holds the partitions this member owns, and,
// until the group first assigned it partitions, every partition of the
// restored position (Seek): a saved partition the first assignment does
// not give this member, or one revoked later, belongs to another member
// and its new owner's position, so it is dropped. Restoring an old
// position therefore never moves a partition held elsewhere; partitions
// not in the position resume at their committed offsets.
//
// It must be called from the goroutine driving Next (between calls), is
// safe with concurrent Commit, Lag and group callbacks, and after io.EOF
// reports the end of every partition.
func (s *source) Position() ([]byte, error) {
	s.mu.Lock()
	offs := map[int32]kgo.EpochOffset{}
	if !s.everHeld { // without a group: before Open only
		for p, eo := range s.saved {
			offs[p] = eo
		}
	}
	if s.group == "" {
		for p, eo := range s.starts {
			offs[p] = eo
		}
		for p, eo := range s.returned {
			if cur, ok := offs[p]; !ok || eo.Offset >= cur.Offset {
				offs[p] = eo
			}
		}
	} else {
		for p := range s.assigned {
			eo, ok := s.starts[p]
			if !ok {
				// Assigned, its start not resolved yet: only a saved
				// offset is known to be right (a returned one may be
				// older than another member's commits since).
				if sv, ok := s.saved[p]; ok {
					offs[p] = sv
				}
				continue
			}
			if r, ok := s.returned[p]; ok && r.Offset > eo.Offset {
				eo = r
			}
			offs[p] = eo
		}
	}
	s.mu.Unlock()
	pos := position{Topic: s.topic, Partitions: make([]partitionPos, 0, len(offs))}
	for p, eo := range offs {
		pos.Partitions = append(pos.Partitions, partitionPos{Partition: p, Offset: eo.Offset, Epoch: eo.Epoch})
	}
	slices.SortFunc(pos.Partitions, func(a, b partitionPos) int { return int(a.Partition) - int(b.Partition) })
	b, err := json.Marshal(pos)
	if err != nil {
		return nil, s.errorf("position: %w", err)
	}
	return b, nil
}

// Seek implements arrowexec.Checkpointable: called before Open with what
// Position returned, it makes the partitions in pos start at their saved
// offsets, overriding the group's committed offsets and start_offset;
// other partitions start as usual. With end_offset = latest, partitions
// saved at or past their end are finished at once. Without a group the
// source then reads the partitions the topic has at Open (partitions
// added later are read from the next restart, at start_offset). A
// position of another topic is an error.
func (s *source) Seek(b []byte) error {
	if s.opened {
		return s.errorf("Seek after Open")
	}
	var pos position
	if err := json.Unmarshal(b, &pos); err != nil {
		return s.errorf("seek: bad position: %w", err)
	}
	if pos.Topic != s.topic {
		return s.errorf("seek: the position is of topic %q, the source reads topic %q", pos.Topic, s.topic)
	}
	saved := make(map[int32]kgo.EpochOffset, len(pos.Partitions))
	for _, pp := range pos.Partitions {
		if pp.Partition < 0 || pp.Offset < 0 {
			return s.errorf("seek: bad position: partition %d offset %d", pp.Partition, pp.Offset)
		}
		saved[pp.Partition] = kgo.EpochOffset{Epoch: pp.Epoch, Offset: pp.Offset}
	}
	s.mu.Lock()
	s.saved = saved
	s.mu.Unlock()
	return nil
}
