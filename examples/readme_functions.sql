-- The README's cached functions, defined in SQL. A project lists this file
-- under `definitions` in its nuthatch.toml so the nuthatch binary loads it.

-- An air-temperature grid shaped like xarray's air_temperature tutorial data:
-- 2920 six-hourly steps over 2013-2014, 25 latitudes, 53 longitudes, kept
-- in time order so that per-series windows over it need no sort.
CREATE OR REPLACE CACHED FUNCTION my_first_cache()
WITH (order_by = (time))
AS
SELECT t.value AS time,
       CAST(75.0 - 2.5 * la.value AS FLOAT) AS lat,
       CAST(200.0 + 2.5 * lo.value AS FLOAT) AS lon,
       CAST(273.15 + 32.0 * cos(radians(75.0 - 2.5 * la.value)) - 8.0
            - 18.0 * sin(radians(75.0 - 2.5 * la.value))
                   * cos(2 * pi() * (date_part('doy', t.value) - 15.0) / 365.25)
            + 2.5 * cos(2 * pi() * (date_part('hour', t.value) - 14.0) / 24.0)
            + 3.0 * sin(3 * radians(200.0 + 2.5 * lo.value))
            + 1.5 * sin(12.9898 * la.value + 78.233 * lo.value + date_part('epoch', t.value) / 21600.0)
            AS FLOAT) AS air
FROM generate_series(TIMESTAMP '2013-01-01T00:00:00', TIMESTAMP '2014-12-31T18:00:00', INTERVAL '6 hours') AS t
CROSS JOIN generate_series(0, 24) AS la
CROSS JOIN generate_series(0, 52) AS lo;

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
