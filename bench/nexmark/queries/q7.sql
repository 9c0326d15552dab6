-- Nexmark q7: highest bid. The bids with the highest price of each 10 s
-- tumbling window (ties: all of them).
--
-- Flink joins the bids with each window's maximum; here a windowed
-- MAX(...) OVER gives every bid of a window the window's maximum, and a
-- second stage keeps the bids that reach it.
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

CREATE STREAM q7_windowed AS
SELECT auction, bidder, price, date_time, extra, MAX(price) OVER () AS maxprice
FROM bid WINDOW TUMBLING (INTERVAL '10' SECOND);

SELECT auction, bidder, price, date_time, extra FROM q7_windowed WHERE price = maxprice;
