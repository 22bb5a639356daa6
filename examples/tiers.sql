-- Tiers and cache modes, for the nuthatch binary:
--   cargo run --bin nuthatch -- -f examples/tiers.sql
-- Root is ./.nuthatch (or your configuration's); local is ~/.nuthatch/caches
-- unless NUTHATCH_LOCAL_FILESYSTEM says otherwise.

CREATE OR REPLACE CACHED FUNCTION hourly(
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    station VARCHAR DEFAULT 'north'
)
WITH (cache_args = (station), version = '1', timeseries = 'time', coverage = 'full')
AS
SELECT to_timestamp_seconds(1577836800 + value * 3600) AS time,
       $station AS station,
       CAST(value AS DOUBLE) AS reading
FROM generate_series(0, 1439);

-- Computed and stored whole on root (the default mode, write).
SELECT count(*) AS rows FROM hourly('2020-01-01', '2020-01-02');

-- Read from root, and the day's clipped copy stored on the local tier.
SELECT count(*) AS rows FROM hourly('2020-01-01', '2020-01-02', cache_mode => 'local');

-- Now a local hit.
SELECT count(*) AS rows FROM hourly('2020-01-01', '2020-01-02', cache_mode => 'local');

-- Memoized: the second call is served from memory.
SELECT count(*) AS rows FROM hourly('2020-01-01', '2020-01-07', memoize => true);
SELECT count(*) AS rows FROM hourly('2020-01-01', '2020-01-07', memoize => true);

-- local_api reads everywhere and copies to local, but never computes.
SELECT count(*) AS rows FROM hourly(NULL, NULL, cache_mode => 'local_api');
