"""Zarr entries shared with the real Python nuthatch, for the Zarr tests.

    python zarr_store.py write ROOT
        Caches the README functions the way Python nuthatch does (xarray
        Datasets, so Zarr v3 through zarr-python 3): `my_first_cache()` and
        `agg_and_clip(..., agg_days=4)`; `packed()`, whose Dataset carries
        netCDF packing (int16 with scale_factor, add_offset and _FillValue);
        and a Zarr v2 store (`grid_v2.zarr`, consolidated, blosc) with the
        metadata row nuthatch would write for it. Prints one `stats` line per
        entry, as xarray computes them.

    python zarr_store.py read ROOT
        Reads `rust_grid()` (written by the Rust side) with Python nuthatch in
        read_only_strict mode, and opens the store with xr.open_zarr; prints
        a `stats` line for each.

A `stats` line is `stats NAME CELLS SUM NANS TMIN TMAX` over the `air`
variable: grid cells, the sum of the non-NaN values, the NaN count, and the
first and last time as ISO strings.
"""

import datetime
import getpass
import os
import sys
import warnings

import numpy as np
import pandas as pd
import xarray as xr

warnings.filterwarnings("ignore")


def air_dataset(steps=40):
    time = pd.date_range("2013-01-01", periods=steps, freq="6h")
    lat = np.arange(75.0, 14.9, -2.5, dtype="float32")[:5]
    lon = np.arange(200.0, 330.1, 2.5, dtype="float32")[:7]
    rng = np.random.default_rng(0)
    air = (250 + 30 * rng.random((time.size, lat.size, lon.size))).astype("float32")
    air[0, 0, 0] = np.nan
    air[3, 2, :] = np.nan
    return xr.Dataset(
        {"air": (("time", "lat", "lon"), air, {"units": "degK"})},
        coords={
            "time": time,
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        attrs={"title": "4x daily NMC reanalysis (1948)"},
    )


def stats(name, ds):
    air = ds["air"].values.astype("float64")
    times = pd.to_datetime(ds["time"].values)
    print(
        "stats",
        name,
        air.size,
        repr(float(np.nansum(air))),
        int(np.isnan(air).sum()),
        times.min().isoformat(),
        times.max().isoformat(),
    )


def metadata_row(root, key, path):
    import polars as pl

    directory = os.path.join(root, "nuthatch_metadata.nut", key)
    os.makedirs(directory, exist_ok=True)
    pl.DataFrame(
        {
            "cache_key": [key],
            "namespace": [None],
            "version": [None],
            "backend": ["zarr"],
            "state": ["confirmed"],
            "last_modified": [datetime.datetime.now(datetime.timezone.utc).timestamp() * 1e6],
            "commit_hash": ["no_git_repo"],
            "user": [getpass.getuser()],
            "path": [path],
        }
    ).write_parquet(os.path.join(directory, "zarr.parquet"))


def main():
    command, root = sys.argv[1], sys.argv[2]
    # nuthatch reads its root from the environment when it is imported.
    os.environ["NUTHATCH_ROOT_FILESYSTEM"] = root
    from nuthatch import cache
    from nuthatch.processors import timeseries

    if command == "write":

        @cache(backend="zarr")
        def my_first_cache():
            return air_dataset()

        @timeseries(timeseries="time")
        @cache(cache_args=["agg_days"], version="0.1.0", backend="zarr")
        def agg_and_clip(start_time, end_time, agg_days=1):
            return my_first_cache().rolling({"time": agg_days}).mean()

        @cache(backend="zarr")
        def packed():
            ds = air_dataset()
            ds["air"].encoding = {
                "dtype": "int16",
                "scale_factor": 0.01,
                "add_offset": 250.0,
                "_FillValue": 32767,
            }
            return ds

        stats("my_first_cache", my_first_cache())
        agg_and_clip("2013-01-02", "2013-01-05", agg_days=4)
        stats("agg_and_clip", xr.open_zarr(os.path.join(root, "agg_and_clip", "4.zarr")))
        packed()
        stats("packed", xr.open_zarr(os.path.join(root, "packed", ".zarr")))
        v2 = os.path.join(root, "grid_v2", ".zarr")
        air_dataset().to_zarr(v2, zarr_format=2, consolidated=True, mode="w")
        metadata_row(root, "grid_v2/", v2)
        stats("grid_v2", xr.open_zarr(v2))
        return

    if command == "read":

        @cache(backend="zarr")
        def rust_grid():
            raise RuntimeError("rust_grid should have been read, not computed")

        stats("nuthatch", rust_grid(cache_mode="read_only_strict"))
        stats("open_zarr", xr.open_zarr(os.path.join(root, "rust_grid", ".zarr")))
        return
    if command == "read-grown":
        # A grid grown in place over several calls, read whole by xarray.
        stats("open_zarr", xr.open_zarr(os.path.join(root, "grown", ".zarr")))
        return
    sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
