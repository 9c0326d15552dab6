package nexmark

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
)

// DefaultBatchSize is used when neither the batch_size option nor
// SourceSpec.BatchSize is set.
const DefaultBatchSize = 4096

var ownOptions = []string{"events", "rate", "seed", "event_rate", "kind", "out_of_order_group_size", "base_time"}

// column identifies a standard Nexmark column.
type column uint8

const (
	cBidAuction column = iota
	cBidBidder
	cBidPrice
	cBidChannel
	cBidURL
	cBidDateTime
	cBidExtra

	cAucID
	cAucItemName
	cAucDescription
	cAucInitialBid
	cAucReserve
	cAucDateTime
	cAucExpires
	cAucSeller
	cAucCategory
	cAucExtra

	cPerID
	cPerName
	cPerEmail
	cPerCreditCard
	cPerCity
	cPerState
	cPerDateTime
	cPerExtra
)

type columnDef struct {
	name string
	typ  arrow.DataType
	id   column
}

// Columns are the standard columns of each stream, in their standard
// order. A stream may declare any of its kind's columns, in any order.
var standardColumns = map[Kind][]columnDef{
	KindBid: {
		{"auction", sqltypes.BigInt, cBidAuction}, {"bidder", sqltypes.BigInt, cBidBidder},
		{"price", sqltypes.BigInt, cBidPrice}, {"channel", sqltypes.Varchar, cBidChannel},
		{"url", sqltypes.Varchar, cBidURL}, {"date_time", sqltypes.Timestamp, cBidDateTime},
		{"extra", sqltypes.Varchar, cBidExtra},
	},
	KindAuction: {
		{"id", sqltypes.BigInt, cAucID}, {"item_name", sqltypes.Varchar, cAucItemName},
		{"description", sqltypes.Varchar, cAucDescription}, {"initial_bid", sqltypes.BigInt, cAucInitialBid},
		{"reserve", sqltypes.BigInt, cAucReserve}, {"date_time", sqltypes.Timestamp, cAucDateTime},
		{"expires", sqltypes.Timestamp, cAucExpires}, {"seller", sqltypes.BigInt, cAucSeller},
		{"category", sqltypes.BigInt, cAucCategory}, {"extra", sqltypes.Varchar, cAucExtra},
	},
	KindPerson: {
		{"id", sqltypes.BigInt, cPerID}, {"name", sqltypes.Varchar, cPerName},
		{"email_address", sqltypes.Varchar, cPerEmail}, {"credit_card", sqltypes.Varchar, cPerCreditCard},
		{"city", sqltypes.Varchar, cPerCity}, {"state", sqltypes.Varchar, cPerState},
		{"date_time", sqltypes.Timestamp, cPerDateTime}, {"extra", sqltypes.Varchar, cPerExtra},
	},
}

// StandardDDL returns the standard column list of a kind as SQL, e.g.
// "auction BIGINT, bidder BIGINT, ...".
func StandardDDL(k Kind) string {
	var parts []string
	for _, c := range standardColumns[k] {
		parts = append(parts, c.name+" "+sqltypes.Name(c.typ))
	}
	return strings.Join(parts, ", ")
}

// Emission describes one batch a nexmark source handed downstream. It is
// passed to the hook of WithEmitHook.
type Emission struct {
	Stream string
	Kind   Kind
	Rows   int
	// Events is the number of event numbers (of every kind) the source has
	// gone through so far, this batch included.
	Events int64
	// MaxEventTime is the largest date_time in the batch, ms since the epoch.
	MaxEventTime int64
	// At is the wall time the batch was returned by Next.
	At time.Time
}

// Option configures Factory.
type Option func(*factoryConfig)

type factoryConfig struct {
	hook func(Emission)
}

// WithEmitHook calls hook for every batch a source returns, from the
// goroutine that drives the source (several sources call it concurrently).
// The benchmark runner uses it to measure latency from emission to result.
func WithEmitHook(hook func(Emission)) Option {
	return func(c *factoryConfig) { c.hook = hook }
}

// Register adds the "nexmark" source connector to c.
func Register(c *arrowexec.Connectors) {
	c.RegisterSource("nexmark", Factory())
}

// Factory returns the factory of the "nexmark" source connector.
//
// Options: kind (bid | auction | person; default: the stream's name when it
// is one of those), events (total events of every kind, default 0 =
// unbounded), rate (events of every kind per second of wall time; 0, the
// default, = as fast as possible), seed (default 42), event_rate (the
// first_event_rate: events per second of event time, default 10,000),
// out_of_order_group_size (default 1: in order), base_time (RFC 3339 event
// time of event 0, default 2015-07-15T00:00:00Z), batch_size, linger_ms.
//
// The declared columns must be columns of the kind's standard schema, with
// its types (see the package comment and StandardDDL); any subset in any
// order. Every stream of a pipeline with the same seed, event_rate and
// out_of_order_group_size sees the same event sequence and keeps its kind.
func Factory(opts ...Option) arrowexec.SourceFactory {
	var fc factoryConfig
	for _, o := range opts {
		o(&fc)
	}
	return func(spec arrowexec.SourceSpec) (arrowexec.Operator, error) {
		return newSource(spec, fc)
	}
}

func newSource(spec arrowexec.SourceSpec, fc factoryConfig) (*source, error) {
	what := fmt.Sprintf("nexmark source %q", spec.Name)
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{what}, args...)...)
	}
	known := append(append([]string(nil), arrowexec.CommonSourceOptions...), ownOptions...)
	if err := spec.Options.CheckKnown("nexmark", known...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	intOpt := func(name string, def, min int64) (int64, error) {
		v, ok := spec.Options.Get(name)
		if !ok || v == "" {
			return def, nil
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
		if err != nil || n < min {
			return 0, errorf("option %s: expected an integer >= %d, found %q", name, min, v)
		}
		return n, nil
	}
	s := &source{spec: spec, hook: fc.hook}
	kind, ok := spec.Options.Get("kind")
	if !ok || kind == "" {
		kind = strings.TrimSuffix(strings.ToLower(spec.Name), "s")
	}
	switch strings.ToLower(kind) {
	case "bid":
		s.kind = KindBid
	case "auction":
		s.kind = KindAuction
	case "person":
		s.kind = KindPerson
	default:
		if _, set := spec.Options.Get("kind"); set {
			return nil, errorf("option kind: expected bid, auction or person, found %q", kind)
		}
		return nil, errorf("option kind is required (bid, auction or person)")
	}
	cfg := DefaultConfig()
	var err error
	if s.events, err = intOpt("events", 0, 0); err != nil {
		return nil, err
	}
	if s.rate, err = intOpt("rate", 0, 0); err != nil {
		return nil, err
	}
	seed, err := intOpt("seed", 42, -1<<63)
	if err != nil {
		return nil, err
	}
	cfg.Seed = uint64(seed)
	if cfg.EventRate, err = intOpt("event_rate", cfg.EventRate, 1); err != nil {
		return nil, err
	}
	if cfg.OutOfOrderGroupSize, err = intOpt("out_of_order_group_size", 1, 1); err != nil {
		return nil, err
	}
	if v, ok := spec.Options.Get("base_time"); ok && v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, errorf("option base_time: expected an RFC 3339 time, found %q", v)
		}
		cfg.BaseTime = t.UnixMilli()
	}
	s.cfg = cfg
	bs := int64(spec.BatchSize)
	if bs <= 0 {
		bs = DefaultBatchSize
	}
	if bs, err = intOpt("batch_size", bs, 1); err != nil {
		return nil, err
	}
	s.batchSize = int(bs)
	linger, err := intOpt("linger_ms", spec.Linger.Milliseconds(), 0)
	if err != nil {
		return nil, err
	}
	s.linger = time.Duration(linger) * time.Millisecond
	if err := s.bindColumns(); err != nil {
		return nil, errorf("%v", err)
	}
	return s, nil
}

// bindColumns checks the declared columns against the kind's standard
// schema and records which column each declared field is.
func (s *source) bindColumns() error {
	std := standardColumns[s.kind]
	byName := make(map[string]columnDef, len(std))
	names := make([]string, len(std))
	for i, c := range std {
		byName[c.name] = c
		names[i] = c.name + " " + sqltypes.Name(c.typ)
	}
	for _, f := range s.spec.Schema.Fields() {
		c, ok := byName[strings.ToLower(f.Name)]
		if !ok {
			return fmt.Errorf("column %s is not a column of the nexmark %s stream (its columns: %s)", f.Name, s.kind, strings.Join(names, ", "))
		}
		if !arrow.TypeEqual(f.Type, c.typ) {
			return fmt.Errorf("column %s: declared %s, but nexmark %s.%s is %s", f.Name, sqltypes.Name(f.Type), s.kind, c.name, sqltypes.Name(c.typ))
		}
		s.cols = append(s.cols, c.id)
	}
	return nil
}

// source is the nexmark connector's operator: it walks event numbers from
// 0 and collects the ids of the events of its kind; when a batch is due it
// generates those events column by column (batch.go) and writes each
// column straight into Arrow buffers (no builders: values are copied in
// one loop per column, string data sized exactly; no validity bitmaps, as
// nothing is NULL). Events are a pure function of the configuration and
// the event number, so a checkpoint saves the next event number
// (checkpoint.go).
type source struct {
	spec      arrowexec.SourceSpec
	cfg       Config
	kind      Kind
	events    int64 // 0 = unbounded
	rate      int64 // events per wall second; 0 = as fast as possible
	batchSize int
	linger    time.Duration
	hook      func(Emission)
	cols      []column

	gen     *Generator
	next    int64   // next event number to look at
	first   int64   // the event number the batch being filled started at
	ids     []int64 // the event ids of the batch being filled
	rows    int     // len(ids)
	gb      genBatch
	t0      time.Time
	timer   *time.Timer
	started bool
	opened  bool
	closed  bool
}

var (
	_ arrowexec.Operator       = (*source)(nil)
	_ arrowexec.Checkpointable = (*source)(nil)
)

func (s *source) Schema() *arrow.Schema { return s.spec.Schema }

func (s *source) Open(context.Context) error {
	s.gen = NewGenerator(s.cfg)
	s.ids = make([]int64, 0, min(s.batchSize, 1<<16))
	s.opened = true
	return nil
}

// Next returns the next batch of rows of the source's kind. Without a rate
// it fills batch_size rows at once; with a rate, events become due at rate
// per wall second (counting every kind) and a partial batch is returned
// once its first row has waited linger_ms. After events events it returns
// io.EOF.
func (s *source) Next(ctx context.Context) (arrowexec.Message, error) {
	if err := ctx.Err(); err != nil {
		return arrowexec.Message{}, err
	}
	if !s.opened {
		return arrowexec.Message{}, fmt.Errorf("nexmark source %q: Next called before Open", s.spec.Name)
	}
	if s.rows == 0 {
		if s.next >= s.limit() {
			return arrowexec.Message{}, io.EOF
		}
		s.ids = s.ids[:0]
		s.first = s.next
	}
	if s.rate == 0 {
		s.fill(s.limit())
	} else if err := s.paced(ctx); err != nil {
		return arrowexec.Message{}, err
	}
	if s.rows == 0 {
		return arrowexec.Message{}, io.EOF
	}
	return s.emit(), nil
}

// limit is the event number the source stops before (math.MaxInt64 when
// unbounded).
func (s *source) limit() int64 {
	if s.events > 0 {
		return s.events
	}
	return 1<<63 - 1
}

// fill collects the ids of the events of the kind from event numbers
// [s.next, end) until the batch is full.
func (s *source) fill(end int64) {
	g, kind, ids := s.gen, s.kind, s.ids
	if len(ids) >= s.batchSize {
		return
	}
	if g.cfg.OutOfOrderGroupSize == 1 {
		// ids are event numbers: the kind's are the runs of remainders
		// [lo, hi) modulo totalProportion, taken a run at a time
		lo, hi := kindRange(kind)
		n := s.next
		for n < end && len(ids) < s.batchSize {
			switch rem := n % totalProportion; {
			case rem < lo:
				n = min(n+lo-rem, end)
			case rem >= hi:
				n = min(n+totalProportion-rem, end)
			default:
				k := min(hi-rem, end-n, int64(s.batchSize-len(ids)))
				for j := range k {
					ids = append(ids, n+j)
				}
				n += k
			}
		}
		end = n
	} else {
		for n := s.next; n < end; n++ {
			if id := g.EventID(n); KindOf(id) == kind {
				ids = append(ids, id)
				if len(ids) == s.batchSize {
					end = n + 1
				}
			}
		}
	}
	s.next = max(s.next, end)
	s.ids, s.rows = ids, len(ids)
}

// kindRange is the range [lo, hi) of the remainders modulo
// totalProportion of the ids of kind k (see KindOf).
func kindRange(k Kind) (lo, hi int64) {
	switch k {
	case KindPerson:
		return 0, personProportion
	case KindAuction:
		return personProportion, personProportion + auctionProportion
	}
	return personProportion + auctionProportion, totalProportion
}

// emit generates the events of the collected ids and returns them as a
// batch, which belongs to the caller.
func (s *source) emit() arrowexec.Message {
	n, b, alloc := s.rows, &s.gb, s.spec.Alloc
	b.maxTime = arrowexec.NoWatermark
	switch s.kind {
	case KindBid:
		s.gen.genBids(s.ids, b)
	case KindAuction:
		s.gen.genAuctions(s.ids, b)
	default:
		s.gen.genPersons(s.ids, b)
	}
	cols := make([]arrow.Array, len(s.cols))
	for j, c := range s.cols {
		typ := s.spec.Schema.Field(j).Type
		if typ.ID() == arrow.STRING {
			cols[j] = stringArray(alloc, typ, &b.strs[c])
		} else {
			cols[j] = int64Array(alloc, typ, b.ints[c])
		}
	}
	batch := array.NewRecordBatch(s.spec.Schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	s.rows, s.ids = 0, s.ids[:0]
	if s.hook != nil {
		s.hook(Emission{Stream: s.spec.Name, Kind: s.kind, Rows: n, Events: s.next, MaxEventTime: b.maxTime, At: time.Now()})
	}
	return arrowexec.Message{Batch: batch, Watermark: arrowexec.NoWatermark}
}

// int64Array returns an array of type typ (64-bit) holding vals, in a
// buffer from alloc.
func int64Array(alloc memory.Allocator, typ arrow.DataType, vals []int64) arrow.Array {
	buf := memory.NewResizableBuffer(alloc)
	buf.Resize(len(vals) * 8)
	copy(arrow.Int64Traits.CastFromBytes(buf.Bytes()), vals)
	return makeArray(typ, len(vals), buf)
}

// stringArray returns a string array of type typ holding the values of
// col, in buffers from alloc: the data buffer has exactly the bytes
// needed.
func stringArray(alloc memory.Allocator, typ arrow.DataType, col *strCol) arrow.Array {
	n := len(col.n)
	offs := memory.NewResizableBuffer(alloc)
	offs.Resize((n + 1) * 4)
	o := arrow.Int32Traits.CastFromBytes(offs.Bytes())
	data := memory.NewResizableBuffer(alloc)
	total, longest, lastStart, ok := col.extent()
	var pos int
	if k := (longest + 15) &^ 15; ok && total > 0 && k <= srcPad && lastStart+k <= len(col.src) {
		// copyChunks's bounds hold: every value fits in k bytes, d has k
		// bytes past the total and src k bytes past the last start
		data.Reserve(total + k)
		data.Resize(total)
		pos = copyChunks(data.Buf(), col.src, col.start, col.n, o, k)
	} else {
		data.Resize(total)
		pos = copyValues(data.Bytes(), col.src, col.start, col.n, o)
	}
	o[n] = int32(pos)
	return makeArray(typ, n, offs, data)
}

// copyChunks copies the values src[start[i]:start[i]+n[i]] (n[i] <= k)
// one after the other into d, setting their offsets o[i], in k/16 chunks
// of 16 bytes a value: past its end into the next value's place (which it
// overwrites) or the room after the data. No call, no branch on the
// length. It returns the total. The caller guarantees the bounds, which
// are not checked: d has k bytes past the total, and src k bytes from
// every start.
func copyChunks(d, src []byte, start, n, o []int32, k int) int {
	pos := 0
	o = o[:len(start)]
	n = n[:len(start)]
	dp, sp := unsafe.Pointer(unsafe.SliceData(d)), unsafe.Pointer(unsafe.SliceData(src))
	for i, st := range start {
		o[i] = int32(pos)
		s, t := unsafe.Add(sp, st), unsafe.Add(dp, pos)
		for j := 0; j < k; j += 16 {
			*(*[16]byte)(unsafe.Add(t, j)) = *(*[16]byte)(unsafe.Add(s, j))
		}
		pos += int(n[i])
	}
	return pos
}

// copyValues is copyChunks with copy.
func copyValues(d, src []byte, start, n, o []int32) int {
	pos := 0
	o = o[:len(start)]
	n = n[:len(start)]
	for i, st := range start {
		o[i] = int32(pos)
		pos += copy(d[pos:], src[st:st+n[i]])
	}
	return pos
}

// makeArray wraps bufs (after the validity bitmap, which is nil) in an
// array of n values of type typ, and lets go of them.
func makeArray(typ arrow.DataType, n int, bufs ...*memory.Buffer) arrow.Array {
	data := array.NewData(typ, n, append([]*memory.Buffer{nil}, bufs...), nil, 0, 0)
	arr := array.MakeFromData(data)
	data.Release()
	for _, b := range bufs {
		b.Release()
	}
	return arr
}

// due is the number of events due at wall time now (rate mode).
func (s *source) due(now time.Time) int64 {
	el := now.Sub(s.t0)
	return int64(el/time.Second)*s.rate + int64(el%time.Second)*s.rate/int64(time.Second) + 1
}

// dueAt is the wall time event number n is due.
func (s *source) dueAt(n int64) time.Time { return s.t0.Add(s.offset(n)) }

// offset is how long after event 0 event number n is due.
func (s *source) offset(n int64) time.Duration {
	return time.Duration(n/s.rate)*time.Second + time.Duration(n%s.rate)*time.Second/time.Duration(s.rate)
}

// paced fills the batch with the rows due, waiting (without spinning,
// watching ctx) until it is full, its first row has lingered, or the input
// ends.
func (s *source) paced(ctx context.Context) error {
	if !s.started {
		// Event s.next (0, or where Seek put the source) is due now:
		// after a restore, pacing goes on from there rather than
		// catching up on the time the source was down.
		s.started, s.t0 = true, time.Now().Add(-s.offset(s.next))
	}
	var firstDue time.Time
	for {
		now := time.Now()
		before := s.rows
		s.fill(min(s.due(now), s.limit()))
		if before == 0 && s.rows > 0 {
			firstDue = now
		}
		if s.rows >= s.batchSize || s.next >= s.limit() {
			return nil
		}
		var wake time.Time
		if s.rows > 0 {
			if !now.Before(firstDue.Add(s.linger)) {
				return nil
			}
			// about how many more events fill the batch
			share := [...]int64{personProportion, auctionProportion, bidProportion}[s.kind]
			more := int64(s.batchSize-s.rows) * totalProportion / share
			wake = s.dueAt(s.next + more)
			if l := firstDue.Add(s.linger); l.Before(wake) {
				wake = l
			}
		} else {
			wake = s.dueAt(s.next)
		}
		d := time.Until(wake)
		if d <= 0 {
			continue
		}
		if s.timer == nil {
			s.timer = time.NewTimer(d)
		} else {
			s.timer.Reset(d)
		}
		select {
		case <-s.timer.C:
		case <-ctx.Done():
			s.timer.Stop()
			return ctx.Err()
		}
	}
}

func (s *source) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	return nil
}
