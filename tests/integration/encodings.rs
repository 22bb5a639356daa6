//! Each column of a Parquet entry is encoded by what its values look like,
//! judged from the first values that are not null: a grid's coordinates,
//! which come in runs and cycles, as plain values that Snappy packs; labels
//! in no order through a dictionary; measurements, even behind a long run
//! of leading nulls, as split byte streams without a dictionary.

use crate::support::{Fixture, column_encodings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_are_encoded_by_what_their_first_values_look_like() {
    let f = Fixture::new();
    f.query(
        "CREATE CACHED FUNCTION mixed(start_time TIMESTAMP, end_time TIMESTAMP) \
         WITH (timeseries = 'time') AS \
         SELECT to_timestamp_seconds(1577836800 + value) AS time, \
                CAST(200.0 + 2.5 * (value % 53) AS FLOAT) AS lon, \
                CAST(floor(abs(sin(CAST(value AS DOUBLE))) * 16) AS BIGINT) AS label, \
                CASE WHEN value >= 10000 THEN CAST(value AS DOUBLE) * 0.37 END AS late \
         FROM generate_series(0, 199999)",
    )
    .await
    .unwrap();
    let counted = f
        .query("SELECT count(late), count(DISTINCT label), sum(lon) FROM mixed(NULL, NULL)")
        .await
        .unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&counted)
        .unwrap()
        .to_string();
    assert!(shown.contains("| 190000 "), "{shown}");
    assert!(shown.contains("| 16 "), "{shown}");

    let lon = column_encodings(&f, "mixed", 1);
    assert!(
        lon.contains("PLAIN") && !lon.contains("DICTIONARY"),
        "a cycle of 53 coordinates is stored plain: {lon}"
    );
    let label = column_encodings(&f, "mixed", 2);
    assert!(
        label.contains("RLE_DICTIONARY"),
        "labels in no order keep a dictionary: {label}"
    );
    // The first 10,000 values, more than the first batch, are null.
    let late = column_encodings(&f, "mixed", 3);
    assert!(
        late.contains("BYTE_STREAM_SPLIT") && !late.contains("DICTIONARY"),
        "distinct measurements after leading nulls get no dictionary: {late}"
    );
}
