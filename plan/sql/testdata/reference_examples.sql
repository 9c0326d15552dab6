-- Reference SQL examples, kept verbatim (odd spacing included), and the
-- dialect's example of docs/sql.md. Statements are separated by ';'; each one must parse.

-- Window functions with partitioning
SELECT ticker, price, 
       ROW_NUMBER() OVER (PARTITION BY sector ORDER BY price DESC) as rank
FROM stock_prices 
WINDOW TUMBLING (INTERVAL '1' MINUTE);

-- Complex aggregations with HAVING
SELECT sector, AVG(price) as avg_price, COUNT(*) as trade_count
FROM trades 
WHERE volume > 1000
GROUP BY sector 
HAVING COUNT(*) > 100;

-- Time-based joins
SELECT o.order_id, p.payment_amount
FROM orders o 
JOIN payments p ON o.order_id = p.order_id 
WHERE p.timestamp BETWEEN o.timestamp AND o.timestamp + INTERVAL '1' HOUR;

-- Cross-query metadata propagation
CREATE STREAM raw_trades AS 
SELECT ticker, price, volume, timestamp as trade_time
FROM kafka_source 
WHERE volume > 1000;

CREATE STREAM price_movements AS
SELECT ticker, 
       price - LAG(price) OVER (PARTITION BY ticker ORDER BY trade_time) as price_change
FROM raw_trades
WINDOW TUMBLING (INTERVAL '1' MINUTE);

CREATE STREAM alerts AS
SELECT ticker, price_change, trade_time
FROM price_movements
WHERE ABS(price_change) > 5.0;

-- The multi-query pipeline (bench/workloads/pipeline.sql), in a program's strings
        CREATE STREAM raw_trades AS 
        SELECT ticker, price, volume, timestamp as trade_time
        FROM kafka_source 
        WHERE volume > 1000 AND price > 0
    ;
        CREATE STREAM moving_averages AS
        SELECT ticker, 
               AVG(price) OVER (PARTITION BY ticker ORDER BY trade_time 
                               ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) as ma_20,
               price
        FROM raw_trades
        WINDOW TUMBLING (INTERVAL '1' MINUTE)
    ;
        CREATE STREAM price_alerts AS
        SELECT ticker, price, ma_20, 
               CASE WHEN price > ma_20 * 1.05 THEN 'BREAKOUT'
                    WHEN price < ma_20 * 0.95 THEN 'BREAKDOWN'
                    ELSE 'NORMAL' END as signal
        FROM moving_averages
        WHERE signal != 'NORMAL'
    ;

-- The dialect's example pipeline (docs/sql.md) with a windowed HAVING
CREATE STREAM trades (
  ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT,
  trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'file', path = 'trades.jsonl', format = 'json',
        late_data = 'dead_letter');

CREATE STREAM big_trades AS
SELECT ticker, price * volume AS notional FROM trades WHERE volume > 1000
WITH (connector = 'file', path = 'out/big_trades.jsonl', format = 'json');

SELECT sector, AVG(price) AS avg_price, COUNT(*) AS trade_count,
       window_start, window_end
FROM trades WHERE volume > 1000
GROUP BY sector WINDOW TUMBLING (INTERVAL '1' MINUTE) HAVING COUNT(*) > 100;
