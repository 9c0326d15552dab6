-- Nexmark q3: local item suggestion. Who sells in OR, ID or CA in category
-- 10, and for which auctions? An incremental join of auctions with people.
--
-- Flink keeps both sides forever; an unbounded stream-stream join needs a
-- state_ttl here. Sellers are drawn from the last 1,000 people (plus 10 not
-- yet created), about 5 s of event time at the default event_rate of
-- 10,000/s, so a 10 s TTL finds every match the unbounded join finds.
CREATE STREAM auction (
  id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT,
  date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'auction', events = '100000');

CREATE STREAM person (
  id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR,
  state VARCHAR, date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'person', events = '100000');

SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')
WITH (state_ttl = '10s');
