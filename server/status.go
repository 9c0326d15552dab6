package server

import (
	"sort"
	"strings"
	"time"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// PipelineStatus is what the API reports about a pipeline.
type PipelineStatus struct {
	Name          string         `json:"name"`
	State         string         `json:"state"` // running, finished or failed
	Error         string         `json:"error,omitempty"`
	Created       time.Time      `json:"created"`
	CorrelationID string         `json:"correlation_id"`
	SQL           string         `json:"sql"`
	RowsIn        int64          `json:"rows_in"`
	RowsOut       int64          `json:"rows_out"`
	DeadLettered  int64          `json:"dead_lettered"`
	MemoryBytes   int64          `json:"memory_bytes"` // allocated plus reserved by its queries and sources
	Sources       []SourceStatus `json:"sources"`
	Queries       []QueryStatus  `json:"queries"`
}

// SourceStatus are a source's counters.
type SourceStatus struct {
	Stream  string `json:"stream"`
	RowsIn  int64  `json:"rows_in"`
	Batches int64  `json:"batches"`
	Breaker string `json:"breaker"` // circuit breaker of its reads: closed, half_open or open
}

// QueryStatus are a query's counters.
type QueryStatus struct {
	Name      string `json:"name"`
	Output    string `json:"output,omitempty"` // the stream it produces (exported)
	State     string `json:"state"`
	Error     string `json:"error,omitempty"` // why it failed
	RowsOut   int64  `json:"rows_out"`
	Batches   int64  `json:"batches"`
	Watermark string `json:"watermark"` // RFC 3339, "-inf" before the first, "+inf" at the end
	Breaker   string `json:"breaker"`   // circuit breaker of its sink: closed, half_open or open
}

// Status reports a pipeline's state and counters.
func (r *Registry) Status(p *Pipeline) PipelineStatus {
	st := PipelineStatus{Name: p.Name, State: "running", Created: p.Created, SQL: p.SQL, CorrelationID: p.CorrelationID,
		Sources: []SourceStatus{}, Queries: []QueryStatus{}}
	select {
	case <-p.done:
		st.State = "finished"
		if p.err != nil {
			st.State, st.Error = "failed", p.err.Error()
		}
	default:
	}
	for _, s := range p.topo.Sources {
		ss := SourceStatus{Stream: s.Stream, Breaker: arrowexec.BreakerClosed.String()}
		if c := p.topo.SourceStats(s.Stream); c != nil {
			ss.RowsIn, ss.Batches, ss.Breaker = c.RowsIn.Load(), c.Batches.Load(), c.Breaker().String()
		}
		st.RowsIn += ss.RowsIn
		st.Sources = append(st.Sources, ss)
	}
	for _, q := range p.topo.Queries {
		state := arrowexec.QueryState(q.Stats.State.Load())
		wm := q.Stats.Watermark.Load()
		if state == arrowexec.QueryPending {
			wm = arrowexec.NoWatermark // not started: no watermark yet
		}
		qs := QueryStatus{
			Name: q.Name, Output: q.Output, State: state.String(),
			RowsOut: q.Stats.RowsOut.Load(), Batches: q.Stats.Batches.Load(),
			Watermark: arrowexec.FormatWatermark(wm),
			Breaker:   q.Stats.Breaker().String(),
		}
		if err := q.Stats.Err(); err != nil {
			qs.Error = err.Error()
		}
		st.RowsOut += qs.RowsOut
		st.Queries = append(st.Queries, qs)
	}
	st.DeadLettered = p.dl.Count()
	prefix := p.Name + "/"
	for _, u := range r.cfg.Resources.Snapshot() {
		if strings.HasPrefix(u.Query, prefix) {
			st.MemoryBytes += u.Allocated + u.Reserved
		}
	}
	return st
}

// Streams lists the streams defined by running pipelines, by name.
func (r *Registry) Streams() []StreamInfo {
	out := []StreamInfo{}
	for _, p := range r.List() {
		for name := range p.streams {
			schema, ok := p.topo.StreamSchema(name)
			if !ok {
				continue
			}
			info := StreamInfo{Name: name, Pipeline: p.Name, Columns: []ColumnInfo{}}
			for _, f := range schema.Fields() {
				info.Columns = append(info.Columns, ColumnInfo{Name: f.Name, Type: f.Type.String()})
			}
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
