//! Reading a Terracotta entry back as rows: one row per pixel of each time
//! step's COG, at full resolution.
//!
//! The rows are the stored grid's, on Web Mercator: latitude and longitude
//! are each pixel's centre taken back to degrees, and the values are the
//! resampled ones (NaN, the files' nodata, reads as null). Each time step
//! is a file named after its time, so a scan whose filters bound the time
//! column opens only the files inside the window; the filters themselves
//! are applied again above the scan, and how many files it opens is the
//! call report's `files=r/t`. Files are read in time order, spread over the
//! session's partitions.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use super::cog::Raster;
use super::mercator::{latitude_of, longitude_of};
use super::{tiff, Dimensions};
use crate::coverage::{window_of, Span};
use crate::files_read::FilesReadExec;
use crate::Location;

/// One time step's file, with its time (nanoseconds since the epoch for a
/// timestamp or date column, the value itself for an integer one).
#[derive(Debug, Clone)]
struct Step {
    file: String,
    time: Option<i64>,
}

/// A stored entry, as a table.
pub struct TerracottaTable {
    at: Location,
    schema: SchemaRef,
    dimensions: Dimensions,
    steps: Vec<Step>,
}

impl fmt::Debug for TerracottaTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TerracottaTable({}, {} files)",
            self.at.path,
            self.steps.len()
        )
    }
}

impl TerracottaTable {
    /// The entry at `at`, whose files are `files`, read as `schema`.
    pub fn new(
        at: &Location,
        schema: SchemaRef,
        dimensions: Dimensions,
        files: BTreeSet<String>,
    ) -> Result<TerracottaTable> {
        let time_type = match &dimensions.time {
            Some(name) => Some(schema.field_with_name(name)?.data_type().clone()),
            None => None,
        };
        let mut steps = Vec::with_capacity(files.len());
        for file in files {
            let stem = file.trim_end_matches(".tif");
            let time = match &time_type {
                None => None,
                Some(data_type) => match parse_time(stem, data_type) {
                    Some(time) => Some(time),
                    None => {
                        tracing::warn!(%file, path = %at.path, "a file whose name is not a time step's; skipped");
                        continue;
                    }
                },
            };
            steps.push(Step { file, time });
        }
        steps.sort_by_key(|s| s.time);
        Ok(TerracottaTable {
            at: at.clone(),
            schema,
            dimensions,
            steps,
        })
    }

    /// The steps a scan with `filters` needs.
    fn steps_within(&self, filters: &[Expr]) -> Vec<Step> {
        let window = match &self.dimensions.time {
            Some(time)
                if self
                    .schema
                    .field_with_name(time)
                    .is_ok_and(|f| f.data_type().is_temporal()) =>
            {
                window_of(time, &self.schema, filters)
            }
            _ => Span::ALL,
        };
        let micros = |nanos: i64| nanos.div_euclid(1_000);
        (self.steps.iter())
            .filter(|step| match step.time {
                None => true,
                Some(t) => {
                    window.start.is_none_or(|s| micros(t) >= s)
                        && window.end.is_none_or(|e| micros(t) < e)
                }
            })
            .cloned()
            .collect()
    }
}

/// A step's time from its file name: numpy's text of a datetime (any
/// number of fractional digits) or date, or an integer.
fn parse_time(stem: &str, data_type: &DataType) -> Option<i64> {
    if !data_type.is_temporal() {
        return stem.parse().ok();
    }
    let at = NaiveDateTime::parse_from_str(stem, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            let day = NaiveDate::parse_from_str(stem, "%Y-%m-%d").ok()?;
            day.and_hms_opt(0, 0, 0)
        })?;
    at.and_utc().timestamp_nanos_opt()
}

#[async_trait]
impl TableProvider for TerracottaTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let steps = self.steps_within(filters);
        let lanes = state
            .config()
            .target_partitions()
            .clamp(1, steps.len().max(1));
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..lanes)
            .map(|lane| {
                let steps = steps.iter().skip(lane).step_by(lanes).cloned().collect();
                Arc::new(Files {
                    at: self.at.clone(),
                    schema: Arc::clone(&self.schema),
                    dimensions: self.dimensions.clone(),
                    steps,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let scan = Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            partitions,
            projection,
            [],
            false,
            limit,
        )?);
        Ok(Arc::new(FilesReadExec::new(
            scan,
            steps.len(),
            self.steps.len(),
        )))
    }
}

/// One partition's files, read in turn.
struct Files {
    at: Location,
    schema: SchemaRef,
    dimensions: Dimensions,
    steps: Vec<Step>,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TerracottaFiles({} files)", self.steps.len())
    }
}

impl PartitionStream for Files {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch_size = ctx.session_config().batch_size().max(1);
        let (at, schema, dimensions) = (
            self.at.clone(),
            Arc::clone(&self.schema),
            self.dimensions.clone(),
        );
        let batches = futures::stream::iter(self.steps.clone())
            .then(move |step| {
                let (at, schema, dimensions) =
                    (at.clone(), Arc::clone(&schema), dimensions.clone());
                async move { read_step(&at, &schema, &dimensions, step).await }
            })
            .map_ok(move |batch| {
                let slices: Vec<Result<RecordBatch>> = (0..batch.num_rows())
                    .step_by(batch_size)
                    .map(|at| Ok(batch.slice(at, batch_size.min(batch.num_rows() - at))))
                    .collect();
                futures::stream::iter(slices)
            })
            .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        ))
    }
}

/// One step's file as rows of `schema`.
async fn read_step(
    at: &Location,
    schema: &SchemaRef,
    dimensions: &Dimensions,
    step: Step,
) -> Result<RecordBatch> {
    let path = at.path.clone().join(step.file.as_str());
    let bytes = at
        .store
        .get(&path)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .bytes()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let (schema, dimensions) = (Arc::clone(schema), dimensions.clone());
    let shown = format!("{}", path);
    tokio::task::spawn_blocking(move || {
        let raster = tiff::read(&bytes, &shown)?;
        rows(&raster, &schema, &dimensions, step.time, &shown)
    })
    .await
    .map_err(|e| DataFusionError::External(Box::new(e)))?
}

/// The raster's pixels as rows of `schema`, every row at `time`.
fn rows(
    raster: &Raster,
    schema: &SchemaRef,
    dimensions: &Dimensions,
    time: Option<i64>,
    file: &str,
) -> Result<RecordBatch> {
    let cells = raster.width * raster.height;
    let centre = |index: usize, first: f64, step: f64| first + (index as f64 + 0.5) * step;
    let latitudes: Vec<f64> = (0..raster.height)
        .map(|r| latitude_of(centre(r, raster.top, -raster.pixel_height)))
        .collect();
    let longitudes: Vec<f64> = (0..raster.width)
        .map(|c| longitude_of(centre(c, raster.left, raster.pixel_width)))
        .collect();
    let names: Vec<&str> = raster.bands.iter().map(|b| b.name.as_str()).collect();
    let values: Vec<&str> = (schema.fields().iter())
        .map(|f| f.name().as_str())
        .filter(|name| !dimensions.names().any(|d| d == name))
        .collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name();
        let wide: ArrayRef = if Some(name) == dimensions.time.as_ref() {
            let time = time.unwrap_or_default();
            match field.data_type().is_temporal() {
                true => Arc::new(TimestampNanosecondArray::from(vec![time; cells])),
                false => Arc::new(Int64Array::from(vec![time; cells])),
            }
        } else if name == &dimensions.latitude {
            let column = latitudes
                .iter()
                .flat_map(|&lat| std::iter::repeat_n(lat, raster.width));
            Arc::new(Float64Array::from_iter_values(column))
        } else if name == &dimensions.longitude {
            let column = (0..raster.height).flat_map(|_| longitudes.iter().copied());
            Arc::new(Float64Array::from_iter_values(column))
        } else {
            let band = match names.iter().position(|n| n == name) {
                Some(band) => band,
                None if names.len() == values.len() => {
                    values.iter().position(|v| v == name).unwrap_or(0)
                }
                None => {
                    return Err(DataFusionError::Execution(format!(
                        "the stored file {file} holds the bands {}, not the column {name}",
                        names.join(", ")
                    )))
                }
            };
            let column = raster.bands[band].values.iter();
            Arc::new(Float64Array::from_iter(
                column.map(|v| (!v.is_nan()).then_some(*v)),
            ))
        };
        columns.push(cast(&wide, field.data_type())?);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
