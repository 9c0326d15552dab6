package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/server"
)

// serviceFlags are the flags of ferris server and ferris dev.
type serviceFlags struct {
	httpAddr, metricsAddr, flightAddr, kafkaAddr, token, dataDir string
}

// serve runs ferris server (or dev): the HTTP API, metrics and Arrow Flight listeners,
// with the pipelines of files registered at start, until SIGINT/SIGTERM,
// then drains every pipeline and exits.
func serve(ctx context.Context, cmd string, f serviceFlags, settings arrowexec.Settings, files []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.token == "" {
		f.token = os.Getenv("FERRIS_TOKEN")
	}
	dataDir, err := filepath.Abs(f.dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "ferris: %v\n", err)
		return 2
	}
	cfg := server.Config{
		HTTPAddr: f.httpAddr, MetricsAddr: f.metricsAddr, FlightAddr: f.flightAddr, Token: f.token, Log: stderr,
		Registry: server.RegistryConfig{
			Settings: settings, DataDir: dataDir,
			Resources:  resource.NewManager(nil, settings.MemoryLimitBytes()),
			Connectors: connectors,
		},
	}
	s, err := server.Start(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "ferris %s: %v\n", cmd, err)
		return 1
	}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err == nil {
			name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
			_, err = s.Registry.Register(name, string(src))
		}
		if err != nil {
			printErrors(stderr, path, err)
			_ = s.Shutdown()
			return 1
		}
		fmt.Fprintf(stderr, "ferris: registered %s\n", path)
	}
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "ferris %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
