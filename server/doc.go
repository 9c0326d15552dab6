// Package server is the long-running service around the engine: a registry
// of running pipelines, the HTTP API to manage them, read their streams
// live and profile them, the metrics listener (/metrics, /debug/pprof),
// OpenTelemetry tracing setup (telemetry.go: the engine's arrowexec.Tracer
// over the OTel SDK, exporters from the OTEL_* variables), and bearer-token
// authentication and connection limits.
package server
