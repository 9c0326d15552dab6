-- A two-stage pipeline over a bundled file: big trades are written to a
-- JSON-lines file and a second query reads that internal stream. The bad
-- record on line 5 of trades.jsonl goes to big_trades.dead_letter.jsonl.
--
--   go run ./cmd/ferris run examples/big_trades.sql

CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT,
  trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'trades.jsonl', format = 'json',
        late_data = 'dead_letter');

CREATE STREAM big_trades AS
SELECT ticker, sector, price * volume AS notional, trade_time
FROM trades WHERE volume > 1000
WITH (connector = 'file', path = 'out/big_trades.jsonl', format = 'json');

SELECT UPPER(sector) AS sector, ticker, notional,
       ROUND(notional / 1000, 1) AS notional_k
FROM big_trades
WHERE notional > 250000;
