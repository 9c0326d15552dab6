-- Nexmark q8: monitor new users. People who created an account and
-- auctioned something in the same 10 s tumbling window: a windowed join,
-- one row per (person, window).
CREATE STREAM person (
  id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR,
  state VARCHAR, date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'person', events = '100000');

CREATE STREAM auction (
  id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT,
  date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'auction', events = '100000');

SELECT P.id, P.name, window_start AS starttime
FROM person P JOIN auction A ON P.id = A.seller
GROUP BY P.id, P.name
WINDOW TUMBLING (INTERVAL '10' SECOND);
