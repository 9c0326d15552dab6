//go:build !unix

package server

// processCPUSeconds is not measured on this platform: ferris_cpu_usage_percent
// reads 0.
func processCPUSeconds() float64 { return 0 }
