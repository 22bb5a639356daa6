//! The grid of a gridded result (a Zarr entry): the dimensions it is
//! stored over, outermost first, and how it is chunked, per call.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;
use datafusion::common::{plan_err, DataFusionError, Result};

use crate::args::Args;
use crate::function::Param;
use crate::value::Value;

/// The grid of a gridded result: its dimensions and how it is chunked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grid {
    pub dimensions: Vec<String>,
    pub chunking: BTreeMap<String, u64>,
    pub chunk_by_arg: Vec<ChunkByArg>,
}

/// Chunk lengths that apply when a cache argument has a value.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkByArg {
    pub arg: String,
    pub value: Value,
    pub chunking: BTreeMap<String, u64>,
}

impl Grid {
    /// The chunking for a call with `args`: `chunking`, then every
    /// matching `chunk_by_arg` rule in order.
    pub fn chunking_for(&self, args: &Args) -> BTreeMap<String, u64> {
        let mut chunking = self.chunking.clone();
        for rule in &self.chunk_by_arg {
            if args
                .get(&rule.arg)
                .is_some_and(|v| v.key_text() == rule.value.key_text())
            {
                chunking.extend(rule.chunking.iter().map(|(d, n)| (d.clone(), *n)));
            }
        }
        chunking
    }
}

pub(crate) fn check_grid(
    name: &str,
    mut grid: Grid,
    schema: &SchemaRef,
    params: &[Param],
    cache_args: &[String],
) -> Result<Grid> {
    for (i, dimension) in grid.dimensions.iter().enumerate() {
        if schema.field_with_name(dimension).is_err() {
            return plan_err!(
                "{name}: dimension '{dimension}' is not a column of the result; columns are {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if grid.dimensions[..i].contains(dimension) {
            return plan_err!("{name}: dimension '{dimension}' is named twice");
        }
    }
    let check_sizes = |sizes: &BTreeMap<String, u64>, option: &str| -> Result<()> {
        for (dimension, size) in sizes {
            if !grid.dimensions.contains(dimension) {
                return plan_err!(
                    "{name}: {option} names '{dimension}', which is not one of the dimensions ({})",
                    grid.dimensions.join(", ")
                );
            }
            if *size == 0 {
                return plan_err!("{name}: {option} gives '{dimension}' a chunk length of 0");
            }
        }
        Ok(())
    };
    check_sizes(&grid.chunking, "chunking")?;
    for rule in &mut grid.chunk_by_arg {
        check_sizes(&rule.chunking, "chunk_by_arg")?;
        if !cache_args.contains(&rule.arg) {
            return plan_err!(
                "{name}: chunk_by_arg names '{}', which is not one of the cache_args ({})",
                rule.arg,
                cache_args.join(", ")
            );
        }
        let param = params
            .iter()
            .find(|p| p.name == rule.arg)
            .expect("cache_args are parameters");
        rule.value = param.ty.coerce(&rule.value.to_scalar()).map_err(|got| {
            DataFusionError::Plan(format!(
                "{name}: chunk_by_arg compares '{}' ({}) with {got}",
                rule.arg, param.ty
            ))
        })?;
    }
    Ok(grid)
}
