-- Tumbling, sliding and session windows over event time, on the bundled
-- trades file.
-- Results go to examples/out/; the bad record on line 5 to the dead-letter file.
--
--   go run ./cmd/ferris run examples/windows.sql

CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT,
  trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'trades.jsonl', format = 'json',
        late_data = 'dead_letter');

-- Per sector, every 5 seconds: trade count, volume and average price.
CREATE STREAM sector_5s AS
SELECT sector, COUNT(*) AS trades, SUM(volume) AS volume, AVG(price) AS avg_price,
       window_start, window_end
FROM trades
GROUP BY sector
WINDOW TUMBLING (INTERVAL '5' SECOND)
WITH (connector = 'file', path = 'out/sector_5s.jsonl', format = 'json');

-- Market-wide volume over the last 4 seconds, every 2 seconds.
CREATE STREAM volume_4s AS
SELECT COUNT(*) AS trades, SUM(volume) AS volume, window_start, window_end
FROM trades
WINDOW SLIDING (INTERVAL '4' SECOND, INTERVAL '2' SECOND)
WITH (connector = 'file', path = 'out/volume_4s.jsonl', format = 'json');

-- Bursts of activity per sector: a session ends 1.5 s after its last trade.
CREATE STREAM sector_bursts AS
SELECT sector, COUNT(*) AS trades, SUM(volume) AS volume, window_start, window_end
FROM trades
GROUP BY sector
WINDOW SESSION (INTERVAL '1500' MILLISECOND)
WITH (connector = 'file', path = 'out/sector_bursts.jsonl', format = 'json');
