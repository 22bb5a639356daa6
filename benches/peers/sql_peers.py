"""The SQL backend's peers, for `cargo bench --features sql --bench sql`:
the Arrow-native readers and bulk loaders of SQLite and PostgreSQL,
reading and loading the same table the bench stored.

    python sql_peers.py RUNS SQLITE_FILE PG_URI PARQUET MONTH_START MONTH_END

RUNS reads of each kind per peer; SQLITE_FILE is the tier's SQLite
database and PG_URI a PostgreSQL connection string without its password
('-' when PostgreSQL is not measured); the password comes from the
environment (NUTHATCH_TEST_PG_WRITER_PASSWORD), and any error this script
shows has it removed. The entry's table is the one whose name starts with
`bench_grid_sql`. PARQUET holds the same rows, which each ADBC driver
ingests into a new table (the rows are in memory before the clock starts).
Prints one JSON object: {database: {peer: {full, month, ingest,
indexed}}} in milliseconds, medians of the runs; `indexed` is the ingest
followed by the same time index (and, on PostgreSQL, statistics) our
write builds, in its transaction.
"""

import json
import os
import statistics
import sys
import time

import adbc_driver_postgresql.dbapi
import adbc_driver_sqlite.dbapi
import connectorx
import pyarrow.parquet


def median_ms(runs, action):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def table_name(connection, query):
    with connection.cursor() as cursor:
        cursor.execute(query)
        row = cursor.fetchone()
    if row is None:
        sys.exit("no table named bench_grid_sql* was found")
    return row[0]


def adbc_read(connect, query):
    def read():
        with connect() as connection, connection.cursor() as cursor:
            cursor.execute(query)
            table = cursor.fetch_arrow_table()
            assert table.num_rows > 0
    return read


def adbc_ingest(connect, rows, index=()):
    """The driver's bulk ingest of the rows into a new table, then the
    statements of `index` on it (the index our write builds for windows),
    in one transaction."""
    def ingest():
        with connect() as connection:
            with connection.cursor() as cursor:
                cursor.adbc_ingest("peer_ingest", rows, mode="replace")
                for statement in index:
                    cursor.execute(statement)
            connection.commit()
    return ingest


def connectorx_read(uri, query):
    def read():
        table = connectorx.read_sql(uri, query, return_type="arrow")
        assert table.num_rows > 0
    return read


def measure(runs, driver, connect, cx_uri, full, month, rows, index):
    """One database's peers: its ADBC driver and connectorx reading the
    full table and the month, and the driver's ingest of the rows, alone
    and followed by the time index our write builds."""
    result = {}
    readers = {
        driver: (adbc_read(connect, full), adbc_read(connect, month)),
        "connectorx": (connectorx_read(cx_uri, full), connectorx_read(cx_uri, month)),
    }
    for peer, (read_full, read_month) in readers.items():
        result[peer] = {
            "full": median_ms(runs, read_full),
            "month": median_ms(runs, read_month),
        }
    ingests = max(1, runs // 2)
    result[driver]["ingest"] = median_ms(ingests, adbc_ingest(connect, rows))
    result[driver]["indexed"] = median_ms(ingests, adbc_ingest(connect, rows, index))
    return result


def main():
    runs, sqlite_file, pg_uri, parquet, start, end = sys.argv[1:7]
    runs = int(runs)
    rows = pyarrow.parquet.read_table(parquet)
    results = {}

    sqlite_connect = lambda: adbc_driver_sqlite.dbapi.connect(sqlite_file)
    with sqlite_connect() as connection:
        table = table_name(
            connection,
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name LIKE 'bench_grid_sql%' ORDER BY name LIMIT 1",
        )
    full = f'SELECT time, lat, lon, air FROM "{table}"'
    # The bench stores SQLite times as fixed-width text, which compares in
    # time order.
    month = f"{full} WHERE time >= '{start}.000000' AND time <= '{end}.000000'"
    results["SQLite"] = measure(
        runs,
        "adbc_driver_sqlite",
        sqlite_connect,
        f"sqlite://{sqlite_file}",
        full,
        month,
        rows,
        ['CREATE INDEX "peer_ingest_time" ON "peer_ingest" ("time")'],
    )

    if pg_uri != "-":
        password = os.environ.get("NUTHATCH_TEST_PG_WRITER_PASSWORD", "")
        user_at = pg_uri.split("://", 1)[1].split("@", 1)[0]
        pg_uri = pg_uri.replace(f"{user_at}@", f"{user_at}:{password}@", 1)
        pg_connect = lambda: adbc_driver_postgresql.dbapi.connect(pg_uri)
        with pg_connect() as connection:
            schema, table = table_name(
                connection,
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_name LIKE 'bench_grid_sql%' ORDER BY 1 LIMIT 1",
            ).split(".", 1)
        full = f'SELECT time, lat, lon, air FROM "{schema}"."{table}"'
        month = f"{full} WHERE time >= '{start}' AND time <= '{end}'"
        results["PostgreSQL"] = measure(
            runs,
            "adbc_driver_postgresql",
            pg_connect,
            pg_uri,
            full,
            month,
            rows,
            [
                'CREATE INDEX "peer_ingest_time" ON "peer_ingest" USING brin ("time") '
                "WITH (autosummarize = on)",
                "SET LOCAL default_statistics_target = 10",
                'ANALYZE "peer_ingest"',
            ],
        )
    print(json.dumps(results))


if __name__ == "__main__":
    password = os.environ.get("NUTHATCH_TEST_PG_WRITER_PASSWORD", "")
    try:
        main()
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        sys.exit(message.replace(password, "***") if password else message)
