"""Times the README workflow in the real Python nuthatch, for the peers bench.

    python python_nuthatch.py WORKDIR [--repeats N] [--warmup N]
                                      [--paths zarr,parquet,delta] [--keep] [--verbose]

Runs inside the venv that scripts/peers makes. Every repeat and every path gets a fresh cache root under
WORKDIR; the steps then run in order, each timed in-process from the call to
the end of the reductions that examples/readme.sql computes (rows, first and
last time, mean air); one untimed pass per path comes first (--warmup). Each
step checks how many function bodies ran and how many entries were read, so a
hit that recomputed fails the run. Prints one JSON object on stdout:

    {"steps":   {STEP: {PATH: median_seconds}},
     "rows":    {STEP: {PATH: rows}},                 # count(*), nulls included
     "results": {STEP: {PATH: {rows, non_null_air, first, last, mean_air}}},
     "repeats": N, "paths": [...], "versions": {...}}

Paths: "zarr" returns an xarray Dataset (nuthatch's zarr backend); "parquet"
a pandas DataFrame with backend='parquet' and engine='pandas' (one Parquet
file); "delta" a pandas DataFrame with nuthatch's default for pandas, Delta.
"""

import argparse
import gc
import json
import logging
import os
import statistics
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import xarray as xr

# zarr-python 3 warns on every write that consolidated metadata is not in the
# Zarr v3 spec; those lines would bury anything useful on stderr.
warnings.filterwarnings("ignore")

# nuthatch logs every call to stdout at INFO; stdout carries the JSON, so its
# handler is moved to stderr (and quietened unless --verbose) after import.
import nuthatch  # noqa: E402
from nuthatch import cache  # noqa: E402
from nuthatch.cache import Cache  # noqa: E402
from nuthatch.processors import timeseries  # noqa: E402

# The package's `cache` attribute is the decorator, so the submodules are
# reached through sys.modules.
memoizer = sys.modules["nuthatch.memoizer"]
core = sys.modules["nuthatch.nuthatch"]

PATHS = ("zarr", "parquet", "delta")
STEPS = (
    "first_compute",
    "full_hit",
    "clipped_hit",
    "weekly_compute",
    "recompute_overwrite",
    "memoized_recall",
    "compute_only",
)

# How often each function body ran, and how often nuthatch read an entry from
# a store: the checks that a step named a hit really is one.
COUNTS = {"my_first_cache": 0, "agg_and_clip": 0, "store_reads": 0}

_cache_read = Cache.read


def _counted_read(self, *args, **kwargs):
    COUNTS["store_reads"] += 1
    return _cache_read(self, *args, **kwargs)


Cache.read = _counted_read


# --- The data: examples/readme_functions.sql's formula, with numpy ----------

def grid_arrays():
    """time (2920,), lat (25,), lon (53,) and air (time, lat, lon), float32."""
    times = pd.date_range("2013-01-01T00:00", "2014-12-31T18:00", freq="6h")
    la = np.arange(25, dtype=np.float64)
    lo = np.arange(53, dtype=np.float64)
    lat = 75.0 - 2.5 * la
    lon = 200.0 + 2.5 * lo
    # The SQL works in double precision and casts only the result to FLOAT.
    doy = times.dayofyear.to_numpy(np.float64)[:, None, None]
    hour = times.hour.to_numpy(np.float64)[:, None, None]
    # Seconds since the epoch, whatever unit pandas picked for the index.
    epoch = times.to_numpy().astype("datetime64[s]").astype(np.float64)[:, None, None]
    rlat = np.radians(lat)[None, :, None]
    air = (
        273.15
        + 32.0 * np.cos(rlat)
        - 8.0
        - 18.0 * np.sin(rlat) * np.cos(2 * np.pi * (doy - 15.0) / 365.25)
        + 2.5 * np.cos(2 * np.pi * (hour - 14.0) / 24.0)
        + 3.0 * np.sin(3 * np.radians(lon))[None, None, :]
        + 1.5 * np.sin(12.9898 * la[None, :, None] + 78.233 * lo[None, None, :] + epoch / 21600.0)
    )
    return times, lat.astype(np.float32), lon.astype(np.float32), air.astype(np.float32)


def grid_dataset():
    times, lat, lon, air = grid_arrays()
    return xr.Dataset(
        {"air": (("time", "lat", "lon"), air)},
        coords={"time": times, "lat": lat, "lon": lon},
    )


def grid_frame():
    # Rows in time-major order, then lat, then lon, as the SQL's cross join.
    times, lat, lon, air = grid_arrays()
    n_lat, n_lon = len(lat), len(lon)
    return pd.DataFrame(
        {
            "time": np.repeat(times.to_numpy(), n_lat * n_lon),
            "lat": np.tile(np.repeat(lat, n_lon), len(times)),
            "lon": np.tile(lon, len(times) * n_lat),
            "air": air.reshape(-1),
        }
    )


def rolling_frame(df, agg_days):
    """Rolling mean of air over agg_days time steps per grid point; NaN for
    the first agg_days - 1 steps; rows keep the input's order."""
    # Entries come back in the time-major order they were written in; sort
    # only if a store handed them back otherwise.
    if not df["time"].is_monotonic_increasing:
        df = df.sort_values("time", kind="stable")
    rolled = df.groupby(["lat", "lon"], sort=False)["air"].rolling(agg_days).mean()
    # groupby-rolling indexes by (lat, lon, row); drop the group levels so the
    # values line up with the frame's rows again.
    air = rolled.droplevel([0, 1]).astype(np.float32)
    return df.assign(air=air).reset_index(drop=True)


# --- The cached functions, one pair per path --------------------------------

def define(path):
    """my_first_cache and agg_and_clip as a Python team would write them."""
    # zarr and delta are nuthatch's defaults for a Dataset and a pandas frame.
    # parquet is the default only for dask frames: a pandas frame names it,
    # and asks for pandas back (a parquet entry reads as dask by default).
    options = {"backend": "parquet", "engine": "pandas"} if path == "parquet" else {}

    @cache(cache_args=[], **options)
    def my_first_cache():
        COUNTS["my_first_cache"] += 1
        return grid_dataset() if path == "zarr" else grid_frame()

    @timeseries()
    @cache(cache_args=["agg_days"], version="0.1.0", **options)
    def agg_and_clip(start_time, end_time, agg_days=7):
        COUNTS["agg_and_clip"] += 1
        grid = my_first_cache()
        if path == "zarr":
            return grid.rolling(time=agg_days).mean()
        return rolling_frame(grid, agg_days)

    return my_first_cache, agg_and_clip


# --- What the README's query computes ---------------------------------------

def summarise(result):
    """Forces the result into memory and computes rows, first, last, mean."""
    if isinstance(result, xr.Dataset):
        result = result.load()
        air = result["air"].values
        times = result["time"].values
    else:
        air = result["air"].to_numpy()
        times = result["time"].to_numpy()
    rows = int(air.size)
    non_null = int(np.count_nonzero(~np.isnan(air)))
    mean = float(np.nanmean(air, dtype=np.float64)) if non_null else None
    return {
        "rows": rows,
        "non_null_air": non_null,
        "first": str(pd.Timestamp(times.min())) if rows else None,
        "last": str(pd.Timestamp(times.max())) if rows else None,
        "mean_air": mean,
    }


# --- One run of the workflow on a fresh root --------------------------------

def timed(step, expect, call):
    """Runs call() and its summary under the clock; checks the counters moved
    by exactly `expect` (grid bodies, agg bodies, store reads)."""
    before = dict(COUNTS)
    gc.collect()
    start = time.perf_counter()
    summary = summarise(call())
    seconds = time.perf_counter() - start
    moved = tuple(COUNTS[k] - before[k] for k in ("my_first_cache", "agg_and_clip", "store_reads"))
    if moved != expect:
        raise AssertionError(
            f"{step}: expected (grid bodies, agg bodies, store reads) = {expect}, got {moved}"
        )
    return seconds, summary


def run_once(session, label, path):
    root = os.path.join(session, f"{label}-{path}")
    os.makedirs(root)
    # nuthatch builds its config from the environment on every call.
    os.environ["NUTHATCH_ROOT_FILESYSTEM"] = root
    if path == "parquet":
        # nuthatch's pandas parquet write does not create the key's folder
        # on a fresh local root (tests/python/nuthatch_store.py does the same).
        os.makedirs(os.path.join(root, "my_first_cache"))
        os.makedirs(os.path.join(root, "agg_and_clip"))
    # The memoizer is process-wide and keyed without the root or the path.
    nuthatch.clear_memoizer()
    _, agg_and_clip = define(path)
    ext = path  # each path's backend names its files' extension
    year = ("2013-01-01", "2014-01-01")
    out = {}

    out["first_compute"] = timed("first_compute", (1, 1, 0), lambda: agg_and_clip(*year, agg_days=1))
    for entry in (f"my_first_cache/.{ext}", f"agg_and_clip/1.{ext}"):
        if not os.path.exists(os.path.join(root, entry)):
            raise AssertionError(f"first_compute did not write {entry} under {root}")

    out["full_hit"] = timed("full_hit", (0, 0, 1), lambda: agg_and_clip(*year, agg_days=1))
    out["clipped_hit"] = timed(
        "clipped_hit", (0, 0, 1), lambda: agg_and_clip("2013-01-01", "2013-06-01", agg_days=1)
    )
    # The grid is read from the store; only the weekly body runs.
    out["weekly_compute"] = timed("weekly_compute", (0, 1, 1), lambda: agg_and_clip(*year, agg_days=7))
    if not os.path.exists(os.path.join(root, f"agg_and_clip/7.{ext}")):
        raise AssertionError("weekly_compute did not write agg_and_clip/7")
    # recompute=True reaches only the top-level call; the nested grid is a hit.
    out["recompute_overwrite"] = timed(
        "recompute_overwrite",
        (0, 1, 1),
        lambda: agg_and_clip(*year, agg_days=7, recompute=True, cache_mode="overwrite"),
    )

    # The first memoize=True call reads the entry and keeps the clipped result
    # in memory; the second is answered from memory before any store read.
    timed("memoize_warmup", (0, 0, 1), lambda: agg_and_clip(*year, agg_days=7, memoize=True))
    if not (memoizer.local_memoized_objects or memoizer.remote_memoized_objects):
        raise AssertionError("memoize=True stored nothing")
    out["memoized_recall"] = timed(
        "memoized_recall", (0, 0, 0), lambda: agg_and_clip(*year, agg_days=7, memoize=True)
    )

    # cache_mode is inherited by nested calls, so 'off' computes the grid too.
    out["compute_only"] = timed(
        "compute_only", (1, 1, 0), lambda: agg_and_clip(*year, agg_days=7, cache_mode="off")
    )
    return out


def cleanup(session, keep):
    # Each root is about 100 MB; drop it once its run is over (not timed).
    if not keep:
        for name in os.listdir(session):
            shutil.rmtree(os.path.join(session, name))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes per path first")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--keep", action="store_true", help="keep the stores under WORKDIR")
    parser.add_argument("--verbose", action="store_true", help="show nuthatch's INFO lines on stderr")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; choose from {list(PATHS)}")

    handler = core.stream_handler
    handler.setStream(sys.stderr)
    handler.setLevel(logging.INFO if args.verbose else logging.WARNING)

    os.makedirs(args.workdir, exist_ok=True)
    # A folder of its own, so a WORKDIR used before still gives fresh roots.
    session = tempfile.mkdtemp(prefix="python-nuthatch-", dir=os.path.abspath(args.workdir))
    times = {step: {path: [] for path in paths} for step in STEPS}
    results = {step: {} for step in STEPS}
    # One untimed pass per path first: the first calls in a process pay for
    # lazy imports and codec set-up that a long-lived session pays once.
    for repeat in range(-args.warmup, 0):
        for path in paths:
            run_once(session, f"warmup{-repeat}", path)
            cleanup(session, args.keep)
    for repeat in range(args.repeats):
        for path in paths:
            for step, (seconds, summary) in run_once(session, f"run{repeat}", path).items():
                times[step][path].append(seconds)
                # Every repeat computes the same thing; keep the last summary.
                results[step][path] = summary
            cleanup(session, args.keep)
    if not args.keep:
        os.rmdir(session)

    import dask
    import deltalake
    import zarr

    report = {
        "steps": {s: {p: statistics.median(v) for p, v in by.items()} for s, by in times.items()},
        "rows": {s: {p: r["rows"] for p, r in by.items()} for s, by in results.items()},
        "results": results,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "paths": paths,
        "versions": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "xarray": xr.__version__,
            "zarr": zarr.__version__,
            "dask": dask.__version__,
            "deltalake": deltalake.__version__,
        },
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
