package server

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	arrowflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const ticksDDL = `CREATE STREAM ticks (ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'generator', rows = '0', rate = '2000');
SELECT ticker, volume FROM ticks;`

// flightClient connects to the server's Flight listener; the returned
// allocator (checked at the end) decodes what the client reads.
func flightClient(t *testing.T, s *Server, opts ...grpc.DialOption) (arrowflight.Client, *memory.CheckedAllocator) {
	t.Helper()
	if s.FlightAddr == nil {
		t.Fatal("no Flight listener")
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	c, err := arrowflight.NewClientWithMiddleware(s.FlightAddr.String(), nil, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() {
		c.Close()
		mem.AssertSize(t, 0)
	})
	return c, mem
}

func doGet(t *testing.T, ctx context.Context, c arrowflight.Client, mem memory.Allocator, stream string) (*arrowflight.Reader, error) {
	t.Helper()
	s, err := c.DoGet(ctx, &arrowflight.Ticket{Ticket: []byte(stream)})
	if err != nil {
		return nil, err
	}
	return arrowflight.NewRecordReader(s, ipc.WithAllocator(mem))
}

// waitFlightIdle waits until no DoGet runs on the server (every tap closed).
func waitFlightIdle(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.flightSrv.ActiveStreams() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d Flight streams still open", s.flightSrv.ActiveStreams())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fieldsOf(s *arrow.Schema) string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name+":"+f.Type.String())
	}
	return strings.Join(out, ",")
}

func TestFlightExportsLiveStreams(t *testing.T) {
	s, _ := startServer(t, "", 0)
	if _, err := s.Registry.Register("live", ticksDDL); err != nil {
		t.Fatal(err)
	}
	big, err := s.Registry.Register("big", tradesDDL+"\nSELECT ticker, price, volume FROM trades WHERE volume > 1000;")
	if err != nil {
		t.Fatal(err)
	}
	<-big.Done()
	c, mem := flightClient(t, s)
	ctx := context.Background()

	list, err := c.ListFlights(ctx, &arrowflight.Criteria{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for {
		info, err := list.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		schema, err := arrowflight.DeserializeSchema(info.Schema, mem)
		if err != nil {
			t.Fatal(err)
		}
		name := info.FlightDescriptor.Path[0]
		if string(info.Endpoint[0].Ticket.Ticket) != name || info.TotalRecords != -1 {
			t.Fatalf("%s: %v", name, info)
		}
		got[name] = fieldsOf(schema)
	}
	want := map[string]string{
		"live":   "ticker:utf8,volume:int64",
		"ticks":  "ticker:utf8,price:decimal(18, 4),volume:int64,trade_time:timestamp[ms, tz=UTC]",
		"big":    "ticker:utf8,price:decimal(10, 2),volume:int64",
		"trades": "ticker:utf8,price:decimal(10, 2),volume:int64",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("stream %s: %q, want %q (all: %v)", name, got[name], w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("streams %v", got)
	}

	// Live rows, as they are produced.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := doGet(t, ctx, c, mem, "live")
	if err != nil {
		t.Fatal(err)
	}
	if fieldsOf(r.Schema()) != want["live"] {
		t.Fatalf("DoGet schema %v", r.Schema())
	}
	ticker := regexp.MustCompile(`^[A-Z]{1,4}$`)
	rows := 0
	for batches := 0; batches < 3; batches++ {
		if !r.Next() {
			t.Fatalf("live stream ended: %v", r.Err())
		}
		b := r.RecordBatch()
		tickers, volumes := b.Column(0).(*array.String), b.Column(1).(*array.Int64)
		for i := range int(b.NumRows()) {
			if !ticker.MatchString(tickers.Value(i)) || volumes.Value(i) < 1 || volumes.Value(i) > 100_000 {
				t.Fatalf("row %d: %q %d", i, tickers.Value(i), volumes.Value(i))
			}
		}
		rows += int(b.NumRows())
		if meta := r.LatestAppMetadata(); meta != nil {
			if _, err := strconv.ParseInt(string(meta), 10, 64); err != nil {
				t.Fatalf("app_metadata %q: %v", meta, err)
			}
		}
	}
	if rows == 0 {
		t.Fatal("no live rows")
	}
	// Cancelling the call closes its tap.
	cancel()
	r.Release()
	waitFlightIdle(t, s)

	ctx = context.Background()
	if _, err := doGet(t, ctx, c, mem, "nope"); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown stream: %v", err)
	}
	if _, err := doGet(t, ctx, c, mem, "big"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("stream of a finished pipeline: %v", err)
	}
	d := &arrowflight.FlightDescriptor{Type: arrowflight.DescriptorPATH, Path: []string{"live"}}
	res, err := c.GetSchema(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if schema, err := arrowflight.DeserializeSchema(res.Schema, mem); err != nil || fieldsOf(schema) != want["live"] {
		t.Fatalf("GetSchema: %v %v", schema, err)
	}
	if _, err := c.GetFlightInfo(ctx, &arrowflight.FlightDescriptor{Type: arrowflight.DescriptorPATH, Path: []string{"nope"}}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetFlightInfo of an unknown stream: %v", err)
	}
}

func TestFlightReadsABoundedStreamToItsEnd(t *testing.T) {
	s, _ := startServer(t, "", 0)
	p, err := s.Registry.Register("counted", `CREATE STREAM g (id BIGINT, ticker VARCHAR)
WITH (connector = 'generator', rows = '4000', rate = '2000', batch_size = '100');
SELECT id, ticker FROM g;`)
	if err != nil {
		t.Fatal(err)
	}
	c, mem := flightClient(t, s)
	r, err := doGet(t, context.Background(), c, mem, "counted")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	next, rows := int64(-1), 0
	for r.Next() {
		ids := r.RecordBatch().Column(0).(*array.Int64)
		for i := range ids.Len() {
			if next >= 0 && ids.Value(i) != next {
				t.Fatalf("id %d after %d: a row was lost", ids.Value(i), next-1)
			}
			next = ids.Value(i) + 1
			rows++
		}
	}
	if r.Err() != nil {
		t.Fatalf("end of a bounded stream: %v", r.Err())
	}
	if next != 4000 || rows == 0 {
		t.Fatalf("read %d rows ending before id %d, want the stream to end after id 3999", rows, next)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the pipeline still runs after its stream ended")
	}
	waitFlightIdle(t, s)
}

func TestFlightBearerToken(t *testing.T) {
	s, _ := startServer(t, "s3cret", 0)
	if _, err := s.Registry.Register("live", ticksDDL); err != nil {
		t.Fatal(err)
	}
	c, mem := flightClient(t, s)
	list := func(ctx context.Context) error {
		l, err := c.ListFlights(ctx, &arrowflight.Criteria{})
		if err == nil {
			_, err = l.Recv()
		}
		return err
	}
	ctx := context.Background()
	if err := list(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v", err)
	}
	if _, err := doGet(t, metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer guess"), c, mem, "live"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("DoGet with a wrong token: %v", err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	if err := list(ctx); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := doGet(t, ctx, c, mem, "live")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	cancel()
	r.Release()
	waitFlightIdle(t, s)
}

// A reader that stops reading is cut off with ResourceExhausted once it
// falls a tap buffer behind; the pipeline never waits for it.
func TestFlightSlowReaderIsCutOff(t *testing.T) {
	s, _ := startServer(t, "", 0)
	p, err := s.Registry.Register("fast", `CREATE STREAM ticks (ticker VARCHAR, volume BIGINT)
WITH (connector = 'generator', rows = '0', rate = '5000', batch_size = '10');
SELECT ticker, volume FROM ticks;`)
	if err != nil {
		t.Fatal(err)
	}
	// Small fixed gRPC windows: at most about 128 KiB in flight before the
	// server's sends block (no BDP-driven window growth).
	c, mem := flightClient(t, s, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	r, err := doGet(t, context.Background(), c, mem, "fast")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	rowsOut := func() int64 { return s.Registry.Status(p).RowsOut }
	// The stream is tapped (its first batch arrived). Without reading, let
	// the pipeline produce well over the gRPC windows plus the tap buffer
	// (~450 bytes and 10 rows a batch, 64 batches).
	start := rowsOut()
	for deadline := time.Now().Add(60 * time.Second); rowsOut() < start+15_000; {
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline stalled at %d rows out (started at %d)", rowsOut(), start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for r.Next() {
	}
	if status.Code(r.Err()) != codes.ResourceExhausted || !strings.Contains(r.Err().Error(), "too slow") {
		t.Fatalf("slow reader: %v", r.Err())
	}
	cut := rowsOut()
	for deadline := time.Now().Add(20 * time.Second); rowsOut() <= cut; {
		if time.Now().After(deadline) {
			t.Fatal("the pipeline stopped after its reader was cut off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Registry.Status(p); st.State != "running" {
		t.Fatalf("pipeline %s: %s", st.State, st.Error)
	}
	waitFlightIdle(t, s)
}
