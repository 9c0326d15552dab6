-- A live demo pipeline for the monitoring stack: an endless generated
-- stream of trades, filtered and aggregated per sector over 10-second
-- tumbling windows, so every dashboard panel has data.
CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT,
  trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '2' SECOND
) WITH (connector = 'generator', rows = '0', rate = '500', late_data = 'drop');

SELECT sector, COUNT(*) AS trades, SUM(volume) AS volume, AVG(price) AS avg_price, window_start
FROM trades WHERE volume > 100
GROUP BY sector WINDOW TUMBLING (INTERVAL '10' SECOND);
