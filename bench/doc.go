// Package bench holds the FerrisStreams benchmark suites. They run with
// `go test -bench` (see `make bench`) and report rows/s; the figures and the
// commands that produced them are recorded in RESULTS.md.
package bench
