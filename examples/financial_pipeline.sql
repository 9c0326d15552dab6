-- The three-stage financial pipeline (raw_trades → moving_averages →
-- price_alerts) over generated trades, so it runs anywhere:
--
--   go run ./cmd/ferris run examples/financial_pipeline.sql
--
-- Alerts go to examples/out/price_alerts.jsonl; stdout gets a count per
-- signal when the input ends.

CREATE STREAM market (
  ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '20000', seed = '7', step_ms = '50');

-- Stage 1: clean input.
CREATE STREAM raw_trades AS
SELECT ticker, price, volume, trade_time
FROM market
WHERE volume > 1000 AND price > 0;

-- Stage 2: a 20-trade moving average per ticker, evaluated per minute.
CREATE STREAM moving_averages AS
SELECT ticker,
       AVG(price) OVER (PARTITION BY ticker ORDER BY trade_time
                        ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS ma_20,
       price
FROM raw_trades
WINDOW TUMBLING (INTERVAL '1' MINUTE);

-- Stage 3: breakouts and breakdowns (the alias is usable in WHERE). The
-- seed alerts at ±5%; the generated prices move less, so this uses ±0.5%.
CREATE STREAM price_alerts AS
SELECT ticker, price, ma_20,
       CASE WHEN price > ma_20 * 1.005 THEN 'BREAKOUT'
            WHEN price < ma_20 * 0.995 THEN 'BREAKDOWN'
            ELSE 'NORMAL' END AS signal
FROM moving_averages
WHERE signal != 'NORMAL'
WITH (connector = 'file', path = 'out/price_alerts.jsonl', format = 'json');

SELECT signal, COUNT(*) AS alerts, COUNT(DISTINCT ticker) AS tickers
FROM price_alerts
GROUP BY signal
EMIT FINAL;
