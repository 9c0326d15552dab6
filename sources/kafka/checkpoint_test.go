package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/kernels/sqltypes"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var _ arrowexec.Checkpointable = (*source)(nil)

// cpSchema: id, partition, offset.
var cpSchema = arrow.NewSchema([]arrow.Field{
	field("id", sqltypes.BigInt, false), field(PartitionColumn, sqltypes.Int, false), field(OffsetColumn, sqltypes.BigInt, false),
}, nil)

// produceIDs writes records with ids [from, to) to topic, id%3 the partition.
func produceIDs(t *testing.T, c *kfake.Cluster, topic string, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: fmt.Appendf(nil, `{"id":%d}`, i)})
	}
	produce(t, c, recs...)
}

// cpRow is one row of cpSchema.
type cpRow struct {
	id, off int64
	p       int32
}

func cpRows(b arrow.RecordBatch) []cpRow {
	ids := b.Column(0).(*array.Int64)
	ps := b.Column(1).(*array.Int32)
	offs := b.Column(2).(*array.Int64)
	out := make([]cpRow, b.NumRows())
	for i := range out {
		out[i] = cpRow{ids.Value(i), offs.Value(i), ps.Value(i)}
	}
	return out
}

// readRows reads batches from src until at least n rows arrived.
func readRows(ctx context.Context, t *testing.T, src *source, n int) []cpRow {
	t.Helper()
	var rows []cpRow
	for len(rows) < n {
		msg, err := src.Next(ctx)
		if err != nil {
			t.Fatalf("after %d rows: %v", len(rows), err)
		}
		if msg.Batch == nil {
			continue
		}
		rows = append(rows, cpRows(msg.Batch)...)
		msg.Release()
	}
	return rows
}

// drainRows reads src to io.EOF.
func drainRows(ctx context.Context, t *testing.T, src *source) []cpRow {
	t.Helper()
	var rows []cpRow
	for {
		msg, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("after %d rows: %v", len(rows), err)
		}
		if msg.Batch != nil {
			rows = append(rows, cpRows(msg.Batch)...)
			msg.Release()
		}
	}
}

func decodePos(t *testing.T, b []byte) map[int32]int64 {
	t.Helper()
	var pos position
	if err := json.Unmarshal(b, &pos); err != nil {
		t.Fatalf("position %s: %v", b, err)
	}
	out := map[int32]int64{}
	for _, p := range pos.Partitions {
		out[p.Partition] = p.Offset
	}
	return out
}

// TestCheckpointResume: source A reads part of a 3-partition topic and
// takes its position; source B, seeking there, returns exactly the
// records after it: none A returned before the position, none missing.
// Variants: with and without a group; with records produced after the
// position (while A still runs and after it closed); with a group whose
// committed offsets are past the position (A commits what it read after
// taking it: the position wins).
func TestCheckpointResume(t *testing.T) {
	for _, tc := range []struct {
		name       string
		group      bool
		more       bool // produce after the position
		commitPast bool // group: A reads on after the position and commits
	}{
		{name: "direct"},
		{name: "direct_more", more: true},
		{name: "group", group: true},
		{name: "group_more", group: true, more: true},
		{name: "group_committed_past", group: true, more: true, commitPast: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const topic, n = "cp", 90
			c := newCluster(t, 3, topic)
			produceIDs(t, c, topic, 0, n)
			mem := checkedAlloc(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opts := []string{"topic", topic, "batch_size", "4", "linger_ms", "0"}
			if tc.group {
				opts = append(opts, "group_id", "cpg")
			}

			a := newSource(t, c, mem, cpSchema, nil, opts...)
			open(t, a)
			before := readRows(ctx, t, a, 30)
			pos, err := a.Position()
			if err != nil {
				t.Fatal(err)
			}
			// The position is after the rows returned, not after what the
			// client fetched ahead.
			want := map[int32]int64{0: 0, 1: 0, 2: 0}
			for _, r := range before {
				want[r.p] = max(want[r.p], r.off+1)
			}
			got := decodePos(t, pos)
			for p, w := range want {
				if got[p] != w {
					t.Errorf("position %s: partition %d at %d, want %d", pos, p, got[p], w)
				}
			}
			total := n
			if tc.more {
				produceIDs(t, c, topic, total, total+15)
				total += 15
			}
			if tc.commitPast {
				readRows(ctx, t, a, 12)
				if err := a.Commit(ctx, a.Mark()); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.more {
				produceIDs(t, c, topic, total, total+15)
				total += 15
			}

			b := newSource(t, c, mem, cpSchema, nil, append(opts, "end_offset", "latest")...)
			if err := b.Seek(pos); err != nil {
				t.Fatal(err)
			}
			open(t, b)
			after := drainRows(ctx, t, b)
			end, err := b.Position()
			if err != nil {
				t.Fatal(err)
			}
			b.Close()

			seen := map[int64]int{}
			for _, r := range before {
				seen[r.id]++
			}
			for _, r := range after {
				seen[r.id]++
				if r.off < got[r.p] {
					t.Errorf("B returned partition %d offset %d, before the position %d", r.p, r.off, got[r.p])
				}
			}
			for id := range int64(total) {
				if seen[id] != 1 {
					t.Errorf("id %d seen %d times", id, seen[id])
				}
			}
			if len(seen) != total {
				t.Errorf("%d distinct ids, want %d", len(seen), total)
			}
			// At the end, the position is the end of every partition.
			endWant := map[int32]int64{}
			for id := range total {
				endWant[int32(id%3)]++
			}
			for p, w := range endWant {
				if e := decodePos(t, end)[p]; e != w {
					t.Errorf("position at the end %s: partition %d at %d, want %d", end, p, e, w)
				}
			}
		})
	}
}

// TestCheckpointAtEnd: a bounded read restored at the end of every
// partition ends at once, with and without a group.
func TestCheckpointAtEnd(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(strconv.FormatBool(group), func(t *testing.T) {
			const topic = "end"
			c := newCluster(t, 3, topic)
			produceIDs(t, c, topic, 0, 20)
			mem := checkedAlloc(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opts := []string{"topic", topic, "batch_size", "4", "linger_ms", "0", "end_offset", "latest"}
			if group {
				opts = append(opts, "group_id", "endg")
			}
			a := newSource(t, c, mem, cpSchema, nil, opts...)
			open(t, a)
			if rows := drainRows(ctx, t, a); len(rows) != 20 {
				t.Fatalf("A read %d rows", len(rows))
			}
			pos, err := a.Position()
			if err != nil {
				t.Fatal(err)
			}
			a.Close()
			if got := decodePos(t, pos); got[0] != 7 || got[1] != 7 || got[2] != 6 {
				t.Errorf("position at the end: %s", pos)
			}

			b := newSource(t, c, mem, cpSchema, nil, opts...)
			if err := b.Seek(pos); err != nil {
				t.Fatal(err)
			}
			open(t, b)
			if rows := drainRows(ctx, t, b); len(rows) != 0 {
				t.Errorf("B read %d rows after the end", len(rows))
			}
			b.Close()
		})
	}
}

// TestCheckpointBeforeOpen: Position before Open returns the restored
// position; Seek checks the topic and the encoding.
func TestCheckpointBeforeOpen(t *testing.T) {
	c := newCluster(t, 3, "t")
	mem := checkedAlloc(t)
	s := newSource(t, c, mem, cpSchema, nil, "topic", "t")
	pos := []byte(`{"topic":"t","partitions":[{"partition":0,"offset":4,"epoch":-1},{"partition":2,"offset":9,"epoch":0}]}`)
	if err := s.Seek(pos); err != nil {
		t.Fatal(err)
	}
	got, err := s.Position()
	if err != nil || string(got) != string(pos) {
		t.Errorf("Position before Open = %s, %v; want %s", got, err, pos)
	}
	for _, bad := range []string{`{"topic":"u","partitions":[]}`, `{"topic":"t","partitions":[{"partition":0,"offset":-1}]}`, `nope`} {
		if err := s.Seek([]byte(bad)); err == nil || !strings.Contains(err.Error(), `kafka source "s"`) {
			t.Errorf("Seek(%s) = %v, want an error", bad, err)
		}
	}
}

// TestCheckpointRebalance: a member restored from a position that names
// every partition joins a group whose other member is reading. The
// partitions it is assigned start at their saved offsets; once it holds an
// assignment, its position names only the partitions it owns (the others
// are the other member's).
func TestCheckpointRebalance(t *testing.T) {
	const topic, n = "crb", 400
	c := newCluster(t, 4, topic)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: fmt.Appendf(nil, `{"id":%d}`, i)})
	}
	produce(t, c, recs...)
	mem := checkedAlloc(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mk := func() *source {
		s := newSource(t, c, mem, cpSchema, nil, "topic", topic, "group_id", "crbg", "end_offset", "latest", "batch_size", "2", "linger_ms", "0")
		s.clientOpts = append(s.clientOpts, kgo.HeartbeatInterval(50*time.Millisecond))
		return s
	}

	// A reads slowly, committing, until told to stop.
	a := mk()
	open(t, a)
	stop := make(chan struct{})
	aErr := make(chan error, 1)
	go func() {
		defer a.Close()
		for {
			select {
			case <-stop:
				aErr <- nil
				return
			default:
			}
			msg, err := a.Next(ctx)
			if errors.Is(err, io.EOF) {
				<-stop
				aErr <- nil
				return
			}
			if err != nil {
				aErr <- err
				return
			}
			msg.Release()
			if err := a.Commit(ctx, a.Mark()); err != nil {
				aErr <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	const savedAt = 50
	b := mk()
	if err := b.Seek(fmt.Appendf(nil, `{"topic":%q,"partitions":[{"partition":0,"offset":%d,"epoch":-1},{"partition":1,"offset":%[2]d,"epoch":-1},{"partition":2,"offset":%[2]d,"epoch":-1},{"partition":3,"offset":%[2]d,"epoch":-1}]}`, topic, savedAt)); err != nil {
		t.Fatal(err)
	}
	open(t, b)
	defer b.Close()
	first := map[int32]int64{} // first offset B returned of each partition
	var rows int
	shared := func() bool { // the group has split the partitions between A and B
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.assigned) > 0 && len(b.assigned) < 4
	}
	for rows < 40 || !shared() { // under load the rebalance may come late
		msg, err := b.Next(ctx)
		if err != nil {
			t.Fatalf("B after %d rows: %v", rows, err)
		}
		if msg.Batch == nil {
			continue
		}
		for _, r := range cpRows(msg.Batch) {
			if _, ok := first[r.p]; !ok {
				first[r.p] = r.off
			}
			rows++
		}
		msg.Release()
		time.Sleep(2 * time.Millisecond) // like A: the rebalance comes before B drains its partitions
	}
	pos, err := b.Position()
	if err != nil {
		t.Fatal(err)
	}
	owned := slices.Clone(b.Partitions())
	b.mu.Lock()
	assigned := len(b.assigned)
	b.mu.Unlock()
	close(stop)
	if err := <-aErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("B owns %v (%d assigned), position %s, first offsets %v", owned, assigned, pos, first)
	got := decodePos(t, pos)
	if len(got) != assigned || assigned == 4 {
		t.Errorf("B's position %s names %d partitions; B is assigned %d of 4", pos, len(got), assigned)
	}
	for p, off := range first {
		if off != savedAt {
			t.Errorf("B's first row of partition %d is at offset %d, want the saved %d", p, off, savedAt)
		}
		if !slices.Contains(owned, p) {
			continue // read before the rebalance gave it to A: not B's to report
		}
		if got[p] <= savedAt {
			t.Errorf("position of partition %d: %d, want past %d", p, got[p], savedAt)
		}
	}
}
