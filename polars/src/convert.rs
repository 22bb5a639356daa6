//! Arrow (arrow-rs, DataFusion's) to Polars and back.
//!
//! The two Arrow implementations share no Rust types, but both speak the
//! Arrow C data interface, whose two structs (`ArrowArray`, `ArrowSchema`)
//! have one `#[repr(C)]` layout on both sides. An array crosses as those
//! structs: the receiving side takes ownership of the producer's buffers
//! and calls the producer's release callback when it drops them, so
//! numbers, booleans, temporal values and string views cross without a
//! copy. What Polars stores differently is converted on the way in, by
//! Polars: `Utf8`/`LargeUtf8` become string views, `List` becomes
//! `LargeList`, seconds become milliseconds. Dictionary columns are
//! decoded here first, since Polars would re-encode them into its global
//! categorical type.
//!
//! Types with no Polars counterpart are refused up front with the column
//! named, rather than left to Polars, which panics on some of them.

use std::sync::Arc;

use arrow::array::{make_array, new_empty_array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::ffi::{from_ffi_and_data_type, FFI_ArrowArray, FFI_ArrowSchema};
use datafusion::common::{DataFusionError, Result};
use polars::prelude::{Column, CompatLevel, DataFrame, PolarsError, Series};
use polars_arrow::array::Array as PolarsArray;
use polars_arrow::ffi as polars_ffi;

/// A Polars error as a DataFusion one, saying where it came from.
pub(crate) fn polars_error(e: PolarsError) -> DataFusionError {
    DataFusionError::Execution(format!("Polars: {e}"))
}

/// The batches, all of `schema`, as one Polars frame: each column one
/// Series whose chunks are the batches' arrays.
pub fn to_polars(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<DataFrame> {
    let mut seen = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(schema.fields().len());
    let height = batches.iter().map(|b| b.num_rows()).sum();
    for (i, field) in schema.fields().iter().enumerate() {
        if !seen.insert(field.name().as_str()) {
            return Err(DataFusionError::Plan(format!(
                "Polars needs unique column names, and '{}' appears twice: give the columns \
                 different names with AS",
                field.name()
            )));
        }
        check(field.name(), field.data_type())?;
        let (field, decode) = polars_field(field);
        let mut chunks = Vec::with_capacity(batches.len().max(1));
        for batch in batches {
            let mut array = Arc::clone(batch.column(i));
            if decode {
                array = cast(&array, field.data_type())?;
            }
            chunks.push(array);
        }
        if chunks.is_empty() {
            chunks.push(new_empty_array(field.data_type()));
        }
        columns.push(series(&field, chunks)?);
    }
    DataFrame::new(height, columns).map_err(polars_error)
}

/// The frame's columns as Arrow batches, one per chunk, in the types
/// Polars holds them in (string views, large lists, time zone names).
pub fn from_polars(mut frame: DataFrame) -> Result<Vec<RecordBatch>> {
    let schema = arrow_schema(&frame)?;
    // Batches need columns cut at the same rows; Polars may have chunked
    // them differently.
    frame.align_chunks_par();
    let mut batches = Vec::new();
    for chunk in frame.iter_chunks(CompatLevel::newest(), false) {
        let rows = chunk.height();
        let arrays = chunk
            .into_arrays()
            .into_iter()
            .zip(schema.fields())
            .map(|(array, field)| arrow_array(array, field))
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        batches.push(RecordBatch::try_new_with_options(
            Arc::clone(&schema),
            arrays,
            &options,
        )?);
    }
    Ok(batches)
}

/// The Arrow schema `from_polars` gives a frame of these columns.
pub fn arrow_schema(frame: &DataFrame) -> Result<SchemaRef> {
    let mut fields = Vec::with_capacity(frame.width());
    for column in frame.columns() {
        let dtype = column
            .dtype()
            .try_to_arrow(CompatLevel::newest())
            .map_err(|e| {
                DataFusionError::Plan(format!(
                    "column '{}' of Polars type {} has no Arrow type: {e}",
                    column.name(),
                    column.dtype()
                ))
            })?;
        let field = polars_arrow::datatypes::Field::new(column.name().clone(), dtype, true);
        fields.push(arrow_field(&field)?);
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Refuses what Polars cannot hold, naming the column.
fn check(column: &str, data_type: &DataType) -> Result<()> {
    let refuse = |what: &str| {
        Err(DataFusionError::Plan(format!(
            "column '{column}' is {data_type}, which Polars cannot hold ({what}): cast it in the \
             query, e.g. CAST({column} AS VARCHAR)"
        )))
    };
    match data_type {
        DataType::Union(..) => refuse("no union type"),
        DataType::RunEndEncoded(..) => refuse("no run-end encoding"),
        DataType::ListView(_) | DataType::LargeListView(_) => refuse("no list views"),
        DataType::Interval(_) => refuse("no interval type"),
        DataType::Float16 => refuse("no 16-bit floats"),
        DataType::Decimal256(..) => refuse("decimals up to 128 bits"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => check(column, f.data_type()),
        DataType::Struct(fields) => fields.iter().try_for_each(|f| check(column, f.data_type())),
        DataType::Dictionary(_, values) => check(column, values),
        _ => Ok(()),
    }
}

/// The field as it crosses, and whether its arrays must be decoded first
/// (dictionaries cross as their values).
fn polars_field(field: &FieldRef) -> (Field, bool) {
    match field.data_type() {
        DataType::Dictionary(_, values) => (
            Field::new(field.name(), values.as_ref().clone(), field.is_nullable()),
            true,
        ),
        _ => (field.as_ref().clone(), false),
    }
}

/// One Series from arrays of `field`, moved across the C data interface.
fn series(field: &Field, arrays: Vec<ArrayRef>) -> Result<Column> {
    let schema = FFI_ArrowSchema::try_from(field)?;
    // SAFETY: both structs are the C data interface's ArrowSchema, laid
    // out by #[repr(C)] in the order the specification fixes; ownership
    // (the release callback) moves with the value.
    let schema: polars_ffi::ArrowSchema = unsafe { std::mem::transmute(schema) };
    // SAFETY: `schema` is a valid, owned C schema exported just above.
    let polars_field = unsafe { polars_ffi::import_field_from_c(&schema) }.map_err(polars_error)?;
    let mut chunks: Vec<Box<dyn PolarsArray>> = Vec::with_capacity(arrays.len());
    for array in arrays {
        let exported = FFI_ArrowArray::new(&array.to_data());
        // SAFETY: as above, for ArrowArray; the array keeps the buffers
        // alive until Polars releases them.
        let exported: polars_ffi::ArrowArray = unsafe { std::mem::transmute(exported) };
        // SAFETY: `exported` was produced from an array of `field`'s type.
        let chunk =
            unsafe { polars_ffi::import_array_from_c(exported, polars_field.dtype.clone()) }
                .map_err(polars_error)?;
        chunks.push(chunk);
    }
    let series = Series::try_from((&polars_field, chunks)).map_err(polars_error)?;
    Ok(series.into())
}

fn arrow_field(field: &polars_arrow::datatypes::Field) -> Result<Field> {
    let exported = polars_ffi::export_field_to_c(field);
    // SAFETY: see `series`; the same struct, the other way.
    let exported: FFI_ArrowSchema = unsafe { std::mem::transmute(exported) };
    Ok(Field::try_from(&exported)?)
}

fn arrow_array(array: Box<dyn PolarsArray>, field: &FieldRef) -> Result<ArrayRef> {
    // Polars exports a validity buffer for its null arrays, which the C
    // data interface does not allow for the null type; nothing to move.
    if field.data_type() == &DataType::Null {
        return Ok(arrow::array::new_null_array(&DataType::Null, array.len()));
    }
    let exported = polars_ffi::export_array_to_c(array);
    // SAFETY: see `series`.
    let exported: FFI_ArrowArray = unsafe { std::mem::transmute(exported) };
    // SAFETY: the array was exported by Polars with the type `field` was
    // exported with.
    let data = unsafe { from_ffi_and_data_type(exported, field.data_type().clone()) }?;
    Ok(make_array(data))
}
