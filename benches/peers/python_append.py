"""Times what Python nuthatch must do to add a day to a timeseries entry,
for the coverage bench: recompute the whole range with recompute=True.

    python python_append.py WORKDIR REPEATS

`daily_air(start_time, end_time)` reads its window from the README grid
(cached once as `my_first_cache()`, parquet with pandas, as in
python_nuthatch.py), as the bench's SQL function does. 2013 is computed,
then each repeat asks for 2013 and the next day of 2014 with
recompute=True, cache_mode='overwrite'. Prints one JSON object:

    {"recompute_with_day": median_seconds, "repeats": N}
"""

import json
import logging
import os
import statistics
import sys
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import python_nuthatch  # noqa: E402  (the grid, and nuthatch's logging quietened)


def main():
    workdir, repeats = sys.argv[1], int(sys.argv[2])
    # stdout carries the JSON: nuthatch's log goes to stderr, warnings only.
    handler = python_nuthatch.core.stream_handler
    handler.setStream(sys.stderr)
    handler.setLevel(logging.WARNING)
    # nuthatch's pandas parquet write does not create the key's folder.
    for function in ("my_first_cache", "daily_air"):
        os.makedirs(os.path.join(workdir, function), exist_ok=True)
    os.environ["NUTHATCH_ROOT_FILESYSTEM"] = workdir
    from nuthatch import cache
    from nuthatch.processors import timeseries

    my_first_cache, _ = python_nuthatch.define("parquet")

    @timeseries()
    @cache(cache_args=[], version="1", backend="parquet", engine="pandas")
    def daily_air(start_time, end_time):
        grid = my_first_cache()
        within = (grid["time"] >= pd.Timestamp(start_time)) & (
            grid["time"] < pd.Timestamp(end_time) + pd.Timedelta(days=1)
        )
        return grid[within].reset_index(drop=True)

    my_first_cache()
    daily_air("2013-01-01", "2013-12-31")
    times = []
    for n in range(repeats):
        day = (pd.Timestamp("2014-01-01") + pd.Timedelta(days=n)).strftime("%Y-%m-%d")
        started = time.perf_counter()
        result = daily_air("2013-01-01", day, recompute=True, cache_mode="overwrite")
        len(result)
        times.append(time.perf_counter() - started)
    print(json.dumps({"recompute_with_day": statistics.median(times), "repeats": repeats}))


if __name__ == "__main__":
    main()
