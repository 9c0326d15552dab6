-- Nexmark q18: the last bid of each bidder on each auction.
--
-- Flink deduplicates with ROW_NUMBER() OVER (PARTITION BY bidder, auction
-- ORDER BY date_time DESC) = 1, which our planner refuses on an unbounded
-- stream (ordered by event time descending). Bids arrive in event-time
-- order, so the latest bid is the last one seen: LAST_VALUE per group, as
-- an updating result (EMIT CHANGES: each batch emits the groups it
-- changed, like Flink's changelog).
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

SELECT auction, bidder, LAST_VALUE(price) AS price, LAST_VALUE(channel) AS channel,
       LAST_VALUE(url) AS url, LAST_VALUE(date_time) AS date_time, LAST_VALUE(extra) AS extra
FROM bid
GROUP BY bidder, auction;
