-- The README's cached functions, defined in SQL. A project lists this file
-- under `definitions` in its nuthatch.toml so the nuthatch binary loads it.

-- An air-temperature grid shaped like xarray's air_temperature tutorial data:
-- 2920 six-hourly steps over 2013-2014, 25 latitudes, 53 longitudes, kept
-- in time order so that per-series windows over it need no sort. As numpy
-- broadcasts over the axes, each term that depends on the time step alone
-- or on the grid point alone is computed once per step or per point, and
-- the cross join pairs every step with every point, time first. The
-- calendar comes from the step number: a step is six hours, 2013 and 2014
-- have 365 days each, and 2013-01-01 is six-hour step 62824 since 1970.
CREATE OR REPLACE CACHED FUNCTION my_first_cache()
WITH (order_by = (time))
AS
WITH steps AS (
    SELECT CAST(to_timestamp_seconds(1356998400 + value * 21600) AS TIMESTAMP) AS time,
           cos(2 * pi() * (CAST(value / 4 % 365 + 1 AS DOUBLE) - 15.0) / 365.25) AS season,
           2.5 * cos(2 * pi() * (CAST(value % 4 * 6 AS DOUBLE) - 14.0) / 24.0) AS daily,
           CAST(62824 + value AS DOUBLE) AS epoch
    FROM generate_series(0, 2920 - 1)
), points AS (
    SELECT value / 53 AS la,
           value % 53 AS lo,
           75.0 - 2.5 * (value / 53) AS lat,
           200.0 + 2.5 * (value % 53) AS lon
    FROM generate_series(0, 25 * 53 - 1)
), terms AS (
    SELECT CAST(lat AS FLOAT) AS lat,
           CAST(lon AS FLOAT) AS lon,
           273.15 + 32.0 * cos(radians(lat)) - 8.0 + 3.0 * sin(3 * radians(lon)) AS base,
           18.0 * sin(radians(lat)) AS swing,
           12.9898 * la + 78.233 * lo AS phase
    FROM points
)
SELECT time, lat, lon,
       CAST(base - swing * season + daily + 1.5 * sin(phase + epoch) AS FLOAT) AS air
FROM steps CROSS JOIN terms;

-- The rolling mean of air over $agg_days time steps per grid point, null for
-- the first $agg_days - 1 steps, cached by agg_days and clipped to the window.
CREATE OR REPLACE CACHED FUNCTION agg_and_clip(
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    agg_days BIGINT DEFAULT 7
)
WITH (cache_args = (agg_days), version = '0.1.0', timeseries = 'time', coverage = 'full')
AS
SELECT time, lat, lon,
       CASE WHEN count(air) OVER (PARTITION BY lat, lon ORDER BY time
                                  ROWS BETWEEN $agg_days - 1 PRECEDING AND CURRENT ROW) = $agg_days
            THEN CAST(avg(air) OVER (PARTITION BY lat, lon ORDER BY time
                                     ROWS BETWEEN $agg_days - 1 PRECEDING AND CURRENT ROW) AS FLOAT)
       END AS air
FROM my_first_cache();
