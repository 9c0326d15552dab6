package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
	"github.com/ferrisstreams/ferris/schemaregistry"
	"github.com/ferrisstreams/ferris/server"
	kafkasrc "github.com/ferrisstreams/ferris/sources/kafka"
)

// serviceFlags are the flags of ferris server and ferris dev.
type serviceFlags struct {
	httpAddr, metricsAddr, flightAddr, kafkaAddr, registryAddr, token, dataDir string
	allowPaths                                                                 listFlag
	allowBrokers                                                               string
}

// listFlag collects a repeated flag's values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// serve runs ferris server (or dev): the HTTP API, metrics and Arrow Flight
// listeners, with the pipelines of files registered at start, until
// SIGINT/SIGTERM, then drains every pipeline and exits. ferris dev also runs
// an in-process Kafka-compatible broker that Kafka connectors use unless
// they name brokers, and a schema registry they use unless they name one.
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
	allowPaths := make([]string, len(f.allowPaths))
	for i, p := range f.allowPaths {
		if allowPaths[i], err = filepath.Abs(p); err != nil {
			fmt.Fprintf(stderr, "ferris: --allow-path: %v\n", err)
			return 2
		}
	}
	var allowBrokers []string
	for _, b := range strings.Split(f.allowBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			allowBrokers = append(allowBrokers, b)
		}
	}
	var kafka kafkasrc.Config
	if cmd == "dev" {
		broker, err := startDevBroker(f.kafkaAddr)
		if err != nil {
			fmt.Fprintf(stderr, "ferris dev: %v\n", err)
			return 1
		}
		defer broker.Close()
		kafka.Brokers = broker.ListenAddrs()
		kafka.AutoCreateTopics = true
		if len(allowBrokers) > 0 {
			allowBrokers = append(allowBrokers, kafka.Brokers...)
		}
		fmt.Fprintf(stderr, "ferris: Kafka-compatible dev broker on %s (topics are created on first use)\n", kafka.Brokers[0])
		if f.registryAddr != "-" {
			url, stopRegistry, err := startDevRegistry(f.registryAddr)
			if err != nil {
				fmt.Fprintf(stderr, "ferris dev: --registry-addr %q: %v\n", f.registryAddr, err)
				return 1
			}
			defer stopRegistry()
			kafka.SchemaRegistry = url
			fmt.Fprintf(stderr, "ferris: schema registry on %s\n", url)
		}
	}
	tel, stopTelemetry, err := startTelemetry(ctx, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "ferris %s: %v\n", cmd, err)
		return 2
	}
	defer stopTelemetry()
	cfg := server.Config{
		HTTPAddr: f.httpAddr, MetricsAddr: f.metricsAddr, FlightAddr: f.flightAddr, Token: f.token, Log: stderr, Telemetry: tel,
		Registry: server.RegistryConfig{
			Settings: settings, DataDir: dataDir, AllowPaths: allowPaths, AllowBrokers: allowBrokers,
			Resources:  resource.NewManager(nil, settings.MemoryLimitBytes()),
			Connectors: connectorsFor(kafka),
			Logf:       func(format string, args ...any) { fmt.Fprintf(stderr, "ferris: "+format+"\n", args...) },
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

// startDevBroker starts the in-process Kafka-compatible broker of ferris dev
// (franz-go's kfake) on addr, which must be on 127.0.0.1 (kfake listens
// there only); port 0 picks a free port. Topics are created on first use
// with 3 partitions; data lives in memory.
func startDevBroker(addr string) (*kfake.Cluster, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--kafka-addr %q: %w", addr, err)
	}
	if host != "127.0.0.1" && host != "localhost" {
		return nil, fmt.Errorf("--kafka-addr %q: the dev broker listens on 127.0.0.1 only", addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--kafka-addr %q: bad port", addr)
	}
	return kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
}

// startDevRegistry serves an in-memory schema registry (package
// schemaregistry) on addr and returns its URL and a function stopping it.
func startDevRegistry(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: schemaregistry.New(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
