package bench

import "testing"

// BenchmarkOverMovingAvg: a moving average over the last five rows
// (ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) of 10,000 partitions,
// ordered by event time (rows released at the 1 s watermark), exact
// DECIMAL(18,4) sums. Whole engine: source → watermark assigner → inlet →
// window functions → projection → sink. Target: 5M rows/s on one core.
func BenchmarkOverMovingAvg(b *testing.B) {
	runWindowBench(b, `CREATE STREAM out AS SELECT k, ts, price,
  AVG(price) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS ma
FROM events`, 2_000_000, 10_000, 10)
}

// BenchmarkOverMovingAvgDouble: the same over a DOUBLE column.
func BenchmarkOverMovingAvgDouble(b *testing.B) {
	runWindowBench(b, `CREATE STREAM out AS SELECT k, ts, x,
  AVG(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS ma
FROM events`, 2_000_000, 10_000, 10)
}

// BenchmarkOverLagArrival: LAG and a running SUM per partition in arrival
// order (no ORDER BY: rows are not buffered).
func BenchmarkOverLagArrival(b *testing.B) {
	runWindowBench(b, `CREATE STREAM out AS SELECT k, v,
  v - LAG(v) OVER (PARTITION BY k) AS dv, SUM(v) OVER (PARTITION BY k) AS sv
FROM events`, 2_000_000, 10_000, 10)
}
