-- Writes the input of filter_project.sql: generated trades as JSON lines
-- (about 130 bytes a record), 10 million rows.
CREATE STREAM gen (ticker VARCHAR, sector VARCHAR, price DECIMAL(18,4), volume BIGINT, trade_time TIMESTAMP)
WITH (connector = 'generator', rows = '10000000', seed = '11');

CREATE STREAM written AS SELECT * FROM gen
WITH (connector = 'file', path = 'trades.jsonl', format = 'json');
