"""The real ADBC Flight SQL client, driven by the server's tests.

    python adbc_client.py URI SCENARIO [token=TOKEN] [root_certs=PEM_FILE]

Each scenario prints one JSON object with what the client saw; the Rust
test asserts on it.
"""
import json
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql

uri, scenario = sys.argv[1], sys.argv[2]
options = dict(arg.split("=", 1) for arg in sys.argv[3:])


def connect():
    db_kwargs = {}
    if "token" in options:
        db_kwargs["adbc.flight.sql.authorization_header"] = f"Bearer {options['token']}"
    if "root_certs" in options:
        with open(options["root_certs"]) as pem:
            db_kwargs["adbc.flight.sql.client_option.tls_root_certs"] = pem.read()
    return flight_sql.connect(uri, autocommit=True, db_kwargs=db_kwargs)


def rows(cur, sql):
    cur.execute(sql)
    return cur.fetch_arrow_table().to_pylist()


def calls(cur):
    return rows(cur, "SELECT function, outcome FROM nuthatch.calls ORDER BY finished_at")


out = {}
if scenario == "session":
    with connect() as conn, conn.cursor() as cur:
        out["hourly"] = rows(
            cur,
            "SELECT step, count(*) AS n FROM hourly('2020-01-02', '2020-01-03', step => 2) GROUP BY step",
        )
        cur.execute("SELECT * FROM hourly('2020-01-02', '2020-01-02T03:00:00', step => 2)")
        table = cur.fetch_arrow_table()
        out["schema"] = [f"{f.name}:{f.type}" for f in table.schema]
        try:
            cur.execute("SELECT * FROM hourly('2020-01-02', '2020-01-03', stepz => 2)")
            out["error"] = None
        except Exception as e:  # the connection must stay usable
            out["error"] = f"{type(e).__name__}: {e}"
        out["after_error"] = rows(cur, "SELECT 1 AS one")
        cur.execute(
            "CREATE OR REPLACE CACHED FUNCTION squares(n BIGINT) WITH (cache_args = (n)) "
            "AS SELECT value * value AS sq FROM generate_series(1, $n)"
        )
        out["squares"] = rows(cur, "SELECT sum(sq) AS total FROM squares(3)")
        out["calls"] = calls(cur)
        out["table_schema"] = [
            f.name for f in conn.adbc_get_table_schema("caches", db_schema_filter="nuthatch")
        ]
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        out["tables"] = sorted(
            f'{s["db_schema_name"]}.{t["table_name"]}'
            for c in objects
            for s in c["catalog_db_schemas"]
            for t in s["db_schema_tables"]
        )
        out["vendor"] = conn.adbc_get_info().get("vendor_name")
    # A second connection is a second session: its own calls.
    with connect() as conn, conn.cursor() as cur:
        out["other_session_calls"] = calls(cur)
        out["other_session_squares"] = rows(cur, "SELECT sum(sq) AS total FROM squares(3)")
elif scenario == "concurrent":
    results, errors = [], []

    def client():
        try:
            with connect() as conn, conn.cursor() as cur:
                n = rows(cur, "SELECT count(*) AS n FROM hourly('2020-01-01', '2020-01-11', step => 7)")
                results.append((n[0]["n"], [c["outcome"] for c in calls(cur)]))
        except Exception as e:
            errors.append(str(e))

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["counts"] = sorted(r[0] for r in results)
    out["outcomes"] = sorted(o for r in results for o in r[1])
    out["errors"] = errors
elif scenario == "hold":
    # Fetches a result far too big to finish; the test kills this process.
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM slow(1, size => 5000000000)")
        cur.fetch_arrow_table()
elif scenario == "cancel":
    # Cancels a query far too big to finish from another thread, as a
    # notebook's interrupt does; the connection stays usable.
    with connect() as conn, conn.cursor() as cur:
        def cancel_soon():
            time.sleep(float(options.get("after", "2")))
            cur.adbc_cancel()

        threading.Thread(target=cancel_soon).start()
        try:
            cur.execute("SELECT * FROM slow(2, size => 5000000000)")
            cur.fetch_arrow_table()
            out["cancelled"] = None
        except Exception as e:
            out["cancelled"] = type(e).__name__
        out["after"] = rows(cur, "SELECT 1 AS one")
        out["stored"] = rows(cur, "SELECT count(*) AS n FROM nuthatch.caches WHERE function = 'slow'")
elif scenario == "after_kill":
    # The same entry, small: a compute still running for the killed
    # client would be followed (and its five billion rows read).
    with connect() as conn, conn.cursor() as cur:
        out["rows"] = rows(cur, "SELECT count(*) AS n FROM slow(1, size => 10)")
        out["outcomes"] = [c["outcome"] for c in calls(cur)]
elif scenario == "idle":
    with connect() as a, a.cursor() as cur_a:
        rows(cur_a, "SELECT count(*) FROM hourly('2020-01-01', '2020-01-02', step => 3)")
        out["before"] = calls(cur_a)
        # No other client comes: the server's timer ends the session.
        time.sleep(float(options["sleep"]))
        out["after"] = calls(cur_a)
elif scenario == "extend":
    # A timeseries entry grown over Flight SQL, as a notebook would.
    with connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE OR REPLACE CACHED FUNCTION days(start_time TIMESTAMP, end_time TIMESTAMP) "
            "WITH (timeseries = 'time') AS SELECT t.value AS time FROM generate_series("
            "TIMESTAMP '2020-01-01', TIMESTAMP '2020-12-31', INTERVAL '1 day') AS t "
            "WHERE t.value BETWEEN $start_time AND $end_time"
        )
        out["may"] = rows(cur, "SELECT count(*) AS n FROM days('2020-05-01', '2020-05-31')")
        out["spring"] = rows(cur, "SELECT count(*) AS n FROM days('2020-04-01', '2020-06-30')")
        out["calls"] = rows(
            cur,
            "SELECT outcome, ranges_computed, rows_inserted FROM nuthatch.calls "
            "WHERE function = 'days' ORDER BY finished_at",
        )
        out["coverage"] = rows(
            cur, "SELECT coverage FROM nuthatch.caches WHERE function = 'days' AND tier = 'root'"
        )
elif scenario == "roundtrip":
    # One body's awkward values, computed alone, missed and hit through each
    # backend, as the client receives them.
    with connect() as conn, conn.cursor() as cur:
        for backend in ["parquet", "arrow", "sql", "delta"]:
            name = f"awkward_{backend}"
            cur.execute(
                f"CREATE OR REPLACE CACHED FUNCTION {name}() WITH (backend = '{backend}') AS "
                "SELECT CAST(t AS TIMESTAMP) AS t, CAST(x AS DOUBLE) AS x, s, "
                "CAST(n AS BIGINT) AS n, CAST(b AS BOOLEAN) AS b FROM (VALUES "
                "('2020-01-01T00:00:00.000000001', 'NaN', 'it''s \"quoted\"', "
                "-9223372036854775808, NULL), "
                "('2020-01-01T00:00:01', '-0.0', 'ünïcødé 🦀', NULL, 'true'), "
                "('2020-01-01T00:00:02', '1e308', NULL, 9223372036854775807, 'false')) "
                "AS v(t, x, s, n, b)"
            )
            read = (
                "SELECT arrow_cast(t, 'Int64') AS t, x, s, n, b FROM {} ORDER BY t NULLS LAST"
            )
            seen = {}
            for round, call in [
                ("off", f"{name}(cache_mode => 'off')"),
                ("miss", f"{name}()"),
                ("hit", f"{name}()"),
            ]:
                seen[round] = [[repr(v) for v in row.values()] for row in rows(cur, read.format(call))]
            changes = rows(
                cur,
                f"SELECT outcome, changes FROM nuthatch.calls WHERE function = '{name}' "
                "ORDER BY finished_at",
            )
            out[backend] = {
                "miss_is_off": seen["miss"] == seen["off"],
                "hit_is_miss": seen["hit"] == seen["miss"],
                "hit": seen["hit"],
                "calls": changes,
            }
elif scenario == "params":
    import datetime

    import polars as pl

    def failure(cur, sql, values):
        try:
            cur.execute(sql, values)
            return None
        except Exception as e:  # the connection must stay usable
            return f"{type(e).__name__}: {e}"

    call = "SELECT step, count(*) AS n FROM hourly(?, ?, step => ?) GROUP BY step"
    with connect() as conn, conn.cursor() as cur:
        # Values of Python types: a datetime for a TIMESTAMP parameter too.
        cur.execute(call, ("2020-01-02", datetime.datetime(2020, 1, 3), 2))
        out["bound"] = cur.fetch_arrow_table().to_pylist()
        # The same cursor again, other values: the statement stays prepared.
        cur.execute(call, ("2020-01-02", "2020-01-02T12:00:00", 3))
        out["again"] = cur.fetch_arrow_table().to_pylist()
        cur.execute("SELECT count(*) AS n FROM hourly($2, $1, step => $3)", ("2020-01-03", "2020-01-02", 2))
        out["numbered"] = cur.fetch_arrow_table().to_pylist()
        hostile = "x'); DELETE FROM nuthatch.caches; --"
        cur.execute("SELECT ? AS label, length(?) AS n", (hostile, hostile))
        out["hostile"] = cur.fetch_arrow_table().to_pylist()
        out["count_error"] = failure(cur, call, ("2020-01-02",))
        out["type_error"] = failure(cur, call, ("2020-01-02", "2020-01-03", "two"))
        out["after_errors"] = rows(cur, "SELECT 1 AS one")
        cur.executemany("DELETE FROM nuthatch.caches WHERE key = ?", [("hourly/3",), ("nothing",)])
        out["left"] = rows(cur, "SELECT key FROM nuthatch.caches ORDER BY key")
    with connect() as conn, conn.cursor() as cur:
        # pandas' read_sql refuses params for ADBC connections; the cursor
        # hands a pandas frame itself.
        cur.execute("SELECT count(*) AS n FROM hourly(?, ?, step => ?)", ("2020-01-02", "2020-01-03", 4))
        out["pandas"] = int(cur.fetch_df()["n"][0])
    with connect() as conn:
        frame = pl.read_database(
            "SELECT count(*) AS n FROM hourly(?, ?, step => ?)",
            conn,
            execute_options={"parameters": ("2020-01-02", "2020-01-03", 5)},
        )
        out["polars"] = int(frame["n"][0])
elif scenario == "statements":
    # One session: each statement in turn; the rows of the last.
    with connect() as conn, conn.cursor() as cur:
        for sql in options["sql"].split(";;"):
            out["rows"] = rows(cur, sql)
elif scenario == "auth":
    try:
        with connect() as conn, conn.cursor() as cur:
            out["rows"] = rows(cur, "SELECT 42 AS answer")
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
