"""Times DuckDB and Polars writing rows held in memory to Parquet, for the
peers bench.

    python parquet_writers.py PARQUET_FILE OUT_DIR [--repeats N] [--ours FILE]

The rows are those of PARQUET_FILE (the README's daily entry), loaded once
into memory: a DuckDB table (one in-process connection, threads = 2) and a
Polars DataFrame. Each writer then writes them to a new file in OUT_DIR
each time (as a cached entry is always a new file), with Snappy, the compression nuthatch writes: DuckDB with
`COPY table TO file (FORMAT parquet, COMPRESSION snappy)`, Polars with
`DataFrame.write_parquet(file, compression="snappy")`. One write each to
warm up, then N (default 5); the median is reported. Prints one JSON object
on stdout:

    {"duckdb": s, "polars": s, "cpu": {"duckdb": s, "polars": s},
     "files": {...}, "rows": n, "versions": {...}}

"cpu" is the median CPU time of the process (all its threads) over a
write.

"files" describes each writer's file (and FILE, nuthatch's, with --ours):
its bytes, row groups and each column's encodings, from its footer.
"""

import argparse
import json
import os
import statistics
import sys
import time

import duckdb
import polars
import pyarrow.parquet


def sql_string(text):
    return "'" + text.replace("'", "''") + "'"


def timed(write, repeats):
    """The median wall time of `repeats` writes after one to warm up, and
    the median CPU time of the process (all its threads) over them."""
    write()
    times, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        write()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(times), statistics.median(cpu)


def described(path):
    metadata = pyarrow.parquet.ParquetFile(path).metadata
    columns = {}
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(index)
            column = columns.setdefault(chunk.path_in_schema, {"bytes": 0, "encodings": set()})
            column["bytes"] += chunk.total_compressed_size
            column["encodings"].update(chunk.encodings)
    for column in columns.values():
        column["encodings"] = sorted(column["encodings"])
    return {
        "bytes": os.path.getsize(path),
        "row_groups": metadata.num_row_groups,
        "columns": columns,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parquet_file")
    parser.add_argument("out_dir")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ours", help="nuthatch's file of the same rows, to describe")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"CREATE TABLE rows AS SELECT * FROM read_parquet({sql_string(args.parquet_file)})")
    rows = con.sql("SELECT count(*) FROM rows").fetchall()[0][0]
    frame = polars.read_parquet(args.parquet_file)
    if frame.height != rows:
        sys.exit(f"Polars read {frame.height} rows, DuckDB {rows}")

    # Every write makes a new file, as a cached entry is: on this kind of
    # machine overwriting a file of the same size is three times faster
    # than writing a new one, whose pages the kernel must find first.
    written = {"duckdb": [], "polars": []}

    def new_file(writer):
        path = os.path.join(args.out_dir, f"{writer}{len(written[writer])}.parquet")
        written[writer].append(path)
        return path

    def duckdb_write():
        path = new_file("duckdb")
        con.execute(f"COPY rows TO {sql_string(path)} (FORMAT parquet, COMPRESSION snappy)")

    def polars_write():
        frame.write_parquet(new_file("polars"), compression="snappy")

    duckdb_time, duckdb_cpu = timed(duckdb_write, args.repeats)
    polars_time, polars_cpu = timed(polars_write, args.repeats)
    report = {
        "duckdb": duckdb_time,
        "polars": polars_time,
        "cpu": {"duckdb": duckdb_cpu, "polars": polars_cpu},
        "files": {writer: described(paths[-1]) for writer, paths in written.items()},
        "rows": rows,
        "repeats": args.repeats,
        "versions": {
            "duckdb": duckdb.__version__,
            "polars": polars.__version__,
            "python": sys.version.split()[0],
        },
    }
    if args.ours:
        report["files"]["nuthatch"] = described(args.ours)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
