package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/sources"
	"github.com/ferrisstreams/ferris/sources/avro"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// source is the kafka source operator.
//
// Records are polled into per-partition queues and decoded when a
// partition's batch is emitted: when batch_size records are queued, when
// its oldest queued record has waited linger_ms, when the partition reached
// the end of a bounded read, or when too many records are queued overall.
// A batch therefore holds rows of one partition.
//
// In a consumer group, rebalances are blocked from one poll to the next
// (kgo.BlockRebalanceOnPoll), so partition callbacks never run while a
// batch is being emitted; a rebalance that is waiting makes the next Next
// poll first; a revoked partition's queued records are dropped
// (its new owner re-reads them from the committed offset), rows already
// returned stay valid, and if the partition comes back to this source,
// consumption resumes after the last row returned rather than at an older
// committed offset, so no row is returned twice by one source.
type source struct {
	spec        arrowexec.SourceSpec
	what        string // `kafka source "s"`
	dlName      string // "<stream> (kafka topic T)"
	topic       string
	group       string
	startLatest bool
	bounded     bool
	format      string
	registry    string // format avro: schema registry URLs
	batchSize   int
	linger      time.Duration
	maxRecord   int
	maxBuffered int
	clientOpts  []kgo.Opt

	payloadSchema *arrow.Schema
	payloadIdx    []int // schema index of each payload column
	sysIdx        []int // schema index of each system column

	// Set up by Open, then used by the goroutine driving Next.
	cl      *kgo.Client
	adm     *kadm.Client
	ready   chan struct{} // closed when Open returns (group callbacks may run before)
	payload payloadDecoder
	sysB    []array.Builder // parallel to sysIdx
	scratch []*kgo.Record
	lastMsg time.Time
	rr      int32 // the partition emitted last; the search starts after it
	opened  bool
	eof     bool

	closed atomic.Bool
	// rebalanceWaiting is set when a group rebalance waits for this
	// source to poll; Next then lets it through before emitting more.
	rebalanceWaiting atomic.Bool
	// Offsets the brokers lost (reset.go), noted by poll and handled by
	// Next: gone is set when the topic itself is gone or was recreated,
	// lost holds partitions that now end below where this source read to.
	// Both belong to the goroutine driving Next; resets counts them.
	gone    bool
	lost    map[int32]*kgo.ErrDataLoss
	resets  atomic.Int64
	brokers *brokerLog

	// mu guards what the partition callbacks, Partitions, Mark and Commit
	// share with Next.
	mu       sync.Mutex
	parts    map[int32]*partState // partitions being read (assigned, not finished)
	list     []int32              // sorted keys of parts; replaced, never changed in place
	assigned map[int32]bool       // group: partitions assigned, finished or not
	holding  bool                 // group: an assignment is held (bounded reads end only then)
	end      map[int32]int64      // bounded: end offset of each partition, listed at Open
	floor    map[int32]int64      // group: committed offset found when a partition was assigned
	buffered int                  // records queued over all partitions
	returned map[int32]kgo.EpochOffset
	ends     map[int32]int64 // last stable offset of each partition, as of its last fetch (lag)
	version  uint64          // bumped when returned changes
	mark     *offsetMark
	// Checkpoints (checkpoint.go). saved is the position Seek restored:
	// partitions in it start there; an entry goes once its partition's
	// start is set (starts) or, with a group, once it is revoked. starts
	// is where each partition held began in this run, when known as an
	// offset. everHeld: the group assigned partitions at least once.
	saved    map[int32]kgo.EpochOffset
	starts   map[int32]kgo.EpochOffset
	everHeld bool

	commitMu      sync.Mutex // serialises Commit, revocation and Close
	commitVersion uint64     // version of the newest mark committed
	committed     map[int32]int64
	closing       atomic.Bool    // Close holds commitMu while the client leaves the group
	left          bool           // the client has left the group (closed); guarded by commitMu
	heldAtClose   map[int32]bool // partitions assigned when Close began; guarded by commitMu
}

// partState is the queue of one partition.
type partState struct {
	queue []*kgo.Record
	head  int
	since time.Time // when the oldest queued record arrived
	next  int64     // bounded: offset after the last record received; -1 unknown
}

func (p *partState) len() int { return len(p.queue) - p.head }

// offsetMark is the position returned by Mark: the next offset of every
// partition after the records returned so far. It is immutable.
type offsetMark struct {
	version uint64
	offsets map[int32]kgo.EpochOffset
}

var (
	_ arrowexec.Operator          = (*source)(nil)
	_ arrowexec.PartitionedSource = (*source)(nil)
	_ arrowexec.Committer         = (*source)(nil)
	_ arrowexec.Checkpointable    = (*source)(nil)
)

func (s *source) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{s.what}, args...)...)
}

// Schema implements arrowexec.Operator: the declared schema.
func (s *source) Schema() *arrow.Schema { return s.spec.Schema }

// Open connects to the brokers, checks the topic exists and lists its
// partitions (and, for a bounded read, their end offsets); with a group it
// starts joining it. Reading starts with the first Next.
func (s *source) Open(ctx context.Context) error {
	if s.opened {
		return s.errorf("opened twice")
	}
	s.opened = true
	if s.closed.Load() {
		return s.errorf("Open after Close")
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	alloc := s.spec.Alloc
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	switch s.format {
	case "raw":
		f := s.payloadSchema.Field(0)
		s.payload = &rawDecoder{name: f.Name, nullable: f.Nullable, b: array.NewStringBuilder(alloc)}
	case "avro":
		reg, err := RegistryClient(s.registry, s.spec.Options, s.spec.BaseDir)
		if err != nil {
			return s.errorf("%w", err)
		}
		d, err := avro.NewDecoder(s.payloadSchema, reg, alloc)
		if err != nil {
			return s.errorf("%w", err)
		}
		s.payload = d
	default:
		d, err := sources.NewRecordDecoder(s.payloadSchema, s.format, ',', alloc)
		if err != nil {
			return s.errorf("%w", err)
		}
		s.payload = d
	}
	for _, i := range s.sysIdx {
		s.sysB = append(s.sysB, array.NewBuilder(alloc, s.spec.Schema.Field(i).Type))
	}
	s.lastMsg = time.Now()
	return nil
}

// connect creates the client over fresh bookkeeping (nothing read,
// returned or committed yet), lists the partitions and, with a group,
// starts joining it; partitions of a restored position (saved) start
// there. Open calls it, and reconnect (reset.go) once the topic was lost.
func (s *source) connect(ctx context.Context) error {
	s.mu.Lock() // Lag may read them from another goroutine already
	s.parts, s.assigned, s.end, s.floor = map[int32]*partState{}, map[int32]bool{}, map[int32]int64{}, map[int32]int64{}
	s.returned, s.committed = map[int32]kgo.EpochOffset{}, map[int32]int64{}
	s.starts = map[int32]kgo.EpochOffset{}
	s.list, s.buffered, s.holding, s.ends = nil, 0, false, nil
	// Without a group, a restored position pins every partition to an
	// offset (AddConsumePartitions below) instead of following the topic.
	pin := s.group == "" && s.saved != nil
	s.mu.Unlock()
	reset := kgo.NewOffset().AtStart()
	if s.startLatest {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := append(append([]kgo.Opt(nil), s.clientOpts...),
		kgo.ConsumeResetOffset(reset),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),       // their offsets count towards the end of a bounded read
		kgo.KeepRetryableFetchErrors(), // poll sees a lost topic (UNKNOWN_TOPIC_ID)
		kgo.WithHooks(s.brokers),
	)
	if !pin {
		opts = append(opts, kgo.ConsumeTopics(s.topic))
	}
	if s.group != "" {
		opts = append(opts,
			kgo.ConsumerGroup(s.group),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(s.onAssigned),
			kgo.OnPartitionsRevoked(s.onRevoked),
			kgo.OnPartitionsLost(s.onRevoked),
			kgo.AdjustFetchOffsetsFn(s.adjust),
			kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { s.rebalanceWaiting.Store(true) }),
		)
	}
	// Group callbacks may start before Open returns; adjust waits until
	// the client and the end offsets are set.
	s.ready = make(chan struct{})
	defer close(s.ready)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return s.errorf("%w", err)
	}
	s.cl, s.adm = cl, kadm.NewClient(cl)

	ends, err := s.listOffsets(ctx, s.adm.ListCommittedOffsets)
	if err != nil {
		return err
	}
	// Without a group, the offset each partition starts at is listed
	// here, for a bounded read's progress and for Position before the
	// partition's first record. (Unless pinned, the client resolves
	// start_offset itself at about the same time: with latest and records
	// arriving meanwhile the two may differ by those records.)
	var starts map[int32]int64
	if s.group == "" && !s.startLatest {
		if starts, err = s.listOffsets(ctx, s.adm.ListStartOffsets); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.bounded {
		s.end = ends
	}
	var pinned map[int32]kgo.Offset
	if s.group == "" {
		if pin {
			pinned = make(map[int32]kgo.Offset, len(ends))
		}
		for p, end := range ends {
			at := kgo.EpochOffset{Epoch: -1, Offset: end}
			if !s.startLatest {
				at.Offset = starts[p]
			}
			if sv, ok := s.saved[p]; ok {
				at = sv
			}
			s.starts[p] = at
			if pin {
				pinned[p] = offsetAt(at)
			}
			st := &partState{next: -1}
			if s.bounded {
				st.next = at.Offset
			}
			s.parts[p] = st
		}
		s.saved = nil // partitions no longer in the topic are dropped
		s.settleLocked()
		s.rebuildListLocked()
	}
	s.mu.Unlock()
	if pin {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: pinned})
	}
	return nil
}

// listOffsets lists an offset of every partition of the topic.
func (s *source) listOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
	l, err := list(ctx, s.topic)
	if err != nil && len(l) == 0 {
		return nil, s.errorf("list offsets of topic %s: %w", s.topic, err)
	}
	ps := l[s.topic]
	out := make(map[int32]int64, len(ps))
	for p, lo := range ps {
		if lo.Err != nil {
			if errors.Is(lo.Err, kerr.UnknownTopicOrPartition) {
				return nil, s.errorf("topic %s does not exist", s.topic)
			}
			return nil, s.errorf("list offsets of topic %s partition %d: %w", s.topic, p, lo.Err)
		}
		out[p] = lo.Offset
	}
	if len(out) == 0 {
		if err != nil {
			return nil, s.errorf("list offsets of topic %s: %w", s.topic, err)
		}
		return nil, s.errorf("topic %s does not exist", s.topic)
	}
	return out, nil
}

// Next returns the next batch (rows of one partition, Message.Partition
// set, Watermark NoWatermark), or a watermark-only message (Batch nil,
// Partition 0) when no batch was ready for arrowexec.HeartbeatInterval.
// A bounded read returns io.EOF once every partition reached its end.
// Bad records go to the dead-letter sink; without one the first stops the
// source with an error naming topic, partition, offset and field.
func (s *source) Next(ctx context.Context) (arrowexec.Message, error) {
	if err := ctx.Err(); err != nil {
		return arrowexec.Message{}, err
	}
	if s.cl == nil || s.payload == nil {
		return arrowexec.Message{}, s.errorf("Next called before Open")
	}
	if s.closed.Load() {
		return arrowexec.Message{}, s.errorf("Next after Close")
	}
	if s.eof {
		return arrowexec.Message{}, io.EOF
	}
	for {
		if err := ctx.Err(); err != nil {
			return arrowexec.Message{}, err
		}
		if len(s.lost) > 0 {
			if err := s.rewind(ctx); err != nil {
				return arrowexec.Message{}, err
			}
		}
		if s.rebalanceWaiting.Swap(false) {
			// Let the rebalance run now rather than after the queued
			// records are drained: revoked partitions' records are
			// dropped instead of returned.
			if err := s.poll(ctx, time.Now()); err != nil {
				return arrowexec.Message{}, err
			}
		}
		msg, popped, err := s.emit(ctx)
		if err != nil {
			return arrowexec.Message{}, err
		}
		if msg.Batch != nil {
			s.lastMsg = time.Now()
			return msg, nil
		}
		if popped { // only bad or control records: look again
			continue
		}
		if s.gone { // every queued record was returned: start again
			if err := s.reconnect(ctx); err != nil {
				return arrowexec.Message{}, err
			}
			continue
		}
		if s.finished() {
			s.eof = true
			// Never hold up the group's rebalances while the caller
			// commits the last mark and closes.
			s.cl.AllowRebalance()
			return arrowexec.Message{}, io.EOF
		}
		now := time.Now()
		due := s.lastMsg.Add(arrowexec.HeartbeatInterval)
		if !now.Before(due) {
			s.lastMsg = now
			return arrowexec.Message{Watermark: arrowexec.NoWatermark}, nil
		}
		if l, ok := s.lingerDue(); ok && l.Before(due) {
			due = l
		}
		if err := s.poll(ctx, due); err != nil {
			return arrowexec.Message{}, err
		}
	}
}

// finished reports the end of a bounded read: every partition held
// reached its end (with a group, only while an assignment is held, so a
// rebalance in progress is not mistaken for the end).
func (s *source) finished() bool {
	if !s.bounded {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parts) == 0 && (s.group == "" || s.holding)
}

// lingerDue returns when the oldest queued record's linger ends.
func (s *source) lingerDue() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due time.Time
	for _, st := range s.parts {
		if st.len() > 0 && (due.IsZero() || st.since.Before(due)) {
			due = st.since
		}
	}
	return due.Add(s.linger), !due.IsZero()
}

// poll waits until records arrive or until the deadline, and queues them.
// Rebalances may run only here: between AllowRebalance and the return of
// PollRecords.
func (s *source) poll(ctx context.Context, until time.Time) error {
	s.mu.Lock()
	room := max(s.maxBuffered-s.buffered, 1)
	s.mu.Unlock()
	pctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	s.cl.AllowRebalance()
	fetches := s.cl.PollRecords(pctx, room)
	if err := ctx.Err(); err != nil {
		return err
	}
	var ferr error
	fetches.EachError(func(t string, p int32, err error) {
		var lost *kgo.ErrDataLoss
		switch {
		case ferr != nil:
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			// the poll's own deadline
		case errors.Is(err, kgo.ErrClientClosed):
			ferr = s.errorf("client closed")
		case errors.As(err, &lost):
			s.noteLost(lost) // reset.go
		case errors.Is(err, kerr.UnknownTopicID):
			s.noteGone() // reset.go
		case s.rejoining(err): // reset.go
		case kerr.IsRetriable(err):
			// the client retries by itself
		default:
			ferr = s.errorf("topic %s partition %d: %w", t, p, MarkError(err))
		}
	})
	// The records of the poll are queued even when a partition failed, so
	// that Next can be called again (Resumable) without losing them.
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteEndsLocked(fetches) // observe.go: consumer lag
	fetches.EachRecord(func(r *kgo.Record) {
		st := s.parts[r.Partition]
		if st == nil {
			if s.group != "" || s.bounded {
				return // revoked meanwhile, or finished
			}
			st = &partState{next: -1} // added to the topic after Open
			s.parts[r.Partition] = st
			s.rebuildListLocked()
		}
		if s.bounded && r.Offset >= s.end[r.Partition] {
			return
		}
		if st.len() == 0 {
			st.since = now
		}
		st.queue = append(st.queue, r)
		st.next = r.Offset + 1
		s.buffered++
	})
	s.settleLocked()
	return ferr
}

// settleLocked drops the partitions of a bounded read that reached their
// end with nothing left queued.
func (s *source) settleLocked() {
	if !s.bounded {
		return
	}
	changed := false
	for p, st := range s.parts {
		if st.len() == 0 && st.next >= 0 && st.next >= s.end[p] {
			delete(s.parts, p)
			changed = true
		}
	}
	if changed {
		s.rebuildListLocked()
	}
}

func (s *source) rebuildListLocked() {
	list := make([]int32, 0, len(s.parts))
	for p := range s.parts {
		list = append(list, p)
	}
	slices.Sort(list)
	s.list = list
}

// pickLocked chooses a partition whose batch is ready and pops up to
// batch_size of its records into s.scratch.
func (s *source) pickLocked(now time.Time) (int32, bool) {
	force := s.buffered >= s.maxBuffered
	best, bestLen := int32(-1), 0
	n := len(s.list)
	start, _ := slices.BinarySearch(s.list, s.rr+1)
	for i := range n {
		p := s.list[(start+i)%n]
		st := s.parts[p]
		l := st.len()
		if l == 0 {
			continue
		}
		if l >= s.batchSize || now.Sub(st.since) >= s.linger || s.bounded && st.next >= s.end[p] || s.gone {
			best = p
			break
		}
		if force && l > bestLen {
			best, bestLen = p, l
		}
	}
	if best < 0 {
		return 0, false
	}
	st := s.parts[best]
	k := min(st.len(), s.batchSize)
	s.scratch = append(s.scratch[:0], st.queue[st.head:st.head+k]...)
	clear(st.queue[st.head : st.head+k])
	st.head += k
	s.buffered -= k
	switch {
	case st.head == len(st.queue):
		st.queue, st.head = st.queue[:0], 0
	case st.head > 1024 && st.head > len(st.queue)/2:
		m := copy(st.queue, st.queue[st.head:])
		clear(st.queue[m:])
		st.queue, st.head = st.queue[:m], 0
	}
	s.rr = best
	return best, true
}

// emit decodes the next ready batch. popped reports whether records were
// taken from a queue even if none became a row.
func (s *source) emit(ctx context.Context) (msg arrowexec.Message, popped bool, err error) {
	s.mu.Lock()
	p, ok := s.pickLocked(time.Now())
	s.mu.Unlock()
	if !ok {
		return arrowexec.Message{}, false, nil
	}
	recs := s.scratch
	endSpan := s.traceBatch(ctx, recs, p) // observe.go
	s.payload.Reserve(len(recs))
	for _, b := range s.sysB {
		b.Reserve(len(recs))
	}
	rows := 0
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue
		}
		if res, ok := s.payload.(schemaResolver); ok && len(r.Value) <= s.maxRecord {
			if err := res.Resolve(ctx, r.Value); err != nil {
				err = s.errorf("topic %s partition %d offset %d: %w", s.topic, r.Partition, r.Offset, err)
				endSpan(err)
				return arrowexec.Message{}, true, err
			}
		}
		if rerr := s.appendRecord(r); rerr != nil {
			if err := s.bad(ctx, r, rerr); err != nil {
				endSpan(err)
				return arrowexec.Message{}, true, err
			}
			continue
		}
		rows++
	}
	endSpan(nil)
	last := recs[len(recs)-1]
	clear(s.scratch)
	s.mu.Lock()
	s.returned[p] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
	s.version++
	s.settleLocked()
	s.mu.Unlock()
	if rows == 0 {
		return arrowexec.Message{}, true, nil
	}
	return arrowexec.Message{Batch: s.buildBatch(rows), Watermark: arrowexec.NoWatermark, Partition: p}, true, nil
}

// appendRecord appends one record as a row, or returns why it is bad (and
// appends nothing).
func (s *source) appendRecord(r *kgo.Record) *sources.RecordError {
	if len(r.Value) > s.maxRecord {
		return &sources.RecordError{Reason: fmt.Sprintf("record longer than max_record_bytes (%d)", s.maxRecord)}
	}
	if r.Value == nil && s.format != "raw" {
		return &sources.RecordError{Reason: "record has no value (a tombstone)"}
	}
	// Check the system columns first: the payload is committed last.
	for _, i := range s.sysIdx {
		if f := s.spec.Schema.Field(i); f.Name == KeyColumn {
			if r.Key == nil && !f.Nullable {
				return &sources.RecordError{Field: KeyColumn, Reason: "missing value for NOT NULL column " + KeyColumn}
			}
			if !utf8.Valid(r.Key) {
				return &sources.RecordError{Field: KeyColumn, Reason: "invalid UTF-8 in the record key"}
			}
		}
	}
	if rerr := s.payload.Append(r.Value); rerr != nil {
		return rerr
	}
	for k, i := range s.sysIdx {
		switch b := s.sysB[k].(type) {
		case *array.StringBuilder:
			if r.Key == nil {
				b.AppendNull()
			} else {
				b.BinaryBuilder.Append(r.Key)
			}
		case *array.Int32Builder:
			b.Append(r.Partition)
		case *array.Int64Builder:
			b.Append(r.Offset)
		case *array.TimestampBuilder:
			b.Append(arrow.Timestamp(r.Timestamp.UnixMilli()))
		default:
			panic(fmt.Sprintf("kafka source: system column %s has builder %T", s.spec.Schema.Field(i).Name, b))
		}
	}
	return nil
}

// buildBatch assembles the decoded rows in schema order; the batch belongs
// to the caller.
func (s *source) buildBatch(rows int) arrow.RecordBatch {
	arrs := make([]arrow.Array, s.spec.Schema.NumFields())
	for k, a := range s.payload.NewArrays() {
		arrs[s.payloadIdx[k]] = a
	}
	for k, b := range s.sysB {
		arrs[s.sysIdx[k]] = b.NewArray()
	}
	rec := array.NewRecordBatch(s.spec.Schema, arrs, int64(rows))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// badRawPrefix is how much of an over-long record the dead-letter keeps.
const badRawPrefix = 256

// bad sends a bad record to the dead-letter sink, or turns it into the
// error that stops the source when there is none.
func (s *source) bad(ctx context.Context, r *kgo.Record, rerr *sources.RecordError) error {
	pos := fmt.Sprintf("partition %d offset %d", r.Partition, r.Offset)
	if s.spec.DeadLetter == nil {
		if rerr.Field != "" {
			return s.errorf("topic %s %s: field %s: %s", s.topic, pos, rerr.Field, rerr.Reason)
		}
		return s.errorf("topic %s %s: %s", s.topic, pos, rerr.Reason)
	}
	raw := r.Value
	if len(raw) > s.maxRecord {
		raw = raw[:badRawPrefix]
	}
	dl := arrowexec.DeadLetterRecord{
		Time: time.Now().UTC(), Source: s.dlName, Position: pos,
		Field: rerr.Field, Reason: rerr.Reason, Raw: string(raw),
	}
	if s.format == "avro" {
		dl.Raw, dl.RawEncoding = base64.StdEncoding.EncodeToString(raw), "base64"
	}
	err := s.spec.DeadLetter.DeadLetter(ctx, dl)
	if errors.Is(err, arrowexec.ErrData) { // failure_strategy fail: the message says it all
		return s.errorf("%w", err)
	}
	if err != nil {
		return s.errorf("dead letter: %w", err)
	}
	return nil
}

// Partitions implements arrowexec.PartitionedSource: the partitions being
// read, ascending. Without a group these are all partitions of the topic
// (and any added later, for an unbounded read); with a group, those
// currently assigned. A bounded read drops a partition once all its rows
// up to the end were returned. The returned slice must not be modified.
func (s *source) Partitions() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list
}

// Mark implements arrowexec.Committer: the offsets after every record
// returned so far, per partition. Without a group it returns nil.
func (s *source) Mark() any {
	if s.group == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mark == nil || s.mark.version != s.version {
		offs := make(map[int32]kgo.EpochOffset, len(s.returned))
		for p, o := range s.returned {
			offs[p] = o
		}
		s.mark = &offsetMark{version: s.version, offsets: offs}
	}
	return s.mark
}

// Commit implements arrowexec.Committer: it commits the offsets of mark
// for the partitions still assigned, synchronously. A mark older than one
// already committed is ignored, as is a partition whose offset would not
// move forward. It is safe for concurrent use with Next and Close; a
// partition is not revoked while its commit is in flight. Without a group
// it does nothing.
//
// The engine may commit the last mark after the source was closed (it
// closes a source at its end, then commits once the sinks flushed). The
// group was left by then, so such a commit is a standalone offset commit
// (as by a consumer outside the group) of the partitions held when Close
// began. Kafka accepts it only while the group has no member; if another
// member joined meanwhile the partitions are its own and the commit is
// skipped without error: it resumes from the previous commit, re-reading
// those rows (at-least-once).
func (s *source) Commit(ctx context.Context, mark any) error {
	if s.group == "" || mark == nil {
		return nil
	}
	m, ok := mark.(*offsetMark)
	if !ok {
		return s.errorf("commit: mark of type %T is not from a kafka source", mark)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if m.version <= s.commitVersion {
		return nil
	}
	if s.cl == nil {
		return s.errorf("commit on a source that was not opened")
	}
	offs := map[int32]kgo.EpochOffset{}
	s.mu.Lock()
	for p, eo := range m.offsets {
		floor, ok := s.floor[p]
		if !ok {
			floor = -1
		}
		if c, ok := s.committed[p]; ok && c > floor {
			floor = c
		}
		held := s.assigned[p]
		if s.left {
			held = s.heldAtClose[p]
		}
		if held && eo.Offset > floor {
			offs[p] = eo
		}
	}
	s.mu.Unlock()
	switch {
	case len(offs) == 0:
	case s.left:
		if err := s.commitStandalone(ctx, offs); err != nil {
			return err
		}
	default:
		var cerr error
		s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.topic: offs},
			func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				if err != nil {
					cerr = err
					return
				}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
							cerr = fmt.Errorf("partition %d: %w", p.Partition, err)
						}
					}
				}
			})
		if cerr != nil {
			return s.errorf("commit offsets of group %s topic %s: %w", s.group, s.topic, MarkError(cerr))
		}
	}
	for p, eo := range offs {
		s.committed[p] = eo.Offset
	}
	s.commitVersion = m.version
	return nil
}

// commitStandalone commits offs outside the group, after Close left it.
func (s *source) commitStandalone(ctx context.Context, offs map[int32]kgo.EpochOffset) error {
	cl, err := kgo.NewClient(s.clientOpts...)
	if err != nil {
		return s.errorf("commit: %w", err)
	}
	defer cl.Close()
	ko := kadm.Offsets{}
	for p, eo := range offs {
		ko.Add(kadm.Offset{Topic: s.topic, Partition: p, At: eo.Offset, LeaderEpoch: eo.Epoch})
	}
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, s.group, ko)
	if err == nil {
		err = resp.Error()
	}
	switch {
	case err == nil:
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.RebalanceInProgress):
		// The group has members again: the partitions are theirs now.
	default:
		return s.errorf("commit offsets of group %s topic %s after close: %w", s.group, s.topic, err)
	}
	return nil
}

// onAssigned is the group callback for newly assigned partitions; their
// start offsets are known only in adjust.
func (s *source) onAssigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range m[s.topic] {
		s.assigned[p] = true
		if s.parts[p] == nil {
			s.parts[p] = &partState{next: -1}
		}
	}
	s.holding = len(s.assigned) > 0
	s.everHeld = s.everHeld || s.holding
	s.rebuildListLocked()
}

// onRevoked is the group callback for revoked or lost partitions: their
// queued records are dropped. It waits for a commit in flight.
func (s *source) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if !s.closing.Load() { // Close holds commitMu itself
		s.commitMu.Lock()
		defer s.commitMu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := false
	for _, p := range m[s.topic] {
		if s.assigned[p] {
			delete(s.assigned, p)
			removed = true
		}
		if st := s.parts[p]; st != nil {
			s.buffered -= st.len()
			delete(s.parts, p)
		}
		delete(s.committed, p) // a new owner may commit meanwhile
		// Its position is the new owner's now (Position).
		delete(s.saved, p)
		delete(s.starts, p)
	}
	if removed && len(s.assigned) == 0 {
		s.holding = false
	}
	s.rebuildListLocked()
}

// adjust is called with the offsets the group will consume assigned
// partitions from (committed ones, or the start_offset reset). A partition
// in a restored position (Seek) starts there instead, the first time it is
// assigned; a partition this source already returned rows of resumes after
// them. A reset to the start or the end of a partition is resolved to an
// offset here, so that Position and a bounded read know where each
// partition starts.
func (s *source) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	ps := offsets[s.topic]
	if len(ps) == 0 {
		return offsets, nil
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.adm == nil {
		return nil, s.errorf("the client failed to open")
	}
	s.mu.Lock()
	needStart, needEnd := false, false
	for p, o := range ps {
		if _, ok := s.saved[p]; ok {
			continue
		}
		switch o.EpochOffset().Offset {
		case -2:
			needStart = true
		case -1:
			needEnd = true
		}
	}
	s.mu.Unlock()
	var starts, ends map[int32]int64
	var err error
	if needStart {
		if starts, err = s.listOffsets(ctx, s.adm.ListStartOffsets); err != nil {
			return nil, err
		}
	}
	if needEnd {
		if ends, err = s.listOffsets(ctx, s.adm.ListCommittedOffsets); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range ps {
		eo := o.EpochOffset()
		if eo.Offset >= 0 {
			s.floor[p] = eo.Offset
		}
		switch sv, saved := s.saved[p]; {
		case saved:
			eo = sv
			delete(s.saved, p)
		case eo.Offset == -2:
			eo = kgo.EpochOffset{Epoch: -1, Offset: starts[p]}
		case eo.Offset == -1:
			eo = kgo.EpochOffset{Epoch: -1, Offset: ends[p]}
		}
		if r, ok := s.returned[p]; ok && r.Offset > eo.Offset {
			eo = r
		}
		if eo != o.EpochOffset() {
			ps[p] = offsetAt(eo)
		}
		s.starts[p] = eo
		if st := s.parts[p]; st != nil && s.bounded {
			st.next = eo.Offset
		}
	}
	s.settleLocked()
	return offsets, nil
}

// offsetAt is the offset to consume from to read at eo.
func offsetAt(eo kgo.EpochOffset) kgo.Offset {
	o := kgo.NewOffset().At(eo.Offset)
	if eo.Epoch >= 0 {
		o = o.WithEpoch(eo.Epoch)
	}
	return o
}

// Close closes the client (leaving the group, without committing: see
// Commit for commits after Close) and releases the builders and queued
// records. It waits for a commit in flight. It is idempotent.
func (s *source) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.cl != nil {
		s.commitMu.Lock()
		s.mu.Lock()
		s.heldAtClose = maps.Clone(s.assigned)
		s.mu.Unlock()
		s.closing.Store(true)
		s.cl.CloseAllowingRebalance()
		s.left = true
		s.commitMu.Unlock()
	}
	if s.payload != nil {
		s.payload.Release()
	}
	for _, b := range s.sysB {
		b.Release()
	}
	s.sysB = nil
	s.mu.Lock()
	s.parts, s.list, s.buffered = map[int32]*partState{}, nil, 0
	s.mu.Unlock()
	return nil
}

// rawDecoder fills the one payload column of format raw with the value as
// text.
type rawDecoder struct {
	name     string
	nullable bool
	b        *array.StringBuilder
}

func (d *rawDecoder) Append(v []byte) *sources.RecordError {
	switch {
	case v == nil && !d.nullable:
		return &sources.RecordError{Field: d.name, Reason: "missing value for NOT NULL column " + d.name}
	case v == nil:
		d.b.AppendNull()
	case !utf8.Valid(v):
		return &sources.RecordError{Field: d.name, Reason: "invalid UTF-8 in string"}
	default:
		d.b.BinaryBuilder.Append(v)
	}
	return nil
}

func (d *rawDecoder) Reserve(n int)            { d.b.Reserve(n) }
func (d *rawDecoder) NewArrays() []arrow.Array { return []arrow.Array{d.b.NewArray()} }
func (d *rawDecoder) Release() {
	if d.b != nil {
		d.b.Release()
		d.b = nil
	}
}
