-- The README's map: July 2013 of my_first_cache's grid as map tiles, one
-- Cloud-Optimized GeoTIFF per six-hourly step, registered in the tier's
-- Terracotta database (.nuthatch/terracotta.sqlite on the default store).
-- Needs the functions of readme_functions.sql.
CREATE OR REPLACE CACHED FUNCTION air_map(month INT DEFAULT 1)
WITH (cache_args = (month), backend = 'terracotta', dimensions = (time, lat, lon))
AS SELECT time, lat, lon, air FROM my_first_cache()
   WHERE date_part('year', time) = 2013 AND date_part('month', time) = $month;

SELECT count(*) AS pixels FROM air_map(7);
