package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferrisstreams/ferris/server/flight"
)

// Config configures a Server. Addresses default to 127.0.0.1 listeners
// (docs/design.md, "Settings and listeners"); port 0 picks a free port.
type Config struct {
	HTTPAddr    string // API; default 127.0.0.1:8080
	MetricsAddr string // /metrics and /debug/pprof; default 127.0.0.1:9091; "-" disables
	FlightAddr  string // Arrow Flight (gRPC) export of streams; default 127.0.0.1:8815; "-" disables
	Token       string // bearer token for the API and metrics; empty: none
	// MaxConnections bounds the API requests served at once without the
	// token (max_connections; health checks and requests with the token are
	// not counted, see admit); 0 takes the Registry settings' value.
	MaxConnections int
	MaxBodyBytes   int64
	// WriteTimeout bounds writing a response of the API (default 30s);
	// streaming responses are not bounded.
	WriteTimeout time.Duration
	// Grace bounds the drain of a pipeline on DELETE and on shutdown.
	Grace    time.Duration
	Registry RegistryConfig
	// Log receives one line per listener and lifecycle event, and the
	// pipelines' log (Registry.Logger, when not set).
	Log io.Writer
	// Telemetry traces registrations and pipelines (nil: no tracing). It
	// overrides Registry.Tracer.
	Telemetry *Telemetry
}

// Server is a running FerrisStreams service.
type Server struct {
	cfg         Config
	Registry    *Registry
	API         *API
	HTTPAddr    net.Addr
	MetricsAddr net.Addr // nil when disabled
	FlightAddr  net.Addr // nil when disabled

	active     atomic.Int64
	httpSrv    *http.Server
	metricsSrv *http.Server
	flightSrv  *flight.Server
	errs       chan error
}

// Start opens the listeners and begins serving. Serve or Shutdown must
// follow.
func Start(cfg Config) (*Server, error) {
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8080"
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:9091"
	}
	if cfg.FlightAddr == "" {
		cfg.FlightAddr = "127.0.0.1:8815"
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = writeTimeout
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = cfg.Registry.Settings.MaxConnections
	}
	if cfg.Telemetry != nil {
		cfg.Registry.Tracer = cfg.Telemetry.Tracer()
	}
	if cfg.Registry.Logger == nil {
		cfg.Registry.Logger = slog.New(slog.NewTextHandler(cfg.Log, nil))
	}
	s := &Server{cfg: cfg, Registry: NewRegistry(cfg.Registry), errs: make(chan error, 3)}
	s.API = &API{Registry: s.Registry, Token: cfg.Token, MaxBodyBytes: cfg.MaxBodyBytes, Grace: cfg.Grace, Telemetry: cfg.Telemetry}
	l, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP API listener: %w", err)
	}
	s.HTTPAddr = l.Addr()
	s.httpSrv = &http.Server{Handler: admit(s.API.Handler(), cfg.Token, cfg.MaxConnections), ConnState: TrackState,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: cfg.WriteTimeout, IdleTimeout: idleTimeout}
	go s.serve(s.httpSrv, LimitListener(l, openConnections(cfg.MaxConnections), &s.active))
	fmt.Fprintf(cfg.Log, "ferris: HTTP API on http://%s\n", s.HTTPAddr)

	if cfg.MetricsAddr != "-" {
		ml, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			_ = s.httpSrv.Close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		s.MetricsAddr = ml.Addr()
		// No write timeout: /debug/pprof/profile takes its time.
		s.metricsSrv = &http.Server{Handler: s.metricsHandler(),
			ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
		go s.serve(s.metricsSrv, ml)
		fmt.Fprintf(cfg.Log, "ferris: metrics on http://%s/metrics\n", s.MetricsAddr)
	}
	if cfg.FlightAddr != "-" {
		if err := s.startFlight(); err != nil {
			_ = s.httpSrv.Close()
			if s.metricsSrv != nil {
				_ = s.metricsSrv.Close()
			}
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) metricsHandler() http.Handler {
	return MetricsHandler(s.Registry, s.Registry.Counters(&s.active), s.cfg.Token)
}

func (s *Server) serve(srv *http.Server, l net.Listener) {
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.errs <- err
	}
}

// Serve blocks until ctx ends or a listener fails, then shuts down.
func (s *Server) Serve(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errs:
	}
	return errors.Join(err, s.Shutdown())
}

// Shutdown stops accepting requests, drains every pipeline (bounded by the
// grace period, in-flight batches reach their sinks), and closes the
// listeners.
func (s *Server) Shutdown() error {
	fmt.Fprintln(s.cfg.Log, "ferris: shutting down: draining pipelines")
	// Pipelines first: their streams end, which ends live row readers.
	s.Registry.Shutdown(s.cfg.Grace)
	if s.flightSrv != nil {
		s.flightSrv.Shutdown() // bounded by the grace period, then cut off
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Grace)
	defer cancel()
	err := s.httpSrv.Shutdown(ctx)
	if s.metricsSrv != nil {
		err = errors.Join(err, s.metricsSrv.Shutdown(ctx))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil // streaming clients cut off at the deadline
	}
	return err
}
