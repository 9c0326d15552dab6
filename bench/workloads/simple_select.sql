-- The reference simple SELECT (target ~50,000 records/s): a filter and a
-- projection over generated trades (big_trades of docs/sql.md).
CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '100000', step_ms = '10');

SELECT ticker, price * volume AS notional FROM trades WHERE volume > 1000;
