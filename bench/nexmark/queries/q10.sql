-- Nexmark q10: log every bid to a file, with its day and hour:minute
-- (Flink writes partitioned files by dt and hm; here one CSV file, the
-- partition columns included).
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

CREATE STREAM q10 AS
SELECT auction, bidder, price, date_time, extra,
       SUBSTRING(CAST(date_time AS VARCHAR), 1, 10) AS dt,
       SUBSTRING(CAST(date_time AS VARCHAR), 12, 5) AS hm
FROM bid
WITH (connector = 'file', path = 'out/q10.csv', format = 'csv');
