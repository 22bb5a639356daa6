//! Numbering the series (`PARTITION BY` values) that rows belong to, in
//! the order series first appear.
//!
//! A gridded result keyed by two `Float32` coordinates is the common case:
//! millions of rows, a few thousand series, and at every time step the
//! series come again in the same order. Such keys fit in 64 bits together,
//! so they are packed into one number (with a flag per null beside it) and
//! compared, a stretch of rows at a time, with the series expected next:
//! the ones after the previous row's. Only a row that breaks the cycle is
//! hashed. Other keys are interned as DataFusion's `GROUP BY` does. Either
//! way a batch comes out as [`Run`]s of rows whose series are consecutive.
//!
//! Packed keys compare floats by their bits, Arrow's total order, which is
//! how DataFusion's own window tells series apart (it sorts and hashes by
//! that order): `-0.0` and `0.0` are two series, and NaNs with the same bits
//! one. `GROUP BY` instead puts `-0.0` with `0.0`, so keys too wide to pack
//! keep that difference from DataFusion's window.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::SchemaRef;
use datafusion::common::Result;
use datafusion::physical_plan::aggregates::group_values::{new_group_values, GroupValues};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

/// A stretch of a batch whose rows belong to consecutive series: its
/// `i`-th row to series `first + i`. A grid at one time step is one run,
/// which lets the window step all of its series' frames as arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub first: usize,
    pub len: usize,
}

/// Appends series `series` as the next row, extending the last run when
/// it continues it.
fn push_row(runs: &mut Vec<Run>, series: usize) {
    match runs.last_mut() {
        Some(run) if run.first + run.len == series => run.len += 1,
        _ => runs.push(Run {
            first: series,
            len: 1,
        }),
    }
}

pub(super) enum Series {
    Packed(Packed),
    Grouped {
        values: Box<dyn GroupValues>,
        /// Scratch: the series of each row of the current batch.
        groups: Vec<usize>,
    },
}

impl Series {
    /// An interner for keys of these types.
    pub(super) fn new(keys: SchemaRef) -> Result<Series> {
        let widths: Option<Vec<usize>> = keys
            .fields()
            .iter()
            .map(|f| f.data_type().primitive_width())
            .collect();
        match widths {
            Some(widths) if widths.iter().sum::<usize>() <= 8 && !widths.is_empty() => {
                Ok(Series::Packed(Packed::new(widths)))
            }
            _ => Ok(Series::grouped_by(new_group_values(
                keys,
                &GroupOrdering::None,
            )?)),
        }
    }

    fn grouped_by(values: Box<dyn GroupValues>) -> Series {
        Series::Grouped {
            values,
            groups: Vec::new(),
        }
    }

    /// For tests: an interner that always goes through DataFusion's.
    #[cfg(test)]
    fn grouped(types: &[arrow::datatypes::DataType]) -> Result<Series> {
        let fields: Vec<_> = types
            .iter()
            .enumerate()
            .map(|(i, t)| arrow::datatypes::Field::new(format!("k{i}"), t.clone(), true))
            .collect();
        Ok(Series::grouped_by(new_group_values(
            std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
            &GroupOrdering::None,
        )?))
    }

    /// Sets `runs` to the series of the rows of `keys`, in row order.
    pub(super) fn intern(&mut self, keys: &[ArrayRef], runs: &mut Vec<Run>) -> Result<()> {
        runs.clear();
        match self {
            Series::Packed(packed) => packed.intern(keys, runs),
            Series::Grouped { values, groups } => {
                values.intern(keys, groups)?;
                for &series in groups.iter() {
                    push_row(runs, series);
                }
            }
        }
        Ok(())
    }

    /// How many series there are so far.
    pub(super) fn len(&self) -> usize {
        match self {
            Series::Packed(packed) => packed.keys.len(),
            Series::Grouped { values, .. } => values.len(),
        }
    }
}

/// Keys packed into 64 bits, with a flag per null column beside them.
pub(super) struct Packed {
    widths: Vec<usize>,
    /// The series of each key (flags above the packed bits).
    ids: HashMap<u128, usize, BuildHasherDefault<Mix>>,
    /// Each series' packed key, and its null flags.
    keys: Vec<u64>,
    flags: Vec<u8>,
    /// Whether any series has a null in its key.
    flagged: bool,
    /// The series expected for the next row.
    next: usize,
    /// Scratch: the current batch's packed keys, and their null flags when
    /// the batch has nulls.
    packed: Vec<u64>,
    packed_flags: Vec<u8>,
}

impl Packed {
    fn new(widths: Vec<usize>) -> Packed {
        Packed {
            widths,
            ids: HashMap::default(),
            keys: Vec::new(),
            flags: Vec::new(),
            flagged: false,
            next: 0,
            packed: Vec::new(),
            packed_flags: Vec::new(),
        }
    }

    fn intern(&mut self, keys: &[ArrayRef], runs: &mut Vec<Run>) {
        let rows = keys.first().map_or(0, |k| k.len());
        self.packed.clear();
        self.packed.resize(rows, 0);
        self.packed_flags.clear();
        let mut shift = 0;
        for (column, (key, &width)) in keys.iter().zip(&self.widths).enumerate() {
            let data = key.to_data();
            let start = data.offset() * width;
            let values = &data.buffers()[0].as_slice()[start..start + rows * width];
            let packed = self.packed.iter_mut();
            // One loop per width, so each compiles to plain loads.
            match width {
                8 => pack(packed, values.chunks_exact(8), shift, |b| {
                    u64::from_le_bytes(b.try_into().expect("8 bytes"))
                }),
                4 => pack(packed, values.chunks_exact(4), shift, |b| {
                    u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64
                }),
                2 => pack(packed, values.chunks_exact(2), shift, |b| {
                    u16::from_le_bytes(b.try_into().expect("2 bytes")) as u64
                }),
                _ => pack(packed, values.chunks_exact(1), shift, |b| b[0] as u64),
            }
            // A null's slot holds any value: clear it and raise the flag.
            if let Some(nulls) = key.logical_nulls().filter(|n| n.null_count() > 0) {
                if self.packed_flags.is_empty() {
                    self.packed_flags.resize(rows, 0);
                }
                let bits = if width == 8 {
                    u64::MAX
                } else {
                    (1u64 << (width * 8)) - 1
                };
                for (i, (packed, flags)) in self
                    .packed
                    .iter_mut()
                    .zip(self.packed_flags.iter_mut())
                    .enumerate()
                {
                    if nulls.is_null(i) {
                        *packed &= !(bits << shift);
                        *flags |= 1 << column;
                    }
                }
            }
            shift += width * 8;
        }
        let with_flags = self.flagged || !self.packed_flags.is_empty();
        let mut row = 0;
        while row < rows {
            // Rows that follow the known cycle of series, compared a
            // stretch at a time; keys with nulls compare their flags too.
            let expected = self.next;
            let same = if with_flags {
                self.matching_with_flags(row, expected)
            } else {
                matching(
                    &self.packed[row..],
                    &self.keys[expected.min(self.keys.len())..],
                )
            };
            if same > 0 {
                runs.push(Run {
                    first: expected,
                    len: same,
                });
                row += same;
                self.next = if expected + same == self.keys.len() {
                    0
                } else {
                    expected + same
                };
                continue;
            }
            let flags = self.packed_flags.get(row).copied().unwrap_or(0);
            let key = (flags as u128) << 64 | self.packed[row] as u128;
            let known = self.keys.len();
            let series = *self.ids.entry(key).or_insert(known);
            if series == known {
                self.keys.push(self.packed[row]);
                self.flags.push(flags);
                self.flagged |= flags != 0;
            }
            push_row(runs, series);
            row += 1;
            self.next = if series + 1 == self.keys.len() {
                0
            } else {
                series + 1
            };
        }
    }

    /// How many rows from `row` on have the keys (flags included) of the
    /// series from `expected` on.
    fn matching_with_flags(&self, row: usize, expected: usize) -> usize {
        let flag = |flags: &[u8], i: usize| flags.get(i).copied().unwrap_or(0);
        (row..self.packed.len())
            .zip(expected..self.keys.len())
            .take_while(|&(r, s)| {
                self.packed[r] == self.keys[s]
                    && flag(&self.packed_flags, r) == flag(&self.flags, s)
            })
            .count()
    }
}

/// The length of the common prefix of `a` and `b`, compared in blocks
/// the compiler turns into vector compares.
fn matching(a: &[u64], b: &[u64]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    const BLOCK: usize = 16;
    let mut same = 0;
    while same + BLOCK <= n && a[same..same + BLOCK] == b[same..same + BLOCK] {
        same += BLOCK;
    }
    while same < n && a[same] == b[same] {
        same += 1;
    }
    same
}

/// ORs each value, read by `read` from its bytes, into its row's key at
/// `shift` bits.
fn pack<'a>(
    packed: std::slice::IterMut<'_, u64>,
    values: std::slice::ChunksExact<'a, u8>,
    shift: usize,
    read: impl Fn(&'a [u8]) -> u64,
) {
    for (key, bytes) in packed.zip(values) {
        *key |= read(bytes) << shift;
    }
}

/// A multiplicative hash for packed keys: they are already well spread in
/// their low bits, and hashing must cost little next to the window's work.
#[derive(Default)]
pub(super) struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, key: u128) {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
        let mixed = (self.0 ^ folded).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = mixed ^ (mixed >> 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// The series of each row.
    fn groups(series: &mut Series, keys: &[ArrayRef]) -> Vec<usize> {
        let mut runs = vec![];
        series.intern(keys, &mut runs).unwrap();
        runs.iter().flat_map(|r| r.first..r.first + r.len).collect()
    }

    fn keys_schema(types: &[DataType]) -> SchemaRef {
        Arc::new(Schema::new(
            types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("k{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// Packed interning numbers series in the order they first appear,
    /// telling floats apart by their bits (nulls, NaN and signed zeros
    /// included), in cycles and out of them, and as `GROUP BY` does where
    /// the two agree.
    #[test]
    fn packed_series_are_numbered_by_first_appearance() {
        let lat = vec![
            Some(1.0f32),
            Some(1.0),
            Some(2.0),
            None,
            Some(1.0),
            Some(1.0),
            Some(2.0),
            None,
            Some(f32::NAN),
            Some(-0.0),
            Some(0.0),
            Some(2.0),
        ];
        let lon = vec![
            Some(5.0f32),
            Some(6.0),
            Some(5.0),
            Some(5.0),
            Some(5.0),
            Some(6.0),
            Some(5.0),
            Some(5.0),
            Some(f32::NAN),
            Some(0.0),
            Some(0.0),
            None,
        ];
        let expected = vec![0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7];
        let keys: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(lat.clone())),
            Arc::new(Float32Array::from(lon.clone())),
        ];
        let types = [DataType::Float32, DataType::Float32];
        let mut packed = Series::new(keys_schema(&types)).unwrap();
        assert!(matches!(packed, Series::Packed(_)));
        for _ in 0..3 {
            assert_eq!(groups(&mut packed, &keys), expected);
        }
        assert_eq!(packed.len(), 8);
        // A null is not the value its cleared slot holds, whichever comes
        // first and whether or not the batch has nulls.
        let zero: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(vec![0.0f32, 0.0])),
            Arc::new(Float32Array::from(vec![5.0f32, 5.0])),
        ];
        assert_eq!(groups(&mut packed, &zero), vec![8, 8]);
        let mut fresh = Series::new(keys_schema(&types)).unwrap();
        let null: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(vec![None, Some(0.0f32)])),
            Arc::new(Float32Array::from(vec![5.0f32, 5.0])),
        ];
        assert_eq!(groups(&mut fresh, &zero), vec![0, 0]);
        assert_eq!(groups(&mut fresh, &null), vec![1, 0]);
        // Without signed zeros both numberings agree.
        let plain: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(lat[..9].to_vec())),
            Arc::new(Float32Array::from(lon[..9].to_vec())),
        ];
        let mut packed = Series::new(keys_schema(&types)).unwrap();
        let mut grouped = Series::grouped(&types).unwrap();
        assert_eq!(groups(&mut packed, &plain), groups(&mut grouped, &plain));
        // A key wider than 64 bits is grouped.
        let wide = Series::new(keys_schema(&[DataType::Int64, DataType::Int64])).unwrap();
        assert!(matches!(wide, Series::Grouped { .. }));
        let mut single = Series::new(keys_schema(&[DataType::Int64])).unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![7, 8, 7, 9, 8]));
        assert_eq!(groups(&mut single, &[ids]), vec![0, 1, 0, 2, 1]);
    }
}
