-- Nexmark q9: winning bids. For each auction, its highest bid (the earliest
-- among equal prices) between its start and its expiry.
--
-- The join bounds bids to 1 s after the auction starts (auctions last at
-- most 333 ms at the default event_rate) and filters on the expiry. Every
-- joined row keeps the auction's start as its event time, so all rows of an
-- auction fall in the same window of the ranking stage, whose window only
-- bounds state.
CREATE STREAM auction (
  id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT,
  date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'auction', events = '100000');

CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

CREATE STREAM q9_joined AS
SELECT A.id, A.item_name, A.description, A.initial_bid, A.reserve, A.date_time, A.expires,
       A.seller, A.category, A.extra, B.auction, B.bidder, B.price,
       B.date_time AS bid_date_time, B.extra AS bid_extra
FROM auction A JOIN bid B
  ON A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '1' SECOND
WHERE B.date_time <= A.expires;

CREATE STREAM q9_ranked AS
SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category,
       extra, auction, bidder, price, bid_date_time, bid_extra,
       ROW_NUMBER() OVER (PARTITION BY id ORDER BY price DESC, bid_date_time ASC) AS rownum
FROM q9_joined WINDOW TUMBLING (INTERVAL '10' SECOND);

SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category,
       extra, auction, bidder, price, bid_date_time, bid_extra
FROM q9_ranked WHERE rownum = 1;
