-- Nexmark q19: the ten highest bids of each auction (an updating top-N).
--
-- Not runnable yet: the planner orders an unbounded stream only by its
-- event time, and has no updating (retracting) top-N; this is Flink's
-- query as it would read once it does.
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

CREATE STREAM q19_ranked AS
SELECT auction, bidder, price, channel, url, date_time, extra,
       ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
FROM bid;

SELECT * FROM q19_ranked WHERE rank_number <= 10;
