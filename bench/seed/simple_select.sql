-- The seed's simple SELECT (FR-058: ~50,000 records/s): a filter and a
-- projection over generated trades (DESIGN.md's big_trades).
CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '100000', step_ms = '10');

SELECT ticker, price * volume AS notional FROM trades WHERE volume > 1000;
