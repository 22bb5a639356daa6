//! The Zarr backend as users meet it: gridded functions stored as Zarr,
//! windows and `WHERE` ranges read as chunk selections, the stores the real
//! Python nuthatch writes read unchanged, and what we write read by Python.
//!
//! The Python tests are `#[ignore]`d for a bare `cargo test`; `bash
//! scripts/test` runs them with its venv's nuthatch, xarray and zarr-python.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Float32Array, RecordBatch};
use nuthatch::demo::{LATS, LONS, air_schema, air_temperature};
use nuthatch::{CachedFunction, CoverageKind, Outcome, ParamType, Value};

use crate::support::{Fixture, assert_outcome};
use crate::system::text_rows;

/// A grid function over the demo data, stored as `backend`.
fn demo_grid(name: &str, backend: &str, steps: usize, chunking: &[(&str, u64)]) -> CachedFunction {
    let mut builder = CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .backend(backend)
        .returns(air_schema())
        .compute(move |_ctx, _args| async move { air_temperature(steps) });
    if backend == "zarr" {
        builder = builder
            .dimensions(["time", "lat", "lon"])
            .chunking(chunking.iter().map(|(d, n)| (*d, *n)));
    }
    builder.build().unwrap()
}

/// count, sum of air (missing cells skipped), missing cells, first and
/// last time of a call.
type Stats = (i64, f64, i64, String, String);

async fn stats(f: &Fixture, call: &str) -> Stats {
    let sql = format!(
        "SELECT count(*), coalesce(sum(air), 0), count(*) - count(air), \
         count(*) FILTER (WHERE isnan(air)), \
         CAST(min(time) AS VARCHAR), CAST(max(time) AS VARCHAR) FROM {call}"
    );
    let rows = text_rows(&f.query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")));
    let row = &rows[0];
    assert_eq!(row[3], "0", "a missing cell is null, never NaN: {call}");
    (
        row[0].parse().unwrap(),
        row[1].parse().unwrap(),
        row[2].parse().unwrap(),
        row[4].replace(' ', "T"),
        row[5].replace(' ', "T"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_reads_only_the_chunks_that_hold_it() {
    let f = Fixture::new();
    let steps = 730;
    f.nuthatch
        .register(demo_grid("grid_zarr", "zarr", steps, &[]))
        .unwrap();
    f.nuthatch
        .register(demo_grid("grid_parquet", "parquet", steps, &[]))
        .unwrap();

    // The whole grid, computed and stored as Zarr, equals the Parquet entry.
    let whole =
        "count(*), sum(air), min(time), max(time), count(DISTINCT lat), count(DISTINCT lon)";
    let zarr = text_rows(
        &f.query(&format!("SELECT {whole} FROM grid_zarr(NULL, NULL)"))
            .await
            .unwrap(),
    );
    assert_eq!(f.report().backend, "zarr");
    let parquet = text_rows(
        &f.query(&format!("SELECT {whole} FROM grid_parquet(NULL, NULL)"))
            .await
            .unwrap(),
    );
    f.reports();
    assert_eq!(zarr, parquet);
    assert_eq!(zarr[0][0], (steps * LATS * LONS).to_string());

    // Stored as xarray writes: one array per variable and coordinate, the
    // root zarr.json consolidating them.
    let store = f.root().join("grid_zarr/.zarr");
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("zarr.json")).unwrap()).unwrap();
    let arrays = &root["consolidated_metadata"]["metadata"];
    assert_eq!(
        arrays["air"]["shape"],
        serde_json::json!([steps, LATS, LONS])
    );
    assert_eq!(
        arrays["air"]["dimension_names"],
        serde_json::json!(["time", "lat", "lon"])
    );
    assert_eq!(arrays["air"]["codecs"][1]["name"], "zstd");
    assert_eq!(
        arrays["time"]["attributes"]["units"],
        "hours since 2013-01-01 00:00:00"
    );
    let time_chunk = arrays["air"]["chunk_grid"]["configuration"]["chunk_shape"][0]
        .as_u64()
        .unwrap();
    let total = (steps as u64).div_ceil(time_chunk) as usize;

    // A week, read as a hit, touches one or two of the entry's chunks, and
    // returns what the Parquet entry returns.
    let week = "'2013-03-01', '2013-03-07T18:00:00'";
    let sql = |name: &str| {
        format!("SELECT count(*), sum(air), min(time) FROM {name}({week}) WHERE lat > 40")
    };
    let from_zarr = text_rows(&f.query(&sql("grid_zarr")).await.unwrap());
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    let (read, of) = report.chunks_read.expect("a Zarr scan reports its chunks");
    assert_eq!(of, total);
    assert!((1..=2).contains(&read), "{read} of {of} chunks for a week");
    assert!(
        report
            .to_string()
            .contains(&format!("chunks={read}/{total}")),
        "{report}"
    );
    assert_eq!(
        from_zarr,
        text_rows(&f.query(&sql("grid_parquet")).await.unwrap())
    );
    f.reports();
    assert_eq!(from_zarr[0][0], (28 * 14 * LONS).to_string());

    // A window outside the data reads nothing.
    f.query("SELECT * FROM grid_zarr('2020-01-01', '2020-02-01')")
        .await
        .unwrap();
    assert_eq!(f.report().chunks_read, Some((0, total)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_rule_matches_a_text_value_holding_separators() {
    let f = Fixture::new();
    f.nuthatch
        .register(demo_grid("source", "parquet", 30, &[]))
        .unwrap();
    f.query(
        "CREATE CACHED FUNCTION tagged(label VARCHAR DEFAULT 'x') \
         WITH (cache_args = (label), backend = 'zarr', dimensions = (time, lat, lon), \
               chunk_by_arg = ((label = 'a;b=c', time = 7), (label = 'x', time = 9))) \
         AS SELECT time, lat, lon, air FROM source(NULL, NULL)",
    )
    .await
    .unwrap();
    for (label, steps) in [("a;b=c", 7), ("x", 9)] {
        f.int(&format!("SELECT count(*) FROM tagged(label => '{label}')"))
            .await;
        let report = crate::coverage::report_of(&f, "tagged");
        let store = f
            .files()
            .into_iter()
            .filter(|file| file.starts_with(&format!("{}.zarr/", report.key)))
            .find(|file| file.ends_with("/zarr.json") && file.matches('/').count() == 2)
            .unwrap_or_else(|| panic!("no store for {}: {:?}", report.key, f.files()));
        let root: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.root().join(store)).unwrap()).unwrap();
        let shape = &root["consolidated_metadata"]["metadata"]["air"]["chunk_grid"]["configuration"]
            ["chunk_shape"];
        assert_eq!(shape[0], steps, "{label}: {shape}");
    }
    let error = f
        .error(
            "CREATE CACHED FUNCTION bad() WITH (backend = 'zarr', dimensions = (time), \
             chunk_by_arg = ((label = 'x', time = 'long'))) AS SELECT 1 AS time",
        )
        .await;
    assert!(
        error.contains("a chunk_by_arg rule is the argument and its value, then chunk lengths"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_on_any_dimension_prune_chunks_and_sql_sets_the_chunking() {
    let f = Fixture::new();
    f.nuthatch
        .register(demo_grid("source", "parquet", 60, &[]))
        .unwrap();
    f.query(
        "CREATE CACHED FUNCTION tiles(days INT DEFAULT 1) \
         WITH (cache_args = (days), backend = 'zarr', dimensions = (time, lat, lon), \
               chunking = (time = 20, lat = 5), chunk_by_arg = ((days = 2, time = 30), (days = 3, lon = 10))) \
         AS SELECT time, lat, lon, air * $days AS air FROM source(NULL, NULL)",
    )
    .await
    .unwrap();
    let air_chunks = |key: &str| -> serde_json::Value {
        let root: serde_json::Value = serde_json::from_slice(
            &std::fs::read(f.root().join(format!("tiles/{key}.zarr/zarr.json"))).unwrap(),
        )
        .unwrap();
        root["consolidated_metadata"]["metadata"]["air"]["chunk_grid"]["configuration"]
            ["chunk_shape"]
            .clone()
    };
    let lats_above_60 = f.int("SELECT count(*) FROM tiles() WHERE lat > 60").await;
    assert_eq!(lats_above_60, 60 * 6 * LONS as i64);
    assert_eq!(air_chunks("1"), serde_json::json!([20, 5, LONS]));
    f.reports();
    // 3 time chunks × 5 lat chunks of 15, 17.5, ... 75: lat > 60 (62.5 to
    // 75) is in the last two.
    f.int("SELECT count(air) FROM tiles() WHERE lat > 60").await;
    assert_eq!(f.report().chunks_read, Some((6, 15)));
    f.int("SELECT count(air) FROM tiles() WHERE lat BETWEEN 25 AND 30 AND time < '2013-01-03'")
        .await;
    assert_eq!(
        f.report().chunks_read,
        Some((2, 15)),
        "25..=30 spans two lat chunks, one time chunk"
    );

    f.int("SELECT count(*) FROM tiles(days => 2)").await;
    assert_eq!(air_chunks("2"), serde_json::json!([30, 5, LONS]));
    f.int("SELECT count(*) FROM tiles(days => 3)").await;
    assert_eq!(air_chunks("3"), serde_json::json!([20, 5, 10]));

    f.reports();
    // Projection reads only what is asked: the coordinates alone read no
    // chunk at all.
    assert_eq!(
        f.int("SELECT count(DISTINCT lon) FROM tiles()").await,
        LONS as i64
    );
    assert_eq!(f.report().chunks_read, Some((0, 15)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_chunk_reads_as_the_fill_value_and_is_reported() {
    let f = Fixture::new();
    f.nuthatch
        .register(demo_grid("grid", "zarr", 40, &[("time", 10)]))
        .unwrap();
    let before = stats(&f, "grid(NULL, NULL)").await;
    assert_eq!(before.2, 0);
    f.reports();
    std::fs::remove_file(f.root().join("grid/.zarr/air/c/1/0/0")).unwrap();
    let after = stats(&f, "grid(NULL, NULL)").await;
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    assert_eq!(report.chunks_missing, 1);
    assert!(
        report
            .to_string()
            .contains("missing_chunks=1 (read as fill value)"),
        "{report}"
    );
    assert_eq!(after.0, before.0, "the grid keeps its cells");
    assert_eq!(
        after.2,
        (10 * LATS * LONS) as i64,
        "the missing chunk's cells are missing (null)"
    );
    let calls = text_rows(
        &f.query("SELECT chunks_missing FROM nuthatch.calls ORDER BY finished_at DESC LIMIT 1")
            .await
            .unwrap(),
    );
    assert_eq!(calls, vec![vec!["1".to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_stores_and_results_that_are_not_grids_fail_clearly() {
    let f = Fixture::new();
    f.nuthatch
        .register(demo_grid("grid", "zarr", 8, &[]))
        .unwrap();
    f.int("SELECT count(*) FROM grid(NULL, NULL)").await;
    f.reports();
    let root_json = f.root().join("grid/.zarr/zarr.json");
    let good = std::fs::read_to_string(&root_json).unwrap();

    // A codec this build does not have is named.
    std::fs::write(&root_json, good.replacen("\"zstd\"", "\"lz5\"", 1)).unwrap();
    let err = f.error("SELECT count(*) FROM grid(NULL, NULL)").await;
    assert!(err.contains("lz5") && err.contains("'air'"), "{err}");

    // A corrupt zarr.json is named, with what to do.
    std::fs::write(&root_json, "{\"zarr_format\": 3, \"node_ty").unwrap();
    let err = f.error("SELECT count(*) FROM grid(NULL, NULL)").await;
    assert!(
        err.contains("grid/.zarr/zarr.json") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(
        err.contains("cache_mode => 'overwrite', recompute => true"),
        "{err}"
    );
    f.int("SELECT count(*) FROM grid(NULL, NULL, cache_mode => 'overwrite', recompute => true)")
        .await;
    assert_outcome(&f.report(), Outcome::Computed);

    // Two rows for one cell: the write fails and stores nothing.
    let twice = CachedFunction::builder("twice")
        .returns(air_schema())
        .backend("zarr")
        .dimensions(["time", "lat"])
        .compute(|_ctx, _args| async move { air_temperature(4) })
        .build()
        .unwrap();
    f.nuthatch.register(twice).unwrap();
    let err = f.error("SELECT count(*) FROM twice()").await;
    assert!(
        err.contains("not a grid over (time, lat)")
            && err.contains("time = 2013-01-01T00:00:00, lat = 15"),
        "{err}"
    );
    assert!(
        !f.root().join("twice").exists()
            || std::fs::read_dir(f.root().join("twice/.zarr")).map_or(true, |d| d.count() == 0)
    );
    assert!(!f.root().join("nuthatch_metadata.nut/twice").exists());

    // Definitions that cannot be stored are refused when built.
    let build = |b: nuthatch::CachedFunctionBuilder| {
        b.returns(air_schema())
            .compute(|_c, _a| async move { air_temperature(1) })
            .build()
            .unwrap_err()
            .to_string()
    };
    // What the format asks of a layout is checked when the definition is
    // registered; a call that picks the format is refused when it writes.
    let register = |b: nuthatch::CachedFunctionBuilder| {
        let function = b
            .returns(air_schema())
            .compute(|_c, _a| async move { air_temperature(1) })
            .build()
            .unwrap();
        f.nuthatch.register(function).unwrap_err().to_string()
    };
    let err = register(CachedFunction::builder("g").backend("zarr"));
    assert!(
        err.contains("g: a Zarr entry is a grid") && err.contains("dimensions = (time, lat, lon)"),
        "{err}"
    );
    let err = register(
        CachedFunction::builder("g")
            .storage_backend("zarr")
            .dimensions(["time", "lat"])
            .order_by(["time"]),
    );
    assert!(err.contains("drop order_by"), "{err}");
    f.query("CREATE CACHED FUNCTION flat() AS SELECT 1 AS n")
        .await
        .unwrap();
    let err = f.error("SELECT * FROM flat(backend => 'zarr')").await;
    assert!(err.contains("needs the result's grid dimensions"), "{err}");
    let err = build(
        CachedFunction::builder("g")
            .backend("zarr")
            .dimensions(["time", "height"]),
    );
    assert!(err.contains("dimension 'height' is not a column"), "{err}");
    let err = build(
        CachedFunction::builder("g")
            .backend("zarr")
            .dimensions(["time"])
            .chunking([("lat", 4)]),
    );
    assert!(err.contains("chunking names 'lat'"), "{err}");
    f.query("CREATE CACHED FUNCTION s() WITH (backend = 'zarr', dimensions = (n)) AS SELECT 1 AS n, 'x' AS label")
        .await
        .unwrap();
    let err = f.error("SELECT * FROM s()").await;
    assert!(
        err.contains("column 'label' is Utf8") && err.contains("backend = 'parquet'"),
        "{err}"
    );
}

/// The Python driver for Zarr entries; returns its `stats` lines by name.
fn python_zarr(command: &str, root: &Path) -> Vec<(String, Stats)> {
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON").expect(
        "NUTHATCH_TEST_PYTHON is unset: run `bash scripts/test`, which installs Python nuthatch",
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let output = Command::new(&interpreter)
        .arg(dir.join("zarr_store.py"))
        .arg(command)
        .arg(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("stats "))
        .map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            (
                p[0].to_string(),
                (
                    p[1].parse().unwrap(),
                    p[2].parse().unwrap(),
                    p[3].parse().unwrap(),
                    p[4].to_string(),
                    p[5].to_string(),
                ),
            )
        })
        .collect()
}

fn assert_same(
    ours: &(i64, f64, i64, String, String),
    theirs: &(i64, f64, i64, String, String),
    what: &str,
) {
    assert_eq!(
        (ours.0, ours.2, &ours.3, &ours.4),
        (theirs.0, theirs.2, &theirs.3, &theirs.4),
        "{what}"
    );
    assert!(
        (ours.1 - theirs.1).abs() <= 1e-6 * theirs.1.abs(),
        "{what}: sum {} vs {}",
        ours.1,
        theirs.1
    );
}

/// A Python-shaped grid function that must be read, never computed.
fn python_grid(name: &str, air: arrow::datatypes::DataType) -> CachedFunction {
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new(
            "time",
            arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
            true,
        ),
        arrow::datatypes::Field::new("lat", arrow::datatypes::DataType::Float32, true),
        arrow::datatypes::Field::new("lon", arrow::datatypes::DataType::Float32, true),
        arrow::datatypes::Field::new("air", air, true),
    ]));
    let mut builder = CachedFunction::builder(name)
        .returns(schema)
        .backend("zarr")
        .dimensions(["time", "lat", "lon"]);
    if name == "agg_and_clip" {
        builder = builder
            .param("start_time", ParamType::Timestamp)
            .param("end_time", ParamType::Timestamp)
            .param_default("agg_days", ParamType::Int, Value::Int(1))
            .cache_args(["agg_days"])
            .version("0.1.0")
            .timeseries("time")
            .coverage(CoverageKind::Full);
    }
    builder
        .compute(|_ctx, _args| async move {
            Err::<Vec<RecordBatch>, _>(datafusion::error::DataFusionError::Execution(
                "should have been read".into(),
            ))
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn stores_python_nuthatch_writes_read_as_xarray_reads_them() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root()).unwrap();
    let expected = python_zarr("write", &f.root());
    assert_eq!(expected.len(), 4, "{expected:?}");
    for name in ["my_first_cache", "packed", "grid_v2"] {
        let air = if name == "packed" {
            arrow::datatypes::DataType::Float64
        } else {
            arrow::datatypes::DataType::Float32
        };
        f.nuthatch.register(python_grid(name, air)).unwrap();
    }
    f.nuthatch
        .register(python_grid(
            "agg_and_clip",
            arrow::datatypes::DataType::Float32,
        ))
        .unwrap();
    for (name, theirs) in &expected {
        let call = match name.as_str() {
            "agg_and_clip" => "agg_and_clip('2013-01-01', '2013-01-11', agg_days => 4)".to_string(),
            other => format!("{other}()"),
        };
        let ours = stats(&f, &call).await;
        assert_same(&ours, theirs, name);
        let report = f.report();
        // SQL's mean skips the missing cells, as xarray's does.
        let mean = text_rows(
            &f.query(&format!("SELECT avg(air) FROM {call}"))
                .await
                .unwrap(),
        );
        let mean: f64 = mean[0][0].parse().unwrap();
        let xarray = theirs.1 / (theirs.0 - theirs.2) as f64;
        assert!(
            (mean - xarray).abs() < 1e-6 * xarray.abs(),
            "{name}: {mean} against {xarray}"
        );
        f.reports();
        assert_outcome(&report, Outcome::Hit);
        assert_eq!(
            (report.backend.as_str(), report.chunks_read),
            ("zarr", Some((1, 1))),
            "{name}"
        );
    }
    // The timeseries window clips Python's stored series; a date-only end
    // keeps its whole day, as xarray's selection does.
    let clipped = stats(
        &f,
        "agg_and_clip('2013-01-02', '2013-01-05', agg_days => 4)",
    )
    .await;
    assert_eq!(
        (clipped.3.as_str(), clipped.4.as_str()),
        ("2013-01-02T00:00:00", "2013-01-05T18:00:00")
    );
    assert_eq!(clipped.0, 16 * 35);
    // Python's entries are listed as such.
    let listed = text_rows(
        &f.query("SELECT key, backend FROM nuthatch.caches ORDER BY key")
            .await
            .unwrap(),
    );
    assert!(
        listed.contains(&vec!["my_first_cache/".to_string(), "zarr".to_string()]),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn stores_we_write_are_hits_for_python_nuthatch() {
    let f = Fixture::new();
    // A grid with NaN values and a cell no row fills.
    let rust_grid = CachedFunction::builder("rust_grid")
        .returns(air_schema())
        .backend("zarr")
        .dimensions(["time", "lat", "lon"])
        .chunking([("time", 7)])
        .compute(|_ctx, _args| async move {
            let batches = air_temperature(30)?;
            let mut out = Vec::new();
            for batch in batches {
                let air = batch
                    .column(3)
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .unwrap();
                let air: Float32Array = air
                    .iter()
                    .enumerate()
                    .map(|(i, v)| if i % 97 == 0 { Some(f32::NAN) } else { v })
                    .collect();
                let batch = RecordBatch::try_new(
                    batch.schema(),
                    vec![
                        batch.column(0).clone(),
                        batch.column(1).clone(),
                        batch.column(2).clone(),
                        Arc::new(air),
                    ],
                )?;
                // Leave out the second row: its cell is filled with NaN.
                out.push(arrow::compute::concat_batches(
                    &batch.schema(),
                    &[batch.slice(0, 1), batch.slice(2, batch.num_rows() - 2)],
                )?);
            }
            Ok(out)
        })
        .build()
        .unwrap();
    f.nuthatch.register(rust_grid).unwrap();
    let ours = stats(&f, "rust_grid()").await;
    assert_eq!(
        ours.0,
        (30 * LATS * LONS) as i64,
        "the missing cell is part of the grid"
    );
    let theirs = python_zarr("read", &f.root());
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    for (name, stats) in &theirs {
        assert_same(&ours, stats, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_larger_than_the_memory_limit_streams_into_zarr() {
    const CELLS: i64 = 3_000_000;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut config = nuthatch::Config::with_root(root.display().to_string());
    config.memory_limit = Some(16 << 20);
    let session = nuthatch::Engine::new(&config).unwrap().session();
    // 300 hourly steps of a 100 × 100 grid (72 MB as Arrow), in an order
    // the sort has to restore.
    session
        .sql(&format!(
            "CREATE CACHED FUNCTION big() \
             WITH (backend = 'zarr', dimensions = (time, y, x)) \
             AS SELECT to_timestamp_seconds(1577836800 + 3600 * (p / 10000)) AS time, \
                       CAST((p / 100) % 100 AS DOUBLE) AS y, CAST(p % 100 AS DOUBLE) AS x, \
                       CAST(p AS DOUBLE) AS v \
                FROM (SELECT (value * 7919) % {CELLS} AS p FROM generate_series(0, {CELLS} - 1))"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let totals = "SELECT count(*), sum(v), count(DISTINCT time) FROM big()";
    let rows = text_rows(&session.sql(totals).await.unwrap().collect().await.unwrap());
    assert_eq!(
        (rows[0][0].as_str(), rows[0][2].as_str()),
        ("3000000", "300")
    );
    let sum: f64 = rows[0][1].parse().unwrap();
    assert_eq!(sum, (CELLS * (CELLS - 1) / 2) as f64, "every cell once");
    let report = session.take_reports().remove(0);
    assert_outcome(&report, Outcome::Computed);
    assert!(report.spilled_bytes > 0, "the sort spilled: {report}");
    // Written slab by slab: 6 steps of 10,000 cells a chunk, 50 chunks.
    assert_eq!(report.chunks_read, Some((50, 50)), "{report}");
    let again = text_rows(&session.sql(totals).await.unwrap().collect().await.unwrap());
    assert_eq!(again, rows);
    assert_outcome(&session.take_reports().remove(0), Outcome::Hit);
}

/// `name(start_time, end_time)`: the demo grid's rows of its window, as a
/// body that computes only what it is asked for, stored as `backend`.
fn windowed_grid(name: &str, backend: &str) -> CachedFunction {
    let mut builder = CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .backend(backend)
        .returns(air_schema())
        .compute(|ctx, args| async move {
            let at = |name: &str| -> datafusion::error::Result<datafusion::logical_expr::Expr> {
                let bound = args.timestamp(name)?.expect("a bound");
                let nanos = bound.and_utc().timestamp_nanos_opt();
                Ok(datafusion::logical_expr::lit(
                    datafusion::common::ScalarValue::TimestampNanosecond(nanos, None),
                ))
            };
            let time = datafusion::logical_expr::col("time");
            ctx.read_batches(air_temperature(120)?)?.filter(
                time.clone()
                    .gt_eq(at("start_time")?)
                    .and(time.lt_eq(at("end_time")?)),
            )
        });
    if backend == "zarr" {
        builder = builder.dimensions(["time", "lat", "lon"]);
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zarr_grid_grows_in_place_along_time() {
    let f = Fixture::new();
    f.nuthatch.register(windowed_grid("grown", "zarr")).unwrap();
    f.nuthatch
        .register(windowed_grid("flat", "parquet"))
        .unwrap();
    // Ten days (40 steps) fill part of the first slab of 49 steps; each
    // growth rewrites that slab's cells and adds new ones.
    let call = |name: &str, to: &str| format!("{name}('2013-01-01', '{to}')");
    stats(&f, &call("grown", "2013-01-10")).await;
    f.reports();
    for to in ["2013-01-20", "2013-01-30"] {
        let grown = stats(&f, &call("grown", to)).await;
        let report = f
            .reports()
            .into_iter()
            .find(|r| r.function == "grown")
            .unwrap();
        assert_outcome(&report, Outcome::Extended);
        let flat = stats(&f, &call("flat", to)).await;
        f.reports();
        assert_eq!(grown, flat, "{to}");
    }
    let whole = stats(&f, "grown(NULL, NULL)").await;
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(whole.0, (30 * 4 * LATS * LONS) as i64);
    assert_eq!(whole.4, "2013-01-30T18:00:00");
    // Time before what is covered cannot be added at the end: served, not
    // stored.
    f.int("SELECT count(*) FROM grown('2012-12-31', '2013-01-02')")
        .await;
    assert_outcome(&f.report(), Outcome::ExtendedNotStored);
}

/// `gridcast(start_time, end_time)`: hourly steps of its window over two
/// latitudes, each cell valued by how many times the body ran, stored as
/// Zarr and provisional for two days.
fn gridcast(runs: Arc<std::sync::atomic::AtomicUsize>) -> CachedFunction {
    use arrow::array::{Float64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("lat", DataType::Float64, true),
        Field::new("value", DataType::Float64, true),
    ]));
    let returns = Arc::clone(&schema);
    CachedFunction::builder("gridcast")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .backend("zarr")
        .dimensions(["time", "lat"])
        .settle(std::time::Duration::from_secs(2 * 86_400))
        .returns(returns)
        .compute(move |_ctx, args| {
            let run = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let schema = Arc::clone(&schema);
            async move {
                let start = args.timestamp("start_time")?.expect("a start");
                let end = args.timestamp("end_time")?.expect("an end");
                let times = crate::coverage::hours(start, end);
                let time: Vec<i64> = times.iter().flat_map(|t| [*t, *t]).collect();
                let lat: Vec<f64> = times.iter().flat_map(|_| [10.0, 20.0]).collect();
                let n = time.len();
                Ok(vec![RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(TimestampNanosecondArray::from(time)),
                        Arc::new(Float64Array::from(lat)),
                        Arc::new(Float64Array::from(vec![run as f64; n])),
                    ],
                )?])
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zarr_grid_stores_its_provisional_days_computed_again() {
    use crate::coverage::{days_ago as day, rows};
    let f = Fixture::new();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    f.nuthatch.register(gridcast(Arc::clone(&runs))).unwrap();
    let all = format!("gridcast('{}', '{}')", day(10), day(1));
    assert_eq!(
        f.int(&format!("SELECT count(*) FROM {all}")).await,
        10 * 24 * 2
    );
    f.reports();
    // The provisional days are computed again, and written over the
    // store's last steps rather than served beside it.
    let recent = format!("gridcast('{}', '{}')", day(3), day(1));
    assert_eq!(
        f.int(&format!("SELECT count(*) FROM {recent}")).await,
        3 * 24 * 2
    );
    assert_outcome(&f.report(), Outcome::Extended);
    let totals = format!(
        "SELECT count(*), count(DISTINCT time), min(value), max(value), count(value) FROM {all}"
    );
    let grid = rows(&f, &totals).await;
    // Reading it all reaches the provisional days once more (run 3); the
    // settled days keep run 1's values, and no step is stored twice.
    assert_outcome(&f.report(), Outcome::Extended);
    assert_eq!(grid, [["480", "240", "1.0", "3.0", "480"]]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
    let settled = format!("gridcast('{}', '{}')", day(10), day(5));
    let values = rows(&f, &format!("SELECT count(*), max(value) FROM {settled}")).await;
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(values, [["288", "1.0"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs xarray: run bash scripts/test"]
async fn xarray_reads_a_grid_grown_in_place() {
    let f = Fixture::new();
    f.nuthatch.register(windowed_grid("grown", "zarr")).unwrap();
    for to in ["2013-01-10", "2013-01-20", "2013-01-30"] {
        stats(&f, &format!("grown('2013-01-01', '{to}')")).await;
    }
    let ours = stats(&f, "grown(NULL, NULL)").await;
    let theirs = python_zarr("read-grown", &f.root());
    let (_, xarray) = theirs.iter().find(|(name, _)| name == "open_zarr").unwrap();
    assert_same(&ours, xarray, "xarray on the grown store");
}
