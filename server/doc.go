// Package server is the long-running service around the engine: a registry
// of running pipelines, the HTTP API to manage them and read their streams
// live, the metrics listener (/metrics, /debug/pprof), and bearer-token
// authentication and connection limits.
package server
