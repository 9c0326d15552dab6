-- Nexmark q1: currency conversion. Bid prices from dollars to euros
-- (0.908 * price, an exact DECIMAL).
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid;
