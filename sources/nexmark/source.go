package nexmark

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

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
// 0, generates the events of its kind and writes them straight into Arrow
// buffers (no builders: values are stored by index, strings appended to
// a data buffer reserved for the batch's worst case; no validity bitmaps,
// as nothing is NULL). Events are a pure function of the configuration and
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
	next    int64 // next event number to look at
	first   int64 // the event number the batch being filled started at
	w       []colWriter
	rows    int
	maxTime int64
	t0      time.Time
	timer   *time.Timer
	started bool
	opened  bool
	closed  bool

	bid Bid
	auc Auction
	per Person
}

var (
	_ arrowexec.Operator       = (*source)(nil)
	_ arrowexec.Checkpointable = (*source)(nil)
)

func (s *source) Schema() *arrow.Schema { return s.spec.Schema }

func (s *source) Open(context.Context) error {
	s.gen = NewGenerator(s.cfg)
	s.w = make([]colWriter, len(s.cols))
	for i, c := range s.cols {
		s.w[i] = colWriter{typ: s.spec.Schema.Field(i).Type, str: s.spec.Schema.Field(i).Type.ID() == arrow.STRING, maxBytes: maxBytes[c]}
	}
	s.opened = true
	return nil
}

// colWriter writes one column of a batch into Arrow buffers it allocates
// from the source's allocator.
type colWriter struct {
	typ      arrow.DataType
	str      bool
	maxBytes int // a bound (or the usual size) of a string value

	vals *memory.Buffer // fixed-width values, or string offsets
	v    []int64
	o    []int32
	data *memory.Buffer // string bytes
	d    []byte         // len: bytes written; cap: reserved
}

func (c *colWriter) start(alloc memory.Allocator, n int) {
	c.vals = memory.NewResizableBuffer(alloc)
	if !c.str {
		c.vals.Resize(n * 8)
		c.v = arrow.Int64Traits.CastFromBytes(c.vals.Bytes())
		return
	}
	c.vals.Resize((n + 1) * 4)
	c.o = arrow.Int32Traits.CastFromBytes(c.vals.Bytes())
	c.o[0] = 0
	c.data = memory.NewResizableBuffer(alloc)
	c.data.Reserve(n * c.maxBytes)
	c.d = c.data.Buf()[:0]
}

// putStr appends row i's string (rows are written in order).
func (c *colWriter) putStr(i int, b []byte) {
	if len(c.d)+len(b) > cap(c.d) {
		n := len(c.d)
		c.data.ResizeNoShrink(n) // keep the bytes written when it grows
		c.data.Reserve(2*cap(c.d) + len(b))
		c.d = c.data.Buf()[:n]
	}
	c.d = append(c.d, b...)
	c.o[i+1] = int32(len(c.d))
}

func (c *colWriter) putString(i int, b string) {
	if len(c.d)+len(b) > cap(c.d) {
		c.putStr(i, []byte(b))
		return
	}
	c.d = append(c.d, b...)
	c.o[i+1] = int32(len(c.d))
}

// finish returns the column of the batch's n rows; the writer lets go of
// its buffers.
func (c *colWriter) finish(n int) arrow.Array {
	var bufs []*memory.Buffer
	if c.str {
		c.vals.Resize((n + 1) * 4)
		c.data.Resize(len(c.d))
		bufs = []*memory.Buffer{nil, c.vals, c.data}
	} else {
		c.vals.Resize(n * 8)
		bufs = []*memory.Buffer{nil, c.vals}
	}
	data := array.NewData(c.typ, n, bufs, nil, 0, 0)
	arr := array.MakeFromData(data)
	data.Release()
	c.release()
	return arr
}

func (c *colWriter) release() {
	for _, b := range []*memory.Buffer{c.vals, c.data} {
		if b != nil {
			b.Release()
		}
	}
	c.vals, c.data, c.v, c.o, c.d = nil, nil, nil, nil, nil
}

// maxBytes bounds the bytes of a value of a string column (or, for the
// longer free-text columns, its usual size), to reserve buffer memory.
var maxBytes = map[column]int{
	cBidChannel: 12, cBidURL: 80, cBidExtra: 82,
	cAucItemName: 19, cAucDescription: 99, cAucExtra: 468,
	cPerName: 14, cPerEmail: 15, cPerCreditCard: 19, cPerCity: 13, cPerState: 2, cPerExtra: 168,
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
		for i := range s.w {
			s.w[i].start(s.spec.Alloc, s.batchSize)
		}
		s.maxTime = arrowexec.NoWatermark
		s.first = s.next
	}
	if s.rate == 0 {
		s.fill(s.limit())
	} else if err := s.paced(ctx); err != nil {
		return arrowexec.Message{}, err
	}
	if s.rows == 0 {
		for i := range s.w {
			s.w[i].release()
		}
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

// fill writes rows of the kind from event numbers [s.next, end) until the
// batch is full.
func (s *source) fill(end int64) {
	g := s.gen
	inOrder := g.cfg.OutOfOrderGroupSize == 1
	for s.next < end && s.rows < s.batchSize {
		n := s.next
		s.next++
		id := n
		if !inOrder {
			id = g.EventID(n)
		}
		if KindOf(id) != s.kind {
			continue
		}
		switch s.kind {
		case KindBid:
			g.Bid(id, &s.bid)
			s.writeBid()
		case KindAuction:
			g.Auction(id, &s.auc)
			s.writeAuction()
		default:
			g.Person(id, &s.per)
			s.writePerson()
		}
		s.rows++
	}
}

func (s *source) writeBid() {
	b, i := &s.bid, s.rows
	for j, c := range s.cols {
		w := &s.w[j]
		switch c {
		case cBidAuction:
			w.v[i] = b.Auction
		case cBidBidder:
			w.v[i] = b.Bidder
		case cBidPrice:
			w.v[i] = b.Price
		case cBidChannel:
			w.putStr(i, b.Channel)
		case cBidURL:
			w.putStr(i, b.URL)
		case cBidDateTime:
			w.v[i] = b.DateTime
		case cBidExtra:
			w.putStr(i, b.Extra)
		}
	}
	s.maxTime = max(s.maxTime, b.DateTime)
}

func (s *source) writeAuction() {
	a, i := &s.auc, s.rows
	for j, c := range s.cols {
		w := &s.w[j]
		switch c {
		case cAucID:
			w.v[i] = a.ID
		case cAucItemName:
			w.putStr(i, a.ItemName)
		case cAucDescription:
			w.putStr(i, a.Desc)
		case cAucInitialBid:
			w.v[i] = a.InitialBid
		case cAucReserve:
			w.v[i] = a.Reserve
		case cAucDateTime:
			w.v[i] = a.DateTime
		case cAucExpires:
			w.v[i] = a.Expires
		case cAucSeller:
			w.v[i] = a.Seller
		case cAucCategory:
			w.v[i] = a.Category
		case cAucExtra:
			w.putStr(i, a.Extra)
		}
	}
	s.maxTime = max(s.maxTime, a.DateTime)
}

func (s *source) writePerson() {
	p, i := &s.per, s.rows
	for j, c := range s.cols {
		w := &s.w[j]
		switch c {
		case cPerID:
			w.v[i] = p.ID
		case cPerName:
			w.putString(i, p.Name)
		case cPerEmail:
			w.putStr(i, p.Email)
		case cPerCreditCard:
			w.putStr(i, p.CreditCard)
		case cPerCity:
			w.putString(i, p.City)
		case cPerState:
			w.putString(i, p.State)
		case cPerDateTime:
			w.v[i] = p.DateTime
		case cPerExtra:
			w.putStr(i, p.Extra)
		}
	}
	s.maxTime = max(s.maxTime, p.DateTime)
}

func (s *source) emit() arrowexec.Message {
	n := s.rows
	cols := make([]arrow.Array, len(s.w))
	for i := range s.w {
		cols[i] = s.w[i].finish(n)
	}
	batch := array.NewRecordBatch(s.spec.Schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	s.rows = 0
	if s.hook != nil {
		s.hook(Emission{Stream: s.spec.Name, Kind: s.kind, Rows: n, Events: s.next, MaxEventTime: s.maxTime, At: time.Now()})
	}
	return arrowexec.Message{Batch: batch, Watermark: arrowexec.NoWatermark}
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
	for i := range s.w {
		s.w[i].release()
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	return nil
}
