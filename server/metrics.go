package server

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrisstreams/ferris/arrowexec"
)

// Collector exposes a Registry's pipelines as Prometheus metrics, read at
// scrape time from the engine's live counters (nothing is global: register
// it with the registry you serve).
type Collector struct {
	Registry    *Registry
	Active      *atomic.Int64 // open API connections
	Registered  *atomic.Int64 // pipelines registered since start
	queries     *prometheus.Desc
	connections *prometheus.Desc
	memory      *prometheus.Desc
	rowsIn      *prometheus.Desc
	rowsOut     *prometheus.Desc
	deadLetter  *prometheus.Desc
	watermark   *prometheus.Desc
	queryMemory *prometheus.Desc
	running     *prometheus.Desc
}

// NewCollector returns a collector over r. active and registered are
// counters the server keeps.
func NewCollector(r *Registry, active, registered *atomic.Int64) *Collector {
	q := []string{"query"}
	return &Collector{
		Registry: r, Active: active, Registered: registered,
		queries:     prometheus.NewDesc("ferris_sql_queries_total", "Pipelines registered since the server started.", nil, nil),
		connections: prometheus.NewDesc("ferris_active_connections", "Open connections to the HTTP API.", nil, nil),
		memory:      prometheus.NewDesc("ferris_memory_usage_bytes", "Bytes allocated or reserved by all queries.", nil, nil),
		rowsIn:      prometheus.NewDesc("ferris_query_records_in_total", "Rows read by the sources of a pipeline.", q, nil),
		rowsOut:     prometheus.NewDesc("ferris_query_records_out_total", "Rows produced by the queries of a pipeline.", q, nil),
		deadLetter:  prometheus.NewDesc("ferris_query_dead_lettered_total", "Records a pipeline sent to its dead-letter sink.", q, nil),
		watermark:   prometheus.NewDesc("ferris_query_watermark_seconds", "Lowest watermark of a pipeline's queries, in seconds since the epoch (absent before the first).", q, nil),
		queryMemory: prometheus.NewDesc("ferris_query_memory_bytes", "Bytes allocated or reserved by a pipeline.", q, nil),
		running:     prometheus.NewDesc("ferris_query_running", "1 while a pipeline runs, 0 after it ended.", q, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queries, c.connections, c.memory, c.rowsIn, c.rowsOut, c.deadLetter, c.watermark, c.queryMemory, c.running} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.queries, prometheus.CounterValue, float64(c.Registered.Load()))
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(c.Active.Load()))
	ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(c.Registry.cfg.Resources.Used()))
	for _, p := range c.Registry.List() {
		st := c.Registry.Status(p)
		ch <- prometheus.MustNewConstMetric(c.rowsIn, prometheus.CounterValue, float64(st.RowsIn), p.Name)
		ch <- prometheus.MustNewConstMetric(c.rowsOut, prometheus.CounterValue, float64(st.RowsOut), p.Name)
		ch <- prometheus.MustNewConstMetric(c.deadLetter, prometheus.CounterValue, float64(st.DeadLettered), p.Name)
		ch <- prometheus.MustNewConstMetric(c.queryMemory, prometheus.GaugeValue, float64(st.MemoryBytes), p.Name)
		running := 0.0
		if st.State == "running" {
			running = 1
		}
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, running, p.Name)
		wm := arrowexec.FinalWatermark
		for _, q := range p.topo.Queries {
			wm = min(wm, q.Stats.Watermark.Load())
		}
		if wm != arrowexec.NoWatermark && wm != arrowexec.FinalWatermark {
			ch <- prometheus.MustNewConstMetric(c.watermark, prometheus.GaugeValue, float64(wm)/1000, p.Name)
		}
	}
}
