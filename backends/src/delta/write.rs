//! Writing a result into a Delta table as one new version.
//!
//! The result arrives as a stream that can be read once, and may be larger
//! than memory. delta-rs takes its input as a DataFusion plan, so the
//! stream is wrapped in a table scanned once ([`crate::once`]) and delta-rs
//! pulls it through its writer, which rolls files as they reach
//! [`TARGET_FILE_BYTES`].
//!
//! - [`WriteMode::Replace`]: an overwrite (a new version whose files are
//!   the stream's; the old files are marked removed), or the table's first
//!   version. The schema may change between versions, as Python nuthatch's
//!   `schema_mode='overwrite'` allows.
//! - [`WriteMode::Upsert`]: a merge on the key columns (matching rows
//!   updated, others inserted), streamed: the source is read once.
//! - [`WriteMode::ReplaceWhere`]: the rows the predicate selects are
//!   replaced by the stream; delta-rs rewrites only the files that hold
//!   such rows, keeping their other rows.
//!
//! Upsert and window replacement on a location without a table write the
//! stream as its first version. After each commit, files that versions
//! older than the retention period needed are removed (vacuum), so
//! overwrites do not grow the store without bound.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use datafusion::common::{Column, DataFusionError, Result};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use deltalake::delta_datafusion::{DeltaColumn, DeltaSessionContext};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;
use futures::StreamExt;
use parquet::file::properties::WriterProperties;

use super::read::cast_literals;
use super::{delta_error, table};
use crate::fidelity::coarsen;
use crate::parquet::ROWS_ASCEND;
use crate::{Location, Section, WriteMode, WriteOptions, Written};

/// Files roll over at about this many bytes. Small enough that a time
/// window of a sorted entry skips most files of a large one, large enough
/// that a read does not open hundreds (measured in `benches/delta.rs`).
pub const TARGET_FILE_BYTES: u64 = 1024 * 1024;

/// Names the source rows of a merge.
const SOURCE: &str = "source";
/// Names the stored rows of a merge.
const TARGET: &str = "target";

/// How long the files only older versions need are kept when no
/// `retention_hours` is set: Delta's own default, 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The Delta backend's settings on a tier.
#[derive(Debug, Clone)]
pub struct DeltaSettings {
    /// How long files that only older versions need stay for readers still
    /// on them (`retention_hours`).
    pub retention: Duration,
}

impl DeltaSettings {
    pub fn read(section: Section<'_>) -> Result<DeltaSettings> {
        let retention = match section.get("retention_hours") {
            None => DEFAULT_RETENTION,
            Some(text) => match text.parse::<f64>() {
                Ok(hours) if hours >= 0.0 && hours.is_finite() => {
                    Duration::from_secs_f64(hours * 3600.0)
                }
                _ => {
                    return Err(section.invalid(
                        "retention_hours",
                        "a number of hours, 0 or more",
                        text,
                    ))
                }
            },
        };
        Ok(DeltaSettings { retention })
    }
}

/// A delta-rs session that writes the rows in the order they come: its
/// writer takes batches from every partition of the input as they arrive,
/// so split into several the rows of a file would interleave, and a file
/// would not be sorted as its metadata says. The input is one stream
/// whatever the split, so nothing runs slower.
fn in_order() -> Result<Arc<dyn datafusion::catalog::Session>> {
    let one = [(
        "datafusion.execution.target_partitions".to_string(),
        "1".to_string(),
    )];
    let session = DeltaSessionContext::new_with_session_overrides(&one.into_iter().collect())
        .map_err(|e| delta_error("configuring the write of", e))?;
    Ok(Arc::new(session.state()))
}

/// `properties`, with each file marked as holding its rows in ascending
/// order of the result's leading sort column ([`ROWS_ASCEND`]), which a
/// write in order ([`in_order`]) keeps. Files of merges are not marked,
/// nor were those earlier builds wrote (their rows interleave), so those
/// are read whole.
fn rows_ascend(properties: WriterProperties, options: &WriteOptions) -> WriterProperties {
    let Some(column) = options.order.first() else {
        return properties;
    };
    let mark = parquet::file::metadata::KeyValue::new(ROWS_ASCEND.to_string(), column.clone());
    let mut marks = properties.key_value_metadata().cloned().unwrap_or_default();
    marks.push(mark);
    properties
        .into_builder()
        .set_key_value_metadata(Some(marks))
        .build()
}

/// Writes `data` into the table at `at` as `options.mode` says.
pub async fn write(
    at: &Location,
    data: SendableRecordBatchStream,
    options: &WriteOptions,
) -> Result<Written> {
    // A write goes on top of the latest version, whatever the metadata
    // last recorded: delta-rs retries a commit that raced another.
    let latest = Location {
        version: None,
        ..at.clone()
    };
    let (mut table, exists) = table(&latest).await?;
    let data = in_stored_types(data)?;
    // The encodings a Parquet entry of the same rows would have.
    let (properties, data) = crate::parquet::sampled_properties(data, options).await?;
    let mut updated = None;
    let mut inserted = None;
    table = match (&options.mode, exists) {
        (WriteMode::Upsert { keys }, true) => {
            let (table, counts) = merge(table, data, keys, properties).await?;
            updated = Some(counts.0);
            inserted = Some(counts.1);
            table
        }
        (mode, exists) => {
            // A window's literals are cast to the stored types; the table is
            // already loaded, so this reads nothing more.
            let stored = match mode {
                WriteMode::ReplaceWhere { .. } if exists => {
                    Some(table.table_provider().await?.schema())
                }
                _ => None,
            };
            let source = crate::once::table_once(data)?;
            let plan =
                LogicalPlanBuilder::scan(SOURCE, provider_as_source(source), None)?.build()?;
            let mut builder = table
                .write(Vec::<RecordBatch>::new())
                .with_input_plan(plan)
                .with_session_state(in_order()?)
                .with_save_mode(SaveMode::Overwrite)
                .with_writer_properties(rows_ascend(properties, options))
                .with_target_file_size(NonZeroU64::new(TARGET_FILE_BYTES));
            match mode {
                WriteMode::ReplaceWhere { predicate } if exists => {
                    let stored = stored.expect("read above for a window");
                    let predicate = cast_literals(predicate.clone(), &stored)?;
                    builder = builder.with_replace_where(predicate);
                }
                _ => builder = builder.with_schema_mode(SchemaMode::Overwrite),
            }
            builder.await.map_err(|e| delta_error("writing", e))?
        }
    };
    let retention = at
        .settings
        .get::<DeltaSettings>()
        .map_or(DEFAULT_RETENTION, |settings| settings.retention);
    table = vacuum(table, retention).await?;
    let snapshot = table.snapshot().map_err(|e| delta_error("reading", e))?;
    let (mut rows, mut bytes, mut files) = (0u64, 0u64, 0u64);
    for file in snapshot.log_data().iter() {
        rows += file.num_records().unwrap_or(0) as u64;
        bytes += file.size() as u64;
        files += 1;
    }
    Ok(Written {
        version: table.version(),
        updated,
        inserted,
        ..Written::whole(options, rows, bytes, files)
    })
}

/// The type Delta stores `data_type` as, when it is not stored as it is:
/// timestamps in microseconds, with no time zone or UTC (the instants are
/// kept). delta-rs would cast nanoseconds itself, warning on every write.
fn stored_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Timestamp(unit, zone) => {
            let zone = zone.as_ref().map(|_| Arc::<str>::from("UTC"));
            let stored = DataType::Timestamp(TimeUnit::Microsecond, zone.clone());
            (*unit != TimeUnit::Microsecond || zone.as_deref() != zone_of(data_type))
                .then_some(stored)
        }
        DataType::Date64 => Some(DataType::Date32),
        // Delta's integers are signed: unsigned ones go one size up, so
        // every value fits (a UInt64 above Int64's range fails the write).
        DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        _ => None,
    }
}

fn zone_of(data_type: &DataType) -> Option<&str> {
    match data_type {
        DataType::Timestamp(_, zone) => zone.as_deref(),
        _ => None,
    }
}

/// `data` with its columns cast to the types Delta stores them as.
fn in_stored_types(data: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
    let schema = data.schema();
    if schema
        .fields()
        .iter()
        .all(|f| stored_type(f.data_type()).is_none())
    {
        return Ok(data);
    }
    let stored: SchemaRef = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match stored_type(f.data_type()) {
                Some(t) => f.as_ref().clone().with_data_type(t),
                None => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let target = Arc::clone(&stored);
    let cast = data.map(move |batch| {
        let batch = batch?;
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    return Ok(Arc::clone(column));
                }
                // A value that does not fit fails the write rather than
                // become null.
                let strict = CastOptions {
                    safe: false,
                    ..CastOptions::default()
                };
                coarsen(column, field.data_type(), &strict).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "column {} cannot be stored as Delta's {}: {e}; store it with \
                         backend = 'parquet'",
                        field.name(),
                        field.data_type()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&target), columns)?)
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(stored, cast)))
}

/// Merges `data` into `table` on `keys`; returns the new table and how
/// many rows were updated and inserted.
async fn merge(
    table: DeltaTable,
    data: SendableRecordBatchStream,
    keys: &[String],
    properties: WriterProperties,
) -> Result<(DeltaTable, (u64, u64))> {
    let schema = data.schema();
    for key in keys {
        if schema.index_of(key).is_err() {
            return Err(DataFusionError::Plan(format!(
                "the upsert key {key} is not a column of the result"
            )));
        }
    }
    let source = SessionContext::new().read_table(crate::once::table_once(data)?)?;
    let column = |side: &str, name: &str| Expr::Column(Column::new(Some(side), name));
    let on = keys
        .iter()
        .map(|k| column(TARGET, k).eq(column(SOURCE, k)))
        .reduce(Expr::and)
        .ok_or_else(|| DataFusionError::Plan("an upsert needs at least one key".into()))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let (table, metrics) = table
        .merge(source, on)
        .with_source_alias(SOURCE)
        .with_target_alias(TARGET)
        .with_streaming(true)
        .with_writer_properties(properties)
        .when_matched_update(|update| {
            names.iter().fold(update, |update, name| {
                update.update(
                    DeltaColumn::from(Column::new_unqualified(name)),
                    column(SOURCE, name),
                )
            })
        })
        .and_then(|builder| {
            builder.when_not_matched_insert(|insert| {
                names.iter().fold(insert, |insert, name| {
                    insert.set(
                        DeltaColumn::from(Column::new_unqualified(name)),
                        column(SOURCE, name),
                    )
                })
            })
        })
        .map_err(|e| delta_error("merging into", e))?
        .await
        .map_err(|e| delta_error("merging into", e))?;
    Ok((
        table,
        (
            metrics.num_target_rows_updated as u64,
            metrics.num_target_rows_inserted as u64,
        ),
    ))
}

/// Removes the files no version younger than `retention` needs.
async fn vacuum(table: DeltaTable, retention: Duration) -> Result<DeltaTable> {
    let period = chrono::Duration::from_std(retention)
        .map_err(|e| DataFusionError::Execution(format!("retention {retention:?}: {e}")))?;
    let (table, metrics) = table
        .vacuum()
        .with_retention_period(period)
        .with_enforce_retention_duration(false)
        .await
        .map_err(|e| delta_error("vacuuming", e))?;
    if !metrics.files_deleted.is_empty() {
        tracing::debug!(
            files = metrics.files_deleted.len(),
            "removed files older versions needed"
        );
    }
    Ok(table)
}
