-- Nexmark q5: hot items. Which auctions got the most bids in each sliding
-- window of 10 s every 2 s (ties: all of them)?
--
-- A windowed aggregate's output has no event time in our dialect, so the
-- maximum per window is an un-windowed aggregate over the per-auction
-- counts (each window's counts arrive in one batch) joined back to them,
-- with a state_ttl (against the wall clock, as the counts have no event
-- time).
CREATE STREAM bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  date_time TIMESTAMP, extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (connector = 'nexmark', kind = 'bid', events = '100000');

CREATE STREAM auction_bids AS
SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
FROM bid GROUP BY auction WINDOW SLIDING (INTERVAL '10' SECOND, INTERVAL '2' SECOND);

CREATE STREAM max_bids AS
SELECT starttime, MAX(num) AS maxn FROM auction_bids GROUP BY starttime;

SELECT B.auction, B.num, B.starttime, B.endtime
FROM auction_bids B JOIN max_bids M ON B.starttime = M.starttime AND B.num >= M.maxn
WITH (state_ttl = '5s');
