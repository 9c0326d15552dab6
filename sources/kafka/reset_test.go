package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes (a log).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestBrokerRestart: the broker a source reads from stops and starts again
// on the same port without its data (as the in-memory broker of ferris dev
// does). The source reconnects, reads the records produced after the
// restart, each once, from the start of the new topic (start_offset
// earliest: the old offsets are gone), logs the outage and the reset, counts
// the reset, and commits offsets of the new topic only.
func TestBrokerRestart(t *testing.T) {
	for _, group := range []string{"", "grp"} {
		t.Run("group="+group, func(t *testing.T) { brokerRestart(t, group, false) })
		// The topic is created again only a while after the restart.
		t.Run("group="+group+",late_topic", func(t *testing.T) { brokerRestart(t, group, true) })
	}
}

func brokerRestart(t *testing.T, group string, lateTopic bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	start := func(topics ...string) *kfake.Cluster {
		t.Helper()
		var c *kfake.Cluster
		for range 50 { // the old listener's port may take a moment to free
			if c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(3, topics...)); err == nil {
				return c
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal(err)
		return nil
	}
	c := start("t")
	mem := checkedAlloc(t)
	extra := []string{"topic", "t", "linger_ms", "0"}
	if group != "" {
		extra = append(extra, "group_id", group)
	}
	src := newSource(t, c, mem, cpSchema, nil, extra...)
	var log syncBuffer
	src.spec.Logger = slog.New(slog.NewTextHandler(&log, nil))
	open(t, src)
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produceIDs(t, c, "t", 0, 30)
	if rows := readRows(ctx, t, src, 30); len(rows) != 30 {
		t.Fatalf("before the restart: %d rows", len(rows))
	}
	if err := src.Commit(ctx, src.Mark()); err != nil {
		t.Fatal(err)
	}

	c.Close()
	// The outage is logged while it lasts.
	for !strings.Contains(log.String(), "cannot reach broker") {
		wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := src.Next(wctx)
		wcancel()
		if ctx.Err() != nil {
			t.Fatalf("the outage was not logged (%v):\n%s", err, log.String())
		}
	}
	if lateTopic {
		c = start()
		// Meanwhile the source fails to read on, with errors the engine
		// retries.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
			wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err := src.Next(wctx)
			wcancel()
			if err != nil && !errors.Is(err, arrowexec.ErrTransient) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("while the topic is missing: %v", err)
			}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		_, err = kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "t")
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
	} else {
		c = start("t")
	}
	defer c.Close()
	produceIDs(t, c, "t", 30, 36)
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	var ids []int64
	var mark any
	for len(ids) < 6 {
		msg, err := src.Next(rctx)
		if errors.Is(err, arrowexec.ErrTransient) {
			continue // the engine retries these
		}
		if err != nil {
			t.Fatalf("after the restart, with ids %v: %v\nlog:\n%s", ids, err, log.String())
		}
		mark = src.Mark()
		if msg.Batch != nil {
			for _, r := range cpRows(msg.Batch) {
				ids = append(ids, r.id)
			}
			msg.Release()
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{30, 31, 32, 33, 34, 35}) {
		t.Errorf("after the restart: ids %v, want 30..35", ids)
	}
	if src.OffsetResets() == 0 {
		t.Error("no offset reset counted")
	}
	if !strings.Contains(log.String(), "following start_offset earliest") || !strings.Contains(log.String(), "again") {
		t.Errorf("the reset was not logged:\n%s", log.String())
	}
	// Nothing more arrives (nothing is read twice).
	qctx, qcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer qcancel()
	for {
		msg, err := src.Next(qctx)
		if err != nil {
			break
		}
		if msg.Batch != nil {
			t.Errorf("read again: %v", cpRows(msg.Batch))
			msg.Release()
		}
	}
	if group == "" {
		return
	}
	// The group commits offsets of the new topic: 2 records per partition.
	if err := src.Commit(ctx, mark); err != nil {
		t.Fatal(err)
	}
	checkCommitted(ctx, t, c, group, "t", 3, 2)
}

// TestRestoredOffsetsGone: a source restored from a checkpoint taken before
// the broker lost its data (restarted empty) finds its saved offsets past
// the end of each partition. It follows start_offset earliest, reading the
// records the new topic has, each once, and logs and counts the reset.
func TestRestoredOffsetsGone(t *testing.T) {
	for _, group := range []string{"", "grp"} {
		t.Run("group="+group, func(t *testing.T) {
			mem := checkedAlloc(t)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			extra := []string{"topic", "t", "linger_ms", "0"}
			if group != "" {
				extra = append(extra, "group_id", group)
			}
			old := newCluster(t, 3, "t")
			produceIDs(t, old, "t", 0, 30)
			src := newSource(t, old, mem, cpSchema, nil, extra...)
			open(t, src)
			readRows(ctx, t, src, 30)
			pos, err := src.Position()
			src.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := decodePos(t, pos); got[0] != 10 || got[1] != 10 || got[2] != 10 {
				t.Fatalf("position %v, want 10 per partition", got)
			}

			c := newCluster(t, 3, "t") // the broker, back without its data
			produceIDs(t, c, "t", 30, 36)
			src = newSource(t, c, mem, cpSchema, nil, extra...)
			var log syncBuffer
			src.spec.Logger = slog.New(slog.NewTextHandler(&log, nil))
			if err := src.Seek(pos); err != nil {
				t.Fatal(err)
			}
			open(t, src)
			defer src.Close()
			var ids []int64
			for _, r := range readRows(ctx, t, src, 6) {
				ids = append(ids, r.id)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, []int64{30, 31, 32, 33, 34, 35}) {
				t.Errorf("ids %v, want 30..35", ids)
			}
			if n := src.OffsetResets(); n != 3 {
				t.Errorf("%d offset resets, want 3 (one per partition)", n)
			}
			if !strings.Contains(log.String(), "lost offsets of partition") {
				t.Errorf("the reset was not logged:\n%s", log.String())
			}
		})
	}
}
