"""Drives the real Python nuthatch against a store, for the compatibility tests.

    python nuthatch_store.py write ROOT
        Caches `series` entries the way a Python team would: a dask frame
        (nuthatch's parquet default, a directory of part files), a pandas frame
        with backend='parquet' (a single file), and a namespaced dask frame.

    python nuthatch_store.py write-delta ROOT
        Caches `series` entries as Delta tables, nuthatch's default for
        pandas frames: station 'delta1' once, and station 'delta2' twice
        (the second call overwrites, so its table has two log versions and
        the first version's file stays, marked removed). The overwrite's
        values are scaled by 10. Station 'delta3''s table is then rewritten
        by deltalake partitioned by station.

    python nuthatch_store.py read-delta ROOT STATION SCALE START END
        As `read`, for a Delta entry (backend='delta').

    python nuthatch_store.py write-sql ROOT
        Caches `series(station='sql1')` with backend='sql': a table in the
        PostgreSQL database that NUTHATCH_ROOT_SQL_* name, written by pandas'
        `to_sql`.

    python nuthatch_store.py read-sql ROOT STATION SCALE START END
        As `read`, for a SQL entry (backend='sql').

    python nuthatch_store.py write-terracotta ROOT
        Caches `grid(1)` with backend='terracotta': an xarray Dataset over
        (time, lat, lon), four six-hourly steps of `air` on a 2.5 degree grid
        (lat 15..75, lon -160..-30), which nuthatch reprojects and registers
        in the Terracotta database that NUTHATCH_ROOT_TERRACOTTA_* name.

    python nuthatch_store.py read-terracotta ROOT DAYS
        Reads `grid(DAYS)` in read_only_strict mode; nuthatch's terracotta
        backend returns each dataset's Terracotta metadata: prints `result
        COUNT` and `dataset KEY MIN MAX` for each.

    python nuthatch_store.py write-basic ROOT
        Caches `counts(3)`, whose result is a Python list, so nuthatch
        stores it with its basic backend: a pickle.

    python nuthatch_store.py read ROOT STATION SCALE START END [NAMESPACE]
        Reads one `series` entry in read_only_strict mode, so a missing or
        invalid entry fails instead of computing; prints `result COUNT SUM`.

    python nuthatch_store.py local-write ROOT
        In `local` mode, computes `series('2020-01-01', '2020-01-02',
        station='localpy')` into the local tier (Python's is always
        $HOME/.nuthatch/caches), keyed by every argument and clipped.

    python nuthatch_store.py local-read ROOT STATION SCALE START END
        Reads one local entry in `local_strict` mode (local only; a miss
        would compute, which fails here); prints `result COUNT SUM`.

`series` has the signature, cache_args, version and timeseries column of the
`series` function in tests/integration/support.rs. Values differ from the Rust
compute (an offset of 1000) so a test can tell a read from a recompute.
"""

import os
import sys

import dask.dataframe as dd
import numpy as np
import pandas as pd

HOURS = 60 * 24
PYTHON_OFFSET = 1000.0


def frame(station, scale):
    return pd.DataFrame(
        {
            "time": pd.date_range("2020-01-01", periods=HOURS, freq="h"),
            "station": [station] * HOURS,
            "value": np.arange(HOURS, dtype="float64") * scale + PYTHON_OFFSET,
        }
    )


def define_series(kind, backend="parquet", factor=1.0):
    # nuthatch reads its root from the environment when it is imported.
    from nuthatch import cache
    from nuthatch.processors import timeseries

    # parquet is nuthatch's default for dask frames only; pandas needs it named.
    @timeseries("time")
    @cache(cache_args=["station", "scale"], version="1", backend=backend)
    def series(start_time, end_time, station="north", scale=1.0):
        if kind == "read":
            raise RuntimeError("the entry should have been read, not computed")
        data = frame(station, scale * factor)
        return dd.from_pandas(data, npartitions=3) if kind == "dask" else data

    return series


def define_grid(kind):
    import xarray as xr
    from nuthatch import cache

    @cache(cache_args=["days"], version="1", backend="terracotta")
    def grid(days=1):
        if kind == "read":
            raise RuntimeError("the entry should have been read, not computed")
        times = pd.date_range("2013-01-01", periods=4 * days, freq="6h").values.astype("datetime64[ns]")
        lat = np.arange(15.0, 75.1, 2.5)
        lon = np.arange(-160.0, -29.9, 2.5)
        step = np.arange(len(times), dtype="float64")[:, None, None]
        air = 250.0 + step + lat[None, :, None] * 0.5 + lon[None, None, :] * 0.1
        return xr.Dataset(
            {"air": (("time", "lat", "lon"), air.astype("float32"))},
            coords={"time": times, "lat": lat, "lon": lon},
        )

    return grid


def main():
    command, root = sys.argv[1], sys.argv[2]
    os.environ["NUTHATCH_ROOT_FILESYSTEM"] = root
    if command == "write":
        define_series("dask")(None, None, station="west", scale=1.0)
        define_series("dask")(None, None, station="west", scale=3.0, namespace="trial")
        # nuthatch's pandas parquet write does not create the key's directory;
        # the dask entry above already did.
        define_series("pandas")(None, None, station="east", scale=2.0)
        return
    if command == "write-delta":
        define_series("pandas", "delta")(None, None, station="delta1", scale=1.0)
        define_series("pandas", "delta")(None, None, station="delta2", scale=1.0)
        define_series("pandas", "delta", factor=10.0)(
            None, None, station="delta2", scale=1.0, recompute=True, cache_mode="overwrite"
        )
        # delta3's table rewritten by deltalake itself, partitioned by
        # station: its files no longer hold that column.
        define_series("pandas", "delta")(None, None, station="delta3", scale=1.0)
        import shutil

        from deltalake import write_deltalake

        table = os.path.join(root, "series", "1.0_delta3.delta")
        shutil.rmtree(table)
        write_deltalake(table, frame("delta3", 1.0), partition_by=["station"])
        return
    if command == "write-sql":
        define_series("pandas", "sql")(None, None, station="sql1", scale=1.0)
        return
    if command == "write-terracotta":
        define_grid("write")(1)
        return
    if command == "read-terracotta":
        datasets = define_grid("read")(int(sys.argv[3]), cache_mode="read_only_strict")
        print(f"result {len(datasets)}")
        for dataset in datasets:
            for key, metadata in dataset.items():
                low, high = metadata["range"]
                print(f"dataset {key} {low!r} {high!r}")
        return
    if command == "write-basic":
        from nuthatch import cache

        @cache(cache_args=["n"], version="1")
        def counts(n):
            return list(range(n))

        # Like its pandas parquet path, the basic backend opens the pickle
        # without creating the key's directory on a fresh local root.
        os.makedirs(os.path.join(root, "counts"), exist_ok=True)
        counts(3)
        return
    if command == "local-write":
        # As for write-basic: the pandas parquet write needs the key's folder.
        os.makedirs(os.path.expanduser("~/.nuthatch/caches/series"), exist_ok=True)
        define_series("pandas")("2020-01-01", "2020-01-02", station="localpy", cache_mode="local")
        return
    if command in ("read", "local-read", "read-delta", "read-sql"):
        station, scale, start, end = sys.argv[3:7]
        namespace = sys.argv[7] if len(sys.argv) > 7 else None
        backend = {"read-delta": "delta", "read-sql": "sql"}.get(command, "parquet")
        data = define_series("read", backend)(
            start or None,
            end or None,
            station=station,
            scale=float(scale),
            namespace=namespace,
            cache_mode="local_strict" if command == "local-read" else "read_only_strict",
            engine="pandas",
        )
        if isinstance(data, dd.DataFrame):
            data = data.compute()
        print(f"result {len(data)} {float(data['value'].sum())!r}", flush=True)
        # deltalake's runtime threads can abort the interpreter's teardown
        # under load ("terminate called without an active exception"),
        # after the result is out; the read is done, so skip the teardown.
        os._exit(0)
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
