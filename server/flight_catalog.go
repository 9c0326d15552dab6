package server

import (
	"fmt"
	"net"
	"sort"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/server/flight"
)

// flightCatalog exports the streams of a Registry's pipelines over Arrow
// Flight: the same streams as GET /streams (sources, derived streams and
// bare SELECTs, finished pipelines included until they are removed).
type flightCatalog struct{ r *Registry }

var _ flight.Catalog = flightCatalog{}

// Streams implements flight.Catalog.
func (c flightCatalog) Streams() []flight.Stream {
	var out []flight.Stream
	for _, p := range c.r.List() {
		for name := range p.streams {
			if schema, ok := p.Topology().StreamSchema(name); ok {
				out = append(out, flight.Stream{Name: name, Schema: schema})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Tap implements flight.Catalog.
func (c flightCatalog) Tap(stream string, depth int) (*arrowexec.Inlet, error) {
	p, err := c.r.Stream(stream)
	if err != nil {
		return nil, fmt.Errorf("%w %q", flight.ErrUnknownStream, stream)
	}
	return p.Topology().Tap(stream, depth)
}

// startFlight opens the Arrow Flight listener (Config.FlightAddr) and
// serves it. Its encoding memory is accounted by the registry's resource
// manager under the name "flight".
func (s *Server) startFlight() error {
	l, err := net.Listen("tcp", s.cfg.FlightAddr)
	if err != nil {
		//lint:ignore ST1005 Arrow Flight is a proper name
		return fmt.Errorf("Arrow Flight listener: %w", err)
	}
	s.FlightAddr = l.Addr()
	s.flightSrv = flight.NewServer(flightCatalog{s.Registry}, s.cfg.Token,
		s.Registry.cfg.Resources.Query("flight"), flight.WithShutdownGrace(s.cfg.Grace), flight.WithLogger(s.Registry.cfg.Logger))
	go func() {
		if err := s.flightSrv.Serve(l); err != nil {
			//lint:ignore ST1005 Arrow Flight is a proper name
			s.errs <- fmt.Errorf("Arrow Flight: %w", err)
		}
	}()
	fmt.Fprintf(s.cfg.Log, "ferris: Arrow Flight on grpc://%s\n", s.FlightAddr)
	return nil
}
