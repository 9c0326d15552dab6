// Package flight exports the live streams of running pipelines over Arrow
// Flight (gRPC), so analytics tools (pyarrow, DuckDB, Polars, Arrow Flight
// clients in any language) read results as they are produced.
//
// The service is read-only:
//
//	ListFlights              one FlightInfo per stream: descriptor PATH [name],
//	                         its Arrow schema, one endpoint whose ticket is the
//	                         stream name (on this server), total_records -1
//	GetFlightInfo, GetSchema for a PATH descriptor [name]
//	DoGet(ticket = name)     the stream's record batches from now on
//
// Every other method is Unimplemented. A panic while serving a call is that
// call's Internal error (logged with its stack). Errors carry gRPC codes: NotFound for
// an unknown stream, InvalidArgument for a CMD (or malformed) descriptor,
// FailedPrecondition for a stream that has already ended, Unauthenticated
// for a missing or wrong token, ResourceExhausted for a reader that fell
// too far behind (arrowexec.ErrSlowConsumer) or the memory limit, Aborted
// when the pipeline producing the stream failed.
//
// DoGet taps the stream (see arrowexec.Topology.Tap): the pipeline never
// waits for a Flight reader; a reader more than the tap's buffer behind is
// cut off with ResourceExhausted. Batches are sent as they arrive; when the
// stream ends (a bounded input was exhausted, the pipeline was removed or
// the server shuts down) the call ends cleanly and the client sees the end
// of the stream. A stream that ends before its first batch still sends its
// schema. Watermark-only messages are not sent; each batch carries the
// stream's watermark as of its end in the FlightData app_metadata, as
// decimal milliseconds since the Unix epoch (e.g. "1704067205000"; no
// app_metadata before the first watermark, "9223372036854775807" for the
// final watermark of a bounded stream).
//
// This package does not import package server: server adapts its registry
// to Catalog.
package flight

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// MaxSendMsgSize bounds one gRPC message the server sends: one record
// batch with its IPC header. gRPC's default of 4 MiB is too small for big
// batches (batch_size rows of wide string columns); a batch encoded over
// this fails the DoGet with ResourceExhausted. Clients in Go must raise
// their own receive limit to read batches over 4 MiB
// (grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(flight.MaxSendMsgSize)));
// Arrow C++/pyarrow clients have no receive limit by default.
const MaxSendMsgSize = 64 << 20

// DefaultTapDepth is how many messages a DoGet may lag behind its stream
// before it is cut off with ResourceExhausted.
const DefaultTapDepth = 64

// DefaultShutdownGrace bounds how long Shutdown waits for calls in flight.
const DefaultShutdownGrace = 5 * time.Second

// ErrUnknownStream is wrapped by Catalog.Tap errors for a stream that does
// not exist; DoGet answers it with NotFound.
var ErrUnknownStream = errors.New("unknown stream")

// Stream is an exported stream and its Arrow schema (visible columns).
type Stream struct {
	Name   string
	Schema *arrow.Schema
}

// Catalog is what the Flight server exports: the streams of the running
// pipelines. Implementations must be safe for concurrent use.
type Catalog interface {
	// Streams lists the exported streams, sorted by name.
	Streams() []Stream
	// Tap subscribes to a stream from now on with a buffer of depth
	// messages (see arrowexec.Topology.Tap). The caller closes the Inlet.
	// Errors wrap ErrUnknownStream for an unknown stream and
	// arrowexec.ErrStreamEnded for one that has ended.
	Tap(stream string, depth int) (*arrowexec.Inlet, error)
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets where a call's panic is logged, with its stack
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithTapDepth sets how many messages a reader may lag behind a stream
// before it is cut off (default DefaultTapDepth; at least 1).
func WithTapDepth(n int) Option {
	return func(s *Server) { s.depth = max(n, 1) }
}

// WithShutdownGrace bounds how long Shutdown waits for calls in flight
// before cutting them off (default DefaultShutdownGrace).
func WithShutdownGrace(d time.Duration) Option {
	return func(s *Server) {
		if d > 0 {
			s.grace = d
		}
	}
}

// Server is an Arrow Flight service over a Catalog. Its methods are safe
// for concurrent use; each call is served on its own goroutine.
type Server struct {
	flight.BaseFlightServer

	cat    Catalog
	token  string
	alloc  memory.Allocator
	depth  int
	grace  time.Duration
	grpc   *grpc.Server
	active atomic.Int64 // DoGet calls in progress
	log    *slog.Logger
}

var _ flight.FlightServer = (*Server)(nil)

// NewServer returns a Flight server over cat. When token is not empty every
// call needs the gRPC metadata "authorization: Bearer <token>". alloc
// serves the IPC encoding of batches and schemas (memory.DefaultAllocator
// when nil); every allocation is released when its message has been sent.
func NewServer(cat Catalog, token string, alloc memory.Allocator, opts ...Option) *Server {
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	s := &Server{cat: cat, token: token, alloc: alloc, depth: DefaultTapDepth, grace: DefaultShutdownGrace, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	s.grpc = grpc.NewServer(
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.authUnary),
		grpc.ChainStreamInterceptor(s.recoverStream, s.authStream),
	)
	flight.RegisterFlightServiceServer(s.grpc, s)
	return s
}

// Serve accepts connections on l until Shutdown; it returns nil after
// Shutdown and the listener's error otherwise. It closes l.
func (s *Server) Serve(l net.Listener) error {
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops accepting calls and waits for those in flight, for at
// most the shutdown grace; then it cuts the rest off (their clients see
// Unavailable or Canceled). Streams still open at that point are usually
// readers that stopped reading: end the pipelines first so the others
// finish cleanly. Shutdown is idempotent.
func (s *Server) Shutdown() {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(s.grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.grpc.Stop()
		<-done
	}
}

// ActiveStreams is the number of DoGet calls in progress.
func (s *Server) ActiveStreams() int64 { return s.active.Load() }

// authorized reports whether the call's metadata carries the token; the
// comparison is constant-time (a copy of server.Authorized, which this
// package cannot import).
func (s *Server) authorized(ctx context.Context) error {
	if s.token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		got, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, `missing or wrong bearer token (send gRPC metadata "authorization: Bearer <token>")`)
}

func (s *Server) authUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorized(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorized(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

// recovered turns a panic of a call's handler into the call's Internal
// error, with the stack in the log, so that one call never ends the
// process; it is deferred by the recovering interceptors.
func (s *Server) recovered(method string, err *error) {
	if v := recover(); v != nil {
		s.log.Error("flight: panic in a call", "method", method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in %s: %v", method, v)
	}
}

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (_ any, err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(srv, ss)
}

// info describes one stream.
func (s *Server) info(st Stream) *flight.FlightInfo {
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(st.Schema, s.alloc),
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{st.Name}},
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: []byte(st.Name)}}},
		TotalRecords:     -1,
		TotalBytes:       -1,
		Ordered:          true,
	}
}

// ListFlights lists every stream; criteria are ignored.
func (s *Server) ListFlights(_ *flight.Criteria, stream flight.FlightService_ListFlightsServer) error {
	for _, st := range s.cat.Streams() {
		if err := stream.Send(s.info(st)); err != nil {
			return err
		}
	}
	return nil
}

// lookup finds the stream a PATH descriptor [name] names.
func (s *Server) lookup(d *flight.FlightDescriptor) (Stream, error) {
	if d == nil || d.Type != flight.DescriptorPATH || len(d.Path) != 1 {
		return Stream{}, status.Errorf(codes.InvalidArgument, "want a PATH descriptor with one element, the stream name; got %v", d)
	}
	for _, st := range s.cat.Streams() {
		if st.Name == d.Path[0] {
			return st, nil
		}
	}
	return Stream{}, status.Errorf(codes.NotFound, "%v %q", ErrUnknownStream, d.Path[0])
}

// GetFlightInfo describes the stream a PATH descriptor [name] names.
func (s *Server) GetFlightInfo(_ context.Context, d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	st, err := s.lookup(d)
	if err != nil {
		return nil, err
	}
	return s.info(st), nil
}

// GetSchema returns the schema of the stream a PATH descriptor [name]
// names.
func (s *Server) GetSchema(_ context.Context, d *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	st, err := s.lookup(d)
	if err != nil {
		return nil, err
	}
	return &flight.SchemaResult{Schema: flight.SerializeSchema(st.Schema, s.alloc)}, nil
}

// DoGet streams the batches of the stream the ticket names from now on,
// until the stream ends (nil: the client sees the end of the stream), the
// client goes away, or the tap fails.
func (s *Server) DoGet(t *flight.Ticket, stream flight.FlightService_DoGetServer) (err error) {
	s.active.Add(1)
	defer s.active.Add(-1)
	defer func() {
		if errors.Is(err, resource.ErrMemoryLimit) {
			err = status.Error(codes.ResourceExhausted, err.Error())
		}
	}()
	defer resource.Recover(&err) // a *LimitError panic from a resource allocator
	name := string(t.GetTicket())
	tap, err := s.cat.Tap(name, s.depth)
	switch {
	case errors.Is(err, ErrUnknownStream):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, arrowexec.ErrStreamEnded):
		return status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return status.Error(codes.Internal, err.Error())
	}
	defer tap.Close()
	ctx := stream.Context()
	w := flight.NewRecordWriter(stream, ipc.WithSchema(tap.Schema()), ipc.WithAllocator(s.alloc))
	defer w.Close() // idempotent; after a failed send it only releases
	for {
		msg, err := tap.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			return w.Close() // sends the schema if no batch was sent
		case ctx.Err() != nil:
			msg.Release()
			return status.FromContextError(ctx.Err()).Err()
		case errors.Is(err, arrowexec.ErrSlowConsumer), errors.Is(err, resource.ErrMemoryLimit):
			return status.Error(codes.ResourceExhausted, err.Error())
		case err != nil:
			return status.Error(codes.Aborted, fmt.Sprintf("stream %q failed: %v", name, err))
		}
		if msg.Batch == nil {
			continue // watermark only: it travels with the next batch
		}
		var meta []byte
		if msg.Watermark != arrowexec.NoWatermark {
			meta = strconv.AppendInt(nil, msg.Watermark, 10)
		}
		err = w.WriteWithAppMetadata(msg.Batch, meta)
		msg.Release()
		if err != nil {
			if _, ok := status.FromError(err); ok {
				return err // the transport's status (client gone, ...)
			}
			return status.Error(codes.Internal, fmt.Sprintf("stream %q: %v", name, err))
		}
	}
}
