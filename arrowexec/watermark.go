package arrowexec

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/kernels"
)

// RowWatermarkColumn is the hidden column that carries, for every row of a
// stream with event time, the watermark of its partition as of the rows
// before it. Operators judge lateness and close windows against it, so
// results do not depend on how rows were cut into batches.
const RowWatermarkColumn = "_wm"

// RawRecordColumn is the hidden column (VARCHAR, before RowWatermarkColumn)
// in which a source whose late rows may be dead-lettered keeps each row's
// original record (a JSON or CSV line), so that a late row's dead-letter
// record holds its bytes (LateRaw). Sources of other streams never add it.
const RawRecordColumn = "_raw"

// VisibleColumns is the number of leading columns of s that are not hidden
// (a trailing RowWatermarkColumn, and RawRecordColumn before it).
func VisibleColumns(s *arrow.Schema) int {
	n := s.NumFields()
	if n > 0 && s.Field(n-1).Name == RowWatermarkColumn {
		n--
	}
	if n > 0 && s.Field(n-1).Name == RawRecordColumn {
		n--
	}
	return n
}

// WatermarkStrategy says how a source's watermark follows its event times.
type WatermarkStrategy int

const (
	// BoundedOutOfOrderness: watermark = max event time seen - delay.
	BoundedOutOfOrderness WatermarkStrategy = iota
	// Ascending: watermark = max event time seen (delay 0).
	Ascending
	// Punctuated: watermark = max event time of rows whose punctuation
	// column is TRUE.
	Punctuated
)

// EventTimeConfig configures a WatermarkAssigner.
type EventTimeConfig struct {
	Source      string // stream name, for dead-letter records and errors
	TimeColumn  int    // index of the event-time column (TIMESTAMP or BIGINT)
	EpochFactor int64  // BIGINT event times are multiplied by this to get ms (1 or 1000)
	Strategy    WatermarkStrategy
	Delay       time.Duration // bounded out-of-orderness
	Punctuation int           // index of the BOOLEAN punctuation column (Punctuated)
	// IdleTimeout, when positive, is how long a partition may send nothing
	// before it stops holding the stream's watermark back. It becomes
	// active again with its next row.
	IdleTimeout time.Duration
	DeadLetter  DeadLetter       // receives rows without an event time; nil drops them with an error
	Now         func() time.Time // wall clock for idleness; nil means time.Now
}

// WatermarkAssigner follows a source: it computes each row's watermark (the
// stream's watermark as of the rows before it), appends it as column
// RowWatermarkColumn, and sets each message's watermark to the watermark
// after its last row. Rows whose event time is NULL are dead-lettered and
// removed. BIGINT event times are converted to TIMESTAMP milliseconds in
// place.
//
// Each source partition (Message.Partition) has its own watermark: a running
// maximum of its event times minus the delay. The stream's watermark is the
// minimum over the partitions the source has assigned (PartitionedSource;
// otherwise the partitions seen) that are not idle — when all are idle, the
// highest any has reached — and never goes backwards. Within one partition
// the result does not depend on batching.
type WatermarkAssigner struct {
	unary
	cfg     EventTimeConfig
	schema  *arrow.Schema
	parts   map[int32]*partitionClock
	listed  PartitionedSource // the input, when it reports its partitions
	last    Watermark
	scratch []int64 // row watermarks of the current batch
}

// partitionClock is the watermark state of one source partition.
type partitionClock struct {
	max      int64     // running maximum event time (of punctuation rows, when punctuated)
	lastSeen time.Time // wall time of its last row (or of its assignment)
}

var _ Operator = (*WatermarkAssigner)(nil)

// NewWatermarkAssigner wraps input.
func NewWatermarkAssigner(alloc memory.Allocator, input Operator, cfg EventTimeConfig) *WatermarkAssigner {
	in := input.Schema()
	fields := append([]arrow.Field(nil), in.Fields()...)
	tsField := fields[cfg.TimeColumn]
	if tsField.Type.ID() == arrow.INT64 {
		fields[cfg.TimeColumn] = arrow.Field{Name: tsField.Name, Type: timestampMS, Nullable: tsField.Nullable}
	}
	fields = append(fields, arrow.Field{Name: RowWatermarkColumn, Type: arrow.PrimitiveTypes.Int64})
	if cfg.EpochFactor == 0 {
		cfg.EpochFactor = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &WatermarkAssigner{
		unary: unary{input: input, alloc: alloc}, cfg: cfg,
		schema: arrow.NewSchema(fields, nil), parts: map[int32]*partitionClock{}, last: NoWatermark,
	}
	w.listed, _ = input.(PartitionedSource)
	return w
}

var timestampMS = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// Schema implements Operator: the input's columns plus RowWatermarkColumn.
func (w *WatermarkAssigner) Schema() *arrow.Schema { return w.schema }

// partitionWatermark is a partition's own watermark for running maximum max.
func (w *WatermarkAssigner) partitionWatermark(max int64) Watermark {
	if max == math.MinInt64 {
		return NoWatermark
	}
	return max - w.cfg.Delay.Milliseconds()
}

// syncPartitions follows the source's assignment: new partitions start
// holding the watermark back, revoked or finished ones stop.
func (w *WatermarkAssigner) syncPartitions(now time.Time) {
	if w.listed == nil {
		return
	}
	assigned := w.listed.Partitions()
	for p := range w.parts {
		if !slices.Contains(assigned, p) {
			delete(w.parts, p)
		}
	}
	for _, p := range assigned {
		if w.parts[p] == nil {
			w.parts[p] = &partitionClock{max: math.MinInt64, lastSeen: now}
		}
	}
}

// others returns the minimum watermark over the active partitions other
// than skip, and whether there was any. When every partition is idle
// (skip < 0), nothing is waited for: it returns the highest watermark any
// partition has reached.
func (w *WatermarkAssigner) others(skip int32, now time.Time) (Watermark, bool) {
	min, any := FinalWatermark, false
	highest := NoWatermark
	for p, c := range w.parts {
		if p == skip {
			continue
		}
		wm := w.partitionWatermark(c.max)
		if w.cfg.IdleTimeout > 0 && now.Sub(c.lastSeen) > w.cfg.IdleTimeout {
			highest = max(highest, wm)
			continue
		}
		min, any = minWatermark(min, wm), true
	}
	if !any && skip < 0 && highest != NoWatermark {
		return highest, true
	}
	return min, any
}

func minWatermark(a, b Watermark) Watermark {
	if b < a {
		return b
	}
	return a
}

// Next implements Operator.
func (w *WatermarkAssigner) Next(ctx context.Context) (Message, error) {
	msg, err := w.input.Next(ctx)
	if err != nil {
		return msg, err
	}
	now := w.cfg.Now()
	w.syncPartitions(now)
	if msg.Batch == nil {
		if wm, ok := w.others(-1, now); ok && wm > w.last {
			w.last = wm
		}
		msg.Watermark = max(msg.Watermark, w.last)
		w.last = msg.Watermark
		return msg, nil
	}
	defer msg.Release()
	batch := msg.Batch
	tsCol := batch.Column(w.cfg.TimeColumn)
	if tsCol.NullN() > 0 {
		if batch, err = w.dropNullTimes(ctx, batch); err != nil {
			return Message{}, err
		}
		defer batch.Release()
		tsCol = batch.Column(w.cfg.TimeColumn)
	}
	n := int(batch.NumRows())
	ts := kernels.Values[int64](tsCol)
	if w.cfg.EpochFactor != 1 || tsCol.DataType().ID() == arrow.INT64 {
		b := array.NewTimestampBuilder(w.alloc, timestampMS)
		defer b.Release()
		b.Reserve(n)
		for _, v := range ts {
			b.UnsafeAppend(arrow.Timestamp(v * w.cfg.EpochFactor))
		}
		tsCol = b.NewArray()
		defer tsCol.Release()
		ts = kernels.Values[int64](tsCol)
	}
	var punct *array.Boolean
	if w.cfg.Strategy == Punctuated {
		punct = batch.Column(w.cfg.Punctuation).(*array.Boolean)
	}
	part := w.parts[msg.Partition]
	if part == nil {
		part = &partitionClock{max: math.MinInt64}
		w.parts[msg.Partition] = part
	}
	part.lastSeen = now
	// A row's watermark: the minimum of its partition's running watermark
	// and the other active partitions', floored at the stream's last
	// watermark (never backwards).
	ceiling, _ := w.others(msg.Partition, now)
	w.scratch = slices.Grow(w.scratch[:0], n)[:n]
	run := part.max
	delay := w.cfg.Delay.Milliseconds()
	floor := w.last
	for i, t := range ts {
		if run != math.MinInt64 {
			floor = max(floor, min(run-delay, ceiling))
		}
		w.scratch[i] = floor
		if punct == nil || (punct.IsValid(i) && punct.Value(i)) {
			run = max(run, t)
		}
	}
	part.max = run
	wmb := array.NewInt64Builder(w.alloc)
	defer wmb.Release()
	wmb.AppendValues(w.scratch, nil)
	if wm, ok := w.others(-1, now); ok {
		w.last = max(w.last, wm)
	}
	w.last = max(w.last, msg.Watermark)
	wm := wmb.NewArray()
	defer wm.Release()
	cols := make([]arrow.Array, 0, len(w.schema.Fields()))
	for i := 0; i < int(batch.NumCols()); i++ {
		if i == w.cfg.TimeColumn {
			cols = append(cols, tsCol)
		} else {
			cols = append(cols, batch.Column(i))
		}
	}
	cols = append(cols, wm)
	return Message{Batch: array.NewRecordBatch(w.schema, cols, int64(n)), Watermark: w.last}, nil
}

// dropNullTimes dead-letters the rows without an event time and returns the
// others (a new batch the caller releases).
func (w *WatermarkAssigner) dropNullTimes(ctx context.Context, batch arrow.RecordBatch) (arrow.RecordBatch, error) {
	tsCol := batch.Column(w.cfg.TimeColumn)
	name := batch.Schema().Field(w.cfg.TimeColumn).Name
	keep := array.NewBooleanBuilder(w.alloc)
	defer keep.Release()
	for i := 0; i < tsCol.Len(); i++ {
		valid := tsCol.IsValid(i)
		keep.Append(valid)
		if valid {
			continue
		}
		if w.cfg.DeadLetter == nil {
			return nil, fmt.Errorf("stream %s: row without event time (column %s is NULL)", w.cfg.Source, name)
		}
		rec := DeadLetterRecord{
			Time: time.Now().UTC(), Source: w.cfg.Source, Field: name,
			Reason: fmt.Sprintf("NULL event time in column %s", name), Raw: RowJSON(batch, i),
		}
		if err := w.cfg.DeadLetter.DeadLetter(ctx, rec); err != nil {
			return nil, err
		}
	}
	mask := keep.NewBooleanArray()
	defer mask.Release()
	return kernels.Filter(w.alloc, batch, mask)
}

// SaveState saves the watermark state (checkpoint.go): the stream's
// watermark and each partition's running maximum event time. The source's
// runner calls it when it sends a barrier; idleness restarts on recovery.
func (w *WatermarkAssigner) SaveState(st *StateWriter) error {
	st.SetInt("last", w.last)
	for p, c := range w.parts {
		st.SetInt("partition."+strconv.Itoa(int(p)), c.max)
	}
	return nil
}

// LoadState restores what SaveState saved; call it before Open.
func (w *WatermarkAssigner) LoadState(st *StateReader) error {
	last, err := st.Int("last")
	if err != nil {
		return err
	}
	w.last = last
	now := w.cfg.Now()
	for k := range st.values {
		p, ok := strings.CutPrefix(k, "partition.")
		if !ok {
			continue
		}
		id, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			return fmt.Errorf("watermark state: partition %q: %w", p, err)
		}
		max, err := st.Int(k)
		if err != nil {
			return err
		}
		w.parts[int32(id)] = &partitionClock{max: max, lastSeen: now}
	}
	return nil
}
