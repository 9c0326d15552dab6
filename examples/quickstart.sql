-- FerrisStreams quickstart: a generated stream of trades (no files needed),
-- filtered and projected with exact DECIMAL arithmetic. Results print to
-- stdout as JSON lines.
--
--   go run ./cmd/ferris run examples/quickstart.sql

CREATE STREAM trades (
  ticker     VARCHAR,
  sector     VARCHAR,
  price      DECIMAL(18,4),
  volume     BIGINT,
  trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '40', seed = '7', step_ms = '250');

-- Block trades with their notional value and a size class.
SELECT ticker,
       sector,
       price,
       volume,
       price * volume AS notional,
       CASE WHEN volume >= 5000 THEN 'block' ELSE 'large' END AS size_class,
       trade_time
FROM trades
WHERE volume > 1000;
