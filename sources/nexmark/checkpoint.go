package nexmark

import (
	"encoding/json"
	"fmt"
)

// position is the JSON form of a nexmark source's checkpointed position.
// Events are a pure function of the generator's configuration and the
// event number (each event seeds its own random stream), so the next event
// number is all the generator needs to go on; the configuration is saved
// to check that the restored source generates the same sequence.
type position struct {
	Next                int64  `json:"next"`
	Kind                string `json:"kind"`
	Seed                uint64 `json:"seed"`
	EventRate           int64  `json:"event_rate"`
	BaseTime            int64  `json:"base_time"`
	OutOfOrderGroupSize int64  `json:"out_of_order_group_size"`
}

// Position implements arrowexec.Checkpointable: the next event number after
// the rows returned by Next (rows of a batch still being filled, after Next
// failed, are not counted), with the configuration that determines the
// sequence. After io.EOF it is the events limit. It must be called from the
// goroutine driving Next, between calls.
func (s *source) Position() ([]byte, error) {
	next := s.next
	if s.rows > 0 {
		next = s.first
	}
	cfg := s.cfg // validated by newSource: no defaults left to fill in
	b, err := json.Marshal(position{
		Next: next, Kind: s.kind.String(), Seed: cfg.Seed, EventRate: cfg.EventRate,
		BaseTime: cfg.BaseTime, OutOfOrderGroupSize: cfg.OutOfOrderGroupSize,
	})
	if err != nil {
		return nil, fmt.Errorf("nexmark source %q: position: %w", s.spec.Name, err)
	}
	return b, nil
}

// Seek implements arrowexec.Checkpointable: called before Open, it makes
// the source start at the event number pos holds. With a rate, that event
// is due when the source starts (pacing goes on from it, without catching
// up on the time in between). A position taken with another kind, seed,
// event_rate, base_time or out_of_order_group_size is an error: the
// restored source would generate another sequence.
func (s *source) Seek(b []byte) error {
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("nexmark source %q: seek: "+format, append([]any{s.spec.Name}, args...)...)
	}
	if s.opened {
		return errorf("Seek after Open")
	}
	var pos position
	if err := json.Unmarshal(b, &pos); err != nil {
		return errorf("bad position: %w", err)
	}
	if pos.Next < 0 {
		return errorf("bad position: event %d", pos.Next)
	}
	cfg := s.cfg // validated by newSource: no defaults left to fill in
	for _, d := range []struct {
		name      string
		was, want any
	}{
		{"kind", pos.Kind, s.kind.String()},
		{"seed", pos.Seed, cfg.Seed},
		{"event_rate", pos.EventRate, cfg.EventRate},
		{"base_time", pos.BaseTime, cfg.BaseTime},
		{"out_of_order_group_size", pos.OutOfOrderGroupSize, cfg.OutOfOrderGroupSize},
	} {
		if d.was != d.want {
			return errorf("the position was taken with %s %v, the source has %v", d.name, d.was, d.want)
		}
	}
	s.next = pos.Next
	return nil
}
