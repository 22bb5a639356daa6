//! The Terracotta backend's parts, checked with the real Python stack:
//! COGs that rio-cogeo validates and rasterio reads as written.

use std::path::Path;
use std::process::Command;

use nuthatch::Outcome;
use nuthatch::crates::backends::terracotta::cog::{self, Band, Raster, Sample};
use nuthatch::crates::backends::terracotta::mercator::{Grid, Resampling};

/// What the script `tests/python/<script>` prints when run with `args`
/// in the test venv, as its lines split on spaces.
fn python_lines(script: &str, args: &[String]) -> Vec<Vec<String>> {
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON").expect(
        "NUTHATCH_TEST_PYTHON is unset: run `bash scripts/test`, which installs rio-cogeo and \
         terracotta",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = Command::new(&interpreter)
        .arg(script)
        .args(args)
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
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

/// What `tests/python/cog_check.py` says of the file at `path`, with the
/// `pixel` lines of `cells`.
fn check(path: &Path, cells: &[(usize, usize)]) -> Vec<Vec<String>> {
    let mut args = vec![path.display().to_string()];
    for (row, column) in cells {
        args.extend([row.to_string(), column.to_string()]);
    }
    python_lines("cog_check.py", &args)
}

/// What `tests/python/terracotta_serve.py` says of `key` in `database`.
fn serve(database: &Path, key: &str) -> Vec<Vec<String>> {
    python_lines(
        "terracotta_serve.py",
        &[database.display().to_string(), key.to_string()],
    )
}

fn line<'a>(lines: &'a [Vec<String>], first: &str) -> &'a [String] {
    let found = lines.iter().find(|l| l[0] == first);
    &found.unwrap_or_else(|| panic!("no {first} line in {lines:?}"))[1..]
}

/// The README grid's shape (25 latitudes from 75 down, 53 longitudes from
/// 200 east, 2.5° apart), with a value per cell and a few cells missing.
fn readme_grid() -> Grid {
    let latitudes: Vec<f64> = (0..25).map(|i| 75.0 - 2.5 * i as f64).collect();
    let longitudes: Vec<f64> = (0..53).map(|i| 200.0 + 2.5 * i as f64).collect();
    let values = (0..25 * 53)
        .map(|i| {
            if i % 97 == 3 {
                f64::NAN
            } else {
                230.0 + (i % 53) as f64 * 0.5 + (i / 53) as f64
            }
        })
        .collect();
    Grid {
        latitudes,
        longitudes,
        bands: vec![Band {
            name: "air".into(),
            values,
        }],
    }
}

#[test]
#[ignore = "needs rio-cogeo and rasterio: run bash scripts/test"]
fn a_grid_on_web_mercator_is_a_valid_cog_that_rasterio_reads_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let raster = readme_grid()
        .wrapped()
        .reproject(Resampling::Nearest)
        .unwrap();
    let path = dir.path().join("_.tif");
    std::fs::write(&path, cog::write(&raster, Sample::F32)).unwrap();
    let cells = [(0, 0), (3, 17), (raster.height - 1, raster.width - 1)];
    let lines = check(&path, &cells);
    assert_eq!(line(&lines, "valid"), ["True"], "{lines:?}");
    assert!(
        !lines.iter().any(|l| l[0] == "error" || l[0] == "warning"),
        "{lines:?}"
    );
    assert_eq!(line(&lines, "crs"), ["EPSG:3857"]);
    assert_eq!(
        line(&lines, "size"),
        [raster.width.to_string(), raster.height.to_string()]
    );
    let transform: Vec<f64> = line(&lines, "transform")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(
        transform,
        [
            raster.pixel_width,
            0.0,
            raster.left,
            0.0,
            -raster.pixel_height,
            raster.top
        ]
    );
    assert_eq!(line(&lines, "nodata"), ["nan"]);
    assert_eq!(line(&lines, "bands"), ["air"]);
    let pixels: Vec<&Vec<String>> = lines.iter().filter(|l| l[0] == "pixel").collect();
    for ((row, column), pixel) in cells.iter().zip(pixels) {
        let ours = raster.bands[0].values[row * raster.width + column] as f32;
        let theirs: f64 = pixel[3].parse().unwrap();
        assert!(
            (ours.is_nan() && theirs.is_nan()) || ours as f64 == theirs,
            "({row}, {column}): {ours} here, {theirs} read"
        );
    }
}

#[test]
#[ignore = "needs rio-cogeo and rasterio: run bash scripts/test"]
fn a_raster_larger_than_a_tile_gets_overviews_and_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (width, height) = (1300, 1100);
    let band = |offset: f64| Band {
        name: format!("b{offset}"),
        values: (0..width * height)
            .map(|i| offset + (i % 1000) as f64)
            .collect(),
    };
    let raster = Raster {
        width,
        height,
        left: -2_000_000.0,
        top: 3_000_000.0,
        pixel_width: 1000.0,
        pixel_height: 1000.0,
        bands: vec![band(0.0), band(0.5)],
    };
    let path = dir.path().join("big.tif");
    std::fs::write(&path, cog::write(&raster, Sample::F64)).unwrap();
    let lines = check(&path, &[(1099, 1299)]);
    assert_eq!(line(&lines, "valid"), ["True"], "{lines:?}");
    assert!(
        !lines.iter().any(|l| l[0] == "error" || l[0] == "warning"),
        "{lines:?}"
    );
    assert_eq!(line(&lines, "overviews"), ["2", "4"]);
    assert_eq!(line(&lines, "bands"), ["b0", "b0.5"]);
    let last = (1099 * 1300 + 1299) % 1000;
    assert_eq!(
        line(&lines, "pixel")[2..],
        [
            format!("{:?}", last as f64),
            format!("{:?}", last as f64 + 0.5)
        ]
    );
}

/// A fixture whose `source(NULL, NULL)` is the README grid's first eight
/// six-hourly steps (two days), in Parquet.
async fn grid_fixture() -> crate::support::Fixture {
    use nuthatch::demo::{air_schema, air_temperature};
    use nuthatch::{CachedFunction, ParamType};
    let f = crate::support::Fixture::new();
    let source = CachedFunction::builder("source")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .returns(air_schema())
        .compute(|_ctx, _args| async move { air_temperature(8) })
        .build()
        .unwrap();
    f.nuthatch.register(source).unwrap();
    f.query(
        "CREATE CACHED FUNCTION maps(days INT DEFAULT 1) \
         WITH (cache_args = (days), backend = 'terracotta', dimensions = (time, lat, lon)) \
         AS SELECT time, lat, lon, air FROM source(NULL, NULL) \
            WHERE date_part('day', time) <= $days",
    )
    .await
    .unwrap();
    f
}

/// (key, path) of every dataset in the tier's Terracotta database, and
/// (key, min, max) of every metadata row, by key.
type Registered = (Vec<(String, String)>, Vec<(String, f64, f64)>);

async fn registered(database: &Path) -> Registered {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    let mut conn = SqliteConnectOptions::new()
        .filename(database)
        .connect()
        .await
        .unwrap();
    let datasets = sqlx::query_as("SELECT key, path FROM datasets ORDER BY key")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let metadata = sqlx::query_as("SELECT key, min, max FROM metadata ORDER BY key")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    (datasets, metadata)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rio-cogeo and rasterio: run bash scripts/test"]
async fn a_grid_becomes_one_registered_cog_per_time_step_and_reads_back_as_rows() {
    let f = grid_fixture().await;
    let per_step = f
        .int("SELECT count(*) FROM maps(1) WHERE time = TIMESTAMP '2013-01-01T06:00:00'")
        .await;
    assert!(per_step > 1000, "{per_step} pixels a step");
    let files: Vec<String> = f
        .files()
        .into_iter()
        .filter(|p| p.ends_with(".tif"))
        .collect();
    let times = ["00", "06", "12", "18"].map(|h| format!("2013-01-01T{h}:00:00.000000000"));
    let expected: Vec<String> = times
        .iter()
        .map(|t| format!("maps/1.terracotta/{t}.tif"))
        .collect();
    assert_eq!(files, expected);
    let (datasets, metadata) = registered(&f.root().join("terracotta.sqlite")).await;
    let keys: Vec<String> = times.iter().map(|t| format!("maps_1_{t}")).collect();
    assert_eq!(
        datasets.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
        keys
    );
    for ((_, path), file) in datasets.iter().zip(&expected) {
        assert_eq!(
            Path::new(path),
            std::path::absolute(f.root().join(file)).unwrap()
        );
    }
    let lines = check(&f.root().join(&expected[1]), &[]);
    assert_eq!(line(&lines, "valid"), ["True"], "{lines:?}");
    assert_eq!(line(&lines, "bands"), ["air"]);
    // The datasets as a table: the root's, none for the local tier, whose
    // database the listing does not create.
    let listed = crate::system::text_rows(
        &f.query(
            "SELECT tier, key, path, CAST(min AS REAL) AS min, CAST(max AS REAL) AS max, \
             west < east AND south < north AS ordered FROM nuthatch.terracotta ORDER BY key",
        )
        .await
        .unwrap(),
    );
    let expected_rows: Vec<Vec<String>> = (datasets.iter().zip(&metadata))
        .map(|((key, path), (_, min, max))| {
            let real = |v: f64| (v as f32).to_string();
            ["root", key, path, &real(*min), &real(*max), "true"]
                .map(String::from)
                .to_vec()
        })
        .collect();
    assert_eq!(listed, expected_rows);
    assert!(!f.local().join("terracotta.sqlite").exists());
    // Terracotta's own server lists the datasets, reads our metadata and
    // draws a map tile from the file.
    let served = serve(&f.root().join("terracotta.sqlite"), &keys[1]);
    assert_eq!(line(&served, "keys"), keys);
    let theirs: serde_json::Value =
        serde_json::from_str(&line(&served, "metadata").join(" ")).unwrap();
    assert_eq!(theirs["range"][0].as_f64(), Some(metadata[1].1));
    assert_eq!(theirs["range"][1].as_f64(), Some(metadata[1].2));
    let tile = line(&served, "tile");
    assert_eq!(tile[3..7], ["200", "image/png", "256", "256"], "{served:?}");
    assert!(tile[7].parse::<u32>().unwrap() > 1000, "{served:?}");

    // The hit reads the stored pixels: every step, the values Terracotta
    // recorded as each step's range, within the source's.
    let stats = f
        .query(
            "SELECT CAST(time AS VARCHAR) AS t, count(*), min(air), max(air), min(lat), max(lon) \
             FROM maps(1) GROUP BY time ORDER BY time",
        )
        .await
        .unwrap();
    let rows = crate::system::text_rows(&stats);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (row, (_, min, max)) in rows.iter().zip(&metadata) {
        assert_eq!(row[1], per_step.to_string());
        assert_eq!(row[2].parse::<f32>().unwrap(), *min as f32);
        assert_eq!(row[3].parse::<f32>().unwrap(), *max as f32);
        // Pixel centres lie inside the source's cells' edges.
        assert!(row[4].parse::<f64>().unwrap() >= 13.75, "{row:?}");
        assert!(row[5].parse::<f64>().unwrap() <= -28.75, "{row:?}");
    }
    let maps: Vec<Outcome> = (f.outcomes().into_iter())
        .filter(|(key, _)| key.starts_with("maps"))
        .map(|(_, outcome)| outcome)
        .collect();
    assert_eq!(maps, [Outcome::Computed, Outcome::Hit]);
    // A window opens only its steps' files.
    let windowed = f
        .int("SELECT count(*) FROM maps(1) WHERE time < TIMESTAMP '2013-01-01T12:00:00'")
        .await;
    assert_eq!(windowed, 2 * per_step);
    assert_eq!(f.report().files_read, Some((2, 4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_and_a_delete_touch_exactly_the_entrys_datasets() {
    let f = grid_fixture().await;
    for days in [1, 2, 11] {
        f.int(&format!("SELECT count(*) FROM maps({days})")).await;
    }
    let database = f.root().join("terracotta.sqlite");
    let count = |prefix: &'static str| {
        let database = database.clone();
        async move {
            let (datasets, metadata) = registered(&database).await;
            let n = datasets.iter().filter(|d| d.0.starts_with(prefix)).count();
            assert_eq!(
                n,
                metadata.iter().filter(|m| m.0.starts_with(prefix)).count()
            );
            n
        }
    };
    let counts = [
        count("maps_1_").await,
        count("maps_2_").await,
        count("maps_11_").await,
    ];
    assert_eq!(counts, [4, 8, 8]);
    // A recompute of fewer steps leaves only its own.
    f.query(
        "CREATE OR REPLACE CACHED FUNCTION maps(days INT DEFAULT 1) \
         WITH (cache_args = (days), backend = 'terracotta', dimensions = (time, lat, lon)) \
         AS SELECT time, lat, lon, air FROM source(NULL, NULL) WHERE date_part('day', time) = 1",
    )
    .await
    .unwrap();
    f.int("SELECT count(*) FROM maps(2, recompute => true, cache_mode => 'overwrite')")
        .await;
    assert_eq!(count("maps_2_").await, 4);
    let files = f.files();
    assert_eq!(
        files.iter().filter(|p| p.starts_with("maps/2.")).count(),
        4,
        "{files:?}"
    );
    // Python's delete of maps(1) (`LIKE 'maps_1%'`) would also take
    // maps(11)'s datasets; here each entry's stay its own.
    f.query("DELETE FROM nuthatch.caches WHERE key = 'maps/1'")
        .await
        .unwrap();
    let counts = [count("maps_1_").await, count("maps_11_").await];
    assert_eq!(counts, [0, 8]);
    assert!(
        !f.files().iter().any(|p| p.starts_with("maps/1.")),
        "{:?}",
        f.files()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grids_terracotta_cannot_store_get_clear_errors_and_store_nothing() {
    let f = grid_fixture().await;
    let error = f
        .error(
            "CREATE CACHED FUNCTION flat() WITH (backend = 'terracotta') \
             AS SELECT lat, lon, air FROM source(NULL, NULL)",
        )
        .await;
    assert!(
        error.contains("name its dimensions with dimensions = (time, lat, lon)"),
        "{error}"
    );
    let cases = [
        (
            "no_latitude",
            "SELECT time, lon, air",
            "dimension 'lat' is not a column of the result; columns are time, lon, air",
        ),
        (
            "uneven",
            "SELECT time, CASE WHEN lat > 70 THEN lat + 1 ELSE lat END AS lat, lon, air",
            "the latitude column is not a regular grid axis",
        ),
        (
            "labels",
            "SELECT time, lat, lon, CAST(air AS VARCHAR) AS air",
            "column 'air' is Utf8",
        ),
    ];
    for (name, select, expected) in cases {
        // A missing coordinate is refused with the definition; the others
        // when the call computes.
        let created = f
            .query(&format!(
                "CREATE CACHED FUNCTION {name}() WITH (backend = 'terracotta', \
                 dimensions = (time, lat, lon)) AS {select} FROM source(NULL, NULL)"
            ))
            .await;
        let error = match created {
            Err(e) => e.to_string(),
            Ok(_) => f.error(&format!("SELECT count(*) FROM {name}()")).await,
        };
        assert!(error.contains(expected), "{name}: {error}");
        let left: Vec<String> = f
            .files()
            .into_iter()
            .filter(|p| p.starts_with(name))
            .collect();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
    let database = f.root().join("terracotta.sqlite");
    if database.exists() {
        assert!(registered(&database).await.0.is_empty());
    }
}

/// Runs `tests/python/nuthatch_store.py` with Python nuthatch's terracotta
/// settings pointing at the suite's PostgreSQL, as the writer role.
fn python_terracotta(args: &[&str], root: &Path, pg: &crate::sql::Pg) -> String {
    let python = std::env::var("NUTHATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/nuthatch_store.py");
    let output = Command::new(python)
        .arg(script)
        .arg(args[0])
        .arg(root)
        .args(&args[1..])
        // Terracotta takes its driver from the URL scheme: Python's
        // terracotta backend works with `postgresql` only.
        .env("NUTHATCH_ROOT_TERRACOTTA_DRIVER", "postgresql")
        .env("NUTHATCH_ROOT_TERRACOTTA_HOST", "127.0.0.1")
        .env("NUTHATCH_ROOT_TERRACOTTA_PORT", &pg.port)
        .env("NUTHATCH_ROOT_TERRACOTTA_DATABASE", &pg.database)
        .env("NUTHATCH_ROOT_TERRACOTTA_USERNAME", &pg.writer.0)
        .env("NUTHATCH_ROOT_TERRACOTTA_PASSWORD", &pg.writer.1)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL, Python nuthatch and terracotta: run `bash scripts/test`"]
async fn python_terracotta_entries_read_here_and_ours_read_in_python() {
    let pg = crate::sql::pg();
    let settings = [
        ("root.terracotta.driver", "postgresql"),
        ("root.terracotta.host", "127.0.0.1"),
        ("root.terracotta.port", pg.port.as_str()),
        ("root.terracotta.database", pg.database.as_str()),
        ("root.terracotta.username", pg.writer.0.as_str()),
        ("root.terracotta.password", pg.writer.1.as_str()),
    ];
    let f = pg.fixture(&pg.writer, None, &settings);
    f.query(
        "CREATE CACHED FUNCTION grid(days INT DEFAULT 1) \
         WITH (cache_args = (days), version = '1', backend = 'terracotta', \
               dimensions = (time, lat, lon)) \
         AS SELECT CAST(to_timestamp_seconds(1356998400 + t.value * 21600) AS TIMESTAMP) AS time, \
                   CAST(la.value AS DOUBLE) * 2.5 AS lat, CAST(lo.value AS DOUBLE) * 2.5 AS lon, \
                   CAST(250 + t.value + la.value * 1.25 + lo.value * 0.25 AS REAL) AS air \
            FROM generate_series(0, 4 * $days - 1) AS t, generate_series(6, 30) AS la, \
                 generate_series(-64, -12) AS lo",
    )
    .await
    .unwrap();
    // Ours, in PostgreSQL, read by Python nuthatch's terracotta backend.
    assert!(f.int("SELECT count(*) FROM grid(2)").await > 0);
    let read = python_terracotta(&["read-terracotta", "2"], &f.root(), &pg);
    assert_eq!(
        read.lines().find(|l| l.starts_with("result")),
        Some("result 8"),
        "{read}"
    );

    // Python's, read here as a hit: its LZW COGs on GDAL's grid, each
    // step's values in the range Terracotta recorded of it.
    python_terracotta(&["write-terracotta"], &f.root(), &pg);
    let admin = pg.admin().await;
    let ranges: Vec<(String, f32, f32)> = sqlx::query_as(
        "SELECT key, min, max FROM metadata WHERE key LIKE 'grid\\_1\\_%' ORDER BY key",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    let rows = crate::system::text_rows(
        &f.query(
            "SELECT CAST(time AS VARCHAR) AS t, min(air), max(air), count(*) - count(air) \
             FROM grid(1) GROUP BY time ORDER BY time",
        )
        .await
        .unwrap(),
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (row, (key, min, max)) in rows.iter().zip(&ranges) {
        assert!(key.contains(&row[0].replace(' ', "T")), "{key} for {row:?}");
        assert_eq!(row[1].parse::<f32>().unwrap(), *min, "{key}");
        assert_eq!(row[2].parse::<f32>().unwrap(), *max, "{key}");
    }
    let grid: Vec<Outcome> = (f.outcomes().into_iter())
        .filter(|(key, _)| key == "grid/1")
        .map(|(_, outcome)| outcome)
        .collect();
    assert_eq!(grid, [Outcome::Hit]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_copy_is_the_same_map_registered_beside_the_local_tier() {
    let f = grid_fixture().await;
    let summary = "SELECT count(*) AS n, count(air) AS valid, sum(air) AS total, min(lat) AS south, \
                   max(lon) AS east FROM maps(1";
    let root = crate::system::text_rows(&f.query(&format!("{summary})")).await.unwrap());
    // `local` stores what it reads from root in the local tier: the rows
    // read back from Web Mercator, which reproject onto the same pixels.
    let local = crate::system::text_rows(
        &f.query(&format!("{summary}, cache_mode => 'local')"))
            .await
            .unwrap(),
    );
    let strict = crate::system::text_rows(
        &f.query(&format!("{summary}, cache_mode => 'local_strict')"))
            .await
            .unwrap(),
    );
    // The same pixels and values; a float32 latitude read back places the
    // grid to within a few metres.
    for copy in [&local, &strict] {
        assert_eq!(copy[0][..3], root[0][..3]);
        for column in 3..5 {
            let (a, b): (f64, f64) = (
                copy[0][column].parse().unwrap(),
                root[0][column].parse().unwrap(),
            );
            assert!((a - b).abs() < 1e-3, "{copy:?} against {root:?}");
        }
    }
    let files = crate::support::files_under(&f.local());
    let copies: Vec<&String> = files.iter().filter(|p| p.ends_with(".tif")).collect();
    assert_eq!(copies.len(), 4, "{files:?}");
    let (datasets, _) = registered(&f.local().join("terracotta.sqlite")).await;
    assert_eq!(datasets.len(), 4);
    assert!(
        datasets[0].1.starts_with(
            &std::path::absolute(f.local())
                .unwrap()
                .display()
                .to_string()
        )
    );
    assert_eq!(
        datasets.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
        registered(&f.root().join("terracotta.sqlite"))
            .await
            .0
            .iter()
            .map(|d| d.0.clone())
            .collect::<Vec<_>>()
    );
}
