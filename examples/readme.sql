-- The README workflow for the nuthatch binary:
--   nuthatch -f examples/readme_functions.sql -f examples/readme.sql

-- Daily means for 2013: computed, along with my_first_cache().
SELECT count(*) AS rows, min(time) AS first, max(time) AS last, avg(air) AS mean_air
FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 1);

-- The same entry clipped to January..June 2013: a hit.
SELECT count(*) AS rows, min(time) AS first, max(time) AS last, avg(air) AS mean_air
FROM agg_and_clip('2013-01-01', '2013-06-01', agg_days => 1);

-- Weekly means: a new key, computed from the cached grid.
SELECT count(*) AS rows, avg(air) AS mean_air
FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7);

-- Recomputed and overwritten.
SELECT count(*) AS rows, avg(air) AS mean_air
FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7, recompute => true, cache_mode => 'overwrite');

-- A new namespace: a separate entry.
SELECT count(*) AS rows, avg(air) AS mean_air
FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7, namespace => 'experiment');
