package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// TestPipelineMemoryLimit: SET max_memory_mb in a registered pipeline
// bounds that pipeline (its group table of 200,000 keys needs several MB):
// it fails with the memory-limit error instead of growing, while the same
// query without the SET, on the same server, runs to its end.
func TestPipelineMemoryLimit(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	mgr := resource.NewManager(alloc, 0)
	settings := arrowexec.DefaultSettings()
	settings.MemoryWaitMS = 0
	r := NewRegistry(RegistryConfig{
		Settings: settings, DataDir: t.TempDir(), Resources: mgr,
		Connectors: testConnectors,
	})
	defer r.Shutdown(time.Second)
	const query = `CREATE STREAM %s (id BIGINT, ticker VARCHAR) WITH (connector = 'generator', rows = '200000');
SELECT id, COUNT(*) AS n FROM %[1]s GROUP BY id;`
	wait := func(p *Pipeline) error {
		select {
		case <-p.Done():
			return p.Err()
		case <-time.After(30 * time.Second):
			t.Fatalf("pipeline %s still running", p.Name)
			return nil
		}
	}

	small, err := r.Register("small", "SET max_memory_mb = 1;\n"+fmt.Sprintf(query, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(small); !errors.Is(err, resource.ErrMemoryLimit) {
		t.Fatalf("small: %v, want the memory-limit error", err)
	}
	if peak := mgr.Peak(); peak > 1<<20 {
		t.Fatalf("peak %d bytes past the pipeline's 1 MB", peak)
	}

	big, err := r.Register("big", fmt.Sprintf(query, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(big); err != nil {
		t.Fatalf("big: %v", err)
	}
	if peak := mgr.Peak(); peak <= 1<<20 {
		t.Fatalf("peak %d bytes: the query does not need more than 1 MB, the test proves nothing", peak)
	}
}

// TestAvailableMemory: the lower of MemTotal and the cgroup's limit, which
// may be absent ("max", or v1's huge "unlimited" value).
func TestAvailableMemory(t *testing.T) {
	const meminfo = "MemTotal:       16384000 kB\nMemFree:         1000 kB\n"
	for _, tc := range []struct {
		meminfo, cgroup string
		want            int64
	}{
		{meminfo, "", 16384000 << 10},
		{meminfo, "max\n", 16384000 << 10},
		{meminfo, "9223372036854771712\n", 16384000 << 10},
		{meminfo, "2147483648\n", 2 << 30},
		{"", "2147483648\n", 2 << 30},
		{"", "", 0},
	} {
		if got := availableMemory(tc.meminfo, tc.cgroup); got != tc.want {
			t.Errorf("availableMemory(%q, %q) = %d, want %d", tc.meminfo, tc.cgroup, got, tc.want)
		}
	}
	if mb := DefaultMemoryLimitMB(); mb <= 0 {
		t.Errorf("DefaultMemoryLimitMB() = %d on this machine", mb)
	}
}
