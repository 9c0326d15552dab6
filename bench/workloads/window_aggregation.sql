-- The reference window aggregation (target ~25,000 records/s): the
-- dialect's example (plan/sql/testdata/reference_examples.sql), per sector and one-minute tumbling window (6,000 trades a
-- minute at step_ms 10).
CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '100000', step_ms = '10');

SELECT sector, AVG(price) AS avg_price, COUNT(*) AS trade_count,
       window_start, window_end
FROM trades WHERE volume > 1000
GROUP BY sector WINDOW TUMBLING (INTERVAL '1' MINUTE) HAVING COUNT(*) > 100;
