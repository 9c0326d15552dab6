-- The reference three-stage financial pipeline, verbatim but for the
-- source: generated trades instead of kafka_source.
CREATE STREAM kafka_source (
  ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '100000', step_ms = '10');

CREATE STREAM raw_trades AS
SELECT ticker, price, volume, trade_time
FROM kafka_source
WHERE volume > 1000 AND price > 0;

CREATE STREAM moving_averages AS
SELECT ticker,
       AVG(price) OVER (PARTITION BY ticker ORDER BY trade_time
                        ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) as ma_20,
       price
FROM raw_trades
WINDOW TUMBLING (INTERVAL '1' MINUTE);

SELECT ticker, price, ma_20,
       CASE WHEN price > ma_20 * 1.05 THEN 'BREAKOUT'
            WHEN price < ma_20 * 0.95 THEN 'BREAKDOWN'
            ELSE 'NORMAL' END as signal
FROM moving_averages
WHERE signal != 'NORMAL';
