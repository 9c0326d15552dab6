package arrowexec

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// testState is a state with one value and a table of n int64s.
func testState(alloc memory.Allocator, v int64, n int) *StateWriter {
	w := &StateWriter{}
	w.SetInt("v", v)
	b := array.NewInt64Builder(alloc)
	defer b.Release()
	for i := range n {
		b.Append(v*1000 + int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	if err := w.Put("rows", array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))); err != nil {
		panic(err)
	}
	return w
}

func writeTestCheckpoint(t *testing.T, dir string, alloc memory.Allocator, id int64) {
	t.Helper()
	states := map[string]*StateWriter{"op": testState(alloc, id, 1000)}
	defer states["op"].Release()
	if _, err := writeCheckpoint(context.Background(), dir, &manifest{ID: id, Fingerprint: "f"}, states, 2); err != nil {
		t.Fatal(err)
	}
}

// checkLoaded asserts the latest intact checkpoint in dir is id, with its
// state intact.
func checkLoaded(t *testing.T, dir string, alloc memory.Allocator, id int64) {
	t.Helper()
	var skipped []string
	ck, err := loadLatestCheckpoint(dir, alloc, math.MaxInt64, func(f string, a ...any) { skipped = append(skipped, f) })
	if err != nil || ck == nil {
		t.Fatalf("load: %v, %v", ck, err)
	}
	defer ck.release()
	if ck.manifest.ID != id {
		t.Fatalf("loaded checkpoint %d, want %d (skipped %v)", ck.manifest.ID, id, skipped)
	}
	r := ck.states["op"]
	if v, err := r.Int("v"); err != nil || v != id {
		t.Fatalf("value v = %d, %v; want %d", v, err, id)
	}
	rows := r.Table("rows")
	if len(rows) != 1 || rows[0].NumRows() != 1000 {
		t.Fatalf("table rows: %v", rows)
	}
	if got := rows[0].Column(0).(*array.Int64).Value(999); got != id*1000+999 {
		t.Fatalf("row 999 = %d", got)
	}
}

// TestCheckpointStoreFallsBackOverDamage: a checkpoint whose table file
// was cut short, whose manifest was garbled, or that lacks its manifest
// (half written) is detected and the one before it is used.
func TestCheckpointStoreFallsBackOverDamage(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer alloc.AssertSize(t, 0)
	for _, damage := range []struct {
		name string
		do   func(t *testing.T, chk string)
	}{
		{"truncated table", func(t *testing.T, chk string) {
			p := filepath.Join(chk, stateFile)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"flipped byte in table", func(t *testing.T, chk string) {
			p := filepath.Join(chk, stateFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"edited manifest", func(t *testing.T, chk string) {
			p := filepath.Join(chk, manifestFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := len(b) - 1; i >= 0; i-- { // change a digit of the body
				if b[i] >= '0' && b[i] <= '8' {
					b[i]++
					break
				}
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"no manifest", func(t *testing.T, chk string) {
			if err := os.Remove(filepath.Join(chk, manifestFile)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dir := t.TempDir()
			for id := int64(1); id <= 3; id++ {
				writeTestCheckpoint(t, dir, alloc, id)
			}
			ids, err := listCheckpoints(dir)
			if err != nil || len(ids) != 2 || ids[0] != 3 || ids[1] != 2 {
				t.Fatalf("kept %v, %v; want the newest two", ids, err)
			}
			checkLoaded(t, dir, alloc, 3)
			damage.do(t, checkpointDir(dir, 3))
			checkLoaded(t, dir, alloc, 2)
		})
	}
}

// TestCheckpointStoreIgnoresTemporaries: a checkpoint still being written
// (its temporary directory) is never loaded, and the next write replaces
// the leftovers.
func TestCheckpointStoreIgnoresTemporaries(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer alloc.AssertSize(t, 0)
	dir := t.TempDir()
	writeTestCheckpoint(t, dir, alloc, 1)
	if err := os.MkdirAll(filepath.Join(dir, ".tmp-123"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123", manifestFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, dir, alloc, 1)
	if err := removeCheckpoints(dir); err != nil {
		t.Fatal(err)
	}
	if ck, err := loadLatestCheckpoint(dir, alloc, math.MaxInt64, nil); ck != nil || err != nil {
		t.Fatalf("after removing: %v, %v", ck, err)
	}
}

// TestCheckpointStoreWarnsWhenAllDamaged: when every checkpoint is
// damaged, loading starts from scratch with a warning naming them.
func TestCheckpointStoreWarnsWhenAllDamaged(t *testing.T) {
	alloc := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer alloc.AssertSize(t, 0)
	dir := t.TempDir()
	for id := int64(1); id <= 3; id++ {
		writeTestCheckpoint(t, dir, alloc, id)
	}
	for _, id := range []int64{2, 3} {
		if err := os.Remove(filepath.Join(checkpointDir(dir, id), manifestFile)); err != nil {
			t.Fatal(err)
		}
	}
	var logs []string
	ck, err := loadLatestCheckpoint(dir, alloc, math.MaxInt64, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) })
	if err != nil || ck != nil {
		t.Fatalf("load: %v, %v; want nothing", ck, err)
	}
	want := "warning: every checkpoint in " + dir + " is damaged (3, 2): starting from scratch"
	if len(logs) == 0 || logs[len(logs)-1] != want {
		t.Fatalf("logged %q, want last %q", logs, want)
	}
}
