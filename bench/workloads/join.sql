-- The reference complex join (target ~10,000 records/s): docs/joins.md's orders
-- and payments, an interval join (payments within an hour of their order).
-- Both streams are generated trades (different seeds); every order has one
-- payment with the same id. Records counted: the rows of both inputs.
CREATE STREAM orders (
  id BIGINT, ticker VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '100000', step_ms = '10', seed = '1');

CREATE STREAM payments (
  id BIGINT, price DECIMAL(18,4), trade_time TIMESTAMP,
  WATERMARK FOR trade_time AS trade_time - INTERVAL '5' SECOND
) WITH (connector = 'generator', rows = '100000', step_ms = '10', seed = '2');

SELECT o.id AS order_id, o.ticker, o.price * o.volume AS order_amount, p.price AS payment_amount
FROM orders o JOIN payments p ON o.id = p.id
WHERE p.trade_time BETWEEN o.trade_time AND o.trade_time + INTERVAL '1' HOUR;
