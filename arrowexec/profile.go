package arrowexec

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Profile is where a topology's time and memory went so far: per source,
// per query and per instrumented operator, with a verdict on what bounds
// its throughput. It is what `ferris explain --analyze` prints and what
// GET /queries/{name}/profile returns.
type Profile struct {
	Sources []SourceProfile `json:"sources"`
	Queries []QueryProfile  `json:"queries"`
	// Bound is what limits throughput: "source" (the queries mostly wait
	// for input), "operators" or "sink"; "" before anything ran.
	Bound string `json:"bound"`
	// Bottleneck is the instrumented operator with the largest share of
	// its query's time (its label), "" when none.
	Bottleneck string `json:"bottleneck"`
	// Verdict says both in one line.
	Verdict string `json:"verdict"`
	// PeakMemoryBytes is the most memory the topology's resource manager
	// has had allocated or reserved (all queries sharing it); 0 without one.
	PeakMemoryBytes int64 `json:"peak_memory_bytes"`
}

// SourceProfile is a source's part of a Profile.
type SourceProfile struct {
	Stream  string `json:"stream"`
	Rows    int64  `json:"rows"`
	Batches int64  `json:"batches"`
	// ReadSeconds is the time spent reading and decoding; BlockedSeconds
	// the time spent waiting for the queries to take batches.
	ReadSeconds    float64 `json:"read_seconds"`
	BlockedSeconds float64 `json:"blocked_seconds"`
	// TotalRows is how many rows the source will produce, -1 if unknown.
	TotalRows int64 `json:"total_rows"`
}

// QueryProfile is a query's part of a Profile. The time of its goroutine
// splits into waiting for input, its operators' own work, writing to
// sinks and handing output to readers.
type QueryProfile struct {
	Name             string            `json:"name"`
	RowsOut          int64             `json:"rows_out"`
	Batches          int64             `json:"batches"`
	WaitSeconds      float64           `json:"wait_seconds"`
	OperatorSeconds  float64           `json:"operator_seconds"`
	SinkSeconds      float64           `json:"sink_seconds"`
	EmitSeconds      float64           `json:"emit_seconds"`
	AllocatedBytes   int64             `json:"allocated_bytes"`
	StateBytes       int64             `json:"state_bytes"` // reserved by stateful operators
	Late             int64             `json:"late_rows"`
	Operators        []OperatorProfile `json:"operators"` // root first, inputs after their consumer
	Bound            string            `json:"bound"`
	instrumentedTime bool
}

// OperatorProfile is one operator's part of a QueryProfile.
type OperatorProfile struct {
	Label   string `json:"label"`
	Name    string `json:"name"`
	Detail  string `json:"detail,omitempty"`
	Depth   int    `json:"depth"` // 0 for the root
	Input   bool   `json:"input"` // reads a stream: its time is waiting for input
	RowsIn  int64  `json:"rows_in"`
	RowsOut int64  `json:"rows_out"`
	Batches int64  `json:"batches"`
	// SelfSeconds is the time spent in the operator itself, its inputs'
	// time excluded; Share is that over the query's total time.
	SelfSeconds float64 `json:"self_seconds"`
	Share       float64 `json:"share"`
	StateBytes  int64   `json:"state_bytes"`
	StatePeak   int64   `json:"state_peak_bytes"`
	Late        int64   `json:"late_rows"`
}

// Profile reports the topology's counters so far. It is safe to call
// while the topology runs.
func (t *Topology) Profile() *Profile {
	p := &Profile{Sources: []SourceProfile{}, Queries: []QueryProfile{}}
	if t.Resources != nil {
		p.PeakMemoryBytes = t.Resources.Peak()
	}
	for _, s := range t.Sources {
		sp := SourceProfile{Stream: s.Stream, TotalRows: -1}
		if st := t.SourceStats(s.Stream); st != nil {
			sp.Rows, sp.Batches = st.RowsIn.Load(), st.Batches.Load()
			sp.ReadSeconds = seconds(st.ReadNanos.Load())
			sp.BlockedSeconds = seconds(st.PushNanos.Load())
		}
		if rt, ok := SourceAs[RowTotaler](s.Op); ok {
			sp.TotalRows = rt.TotalRows()
		}
		p.Sources = append(p.Sources, sp)
	}
	var wait, ops, sink float64
	var best *OperatorProfile
	for _, q := range t.Queries {
		qp := q.profile()
		p.Queries = append(p.Queries, qp)
		wait += qp.WaitSeconds
		ops += qp.OperatorSeconds
		sink += qp.SinkSeconds
	}
	for i := range p.Queries {
		for j := range p.Queries[i].Operators {
			op := &p.Queries[i].Operators[j]
			if !op.Input && (best == nil || op.SelfSeconds > best.SelfSeconds) {
				best = op
			}
		}
	}
	p.Bound = boundOf(wait, ops, sink)
	if best != nil && best.SelfSeconds > 0 {
		p.Bottleneck = best.Label
	}
	p.Verdict = verdict(p, best, wait, ops, sink)
	return p
}

func (q *QueryNode) profile() QueryProfile {
	qp := QueryProfile{Name: q.Name, RowsOut: q.Stats.RowsOut.Load(), Batches: q.Stats.Batches.Load(),
		SinkSeconds: seconds(q.Stats.SinkNanos.Load()), EmitSeconds: seconds(q.Stats.EmitNanos.Load()),
		Operators: []OperatorProfile{}}
	if q.Memory != nil {
		qp.AllocatedBytes, qp.StateBytes = q.Memory.Allocated(), q.Memory.Reserved()
	}
	n := len(q.Operators)
	if n == 0 {
		return qp
	}
	qp.instrumentedTime = true
	children := make([][]int, n)
	var roots []int
	for _, o := range q.Operators {
		if o.Parent >= 0 && o.Parent < n {
			children[o.Parent] = append(children[o.Parent], o.ID)
		} else {
			roots = append(roots, o.ID)
		}
	}
	self := make([]float64, n)
	for _, o := range q.Operators {
		self[o.ID] = seconds(o.SelfNanos.Load())
		if o.Input {
			qp.WaitSeconds += self[o.ID]
		} else {
			qp.OperatorSeconds += self[o.ID]
		}
		qp.Late += o.Late()
	}
	total := qp.WaitSeconds + qp.OperatorSeconds + qp.SinkSeconds + qp.EmitSeconds
	var walk func(id, depth int)
	walk = func(id, depth int) {
		o := q.Operators[id]
		op := OperatorProfile{Label: o.Label(), Name: o.Name, Detail: o.Detail, Depth: depth, Input: o.Input,
			RowsOut: o.RowsOut.Load(), Batches: o.BatchesOut.Load(), SelfSeconds: self[id],
			StateBytes: o.StateBytes.Load(), StatePeak: o.StatePeakBytes.Load(), Late: o.Late()}
		for _, c := range children[id] {
			op.RowsIn += q.Operators[c].RowsOut.Load()
		}
		if o.Input {
			op.RowsIn = op.RowsOut
		}
		if total > 0 {
			op.Share = self[id] / total
		}
		qp.Operators = append(qp.Operators, op)
		for _, c := range children[id] {
			walk(c, depth+1)
		}
	}
	slices.Reverse(roots) // the root is built last
	for _, r := range roots {
		walk(r, 0)
	}
	qp.Bound = boundOf(qp.WaitSeconds, qp.OperatorSeconds, qp.SinkSeconds)
	return qp
}

// boundOf names the largest of the three.
func boundOf(wait, ops, sink float64) string {
	switch {
	case wait == 0 && ops == 0 && sink == 0:
		return ""
	case wait >= ops && wait >= sink:
		return "source"
	case sink > ops:
		return "sink"
	}
	return "operators"
}

func verdict(p *Profile, best *OperatorProfile, wait, ops, sink float64) string {
	total := wait + ops + sink
	if total == 0 {
		return "bottleneck: nothing measured yet (no instrumented query has run)"
	}
	pct := func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x/total) }
	var b strings.Builder
	b.WriteString("bottleneck: ")
	if best != nil && best.SelfSeconds > 0 {
		fmt.Fprintf(&b, "%s (%.0f%% of its query's time); ", best.Label, 100*best.Share)
	}
	switch p.Bound {
	case "source":
		b.WriteString("throughput is bound by the source")
	case "sink":
		b.WriteString("throughput is bound by the sink")
	default:
		b.WriteString("throughput is bound by the operators")
	}
	fmt.Fprintf(&b, " (queries waited for input %s, ran operators %s, wrote to sinks %s of their time)", pct(wait), pct(ops), pct(sink))
	return b.String()
}

func seconds(nanos int64) float64 { return time.Duration(nanos).Seconds() }

// WriteText renders the profile as the table `ferris explain --analyze`
// prints.
func (p *Profile) WriteText(w io.Writer) error {
	for _, s := range p.Sources {
		total := ""
		if s.TotalRows >= 0 {
			total = fmt.Sprintf(" of %d", s.TotalRows)
		}
		fmt.Fprintf(w, "source %s: %d%s rows in %d batches; reading %s, blocked on the queries %s\n",
			s.Stream, s.Rows, total, s.Batches, dur(s.ReadSeconds), dur(s.BlockedSeconds))
	}
	for _, q := range p.Queries {
		fmt.Fprintf(w, "\nquery %s: %d rows out in %d batches; memory now %s allocated, %s state\n",
			q.Name, q.RowsOut, q.Batches, bytesText(q.AllocatedBytes), bytesText(q.StateBytes))
		if !q.instrumentedTime && len(q.Operators) == 0 {
			fmt.Fprintf(w, "  (not instrumented) sinks %s, output to readers %s\n", dur(q.SinkSeconds), dur(q.EmitSeconds))
			continue
		}
		total := q.WaitSeconds + q.OperatorSeconds + q.SinkSeconds + q.EmitSeconds
		share := func(x float64) string {
			if total == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", 100*x/total)
		}
		names := make([]string, len(q.Operators))
		width := len("output to readers")
		for i, o := range q.Operators {
			names[i] = strings.Repeat("  ", o.Depth) + o.Name
			if o.Detail != "" {
				names[i] += " " + o.Detail
			}
			if o.Input {
				names[i] += " (waiting for input)"
			}
			width = max(width, len(names[i]))
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  %-*s\trows in\trows out\tbatches\ttime\tshare\tpeak state\tlate\t\n", width, "operator")
		for i, o := range q.Operators {
			fmt.Fprintf(tw, "  %-*s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", width, names[i], o.RowsIn, o.RowsOut, o.Batches,
				dur(o.SelfSeconds), share(o.SelfSeconds), bytesText(o.StatePeak), o.Late)
		}
		fmt.Fprintf(tw, "  %-*s\t\t\t\t%s\t%s\t\t\t\n", width, "sinks", dur(q.SinkSeconds), share(q.SinkSeconds))
		fmt.Fprintf(tw, "  %-*s\t\t\t\t%s\t%s\t\t\t\n", width, "output to readers", dur(q.EmitSeconds), share(q.EmitSeconds))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if p.PeakMemoryBytes > 0 {
		fmt.Fprintf(w, "\npeak memory %s\n", bytesText(p.PeakMemoryBytes))
	}
	_, err := fmt.Fprintf(w, "\n%s\n", p.Verdict)
	return err
}

func dur(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
