-- Nexmark q2: selection. Bids on a set of auctions (ids divisible by 123).
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
