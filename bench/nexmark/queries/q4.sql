-- Nexmark q4: average winning price per category. The winning bid of an
-- auction is its highest bid between its start and its expiry.
--
-- Our interval joins need a constant bound: auctions last at most
-- 2 * (event time of the next 100 auctions), 333 ms at the default
-- event_rate, so bids are joined within 1 s of the auction's start and then
-- filtered on the auction's own expiry. Flink's q4 is an updating
-- aggregate over an updating aggregate; here both levels are EMIT FINAL,
-- so the result is emitted once, at the end of a bounded input.
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

CREATE STREAM q4_winning AS
SELECT A.id, A.category, MAX(B.price) AS final
FROM auction A JOIN bid B
  ON A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '1' SECOND
WHERE B.date_time <= A.expires
GROUP BY A.id, A.category
EMIT FINAL;

SELECT category, AVG(final) AS avg_final FROM q4_winning GROUP BY category EMIT FINAL;
