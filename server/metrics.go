package server

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferrisstreams/ferris/arrowexec"
	"github.com/ferrisstreams/ferris/arrowexec/resource"
)

// PipelineView is what the metrics collector reads of one pipeline.
type PipelineView struct {
	Name         string
	Topology     *arrowexec.Topology
	State        string // running, finished or failed
	DeadLettered int64
	Started      time.Time
	// MemoryPrefix selects the pipeline's accounts in the resource
	// manager (plan.BuildEnv.QueryPrefix); "" takes them all.
	MemoryPrefix string
}

// MetricsSource gives the collector its pipelines. Registry implements it;
// ferris run implements it for its one pipeline. Both methods are called
// at every scrape and must be safe for concurrent use.
type MetricsSource interface {
	MetricsPipelines() []PipelineView
	MemoryManager() *resource.Manager
}

// ServiceCounters are counters the service keeps besides its pipelines'.
// Nil fields read as zero.
type ServiceCounters struct {
	Active     *atomic.Int64 // open API connections
	Registered *atomic.Int64 // pipelines registered since start
	Rejected   *atomic.Int64 // registrations refused (SQL or connector errors)
	Failed     *atomic.Int64 // pipelines that ended with an error
}

func load(c *atomic.Int64) float64 {
	if c == nil {
		return 0
	}
	return float64(c.Load())
}

// Collector exposes pipelines as Prometheus metrics, read at scrape time
// from the engine's live counters (nothing is global: register it with the
// registry you serve). Metric names are an interface (docs/design.md; the
// table is in docs/observability.md):
//
//	ferris_sql_queries_total                  counter    pipelines registered
//	ferris_sql_query_errors_total{phase}      counter    compile: registrations refused; run: pipelines failed
//	ferris_sql_query_duration_seconds{query}  histogram  operator and sink time per output batch, input waits excluded
//	ferris_streaming_operations_total{query,operation}  counter  batches read (sources), processed (query outputs), written (sinks)
//	ferris_streaming_throughput_rps{query}    gauge      rows/s read by the sources, over the last second or more
//	ferris_cpu_usage_percent                  gauge      process CPU time over wall time (100 = one core)
//	ferris_memory_usage_bytes                 gauge      allocated + reserved by all queries
//	ferris_memory_reserved_bytes, ferris_memory_limit_bytes (0: unlimited), ferris_memory_peak_bytes
//	ferris_active_connections                 gauge      open HTTP API connections
//
// and per pipeline (label query) records and batches in and out, late
// records by strategy, dead-lettered records, watermark and its lag behind
// the wall clock, state and memory bytes, circuit-breaker state and
// retries, Kafka consumer lag per partition, the sink write latency
// histogram, checkpoints (when state_dir is set: completed and failed
// counts, the last one's id, size and duration), and per operator (label operator, "query/ID:Kind") rows,
// batches, busy time and state bytes.
type Collector struct {
	src      MetricsSource
	counters ServiceCounters
	now      func() time.Time

	mu    sync.Mutex
	rates map[string]rateSample
	cpu   rateSample

	queries, queryErrors, duration, operations, throughput, cpuPct   *prometheus.Desc
	memory, reserved, limit, peak, connections                       *prometheus.Desc
	rowsIn, rowsOut, batchesIn, batchesOut, late, deadLetter         *prometheus.Desc
	watermark, watermarkLag, stateBytes, queryMemory, running        *prometheus.Desc
	breaker, retries, kafkaLag, kafkaResets, sinkLatency             *prometheus.Desc
	opRowsIn, opRowsOut, opBatches, opBusy, opStateBytes, opWaitSecs *prometheus.Desc
	checkpoints, checkpointID, checkpointBytes, checkpointSecs       *prometheus.Desc
}

// rateSample is the last value a rate was computed from.
type rateSample struct {
	t    time.Time
	v    float64
	rate float64
}

// NewCollector returns a collector over src.
func NewCollector(src MetricsSource, counters ServiceCounters) *Collector {
	q := []string{"query"}
	op := []string{"query", "operator"}
	d := prometheus.NewDesc
	c := &Collector{src: src, counters: counters, now: time.Now, rates: map[string]rateSample{},
		queries:         d("ferris_sql_queries_total", "Pipelines registered (compiled and started) since the process started.", nil, nil),
		queryErrors:     d("ferris_sql_query_errors_total", "Pipelines refused at registration (phase compile) or ended by an error (phase run).", []string{"phase"}, nil),
		duration:        d("ferris_sql_query_duration_seconds", "Time a pipeline's operators and sinks spent on one output batch, time waiting for input excluded.", q, nil),
		operations:      d("ferris_streaming_operations_total", "Streaming operations: batches read by sources (read), produced by queries (process) and written to sinks (write).", []string{"query", "operation"}, nil),
		throughput:      d("ferris_streaming_throughput_rps", "Rows per second read by a pipeline's sources, over the last second or more.", q, nil),
		cpuPct:          d("ferris_cpu_usage_percent", "Process CPU time over wall time between scrapes, in percent of one core.", nil, nil),
		memory:          d("ferris_memory_usage_bytes", "Bytes allocated or reserved by all queries.", nil, nil),
		reserved:        d("ferris_memory_reserved_bytes", "Bytes reserved for operator state by all queries.", nil, nil),
		limit:           d("ferris_memory_limit_bytes", "The memory limit (max_memory_mb) in bytes; 0 when unlimited.", nil, nil),
		peak:            d("ferris_memory_peak_bytes", "The highest ferris_memory_usage_bytes so far.", nil, nil),
		connections:     d("ferris_active_connections", "Open connections to the HTTP API.", nil, nil),
		rowsIn:          d("ferris_query_records_in_total", "Rows read by the sources of a pipeline.", q, nil),
		rowsOut:         d("ferris_query_records_out_total", "Rows produced by the queries of a pipeline.", q, nil),
		batchesIn:       d("ferris_query_batches_in_total", "Batches read by the sources of a pipeline.", q, nil),
		batchesOut:      d("ferris_query_batches_out_total", "Batches produced by the queries of a pipeline.", q, nil),
		late:            d("ferris_query_late_records_total", "Late rows by what late_data did with them (update_previous rows beyond allowed_lateness count as dead_letter).", []string{"query", "strategy"}, nil),
		deadLetter:      d("ferris_query_dead_lettered_total", "Records a pipeline sent to its dead-letter sink.", q, nil),
		watermark:       d("ferris_query_watermark_seconds", "Lowest watermark of a pipeline's queries, in seconds since the epoch (absent before the first and after the last).", q, nil),
		watermarkLag:    d("ferris_query_watermark_lag_seconds", "How far the lowest watermark of a pipeline's queries is behind the wall clock (0 once its input ended).", q, nil),
		stateBytes:      d("ferris_query_state_bytes", "Bytes a pipeline's operators reserved for their state (windows, groups, held rows).", q, nil),
		queryMemory:     d("ferris_query_memory_bytes", "Bytes allocated or reserved by a pipeline.", q, nil),
		running:         d("ferris_query_running", "1 while a pipeline runs, 0 after it ended.", q, nil),
		breaker:         d("ferris_query_circuit_breaker_state", "Worst circuit-breaker state of a pipeline's sources and sinks: 0 closed, 1 half-open, 2 open.", q, nil),
		retries:         d("ferris_query_retries_total", "Retried reads, writes, flushes and commits of a pipeline's sources and sinks.", q, nil),
		kafkaLag:        d("ferris_kafka_consumer_lag_records", "Records of a Kafka partition not yet read by a pipeline's source.", []string{"query", "stream", "partition"}, nil),
		kafkaResets:     d("ferris_kafka_offset_resets_total", "Times a pipeline's Kafka source followed start_offset because the brokers lost its offsets (a topic recreated, a partition truncated).", []string{"query", "stream"}, nil),
		sinkLatency:     d("ferris_sink_write_duration_seconds", "Time to write one batch to a query's sinks.", []string{"query", "sink"}, nil),
		opRowsIn:        d("ferris_operator_records_in_total", "Rows an operator received from its inputs.", op, nil),
		opRowsOut:       d("ferris_operator_records_out_total", "Rows an operator produced.", op, nil),
		opBatches:       d("ferris_operator_batches_total", "Batches an operator produced.", op, nil),
		opBusy:          d("ferris_operator_busy_seconds_total", "Time spent in an operator itself, its inputs excluded.", op, nil),
		opStateBytes:    d("ferris_operator_state_bytes", "Bytes an operator reserved for its state.", op, nil),
		opWaitSecs:      d("ferris_query_input_wait_seconds_total", "Time a pipeline's queries spent waiting for input.", q, nil),
		checkpoints:     d("ferris_checkpoints_total", "Checkpoints of a pipeline by result: completed (written) or failed (abandoned or not written).", []string{"query", "result"}, nil),
		checkpointID:    d("ferris_checkpoint_last_id", "Id of a pipeline's latest complete checkpoint (the one it resumed from, before its first).", q, nil),
		checkpointBytes: d("ferris_checkpoint_last_bytes", "Size of a pipeline's latest checkpoint on disk.", q, nil),
		checkpointSecs:  d("ferris_checkpoint_last_duration_seconds", "Time from starting a pipeline's latest checkpoint to having it on disk.", q, nil),
	}
	c.cpu.t = c.now()
	c.cpu.v = processCPUSeconds()
	return c
}

func (c *Collector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.queries, c.queryErrors, c.duration, c.operations, c.throughput, c.cpuPct,
		c.memory, c.reserved, c.limit, c.peak, c.connections,
		c.rowsIn, c.rowsOut, c.batchesIn, c.batchesOut, c.late, c.deadLetter,
		c.watermark, c.watermarkLag, c.stateBytes, c.queryMemory, c.running,
		c.breaker, c.retries, c.kafkaLag, c.kafkaResets, c.sinkLatency,
		c.opRowsIn, c.opRowsOut, c.opBatches, c.opBusy, c.opStateBytes, c.opWaitSecs,
		c.checkpoints, c.checkpointID, c.checkpointBytes, c.checkpointSecs}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// rate returns the rate of v (a growing count) per second, recomputed when
// at least a second passed since the last sample; s is updated in place.
func rate(s *rateSample, now time.Time, v float64) float64 {
	if dt := now.Sub(s.t).Seconds(); dt >= 1 {
		s.rate = max(v-s.v, 0) / dt
		s.t, s.v = now, v
	}
	return s.rate
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	histogram := func(d *prometheus.Desc, h *histSum, labels ...string) {
		ch <- prometheus.MustNewConstHistogram(d, h.count, h.sum, h.buckets, labels...)
	}
	now := c.now()
	pipelines := c.src.MetricsPipelines()
	mgr := c.src.MemoryManager()

	c.mu.Lock()
	cpu := 100 * rate(&c.cpu, now, processCPUSeconds())
	rates := map[string]float64{}
	for _, p := range pipelines {
		var in int64
		for _, s := range p.Topology.Sources {
			if st := p.Topology.SourceStats(s.Stream); st != nil {
				in += st.RowsIn.Load()
			}
		}
		s, ok := c.rates[p.Name]
		if !ok {
			s = rateSample{t: p.Started}
		}
		rates[p.Name] = rate(&s, now, float64(in))
		c.rates[p.Name] = s
	}
	for name := range c.rates {
		if _, ok := rates[name]; !ok {
			delete(c.rates, name)
		}
	}
	c.mu.Unlock()

	counter(c.queries, load(c.counters.Registered))
	counter(c.queryErrors, load(c.counters.Rejected), "compile")
	counter(c.queryErrors, load(c.counters.Failed), "run")
	gauge(c.connections, load(c.counters.Active))
	gauge(c.cpuPct, cpu)
	usage := map[string]resource.Usage{}
	var reserved int64
	if mgr != nil {
		gauge(c.memory, float64(mgr.Used()))
		gauge(c.limit, float64(mgr.Limit()))
		gauge(c.peak, float64(mgr.Peak()))
		for _, u := range mgr.Snapshot() {
			usage[u.Query] = u
			reserved += u.Reserved
		}
	}
	gauge(c.reserved, float64(reserved))

	for _, p := range pipelines {
		name, topo := p.Name, p.Topology
		var rowsIn, batchesIn, rowsOut, batchesOut, sinkWrites, inputWait int64
		var lateBy [4]int64
		var stateBytes int64
		// Breakers and retries: the engine's fault counters (FaultStats)
		// of every source and query, and the state of any connector that
		// reports its own breaker (BreakerReporter).
		worst, retries := arrowexec.BreakerClosed, int64(0)
		breakerOf := func(v any) {
			if b, ok := v.(arrowexec.BreakerReporter); ok {
				worst = max(worst, b.BreakerState())
			}
		}
		for _, s := range topo.Sources {
			if st := topo.SourceStats(s.Stream); st != nil {
				rowsIn += st.RowsIn.Load()
				batchesIn += st.Batches.Load()
				worst = max(worst, st.Breaker())
				retries += st.RetriesTotal.Load()
			}
			if b, ok := arrowexec.SourceAs[arrowexec.BreakerReporter](s.Op); ok {
				breakerOf(b)
			}
			if lr, ok := arrowexec.SourceAs[arrowexec.LagReporter](s.Op); ok {
				for part, lag := range lr.Lag() {
					gauge(c.kafkaLag, float64(lag), name, s.Stream, strconv.Itoa(int(part)))
				}
			}
			if rr, ok := arrowexec.SourceAs[arrowexec.OffsetResetReporter](s.Op); ok {
				counter(c.kafkaResets, float64(rr.OffsetResets()), name, s.Stream)
			}
		}
		var dur histSum
		wm := arrowexec.FinalWatermark
		for _, q := range topo.Queries {
			rowsOut += q.Stats.RowsOut.Load()
			batchesOut += q.Stats.Batches.Load()
			wm = min(wm, q.Stats.Watermark.Load())
			dur.add(&q.Stats.BatchLatency)
			if len(q.Sinks) > 0 {
				var sl histSum
				sl.add(&q.Stats.SinkLatency)
				sinkWrites += int64(sl.count)
				histogram(c.sinkLatency, &sl, name, q.Name)
			}
			worst = max(worst, q.Stats.Breaker())
			retries += q.Stats.RetriesTotal.Load()
			for _, s := range q.Sinks {
				breakerOf(s)
			}
			for _, o := range q.Operators {
				label := o.Label()
				var in int64
				for _, k := range q.Operators {
					if k.Parent == o.ID {
						in += k.RowsOut.Load()
					}
				}
				if o.Input {
					in = o.RowsOut.Load()
					inputWait += o.SelfNanos.Load()
				}
				counter(c.opRowsIn, float64(in), name, label)
				counter(c.opRowsOut, float64(o.RowsOut.Load()), name, label)
				counter(c.opBatches, float64(o.BatchesOut.Load()), name, label)
				counter(c.opBusy, time.Duration(o.SelfNanos.Load()).Seconds(), name, label)
				if sb := o.StateBytes.Load(); sb > 0 || o.CountsLate {
					gauge(c.opStateBytes, float64(sb), name, label)
				}
				lateBy[0] += o.LateDropped.Load()
				lateBy[1] += o.LateDeadLettered.Load()
				lateBy[2] += o.LateRedirected.Load()
				lateBy[3] += o.LateUpdated.Load()
			}
		}
		var mem int64
		for k, u := range usage {
			if strings.HasPrefix(k, p.MemoryPrefix) {
				mem += u.Allocated + u.Reserved
				stateBytes += u.Reserved
			}
		}
		counter(c.rowsIn, float64(rowsIn), name)
		counter(c.rowsOut, float64(rowsOut), name)
		counter(c.batchesIn, float64(batchesIn), name)
		counter(c.batchesOut, float64(batchesOut), name)
		counter(c.operations, float64(batchesIn), name, "read")
		counter(c.operations, float64(batchesOut), name, "process")
		counter(c.operations, float64(sinkWrites), name, "write")
		gauge(c.throughput, rates[name], name)
		for i, strategy := range []string{"drop", "dead_letter", "include_in_next_window", "update_previous"} {
			counter(c.late, float64(lateBy[i]), name, strategy)
		}
		counter(c.deadLetter, float64(p.DeadLettered), name)
		counter(c.opWaitSecs, time.Duration(inputWait).Seconds(), name)
		histogram(c.duration, &dur, name)
		gauge(c.stateBytes, float64(stateBytes), name)
		gauge(c.queryMemory, float64(mem), name)
		running := 0.0
		if p.State == "running" {
			running = 1
		}
		gauge(c.running, running, name)
		if topo.Checkpoints != nil {
			cs := &topo.CheckpointStats
			counter(c.checkpoints, float64(cs.Completed.Load()), name, "completed")
			counter(c.checkpoints, float64(cs.Failed.Load()), name, "failed")
			gauge(c.checkpointID, float64(cs.LastID.Load()), name)
			gauge(c.checkpointBytes, float64(cs.LastBytes.Load()), name)
			gauge(c.checkpointSecs, time.Duration(cs.LastNanos.Load()).Seconds(), name)
		}
		gauge(c.breaker, float64(worst), name)
		counter(c.retries, float64(retries), name)
		switch {
		case len(topo.Queries) == 0 || wm == arrowexec.NoWatermark:
		case wm == arrowexec.FinalWatermark:
			gauge(c.watermarkLag, 0, name)
		default:
			gauge(c.watermark, float64(wm)/1000, name)
			gauge(c.watermarkLag, max(float64(now.UnixMilli()-wm)/1000, 0), name)
		}
	}
}

// histSum adds up LatencyHistograms.
type histSum struct {
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

func (h *histSum) add(l *arrowexec.LatencyHistogram) {
	n, s, b := l.Snapshot()
	if h.buckets == nil {
		h.buckets = b
	} else {
		for k, v := range b {
			h.buckets[k] += v
		}
	}
	h.count += n
	h.sum += s
}

// MetricsHandler serves /metrics (the collector over src, Go runtime and
// process metrics, from a registry of its own) and /debug/pprof, behind
// the bearer token when one is set.
func MetricsHandler(src MetricsSource, counters ServiceCounters, token string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src, counters),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Authorized(token, r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferris"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}
