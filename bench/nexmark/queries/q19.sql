-- Nexmark q19: the ten highest bids of each auction.
--
-- Flink's query verbatim. The planner fuses the ranking into the query
-- that filters it by rank (q19_ranked has no sink and no other reader), so
-- it runs as an updating top-N, like Flink's Rank operator: it keeps the
-- ten best bids per auction, not every bid, on an unbounded stream as on
-- a bounded one. The output is an updating result (EMIT CHANGES, like
-- q18): after each batch of bids, for every auction whose top ten
-- changed, the bids now at the ranks that changed, with their new
-- rank_number; read it as upserts keyed by (auction, rank_number). Bids of
-- equal price rank in arrival order.
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
