package arrowexec

import (
	"context"
	"time"
)

// PartitionedSource is implemented by source operators whose rows come from
// several partitions (a Kafka topic's). Every message such a source returns
// holds rows of one partition, named by Message.Partition. The
// WatermarkAssigner keeps a watermark per partition; the stream's watermark
// is the minimum over the assigned partitions that are not idle.
//
// A partitioned source that is waiting for records returns a watermark-only
// message (Batch nil, Watermark NoWatermark) at least every
// HeartbeatInterval, so idle partitions are noticed and the watermark can
// advance while no records arrive.
type PartitionedSource interface {
	// Partitions returns the partitions currently assigned to the source, in
	// ascending order. A partition that is revoked, or that reached the end
	// of a bounded read, is no longer listed and no longer holds the
	// watermark back. It is called by the goroutine that drives Next, after
	// each Next.
	Partitions() []int32
}

// HeartbeatInterval is the longest a PartitionedSource waits for records
// before returning a watermark-only message.
const HeartbeatInterval = 100 * time.Millisecond

// Committer is implemented by sources that can record how far their input
// has been durably processed (Kafka consumer-group offsets), so a restart
// resumes there.
//
// Mark is called by the goroutine that drives Next, right after Next returns
// a message; it returns an opaque position covering every record returned so
// far. Commit is called later, from another goroutine, with a mark whose
// records have all reached every sink durably; it commits that position
// (and may be called with older marks, which it ignores). Commit is safe for
// concurrent use with Next.
type Committer interface {
	Mark() any
	Commit(ctx context.Context, mark any) error
}
