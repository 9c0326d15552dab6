-- Nexmark q19: the ten highest bids of each auction.
--
-- Flink's query verbatim. Over a bounded run (events > 0) the ranking is
-- computed when the input ends; an unbounded run is refused, since the
-- planner has no updating (retracting) top-N yet.
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
