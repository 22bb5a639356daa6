//! The on-disk layout and metadata are Python nuthatch's, both ways.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, LargeStringArray, NullArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use nuthatch::Outcome;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{Fixture, assert_outcome};

pub(crate) fn read_parquet(path: &std::path::Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn text(batch: &RecordBatch, name: &str) -> Option<String> {
    let column =
        arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let strings = column.as_any().downcast_ref::<StringArray>().unwrap();
    strings.is_valid(0).then(|| strings.value(0).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_written_in_pythons_layout_with_its_metadata_row() {
    let f = Fixture::new();
    f.int(
        "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'south', scale => 2)",
    )
    .await;
    f.int("SELECT count(*) FROM series('2020-01-01', '2020-01-02', namespace => 'trial')")
        .await;
    assert_eq!(
        f.files(),
        vec![
            "nuthatch_metadata.nut/exists.nut",
            "nuthatch_metadata.nut/series/1.0_north/trial/parquet.parquet",
            "nuthatch_metadata.nut/series/2.0_south/parquet.parquet",
            "series/2.0_south.parquet",
            "trial/series/1.0_north.parquet",
        ]
    );
    let row = read_parquet(
        &f.root()
            .join("nuthatch_metadata.nut/series/2.0_south/parquet.parquet"),
    );
    assert_eq!(row.num_rows(), 1);
    let schema = row.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        columns,
        [
            "cache_key",
            "namespace",
            "version",
            "backend",
            "state",
            "last_modified",
            "commit_hash",
            "user",
            "path",
            // Ours, recorded so that listing reads no data; Python's reader
            // takes the row as a dict and ignores them.
            "rows",
            "bytes",
            "time_column",
            "time_min",
            "time_max",
            "data_version",
            "sort_order",
            "coverage",
            "provisional",
            "parts",
            "columns",
            // Provenance, for staleness and refresh.
            "fingerprint",
            "fingerprint_parts",
            "arguments",
            "lineage",
            // What a pending row replaces; null in a confirmed one.
            "replaces_stamp",
            "replaces_staged",
            "replaces",
        ]
    );
    assert_eq!(text(&row, "time_column").as_deref(), Some("time"));
    assert!(text(&row, "fingerprint").unwrap().starts_with("1:"));
    assert_eq!(
        text(&row, "arguments").as_deref(),
        Some(
            "end_time\tTIMESTAMP '2020-01-02T00:00:00'\nscale\t2.0\nstart_time\t\
             TIMESTAMP '2020-01-01T00:00:00'\nstation\t'south'"
        )
    );
    assert_eq!(text(&row, "lineage").as_deref(), Some("nuthatch-lineage 1"));
    assert_eq!(text(&row, "sort_order").as_deref(), Some("time"));
    assert_eq!(text(&row, "rows").as_deref(), Some("1440"));
    assert_eq!(text(&row, "cache_key").as_deref(), Some("series/2.0_south"));
    assert_eq!(text(&row, "namespace"), None);
    assert_eq!(text(&row, "version").as_deref(), Some("1"));
    assert_eq!(text(&row, "backend").as_deref(), Some("parquet"));
    assert_eq!(text(&row, "state").as_deref(), Some("confirmed"));
    assert!(
        text(&row, "path")
            .unwrap()
            .ends_with("series/2.0_south.parquet")
    );
    let modified = row.column_by_name("last_modified").unwrap();
    let micros = modified
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .value(0);
    let now = chrono::Utc::now().timestamp_micros() as f64;
    assert!(
        (now - micros).abs() < 600e6,
        "last_modified is epoch microseconds: {micros}"
    );
    let namespaced = read_parquet(
        &f.root()
            .join("nuthatch_metadata.nut/series/1.0_north/trial/parquet.parquet"),
    );
    assert_eq!(text(&namespaced, "namespace").as_deref(), Some("trial"));
    // Data is sorted by time, Snappy-compressed as pandas writes it.
    let data = std::fs::File::open(f.root().join("series/2.0_south.parquet")).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).unwrap();
    let column = builder.metadata().row_group(0).column(0);
    assert!(
        matches!(column.compression(), parquet::basic::Compression::SNAPPY),
        "{:?}",
        column.compression()
    );
    let times = builder.build().unwrap().next().unwrap().unwrap();
    let times = times
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::TimestampNanosecondArray>()
        .unwrap();
    assert!(
        times.values().windows(2).all(|w| w[0] <= w[1]),
        "sorted by time"
    );
}

/// Writes an entry the way Python nuthatch (polars for metadata, pandas for
/// data) lays it out: large strings, and Null-typed all-null columns.
fn write_python_entry(root: &std::path::Path, version: Option<&str>) {
    let meta_dir = root.join("nuthatch_metadata.nut/series/1.0_east");
    std::fs::create_dir_all(&meta_dir).unwrap();
    let large = |v: &str| Arc::new(LargeStringArray::from(vec![v])) as Arc<dyn Array>;
    let mut fields = vec![
        Field::new("cache_key", DataType::LargeUtf8, true),
        Field::new("namespace", DataType::Null, true),
    ];
    let mut columns = vec![
        large("series/1.0_east"),
        Arc::new(NullArray::new(1)) as Arc<dyn Array>,
    ];
    match version {
        Some(v) => {
            fields.push(Field::new("version", DataType::LargeUtf8, true));
            columns.push(large(v));
        }
        None => {
            fields.push(Field::new("version", DataType::Null, true));
            columns.push(Arc::new(NullArray::new(1)));
        }
    }
    for (name, value) in [("backend", "parquet"), ("state", "confirmed")] {
        fields.push(Field::new(name, DataType::LargeUtf8, true));
        columns.push(large(value));
    }
    fields.push(Field::new("last_modified", DataType::Float64, true));
    columns.push(Arc::new(Float64Array::from(vec![1.7e15])));
    for (name, value) in [
        ("commit_hash", "no_git_repo"),
        ("user", "py"),
        ("path", "/somewhere/else/series/1.0_east.parquet"),
    ] {
        fields.push(Field::new(name, DataType::LargeUtf8, true));
        columns.push(large(value));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(meta_dir.join("parquet.parquet")).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::write(root.join("nuthatch_metadata.nut/exists.nut"), b"").unwrap();

    // pandas writes microsecond timestamps, large strings and an index-free table.
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("station", DataType::LargeUtf8, true),
        Field::new("value", DataType::Float64, true),
    ]));
    let start = 1_577_836_800_000_000_i64;
    let data = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![
                start,
                start + 3_600_000_000,
                start + 7_200_000_000,
            ])),
            Arc::new(LargeStringArray::from(vec!["east"; 3])),
            Arc::new(Float64Array::from(vec![10.0, 11.0, 12.0])),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(root.join("series")).unwrap();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(root.join("series/1.0_east.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    writer.write(&data).unwrap();
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_written_by_python_is_a_hit() {
    let f = Fixture::new();
    write_python_entry(&f.root(), Some("1"));
    let sql = "SELECT sum(value) FROM series('2020-01-01T01:00:00', NULL, station => 'east')";
    assert_eq!(f.int(sql).await, 23);
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(f.computes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_version_is_a_miss_and_is_replaced() {
    let f = Fixture::new();
    write_python_entry(&f.root(), None);
    let sql = "SELECT count(*) FROM series(NULL, NULL, station => 'east')";
    assert_eq!(f.int(sql).await, 1440);
    assert_outcome(&f.report(), Outcome::Computed);
    assert_eq!(f.int(sql).await, 1440);
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(f.computes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dask_style_directory_entry_is_read_from_its_part_files() {
    let f = Fixture::new();
    write_python_entry(&f.root(), Some("1"));
    // dask writes `<key>.parquet/` with part files and a `_metadata` summary.
    let single = f.root().join("series/1.0_east.parquet");
    let bytes = std::fs::read(&single).unwrap();
    std::fs::remove_file(&single).unwrap();
    std::fs::create_dir_all(&single).unwrap();
    std::fs::write(single.join("part.0.parquet"), &bytes).unwrap();
    std::fs::write(single.join("part.1.parquet"), &bytes).unwrap();
    std::fs::write(single.join("_metadata"), b"not read").unwrap();
    assert_eq!(
        f.int("SELECT count(*) FROM series(NULL, NULL, station => 'east')")
            .await,
        6
    );
    assert_outcome(&f.report(), Outcome::Hit);
}
