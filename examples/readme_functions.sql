-- The README's cached functions, defined in SQL. A project lists this file
-- under `definitions` in its nuthatch.toml so the nuthatch binary loads it.

-- An air-temperature grid shaped like xarray's air_temperature tutorial data:
-- 2920 six-hourly steps over 2013-2014, 25 latitudes, 53 longitudes, kept
-- in time order so that per-series windows over it need no sort. One series
-- numbers the grid's points, time first: a cross join of three series would
-- give the same rows in batches of 53. The calendar comes from the step
-- number rather than from date_part on each row's timestamp, which costs
-- more than the trigonometry: a step is six hours, 2013 and 2014 have 365
-- days each, and 2013-01-01 is six-hour step 62824 since 1970.
CREATE OR REPLACE CACHED FUNCTION my_first_cache()
WITH (order_by = (time))
AS
WITH grid AS (
    SELECT value / (25 * 53) AS step,
           value / 53 % 25 AS la,
           value % 53 AS lo
    FROM generate_series(0, 2920 * 25 * 53 - 1)
)
SELECT CAST(to_timestamp_seconds(1356998400 + step * 21600) AS TIMESTAMP) AS time,
       CAST(75.0 - 2.5 * la AS FLOAT) AS lat,
       CAST(200.0 + 2.5 * lo AS FLOAT) AS lon,
       CAST(273.15 + 32.0 * cos(radians(75.0 - 2.5 * la)) - 8.0
            - 18.0 * sin(radians(75.0 - 2.5 * la))
                   * cos(2 * pi() * (CAST(step / 4 % 365 + 1 AS DOUBLE) - 15.0) / 365.25)
            + 2.5 * cos(2 * pi() * (CAST(step % 4 * 6 AS DOUBLE) - 14.0) / 24.0)
            + 3.0 * sin(3 * radians(200.0 + 2.5 * lo))
            + 1.5 * sin(12.9898 * la + 78.233 * lo + CAST(62824 + step AS DOUBLE))
            AS FLOAT) AS air
FROM grid;

-- The rolling mean of air over $agg_days time steps per grid point, null for
-- the first $agg_days - 1 steps, cached by agg_days and clipped to the window.
CREATE OR REPLACE CACHED FUNCTION agg_and_clip(
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    agg_days BIGINT DEFAULT 7
)
WITH (cache_args = (agg_days), version = '0.1.0', timeseries = 'time')
AS
SELECT time, lat, lon,
       CASE WHEN count(air) OVER (PARTITION BY lat, lon ORDER BY time
                                  ROWS BETWEEN $agg_days - 1 PRECEDING AND CURRENT ROW) = $agg_days
            THEN CAST(avg(air) OVER (PARTITION BY lat, lon ORDER BY time
                                     ROWS BETWEEN $agg_days - 1 PRECEDING AND CURRENT ROW) AS FLOAT)
       END AS air
FROM my_first_cache();
