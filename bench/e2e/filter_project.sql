-- End-to-end benchmark: JSON lines in → filter/projection → JSON lines out.
CREATE STREAM trades (ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'file', path = 'trades.jsonl', format = 'json');

CREATE STREAM big AS
SELECT ticker, UPPER(sector) AS sector, price * volume AS notional, trade_time
FROM trades WHERE volume > 1000
WITH (connector = 'file', path = 'out.jsonl', format = 'json');
