package flight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ferrisstreams/ferris/arrowexec"
)

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "ticker", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "volume", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

var otherSchema = arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil)

// fakeCatalog hands every tap it makes to the test through tapped, so the
// test plays the pipeline: it pushes messages and ends the stream.
type fakeCatalog struct {
	streams []Stream
	ended   map[string]bool
	tapped  chan *arrowexec.Inlet
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{
		streams: []Stream{{Name: "a.select_1", Schema: otherSchema}, {Name: "trades", Schema: testSchema}},
		ended:   map[string]bool{"a.select_1": true},
		tapped:  make(chan *arrowexec.Inlet, 8),
	}
}

func (c *fakeCatalog) Streams() []Stream { return c.streams }

func (c *fakeCatalog) Tap(stream string, depth int) (*arrowexec.Inlet, error) {
	for _, s := range c.streams {
		if s.Name != stream {
			continue
		}
		if c.ended[stream] {
			return nil, fmt.Errorf("stream %q: %w", stream, arrowexec.ErrStreamEnded)
		}
		in := arrowexec.NewInlet(s.Schema, depth)
		c.tapped <- in
		return in, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownStream, stream)
}

// nextTap waits for the server to tap a stream.
func (c *fakeCatalog) nextTap(t *testing.T) *arrowexec.Inlet {
	t.Helper()
	select {
	case in := <-c.tapped:
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("the server never tapped the stream")
		return nil
	}
}

// startFlight serves cat on a free port with a checked allocator, and
// returns the server, a connected client and the allocator to build test
// batches from (checked at the end too).
func startFlight(t *testing.T, cat Catalog, token string, opts ...Option) (*Server, flight.Client, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	srvMem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := NewServer(cat, token, srvMem, opts...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c, err := flight.NewClientWithMiddleware(l.Addr().String(), nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxSendMsgSize)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		start := time.Now()
		s.Shutdown()
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("Shutdown took %v", el)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		srvMem.AssertSize(t, 0)
		mem.AssertSize(t, 0)
	})
	return s, c, mem
}

func makeBatch(mem memory.Allocator, tickers []string, volumes []int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues(tickers, nil)
	b.Field(1).(*array.Int64Builder).AppendValues(volumes, nil)
	return b.NewRecordBatch()
}

func code(err error) codes.Code { return status.Code(err) }

func TestListFlightsAndDescriptors(t *testing.T) {
	cat := newFakeCatalog()
	_, c, mem := startFlight(t, cat, "")
	ctx := context.Background()
	list, err := c.ListFlights(ctx, &flight.Criteria{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		info, err := list.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("ListFlights: %v", err)
			}
			break
		}
		d := info.GetFlightDescriptor()
		if d.GetType() != flight.DescriptorPATH || len(d.GetPath()) != 1 {
			t.Fatalf("descriptor %v", d)
		}
		name := d.GetPath()[0]
		names = append(names, name)
		if len(info.Endpoint) != 1 || string(info.Endpoint[0].GetTicket().GetTicket()) != name || len(info.Endpoint[0].Location) != 0 {
			t.Fatalf("%s: endpoints %v", name, info.Endpoint)
		}
		if info.TotalRecords != -1 || info.TotalBytes != -1 {
			t.Fatalf("%s: totals %d %d", name, info.TotalRecords, info.TotalBytes)
		}
		schema, err := flight.DeserializeSchema(info.Schema, mem)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]*arrow.Schema{"trades": testSchema, "a.select_1": otherSchema}[name]
		if !schema.Equal(want) {
			t.Fatalf("%s: schema %v, want %v", name, schema, want)
		}
	}
	if strings.Join(names, ",") != "a.select_1,trades" {
		t.Fatalf("streams %v", names)
	}

	path := &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"trades"}}
	info, err := c.GetFlightInfo(ctx, path)
	if err != nil || string(info.Endpoint[0].Ticket.Ticket) != "trades" {
		t.Fatalf("GetFlightInfo: %v %v", info, err)
	}
	res, err := c.GetSchema(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if schema, err := flight.DeserializeSchema(res.Schema, mem); err != nil || !schema.Equal(testSchema) {
		t.Fatalf("GetSchema: %v %v", schema, err)
	}
	for _, tc := range []struct {
		d    *flight.FlightDescriptor
		want codes.Code
	}{
		{&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"nope"}}, codes.NotFound},
		{&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("SELECT 1")}, codes.InvalidArgument},
		{&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"a", "select_1"}}, codes.InvalidArgument},
	} {
		if _, err := c.GetFlightInfo(ctx, tc.d); code(err) != tc.want {
			t.Errorf("GetFlightInfo(%v): %v, want %v", tc.d, err, tc.want)
		}
		if _, err := c.GetSchema(ctx, tc.d); code(err) != tc.want {
			t.Errorf("GetSchema(%v): %v, want %v", tc.d, err, tc.want)
		}
	}
}

func TestDoGetStreamsBatchesWithWatermarks(t *testing.T) {
	cat := newFakeCatalog()
	s, c, mem := startFlight(t, cat, "")
	ctx := context.Background()
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte("trades")})
	if err != nil {
		t.Fatal(err)
	}
	in := cat.nextTap(t)
	first := makeBatch(mem, []string{"AAPL", "MSFT"}, []int64{1500, 200})
	second := makeBatch(mem, []string{"NVDA"}, []int64{3000})
	defer first.Release()
	defer second.Release()
	first.Retain()
	second.Retain()
	for _, m := range []arrowexec.Message{
		{Batch: first, Watermark: arrowexec.NoWatermark},
		{Watermark: 1_704_067_200_000}, // watermark only: not sent
		{Batch: second, Watermark: 1_704_067_205_000},
	} {
		if err := in.Push(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	in.Finish()

	r, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Schema().Equal(testSchema) {
		t.Fatalf("schema %v", r.Schema())
	}
	for i, want := range []struct {
		batch arrow.RecordBatch
		meta  string
	}{{first, ""}, {second, "1704067205000"}} {
		if !r.Next() {
			t.Fatalf("batch %d: %v", i, r.Err())
		}
		if got := r.RecordBatch(); !array.RecordEqual(got, want.batch) {
			t.Fatalf("batch %d: %v, want %v", i, got, want.batch)
		}
		if got := string(r.LatestAppMetadata()); got != want.meta {
			t.Fatalf("batch %d: app_metadata %q, want %q", i, got, want.meta)
		}
	}
	if r.Next() || r.Err() != nil {
		t.Fatalf("after the last batch: next, err = %v", r.Err())
	}
	waitIdle(t, s)
}

// waitIdle waits for every DoGet of s to return.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.ActiveStreams() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d DoGet calls still running", s.ActiveStreams())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDoGetOfAStreamEndingAtOnceSendsItsSchema(t *testing.T) {
	cat := newFakeCatalog()
	_, c, mem := startFlight(t, cat, "")
	stream, err := c.DoGet(context.Background(), &flight.Ticket{Ticket: []byte("trades")})
	if err != nil {
		t.Fatal(err)
	}
	cat.nextTap(t).Finish()
	r, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Schema().Equal(testSchema) || r.Next() || r.Err() != nil {
		t.Fatalf("schema %v, err %v", r.Schema(), r.Err())
	}
}

func TestDoGetErrors(t *testing.T) {
	cat := newFakeCatalog()
	_, c, mem := startFlight(t, cat, "")
	ctx := context.Background()
	read := func(ticket string) (int, error) {
		stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte(ticket)})
		if err != nil {
			return 0, err
		}
		r, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
		if err != nil {
			return 0, err
		}
		defer r.Release()
		n := 0
		for r.Next() {
			n++
		}
		return n, r.Err()
	}
	if _, err := read("nope"); code(err) != codes.NotFound {
		t.Fatalf("unknown stream: %v", err)
	}
	if _, err := read("a.select_1"); code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("ended stream: %v", err)
	}
	for _, tc := range []struct {
		fail error
		want codes.Code
	}{
		{fmt.Errorf("stream %q: %w", "trades", arrowexec.ErrSlowConsumer), codes.ResourceExhausted},
		{errors.New("query q: division by zero"), codes.Aborted},
	} {
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() { n, err := read("trades"); done <- result{n, err} }()
		in := cat.nextTap(t)
		if err := in.Push(ctx, arrowexec.Message{Batch: makeBatch(mem, []string{"AAPL"}, []int64{1})}); err != nil {
			t.Fatal(err)
		}
		in.Fail(tc.fail)
		res := <-done
		if res.n != 1 || code(res.err) != tc.want || !strings.Contains(res.err.Error(), tc.fail.Error()) {
			t.Fatalf("tap failing with %v: %d batches, %v; want 1 and %v", tc.fail, res.n, res.err, tc.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	cat := newFakeCatalog()
	_, c, mem := startFlight(t, cat, "s3cret")
	path := &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"trades"}}
	for _, header := range []string{"", "Bearer guess", "s3cret", "Basic s3cret"} {
		ctx := context.Background()
		if header != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", header)
		}
		if _, err := c.GetFlightInfo(ctx, path); code(err) != codes.Unauthenticated {
			t.Fatalf("GetFlightInfo with %q: %v", header, err)
		}
		list, err := c.ListFlights(ctx, &flight.Criteria{})
		if err == nil {
			_, err = list.Recv()
		}
		if code(err) != codes.Unauthenticated {
			t.Fatalf("ListFlights with %q: %v", header, err)
		}
		stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte("trades")})
		if err == nil {
			_, err = stream.Recv()
		}
		if code(err) != codes.Unauthenticated {
			t.Fatalf("DoGet with %q: %v", header, err)
		}
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer s3cret")
	if _, err := c.GetFlightInfo(ctx, path); err != nil {
		t.Fatal(err)
	}
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte("trades")})
	if err != nil {
		t.Fatal(err)
	}
	cat.nextTap(t).Finish()
	r, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
}

func TestCancelledDoGetUnsubscribes(t *testing.T) {
	cat := newFakeCatalog()
	s, c, mem := startFlight(t, cat, "", WithTapDepth(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte("trades")})
	if err != nil {
		t.Fatal(err)
	}
	in := cat.nextTap(t)
	if err := in.Push(ctx, arrowexec.Message{Batch: makeBatch(mem, []string{"AAPL"}, []int64{1})}); err != nil {
		t.Fatal(err)
	}
	r, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	cancel()
	waitIdle(t, s)
	// The tap is closed: with a buffer of one and no reader, only a closed
	// Inlet accepts two messages (and releases them).
	for i := range 2 {
		if !in.TryPush(arrowexec.Message{Batch: makeBatch(mem, []string{"X"}, []int64{2})}) {
			t.Fatalf("push %d after cancel refused: the tap is still open", i)
		}
	}
	in.Finish()
}

// A batch over gRPC's default 4 MiB message limit goes through.
func TestBigBatch(t *testing.T) {
	cat := newFakeCatalog()
	_, c, mem := startFlight(t, cat, "")
	stream, err := c.DoGet(context.Background(), &flight.Ticket{Ticket: []byte("trades")})
	if err != nil {
		t.Fatal(err)
	}
	in := cat.nextTap(t)
	const rows = 50_000
	tickers, volumes := make([]string, rows), make([]int64, rows)
	long := strings.Repeat("x", 100)
	for i := range tickers {
		tickers[i], volumes[i] = long, int64(i)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = in.Push(context.Background(), arrowexec.Message{Batch: makeBatch(mem, tickers, volumes)})
		in.Finish()
	}()
	r, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() || r.RecordBatch().NumRows() != rows {
		t.Fatalf("big batch: %v", r.Err())
	}
	if r.Next() || r.Err() != nil {
		t.Fatalf("after the big batch: %v", r.Err())
	}
	wg.Wait()
}

// panickyCatalog panics where it lists its streams, as a bug in a catalog
// or a handler would.
type panickyCatalog struct{ *fakeCatalog }

func (panickyCatalog) Streams() []Stream { panic("catalog bug") }

// TestPanicInACallIsItsError: a panic while serving a call (streaming or
// unary) becomes that call's Internal error, logged with its stack; the
// server goes on serving.
func TestPanicInACallIsItsError(t *testing.T) {
	var logged bytes.Buffer
	_, c, _ := startFlight(t, panickyCatalog{newFakeCatalog()}, "", WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	ctx := context.Background()
	for range 2 {
		list, err := c.ListFlights(ctx, &flight.Criteria{})
		if err == nil {
			_, err = list.Recv()
		}
		if code(err) != codes.Internal || !strings.Contains(err.Error(), "catalog bug") {
			t.Fatalf("ListFlights: %v, want Internal naming the panic", err)
		}
		_, err = c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"trades"}})
		if code(err) != codes.Internal {
			t.Fatalf("GetFlightInfo: %v, want Internal", err)
		}
	}
	if !strings.Contains(logged.String(), "panic in a call") || !strings.Contains(logged.String(), "stack=") {
		t.Fatalf("log: %s", logged.String())
	}
}
