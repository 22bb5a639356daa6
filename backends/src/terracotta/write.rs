//! Writing a gridded result as a Terracotta entry: one COG per time step,
//! then every dataset registered in one transaction.
//!
//! The rows arrive sorted by the grid's dimensions, outermost first, so a
//! time step's rows come together: they are gathered into a [`Grid`]
//! (cells placed by their coordinates, so the order within a step and
//! missing cells do not matter), then put onto Web Mercator and encoded on
//! a blocking thread while the next step's rows are gathered, and uploaded
//! once that step is complete. At most two steps are held at a time, so a
//! long series streams.
//!
//! What Terracotta sees changes last: the files go up first (each file one
//! put, which object stores make visible whole), then one transaction
//! replaces the entry's datasets, then the files of time steps the new
//! result no longer has are removed. A write killed before the commit
//! leaves the database as it was.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit};
use chrono::DateTime;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::cog::{self, Band, Sample};
use super::database::{self, Dataset};
use super::mercator::Grid;
use super::metadata::Metadata;
use super::{Dimensions, TerracottaSettings, TIME_FREE_FILE};
use crate::sql::database::Database;
use crate::{Location, WriteOptions, Written};

/// One time step's rows, gathered.
#[derive(Default)]
struct Step {
    time: Option<i64>,
    latitudes: Vec<f64>,
    longitudes: Vec<f64>,
    /// Per band, a value per row (NaN for null).
    values: Vec<Vec<f64>>,
}

/// What the write has done so far.
struct Progress {
    datasets: Vec<Dataset>,
    files: BTreeSet<String>,
    bytes: u64,
}

/// A step reprojected and encoded: its file's name, and the file and its
/// metadata, or `None` when it has no valid pixel.
type Encoded = (String, Option<(Vec<u8>, Metadata)>);

/// The steps of one write: each is encoded on a blocking thread while the
/// next one's rows are gathered, and uploaded once that one is complete.
struct Steps<'a> {
    at: &'a Location,
    settings: &'a TerracottaSettings,
    schema: SchemaRef,
    dimensions: &'a Dimensions,
    bands: &'a [usize],
    sample: Sample,
    progress: Progress,
    encoding: Option<tokio::task::JoinHandle<Result<Encoded>>>,
}

/// Writes `data`, sorted by `dimensions`, as the entry at `at`.
pub(super) async fn write(
    at: &Location,
    settings: &TerracottaSettings,
    database: &Database,
    mut data: SendableRecordBatchStream,
    options: &WriteOptions,
) -> Result<Written> {
    let schema = data.schema();
    let dimensions = Dimensions::declared(&options.dimensions, &schema)?;
    let bands = value_columns(&schema, &dimensions)?;
    let sample = match bands.iter().all(|b| {
        matches!(
            schema.field(*b).data_type(),
            DataType::Float16 | DataType::Float32
        )
    }) {
        true => Sample::F32,
        false => Sample::F64,
    };
    let stored = stored_files(at).await?;
    let mut steps = Steps {
        at,
        settings,
        schema: Arc::clone(&schema),
        dimensions: &dimensions,
        bands: &bands,
        sample,
        progress: Progress {
            datasets: Vec::new(),
            files: BTreeSet::new(),
            bytes: 0,
        },
        encoding: None,
    };
    let mut step = Step::default();
    let mut rows = 0u64;
    while let Some(batch) = data.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        if let Some(counter) = &options.progress {
            counter
                .rows
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        }
        let columns = Columns::of(&batch, &dimensions, &bands)?;
        let mut from = 0;
        while from < batch.num_rows() {
            let time = columns.time(from);
            if step.time != time && !step.latitudes.is_empty() {
                steps.push(std::mem::take(&mut step)).await?;
                if let Some(counter) = &options.progress {
                    counter.bytes.store(steps.progress.bytes, Ordering::Relaxed);
                }
            }
            step.time = time;
            let to = columns.run_end(from);
            columns.append(&mut step, from..to);
            from = to;
        }
    }
    if !step.latitudes.is_empty() {
        steps.push(step).await?;
    }
    let progress = steps.finish().await?;
    if progress.datasets.is_empty() {
        return Err(DataFusionError::Execution(
            "every time step of the grid is empty (all NaN) on Web Mercator, so there is \
             nothing for Terracotta to serve; check the grid's values and extent"
                .into(),
        ));
    }
    commit(at, database, &stored, &progress).await?;
    Ok(Written {
        rows,
        bytes: progress.bytes,
        parts: progress.files.len() as u64,
        ..Written::default()
    })
}

/// Registers the new datasets in place of the entry's old ones, then
/// removes the files of time steps the new result lacks.
async fn commit(
    at: &Location,
    database: &Database,
    stored: &BTreeSet<String>,
    progress: &Progress,
) -> Result<()> {
    database::prepare(&database.pools).await?;
    let gone: Vec<&String> = stored.difference(&progress.files).collect();
    let replaced: Vec<String> = gone.iter().map(|file| dataset_key(at, file)).collect();
    database::register(&database.pools, &progress.datasets, &replaced).await?;
    for file in gone {
        at.store
            .delete(&at.path.clone().join(file.as_str()))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
    }
    Ok(())
}

/// The `.tif` files under the entry's path.
pub(super) async fn stored_files(at: &Location) -> Result<BTreeSet<String>> {
    let listed = at.store.list_with_delimiter(Some(&at.path)).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(object_store::Error::NotFound { .. }) => return Ok(BTreeSet::new()),
        Err(e) => return Err(DataFusionError::External(Box::new(e))),
    };
    Ok(listed
        .objects
        .into_iter()
        .filter_map(|o| o.location.filename().map(str::to_string))
        .filter(|name| name.ends_with(".tif"))
        .collect())
}

/// The Terracotta key of the dataset in `file`: the cache key with `/` as
/// `_`, and for a time step, `_` and the step's time.
pub(super) fn dataset_key(at: &Location, file: &str) -> String {
    let base = at.key.replace('/', "_");
    match file.strip_suffix(".tif") {
        Some(TIME_FREE_FILE) | None => base,
        Some(time) => format!("{base}_{time}"),
    }
}

/// The columns stored as bands: every column that is not a dimension,
/// each a number.
fn value_columns(schema: &SchemaRef, dimensions: &Dimensions) -> Result<Vec<usize>> {
    let mut bands = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        if dimensions.names().any(|d| d == field.name()) {
            continue;
        }
        if !field.data_type().is_numeric() {
            return Err(DataFusionError::Plan(format!(
                "the terracotta backend stores numbers, one band per column: column '{}' is \
                 {}; cast it to a float, or store this result with another backend",
                field.name(),
                field.data_type()
            )));
        }
        bands.push(index);
    }
    if bands.is_empty() {
        return Err(DataFusionError::Plan(
            "a terracotta entry needs at least one value column besides its dimensions".into(),
        ));
    }
    Ok(bands)
}

/// One batch's columns, widened for gathering.
struct Columns {
    time: Option<Vec<i64>>,
    latitude: Vec<f64>,
    longitude: Vec<f64>,
    bands: Vec<Vec<f64>>,
}

impl Columns {
    fn of(batch: &RecordBatch, dimensions: &Dimensions, bands: &[usize]) -> Result<Columns> {
        let floats = |column: &dyn Array, name: &str| -> Result<Vec<f64>> {
            let wide = cast(column, &DataType::Float64)?;
            let wide = wide.as_primitive::<Float64Type>();
            if dimensions.names().any(|d| d == name) && wide.null_count() > 0 {
                return Err(DataFusionError::Execution(format!(
                    "the {name} column has nulls; every cell of a terracotta grid needs its \
                     coordinates"
                )));
            }
            Ok((0..wide.len())
                .map(|i| match wide.is_valid(i) {
                    true => wide.value(i),
                    false => f64::NAN,
                })
                .collect())
        };
        let column = |name: &str| -> Result<&dyn Array> {
            Ok(batch.column(batch.schema().index_of(name)?).as_ref())
        };
        let time = match &dimensions.time {
            Some(name) => Some(time_values(column(name)?, name)?),
            None => None,
        };
        Ok(Columns {
            time,
            latitude: floats(column(&dimensions.latitude)?, &dimensions.latitude)?,
            longitude: floats(column(&dimensions.longitude)?, &dimensions.longitude)?,
            bands: bands
                .iter()
                .map(|&b| floats(batch.column(b).as_ref(), batch.schema().field(b).name()))
                .collect::<Result<_>>()?,
        })
    }

    fn time(&self, row: usize) -> Option<i64> {
        self.time.as_ref().map(|t| t[row])
    }

    /// The end of the run of rows from `from` that share its time.
    fn run_end(&self, from: usize) -> usize {
        match &self.time {
            None => self.latitude.len(),
            Some(times) => {
                let at = times[from];
                from + times[from..].iter().take_while(|t| **t == at).count()
            }
        }
    }

    fn append(&self, step: &mut Step, rows: std::ops::Range<usize>) {
        step.latitudes
            .extend_from_slice(&self.latitude[rows.clone()]);
        step.longitudes
            .extend_from_slice(&self.longitude[rows.clone()]);
        step.values.resize(self.bands.len(), Vec::new());
        for (into, band) in step.values.iter_mut().zip(&self.bands) {
            into.extend_from_slice(&band[rows.clone()]);
        }
    }
}

/// A time column's values as integers in its own unit (days for dates).
fn time_values(column: &dyn Array, name: &str) -> Result<Vec<i64>> {
    if column.null_count() > 0 {
        return Err(DataFusionError::Execution(format!(
            "the time column {name} has nulls; every step of a terracotta grid needs its time"
        )));
    }
    let raw = match column.data_type() {
        DataType::Date32 => cast(&cast(column, &DataType::Int32)?, &DataType::Int64)?,
        t if t.is_temporal() || t.is_integer() => cast(column, &DataType::Int64)?,
        other => {
            return Err(DataFusionError::Plan(format!(
                "the time column {name} is {other}; a terracotta entry's time is a timestamp, a \
                 date or an integer"
            )))
        }
    };
    Ok(raw.as_primitive::<Int64Type>().values().to_vec())
}

/// A step's time as Python nuthatch names its file and key: numpy's text
/// of the value, which keeps the unit's digits
/// (`2001-01-02T00:00:00.000000000` for nanoseconds).
pub(super) fn time_text(data_type: &DataType, value: i64) -> String {
    let at = |nanos: i64| DateTime::from_timestamp_nanos(nanos).naive_utc();
    match data_type {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            at(value).format("%Y-%m-%dT%H:%M:%S%.9f").to_string()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => (at(value.saturating_mul(1_000)))
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string(),
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => {
            (at(value.saturating_mul(1_000_000)))
                .format("%Y-%m-%dT%H:%M:%S%.3f")
                .to_string()
        }
        DataType::Timestamp(TimeUnit::Second, _) => (at(value.saturating_mul(1_000_000_000)))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        DataType::Date32 => (at(value.saturating_mul(86_400_000_000_000)))
            .format("%Y-%m-%d")
            .to_string(),
        _ => value.to_string(),
    }
}

impl Steps<'_> {
    /// Starts encoding `step`, once the step before it is stored.
    async fn push(&mut self, step: Step) -> Result<()> {
        if let Some(encoding) = self.encoding.take() {
            self.store(encoding).await?;
        }
        let file = match (&self.dimensions.time, step.time) {
            (Some(name), Some(time)) => {
                let data_type = self.schema.field_with_name(name)?.data_type();
                format!("{}.tif", time_text(data_type, time))
            }
            _ => format!("{TIME_FREE_FILE}.tif"),
        };
        let names: Vec<String> = (self.bands.iter())
            .map(|&b| self.schema.field(b).name().clone())
            .collect();
        let (resampling, sample) = (self.settings.resampling, self.sample);
        self.encoding = Some(tokio::task::spawn_blocking(move || {
            let grid = gather(step.latitudes, step.longitudes, step.values, names)?;
            let raster = grid.wrapped().reproject(resampling)?;
            if raster.bands[0].values.iter().all(|v| v.is_nan()) {
                return Ok((file, None));
            }
            let metadata = Metadata::of(&raster)?;
            Ok((file, Some((cog::write(&raster, sample), metadata))))
        }));
        Ok(())
    }

    /// Stores the last step, and hands back what the write did.
    async fn finish(mut self) -> Result<Progress> {
        if let Some(encoding) = self.encoding.take() {
            self.store(encoding).await?;
        }
        Ok(self.progress)
    }

    /// Uploads an encoded step, unless it is empty on Web Mercator (as
    /// Python nuthatch, which logs and skips such a step).
    async fn store(&mut self, encoding: tokio::task::JoinHandle<Result<Encoded>>) -> Result<()> {
        let (file, encoded) = encoding
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))??;
        let at = self.at;
        let Some((bytes, metadata)) = encoded else {
            tracing::warn!(key = %at.key, %file, "skipping a time step with no valid data on Web Mercator");
            return Ok(());
        };
        self.progress.bytes += bytes.len() as u64;
        let path: Path = at.path.clone().join(file.as_str());
        at.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.progress.datasets.push(Dataset {
            key: dataset_key(at, &file),
            path: self.settings.registered(at, &file),
            metadata,
        });
        self.progress.files.insert(file);
        Ok(())
    }
}

/// A step's rows as a grid: the distinct latitudes and longitudes, each
/// row's values in its cell, NaN in cells no row gave.
fn gather(
    latitudes: Vec<f64>,
    longitudes: Vec<f64>,
    values: Vec<Vec<f64>>,
    names: Vec<String>,
) -> Result<Grid> {
    let distinct = |of: &[f64]| {
        let mut axis = of.to_vec();
        axis.sort_by(f64::total_cmp);
        axis.dedup();
        axis
    };
    let (lat_axis, lon_axis) = (distinct(&latitudes), distinct(&longitudes));
    let width = lon_axis.len();
    let cells = lat_axis.len() * width;
    let place = |axis: &[f64], v: f64| axis.binary_search_by(|a| a.total_cmp(&v)).unwrap_or(0);
    let cell: Vec<usize> = latitudes
        .iter()
        .zip(&longitudes)
        .map(|(&lat, &lon)| place(&lat_axis, lat) * width + place(&lon_axis, lon))
        .collect();
    let bands = names
        .into_iter()
        .zip(values)
        .map(|(name, column)| {
            let mut grid = vec![f64::NAN; cells];
            for (&at, value) in cell.iter().zip(column) {
                grid[at] = value;
            }
            Band { name, values: grid }
        })
        .collect();
    Ok(Grid {
        latitudes: lat_axis,
        longitudes: lon_axis,
        bands,
    })
}
