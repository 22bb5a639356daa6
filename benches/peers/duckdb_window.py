"""Times DuckDB reading a cached Parquet entry, for the peers bench.

    python duckdb_window.py PARQUET_FILE START END [--repeats N]

One in-process connection with threads = 2. Each query runs once to warm up,
then N times (default 20); the median of those is reported. The file needs
the columns time, lat, lon, air; time may be a timestamp with or without a
time zone (the bounds are cast to the column's own type, so the filter can
use the row groups' statistics). Prints one JSON object on stdout:

    {"window_hit": s, "full_hit": s, "window_arrow": s, "full_arrow": s,
     "rows": {...}, "time_type": ..., "versions": {...}}

window_hit/full_hit:     count(*) and avg(air), fetched as Python values;
window_arrow/full_arrow: every column of the rows, as an Arrow table.
The window is START <= time <= END.
"""

import argparse
import json
import statistics
import sys
import time

import duckdb


def sql_string(text):
    return "'" + text.replace("'", "''") + "'"


def to_arrow(relation):
    # DuckDB 2 names it to_arrow_table; 1.x called it arrow().
    if hasattr(relation, "to_arrow_table"):
        return relation.to_arrow_table()
    return relation.arrow()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parquet_file")
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute("SET threads = 2")
    # A TIMESTAMPTZ bound written without an offset is read in this zone.
    con.execute("SET TimeZone = 'UTC'")

    source = f"read_parquet({sql_string(args.parquet_file)})"
    columns = {row[0]: row[1] for row in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    missing = {"time", "lat", "lon", "air"} - set(columns)
    if missing:
        sys.exit(f"{args.parquet_file}: no column(s) {sorted(missing)}")
    time_type = columns["time"]
    if not time_type.startswith("TIMESTAMP"):
        sys.exit(f"{args.parquet_file}: time is {time_type}, not a timestamp")
    # Casting the bounds, not the column, keeps the comparison prunable;
    # TIMESTAMP_NS/_MS/_S and TIMESTAMP WITH TIME ZONE all work as cast targets.
    start = f"CAST({sql_string(args.start)} AS {time_type})"
    end = f"CAST({sql_string(args.end)} AS {time_type})"
    window = f"WHERE time >= {start} AND time <= {end}"

    queries = {
        "window_hit": (f"SELECT count(*), avg(air) FROM {source} {window}", "values"),
        "full_hit": (f"SELECT count(*), avg(air) FROM {source}", "values"),
        "window_arrow": (f"SELECT * FROM {source} {window}", "arrow"),
        "full_arrow": (f"SELECT * FROM {source}", "arrow"),
    }

    def run(query, kind):
        relation = con.sql(query)
        return relation.fetchall() if kind == "values" else to_arrow(relation)

    report = {}
    rows = {}
    for name, (query, kind) in queries.items():
        result = run(query, kind)  # warm-up: the file's pages and metadata
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = run(query, kind)
            times.append(time.perf_counter() - started)
        report[name] = statistics.median(times)
        if kind == "values":
            count, mean = result[0]
            rows[name] = {"rows": count, "mean_air": mean}
        else:
            rows[name] = {"rows": result.num_rows}

    report["rows"] = rows
    report["time_type"] = time_type
    report["repeats"] = args.repeats
    report["versions"] = {"duckdb": duckdb.__version__, "python": sys.version.split()[0]}
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
