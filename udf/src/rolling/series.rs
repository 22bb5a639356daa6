//! Numbering the series (`PARTITION BY` values) that rows belong to, in
//! the order series first appear.
//!
//! A gridded result keyed by two `Float32` coordinates is the common case:
//! millions of rows, a few thousand series, and at every time step the
//! series come again in the same order. Such keys fit in 64 bits together,
//! so they are packed into one number (with a flag per null) and looked up
//! first in the series expected next, the one after the previous row's;
//! only a row that breaks the cycle is hashed. Other keys are interned as
//! DataFusion's `GROUP BY` does.
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
pub(super) enum Series {
    Packed(Packed),
    Grouped(Box<dyn GroupValues>),
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
            _ => Ok(Series::Grouped(new_group_values(
                keys,
                &GroupOrdering::None,
            )?)),
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
        Ok(Series::Grouped(new_group_values(
            std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
            &GroupOrdering::None,
        )?))
    }

    /// Sets `groups` to the series of each row of `keys`.
    pub(super) fn intern(&mut self, keys: &[ArrayRef], groups: &mut Vec<usize>) -> Result<()> {
        match self {
            Series::Packed(packed) => {
                packed.intern(keys, groups);
                Ok(())
            }
            Series::Grouped(values) => values.intern(keys, groups),
        }
    }
}

/// Keys packed into the low 64 bits of a `u128`, their null flags above.
pub(super) struct Packed {
    widths: Vec<usize>,
    /// The series of each packed key, and each series' key.
    ids: HashMap<u128, usize, BuildHasherDefault<Mix>>,
    keys: Vec<u128>,
    /// The series expected for the next row.
    next: usize,
    /// Scratch: the current batch's packed keys.
    packed: Vec<u128>,
}

impl Packed {
    fn new(widths: Vec<usize>) -> Packed {
        Packed {
            widths,
            ids: HashMap::default(),
            keys: Vec::new(),
            next: 0,
            packed: Vec::new(),
        }
    }

    fn intern(&mut self, keys: &[ArrayRef], groups: &mut Vec<usize>) {
        let rows = keys.first().map_or(0, |k| k.len());
        self.packed.clear();
        self.packed.resize(rows, 0);
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
                let bits = (1u128 << (width * 8)) - 1;
                for (i, packed) in self.packed.iter_mut().enumerate() {
                    if nulls.is_null(i) {
                        *packed = (*packed & !(bits << shift)) | 1u128 << (64 + column);
                    }
                }
            }
            shift += width * 8;
        }
        groups.clear();
        groups.reserve(rows);
        for &key in &self.packed {
            let expected = self.next;
            let series = if self.keys.get(expected) == Some(&key) {
                expected
            } else {
                let known = self.keys.len();
                let series = *self.ids.entry(key).or_insert(known);
                if series == known {
                    self.keys.push(key);
                }
                series
            };
            groups.push(series);
            self.next = if series + 1 == self.keys.len() {
                0
            } else {
                series + 1
            };
        }
    }
}

/// ORs each value, read by `read` from its bytes, into its row's key at
/// `shift` bits.
fn pack<'a>(
    packed: std::slice::IterMut<'_, u128>,
    values: std::slice::ChunksExact<'a, u8>,
    shift: usize,
    read: impl Fn(&'a [u8]) -> u64,
) {
    for (key, bytes) in packed.zip(values) {
        *key |= (read(bytes) as u128) << shift;
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
            let mut ours = vec![];
            packed.intern(&keys, &mut ours).unwrap();
            assert_eq!(ours, expected);
        }
        // Without signed zeros both numberings agree.
        let plain: Vec<ArrayRef> = vec![
            Arc::new(Float32Array::from(lat[..9].to_vec())),
            Arc::new(Float32Array::from(lon[..9].to_vec())),
        ];
        let mut packed = Series::new(keys_schema(&types)).unwrap();
        let mut grouped = Series::grouped(&types).unwrap();
        let (mut ours, mut theirs) = (vec![], vec![]);
        packed.intern(&plain, &mut ours).unwrap();
        grouped.intern(&plain, &mut theirs).unwrap();
        assert_eq!(ours, theirs);
        // A key wider than 64 bits is grouped.
        let wide = Series::new(keys_schema(&[DataType::Int64, DataType::Int64])).unwrap();
        assert!(matches!(wide, Series::Grouped(_)));
        let mut single = Series::new(keys_schema(&[DataType::Int64])).unwrap();
        let mut groups = vec![];
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![7, 8, 7, 9, 8]));
        single.intern(&[ids], &mut groups).unwrap();
        assert_eq!(groups, vec![0, 1, 0, 2, 1]);
    }
}
