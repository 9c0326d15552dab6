package arrowexec

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// quietSource sends one batch of rows, then only heartbeats (watermark-only
// messages) every tick until total heartbeats were sent.
type quietSource struct {
	rowSource
	sentRows   bool
	heartbeats int
	tick       time.Duration
	ended      bool
}

func (s *quietSource) Next(ctx context.Context) (Message, error) {
	if !s.sentRows {
		s.sentRows = true
		m, err := s.rowSource.Next(ctx)
		m.Watermark = NoWatermark // processing time: sources send none
		return m, err
	}
	if s.heartbeats == 0 {
		s.ended = true
		return Message{}, io.EOF
	}
	s.heartbeats--
	time.Sleep(s.tick)
	return Message{Watermark: NoWatermark}, nil
}

func TestProcessingTimeWindowsCloseOnHeartbeats(t *testing.T) {
	for _, session := range []bool{false, true} {
		alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
		keys := ptrs(1, 1, 2)
		rows := []aggRow{{k: keys[0]}, {k: keys[1]}, {k: keys[2]}}
		src := &quietSource{rowSource: rowSource{alloc: alloc, rows: rows, size: 10}, heartbeats: 50, tick: 10 * time.Millisecond}
		cfg := aggTestConfig(t, &WindowSpec{Kind: Tumbling, Size: 50, Advance: 50}, LateDataSpec{Strategy: "drop"}, false, nil)
		cfg.TimeCol, cfg.WMCol = -1, -1
		var op Operator
		var err error
		if session {
			cfg.Window = &WindowSpec{Kind: Session, Gap: 50}
			op, err = NewSessionAggregate(alloc, src, cfg)
		} else {
			op, err = NewAggregate(alloc, src, cfg)
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := op.Open(ctx); err != nil {
			t.Fatal(err)
		}
		var counted int64
		for {
			m, err := op.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Batch != nil {
				if src.ended {
					t.Errorf("session=%v: window emitted only at the end of input", session)
				}
				counted += m.Batch.NumRows()
			}
			m.Release()
		}
		if counted != 2 {
			t.Errorf("session=%v: %d groups emitted, want 2", session, counted)
		}
		op.Close()
		alloc.AssertSize(t, 0)
	}
}
