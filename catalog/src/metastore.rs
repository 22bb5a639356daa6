//! The metastore: one single-row Parquet file per entry, laid out and shaped
//! as Python nuthatch writes it, so either implementation
//! can read the other's store.
//!
//! ```text
//! nuthatch_metadata.nut/exists.nut
//! nuthatch_metadata.nut/<key>[/<namespace>]/<backend>.parquet   metadata row
//! nuthatch_metadata.nut/<key>[/<namespace>].null                 null marker
//! nuthatch_metadata.nut/write_check/<n>.nut                      write probe
//! [<namespace>/]<key>.<ext>                                      data
//! ```

use std::sync::Arc;

use arrow::array::{
    Array, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use datafusion::common::Result;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::Part;

use crate::key::CacheKey;
use crate::lineage::{decode_arguments, encode_arguments, Lineage};
use crate::stale::Fingerprint;

pub const METASTORE_DIR: &str = "nuthatch_metadata.nut";
/// Python's metastore creates this marker when it first opens a store, and
/// fails on read-only stores that lack it; writing it keeps those readers happy.
pub const EXISTS_MARKER: &str = "nuthatch_metadata.nut/exists.nut";
pub const CONFIRMED: &str = "confirmed";
/// The state of a record put right before the data it vouches for is
/// published ([`Replacing`]). Python reads only confirmed rows, so to
/// Python the entry is missing until the write confirms it.
pub const PENDING: &str = "pending";

/// The folder holding an entry's metadata rows, one per backend.
pub fn metadata_dir(key: &CacheKey, namespace: Option<&str>) -> Path {
    let mut path = format!("{METASTORE_DIR}/{}", key.as_str().trim_end_matches('/'));
    if let Some(ns) = namespace {
        path.push('/');
        path.push_str(ns);
    }
    Path::from(path)
}

/// Where the metadata row of an entry stored with `backend` lives.
pub fn metadata_path(key: &CacheKey, namespace: Option<&str>, backend: &str) -> Path {
    metadata_dir(key, namespace).join(format!("{backend}.parquet"))
}

/// Where the null marker of an entry lives: an empty file saying "the
/// function returned no result". It counts whatever the version or
/// backend, as in Python.
pub fn null_path(key: &CacheKey, namespace: Option<&str>) -> Path {
    let base = match namespace {
        Some(ns) => format!("{}/{ns}", key.as_str().trim_end_matches('/')),
        None => key.as_str().to_string(),
    };
    Path::from(format!("{METASTORE_DIR}/{base}.null"))
}

/// Where a write probe goes; removed right after (Python leaves them).
pub fn write_check_path(nonce: u64) -> Path {
    Path::from(format!("{METASTORE_DIR}/write_check/{nonce}.nut"))
}

/// Where the data of an entry lives. Namespaces come first for data and
/// after the key for metadata, as in Python.
pub fn data_path(key: &CacheKey, namespace: Option<&str>, extension: &str) -> Path {
    let file = format!("{}.{extension}", key.as_str());
    match namespace {
        Some(ns) => Path::from(format!("{ns}/{file}")),
        None => Path::from(file),
    }
}

/// Why a metadata row does not decode: what is missing or malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// The metadata row.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataRow {
    pub cache_key: String,
    pub namespace: Option<String>,
    pub version: Option<String>,
    pub backend: String,
    pub state: String,
    /// UTC epoch microseconds.
    pub last_modified: f64,
    pub commit_hash: String,
    pub user: String,
    pub path: String,
    /// What this implementation records beyond Python's columns.
    pub recorded: Recorded,
    /// For a [`PENDING`] record: the entry it replaces.
    pub replacing: Option<Replacing>,
}

/// What a pending record replaces: the entry's previous record, and the
/// stamp of the data that record vouches for
/// ([`nuthatch_backends::Backend::stamp`]). While the data still bears
/// that stamp, the previous record is the entry; once it bears another,
/// the pending one is. So a process killed between publishing the data
/// and confirming its record leaves the old entry or the new one, never
/// none and never a record of other data.
///
/// A format that publishes by copying a staged copy into place (Zarr)
/// names where that copy is (`staged`): readers read it until the write
/// confirms the record, whatever the copy into place has reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Replacing {
    pub stamp: Option<String>,
    pub previous: Box<MetadataRow>,
    /// The staged copy's path within the tier.
    pub staged: Option<String>,
}

impl MetadataRow {
    /// Where the data of this record is read when not at the entry's own
    /// path: the staged copy of a pending record ([`Replacing::staged`]).
    pub fn staged(&self) -> Option<Path> {
        let replacing = self.replacing.as_ref()?;
        replacing.staged.as_deref().map(Path::from)
    }
}

/// Facts about an entry recorded when it is written, so that listing the
/// catalog reads no data. Extra columns of the metadata row: Python's
/// reader takes the row as a dict and ignores them, and rows Python wrote
/// lack them (every field is then `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    /// The timeseries column, for entries of timeseries functions.
    pub time_column: Option<String>,
    /// The smallest and largest value of that column, in UTC epoch
    /// microseconds (dates count from midnight).
    pub time_min: Option<i64>,
    pub time_max: Option<i64>,
    /// The version of a versioned format's data (a Delta log version) this
    /// row vouches for; readers open that version, not the latest.
    pub data_version: Option<i64>,
    /// The columns the data was written in ascending order of (nulls
    /// last), outermost first; empty when unknown or unordered. Stored as
    /// their names joined by newlines, which column names never hold here.
    pub sort_order: Vec<String>,
    /// For a timeseries entry, the time its rows were computed for
    /// ([`Coverage::encode`]'s form in the row); `None` when unrecorded (an
    /// entry Python wrote, or one written before coverage was kept), which
    /// is read as Python reads it: whatever it holds is the answer.
    pub coverage: Option<Coverage>,
    /// The part of `coverage` computed while it was recent (within the
    /// function's `settle`), which the next call that reaches it computes
    /// again.
    pub provisional: Option<Coverage>,
    /// For an entry stored as parts, its parts in time order, each with the
    /// time its rows lie in: only these are read. Stored one per line,
    /// `<name>` or `<name>\t<coverage>`.
    pub parts: Option<Vec<Part>>,
    /// The columns the data was written with, as `name: type`, one per
    /// line in the row; what adds to the entry later must have the same.
    pub columns: Option<Vec<String>>,
    /// The fingerprint of the definition that computed the entry
    /// ([`crate::stale::Fingerprint`]): the column `fingerprint` holds the
    /// whole, `fingerprint_parts` what it is made of.
    pub fingerprint: Option<Fingerprint>,
    /// The arguments the compute was handed, as `(name, SQL literal)`.
    pub arguments: Option<Vec<(String, String)>>,
    /// The inputs the compute read.
    pub lineage: Lineage,
}

impl MetadataRow {
    /// Is this row a committed entry of `version`?
    pub fn is_valid_for(&self, version: Option<&str>) -> bool {
        self.state == CONFIRMED && self.version.as_deref() == version
    }

    fn schema() -> Arc<Schema> {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("cache_key", false),
            text("namespace", true),
            text("version", true),
            text("backend", false),
            text("state", false),
            Field::new("last_modified", DataType::Float64, false),
            text("commit_hash", false),
            text("user", false),
            text("path", false),
            Field::new("rows", DataType::Int64, true),
            Field::new("bytes", DataType::Int64, true),
            text("time_column", true),
            Field::new(
                "time_min",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "time_max",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("data_version", DataType::Int64, true),
            text("sort_order", true),
            text("coverage", true),
            text("provisional", true),
            text("parts", true),
            text("columns", true),
            text("fingerprint", true),
            text("fingerprint_parts", true),
            text("arguments", true),
            text("lineage", true),
            text("replaces_stamp", true),
            text("replaces_staged", true),
            Field::new("replaces", DataType::Binary, true),
        ]))
    }

    pub fn encode(&self) -> Result<Bytes> {
        let previous = match &self.replacing {
            Some(replacing) => Some(replacing.previous.encode()?),
            None => None,
        };
        let text = |v: Option<&str>| Arc::new(StringArray::from(vec![v])) as Arc<dyn Array>;
        let batch = RecordBatch::try_new(
            MetadataRow::schema(),
            vec![
                text(Some(&self.cache_key)),
                text(self.namespace.as_deref()),
                text(self.version.as_deref()),
                text(Some(&self.backend)),
                text(Some(&self.state)),
                Arc::new(Float64Array::from(vec![self.last_modified])),
                text(Some(&self.commit_hash)),
                text(Some(&self.user)),
                text(Some(&self.path)),
                Arc::new(Int64Array::from(vec![self.recorded.rows])),
                Arc::new(Int64Array::from(vec![self.recorded.bytes])),
                text(self.recorded.time_column.as_deref()),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    self.recorded.time_min,
                ])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    self.recorded.time_max,
                ])),
                Arc::new(Int64Array::from(vec![self.recorded.data_version])),
                text(
                    (!self.recorded.sort_order.is_empty())
                        .then(|| self.recorded.sort_order.join("\n"))
                        .as_deref(),
                ),
                text(
                    self.recorded
                        .coverage
                        .as_ref()
                        .map(Coverage::encode)
                        .as_deref(),
                ),
                text(
                    self.recorded
                        .provisional
                        .as_ref()
                        .map(Coverage::encode)
                        .as_deref(),
                ),
                text(self.recorded.parts.as_deref().map(encode_parts).as_deref()),
                text(
                    self.recorded
                        .columns
                        .as_ref()
                        .map(|c| c.join("\n"))
                        .as_deref(),
                ),
                text(self.recorded.fingerprint.as_ref().map(|f| f.whole.as_str())),
                text(
                    (self.recorded.fingerprint.as_ref())
                        .map(Fingerprint::encode_parts)
                        .as_deref(),
                ),
                text(
                    (self.recorded.arguments.as_deref())
                        .map(encode_arguments)
                        .as_deref(),
                ),
                text(self.recorded.lineage.encode().as_deref()),
                text(self.replacing.as_ref().and_then(|r| r.stamp.as_deref())),
                text(self.replacing.as_ref().and_then(|r| r.staged.as_deref())),
                Arc::new(BinaryArray::from(vec![previous.as_deref()])),
            ],
        )?;
        let mut buffer = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(Bytes::from(buffer))
    }

    /// Reads a row written by either implementation. Polars writes strings
    /// as large strings and all-null columns with the Null type; both are
    /// accepted.
    pub fn decode(bytes: Bytes) -> std::result::Result<MetadataRow, Unreadable> {
        MetadataRow::decode_row(bytes).map_err(Unreadable)
    }

    fn decode_row(bytes: Bytes) -> std::result::Result<MetadataRow, String> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| e.to_string())?;
        let batch = reader
            .into_iter()
            .next()
            .ok_or("it has no rows")?
            .map_err(|e| e.to_string())?;
        if batch.num_rows() != 1 {
            return Err(format!("it has {} rows instead of one", batch.num_rows()));
        }
        let text = |name: &str| -> std::result::Result<Option<String>, String> {
            let Some(column) = batch.column_by_name(name) else {
                return Err(format!("column '{name}' is missing"));
            };
            let strings =
                cast(column, &DataType::Utf8).map_err(|e| format!("column '{name}': {e}"))?;
            let strings = strings
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            Ok(strings.is_valid(0).then(|| strings.value(0).to_string()))
        };
        let required = |name: &str| text(name)?.ok_or_else(|| format!("column '{name}' is null"));
        // Optional integer columns: absent (a Python row) or null is None.
        let integer = |name: &str| -> std::result::Result<Option<i64>, String> {
            let Some(column) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let column = match column.data_type() {
                DataType::Timestamp(_, _) => {
                    cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                        .map_err(|e| format!("column '{name}': {e}"))?
                }
                _ => Arc::clone(column),
            };
            let numbers =
                cast(&column, &DataType::Int64).map_err(|e| format!("column '{name}': {e}"))?;
            let numbers = numbers
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("cast to Int64");
            Ok(numbers.is_valid(0).then(|| numbers.value(0)))
        };
        let optional_text = |name: &str| -> std::result::Result<Option<String>, String> {
            match batch.column_by_name(name) {
                Some(_) => text(name),
                None => Ok(None),
            }
        };
        let recorded = Recorded {
            rows: integer("rows")?,
            bytes: integer("bytes")?,
            time_column: optional_text("time_column")?,
            time_min: integer("time_min")?,
            time_max: integer("time_max")?,
            data_version: integer("data_version")?,
            sort_order: optional_text("sort_order")?
                .map(|names| names.split('\n').map(str::to_string).collect())
                .unwrap_or_default(),
            coverage: optional_text("coverage")?
                .map(|text| Coverage::decode(&text))
                .transpose()
                .map_err(|e| format!("column 'coverage': {}", e.message()))?,
            provisional: optional_text("provisional")?
                .map(|text| Coverage::decode(&text))
                .transpose()
                .map_err(|e| format!("column 'provisional': {}", e.message()))?,
            parts: optional_text("parts")?
                .map(|text| decode_parts(&text))
                .transpose()
                .map_err(|e| format!("column 'parts': {e}"))?,
            columns: optional_text("columns")?
                .map(|text| text.lines().map(str::to_string).collect()),
            fingerprint: optional_text("fingerprint")?.map(|whole| {
                let parts = optional_text("fingerprint_parts").ok().flatten();
                Fingerprint::decode(whole, parts.as_deref())
            }),
            arguments: optional_text("arguments")?.and_then(|text| decode_arguments(&text)),
            lineage: Lineage::decode(optional_text("lineage")?.as_deref()),
        };
        let last_modified = match batch.column_by_name("last_modified") {
            Some(column) => {
                let floats = cast(column, &DataType::Float64).map_err(|e| e.to_string())?;
                let floats = floats
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("cast to Float64");
                if floats.is_valid(0) {
                    floats.value(0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        Ok(MetadataRow {
            cache_key: required("cache_key")?,
            namespace: text("namespace")?,
            version: text("version")?,
            backend: required("backend")?,
            state: required("state")?,
            last_modified,
            commit_hash: text("commit_hash")?.unwrap_or_default(),
            user: text("user")?.unwrap_or_default(),
            path: text("path")?.unwrap_or_default(),
            recorded,
            replacing: match batch.column_by_name("replaces") {
                Some(column) => replaced(
                    column,
                    optional_text("replaces_stamp")?,
                    optional_text("replaces_staged")?,
                )?,
                None => None,
            },
        })
    }
}

/// The previous record a pending row holds (the column `replaces`).
fn replaced(
    column: &Arc<dyn Array>,
    stamp: Option<String>,
    staged: Option<String>,
) -> std::result::Result<Option<Replacing>, String> {
    let bytes = cast(column, &DataType::Binary).map_err(|e| format!("column 'replaces': {e}"))?;
    let bytes = (bytes.as_any().downcast_ref::<BinaryArray>()).expect("cast to Binary");
    if !bytes.is_valid(0) {
        return Ok(None);
    }
    let previous = MetadataRow::decode_row(Bytes::copy_from_slice(bytes.value(0)))
        .map_err(|e| format!("column 'replaces': {e}"))?;
    Ok(Some(Replacing {
        stamp,
        previous: Box::new(previous),
        staged,
    }))
}

/// One line a part: its name, its coverage and its rows, tab-separated;
/// an unknown coverage or row count is left empty.
fn encode_parts(parts: &[Part]) -> String {
    let line = |part: &Part| {
        let covers = part
            .covers
            .as_ref()
            .map(Coverage::encode)
            .unwrap_or_default();
        let rows = part.rows.map(|n| n.to_string()).unwrap_or_default();
        format!("{}\t{covers}\t{rows}", part.name)
    };
    parts.iter().map(line).collect::<Vec<_>>().join("\n")
}

fn decode_parts(text: &str) -> std::result::Result<Vec<Part>, String> {
    let part = |line: &str| -> std::result::Result<Part, String> {
        let mut fields = line.split('\t');
        let name = fields.next().unwrap_or_default().to_string();
        let covers = match fields.next() {
            Some(text) if !text.is_empty() => {
                Some(Coverage::decode(text).map_err(|e| e.message().to_string())?)
            }
            _ => None,
        };
        let rows = match fields.next() {
            Some(text) if !text.is_empty() => Some(
                text.parse()
                    .map_err(|_| format!("part {name}: '{text}' is not a row count"))?,
            ),
            _ => None,
        };
        Ok(Part { name, covers, rows })
    };
    text.lines()
        .filter(|line| !line.is_empty())
        .map(part)
        .collect()
}

/// The commit of the git repository around the working directory, or
/// `no_git_repo`, as Python nuthatch records it.
pub fn current_commit_hash() -> String {
    let Ok(cwd) = std::env::current_dir() else {
        return "no_git_repo".into();
    };
    for dir in cwd.ancestors() {
        let git = dir.join(".git");
        if git.is_dir() {
            return read_head(&git).unwrap_or_else(|| "no_git_repo".into());
        }
    }
    "no_git_repo".into()
}

fn read_head(git: &std::path::Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    if let Ok(hash) = std::fs::read_to_string(git.join(reference)) {
        return Some(hash.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|line| {
        line.strip_suffix(reference)
            .map(|hash| hash.trim().to_string())
    })
}

/// The user name Python's `getpass.getuser()` would give.
pub fn current_user() -> String {
    ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{cache_key, KeyValue};
    use std::collections::BTreeMap;

    fn key(value: &str) -> CacheKey {
        let mut args = BTreeMap::new();
        args.insert("n".to_string(), KeyValue::Scalar(value.to_string()));
        cache_key("f", &args).unwrap()
    }

    #[test]
    fn paths_follow_the_python_layout() {
        let k = key("1");
        assert_eq!(
            metadata_path(&k, None, "parquet").as_ref(),
            "nuthatch_metadata.nut/f/1/parquet.parquet"
        );
        assert_eq!(
            metadata_path(&k, Some("ns1"), "parquet").as_ref(),
            "nuthatch_metadata.nut/f/1/ns1/parquet.parquet"
        );
        assert_eq!(
            data_path(&k, Some("ns1"), "parquet").as_ref(),
            "ns1/f/1.parquet"
        );
        assert_eq!(
            null_path(&k, None).as_ref(),
            "nuthatch_metadata.nut/f/1.null"
        );
        assert_eq!(
            null_path(&k, Some("ns1")).as_ref(),
            "nuthatch_metadata.nut/f/1/ns1.null"
        );
        let zero = cache_key("tk", &BTreeMap::new()).unwrap();
        assert_eq!(
            null_path(&zero, None).as_ref(),
            "nuthatch_metadata.nut/tk/.null"
        );
        assert_eq!(data_path(&zero, None, "parquet").as_ref(), "tk/.parquet");
        assert_eq!(
            metadata_path(&zero, None, "parquet").as_ref(),
            "nuthatch_metadata.nut/tk/parquet.parquet"
        );
    }

    #[test]
    fn a_row_survives_a_round_trip_and_garbage_is_reported() {
        let row = MetadataRow {
            cache_key: "f/1".into(),
            namespace: None,
            version: Some("0.1.0".into()),
            backend: "parquet".into(),
            state: CONFIRMED.into(),
            last_modified: 1.7e15,
            commit_hash: "no_git_repo".into(),
            user: "me".into(),
            path: "/x/f/1.parquet".into(),
            recorded: Recorded {
                rows: Some(24),
                bytes: Some(1234),
                time_column: Some("time".into()),
                time_min: Some(1_577_836_800_000_000),
                time_max: Some(1_577_919_600_000_000),
                data_version: Some(3),
                sort_order: vec!["time".into(), "station".into()],
                coverage: Some(Coverage::decode("..1577836800000000;1577923200000000..").unwrap()),
                provisional: Some(Coverage::decode("1577923200000000..").unwrap()),
                columns: Some(vec!["time: Timestamp(ns)".into(), "value: Float64".into()]),
                fingerprint: Some(Fingerprint {
                    whole: "1:abc".into(),
                    own: "1:def".into(),
                    calls: vec![("g".into(), "1:123".into())],
                }),
                arguments: Some(vec![("days".into(), "7".into())]),
                lineage: Lineage::Recorded(Vec::new()),
                parts: Some(vec![
                    Part {
                        name: "part-1.parquet".into(),
                        covers: Some(Coverage::decode("..1577836800000000").unwrap()),
                        rows: Some(24),
                    },
                    Part {
                        name: "part-2.parquet".into(),
                        covers: None,
                        rows: None,
                    },
                ]),
            },
            replacing: None,
        };
        assert_eq!(MetadataRow::decode(row.encode().unwrap()).unwrap(), row);
        assert!(row.is_valid_for(Some("0.1.0")) && !row.is_valid_for(None));
        let pending = MetadataRow {
            state: PENDING.into(),
            replacing: Some(Replacing {
                stamp: Some("\"etag-1\"".into()),
                previous: Box::new(row.clone()),
                staged: Some("f/1.zarr.next/1".into()),
            }),
            ..row.clone()
        };
        assert_eq!(
            MetadataRow::decode(pending.encode().unwrap()).unwrap(),
            pending
        );
        assert!(!pending.is_valid_for(Some("0.1.0")));
        assert!(MetadataRow::decode(Bytes::from_static(b"not parquet")).is_err());
    }
}
