// Package server will hold the long-running service around the engine: the
// HTTP API, /metrics, OpenTelemetry setup, the Arrow Flight server, pprof
// and authentication. It is empty until the Kafka/server issue lands; the
// layering test already reserves its place (it may import every engine
// package, and only cmd may import it).
package server
