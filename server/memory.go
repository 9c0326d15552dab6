package server

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// DefaultMemoryShare is the share of the machine's memory (or of the
// cgroup's limit, when lower) that ferris server and dev take as their
// default max_memory_mb.
const DefaultMemoryShare = 0.5

// DefaultMemoryLimitMB is the default max_memory_mb of a server:
// DefaultMemoryShare of the memory available to the process, the lower of
// MemTotal in /proc/meminfo and the cgroup's limit (v2 memory.max or v1
// memory.limit_in_bytes). It is 0 (unlimited) when neither can be read.
func DefaultMemoryLimitMB() int64 {
	meminfo, _ := os.ReadFile("/proc/meminfo")
	cgroup, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		cgroup, _ = os.ReadFile("/sys/fs/cgroup/memory/memory.limit_in_bytes")
	}
	return int64(float64(availableMemory(string(meminfo), string(cgroup))) * DefaultMemoryShare / (1 << 20))
}

// availableMemory is the lower of MemTotal in a /proc/meminfo text and a
// cgroup memory limit ("max", or a huge v1 value, for none), in bytes; 0
// when neither is known.
func availableMemory(meminfo, cgroup string) int64 {
	var total int64
	sc := bufio.NewScanner(strings.NewReader(meminfo))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				total = kb << 10
			}
		}
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(cgroup), 10, 64)
	if err == nil && limit > 0 && (total == 0 || limit < total) {
		return limit
	}
	return total
}
