-- Nexmark q12: processing-time windows. Bids per bidder per 10 s tumbling
-- window of processing time: the stream declares no event time.
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

SELECT bidder, COUNT(*) AS bid_count, window_start AS starttime, window_end AS endtime
FROM bid GROUP BY bidder WINDOW TUMBLING (INTERVAL '10' SECOND);
