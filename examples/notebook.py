"""nuthatch from a notebook: cached functions over ADBC (Arrow Flight SQL).

Start a server in any project (the embedded default store will do):

    nuthatch serve

then run the cells below in Jupyter, or the whole file as a script:

    python examples/notebook.py [grpc://127.0.0.1:50051]

It needs `pip install adbc-driver-flightsql pyarrow polars` (pandas too for
`fetch_df`). The server's test suite runs this file against a real server.
"""

import sys
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import polars as pl

URI = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:50051"

# %% Connect. Each connection is a session of its own on the server: its
# SET nuthatch.* settings and its nuthatch.calls reports.
conn = flight_sql.connect(URI, autocommit=True)
cur = conn.cursor()

# %% Define the README's cached functions over the wire. A project whose
# nuthatch.toml lists examples/readme_functions.sql has them already;
# CREATE OR REPLACE makes sending them again harmless.
cur.execute((Path(__file__).parent / "readme_functions.sql").read_text())


def query(sql, parameters=None):
    """Runs `sql` with `parameters` bound to its `?`s; returns a Polars
    frame and the seconds it took."""
    started = time.perf_counter()
    cur.execute(sql, parameters)
    frame = pl.from_arrow(cur.fetch_arrow_table())
    return frame, time.perf_counter() - started


# %% The README calls, their arguments as bound parameters (values, never
# SQL text). The first computes (and caches my_first_cache() with it), the
# second is the same entry clipped to five months, the third a new key.
calls = [
    ("daily means, 2013", ("2013-01-01", "2014-01-01", 1)),
    ("the same, Jan-May", ("2013-01-01", "2013-06-01", 1)),
    ("weekly means, 2013", ("2013-01-01", "2014-01-01", 7)),
]
for label, arguments in calls:
    frame, took = query("SELECT * FROM agg_and_clip(?, ?, agg_days => ?)", arguments)
    print(f"{label:20} {frame.height:>9,} rows  {took:6.2f}s")

# %% Filters and aggregates run on the server, next to the data: only the
# answer crosses the wire.
monthly, _ = query(
    """
    SELECT date_trunc('month', time) AS month, avg(air) - 273.15 AS mean_air_c
    FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 1)
    WHERE lat BETWEEN 30 AND 60
    GROUP BY 1 ORDER BY 1
    """
)

# %% A plot without a plotting library: mean air temperature by month over
# the mid-latitudes. (With matplotlib: monthly.to_pandas().plot(x="month").)
low, high = monthly["mean_air_c"].min(), monthly["mean_air_c"].max()
for month, celsius in monthly.iter_rows():
    bar = "#" * round(1 + 39 * (celsius - low) / (high - low))
    print(f"{month:%Y-%m}  {celsius:6.1f} C  {bar}")

# %% What the cache did for this session's calls.
report, _ = query(
    "SELECT function, outcome, tier, key, rows FROM nuthatch.calls ORDER BY finished_at"
)
with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
    print(report)

conn.close()
