package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrisstreams/ferris/arrowexec"
)

var _ arrowexec.LagReporter = (*source)(nil)

// noteEndsLocked records the end of each fetched partition: its last
// stable offset (records are read committed), else its high watermark.
func (s *source) noteEndsLocked(fetches kgo.Fetches) {
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		end := fp.LastStableOffset
		if end < 0 {
			end = fp.HighWatermark
		}
		if end < 0 || fp.Err != nil {
			return
		}
		if s.ends == nil {
			s.ends = map[int32]int64{}
		}
		s.ends[fp.Partition] = end
	})
}

// Lag implements arrowexec.LagReporter: for each partition being read whose
// end is known, the records between the source's position (after the last
// record it returned, else its oldest queued record) and the partition's
// end as of its last fetch. Records fetched but not yet returned count as
// lag. It is safe for concurrent use with Next.
func (s *source) Lag() map[int32]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int32]int64, len(s.parts))
	for p, st := range s.parts {
		end, ok := s.ends[p]
		if !ok {
			continue
		}
		pos := int64(-1)
		if eo, ok := s.returned[p]; ok {
			pos = eo.Offset
		} else if st.len() > 0 {
			pos = st.queue[st.head].Offset
		}
		if pos < 0 {
			continue
		}
		out[p] = max(end-pos, 0)
	}
	return out
}

// TraceparentHeader is the record header carrying a W3C trace context.
const TraceparentHeader = "traceparent"

// maxLinks bounds the links of a batch span to distinct producer spans.
const maxLinks = 8

func noSpan(error) {}

// traceBatch starts the span of one batch of partition p, linked to the
// spans named by its records' traceparent headers (the producers'), when
// the source has a Tracer; the span ends when the returned function is
// called. Without a Tracer it costs nothing.
func (s *source) traceBatch(ctx context.Context, recs []*kgo.Record, p int32) func(error) {
	tr := s.spec.Tracer
	if tr == nil {
		return noSpan
	}
	var links []string
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key != TraceparentHeader || len(links) >= maxLinks {
				continue
			}
			v := string(h.Value)
			if len(links) == 0 || links[len(links)-1] != v {
				links = append(links, v)
			}
		}
	}
	_, end := tr.StartSpan(ctx, "ferris.kafka.source.batch", []arrowexec.Attr{
		{Key: "ferris.stream", Value: s.spec.Name}, {Key: "messaging.system", Value: "kafka"},
		{Key: "messaging.destination.name", Value: s.topic}, {Key: "messaging.kafka.partition", Value: int(p)},
		{Key: "messaging.batch.message_count", Value: len(recs)}}, links...)
	return end
}
