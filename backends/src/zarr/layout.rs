//! Where the cells of a slab go: the dense buffer a slab's rows are
//! scattered into, and the full chunks (padded with the fill value past the
//! slab's edges) cut out of it. Values are bytes of `size` each, so one
//! copy of the code serves every element type.

use arrow::array::{Array as _, ArrayRef};

/// The chunk indices covering a slab of `shape` (first dimension: one
/// chunk, number `slab`).
pub fn chunk_indices(shape: &[u64], chunk_shape: &[u64], slab: u64) -> Vec<Vec<u64>> {
    let mut all = vec![vec![slab]];
    for (n, c) in shape[1..].iter().zip(&chunk_shape[1..]) {
        let count = n.div_ceil(*c).max(1);
        all = all
            .into_iter()
            .flat_map(|prefix| {
                (0..count).map(move |j| {
                    let mut next = prefix.clone();
                    next.push(j);
                    next
                })
            })
            .collect();
    }
    all
}

/// The slab's values in their cells, every other cell the fill value.
pub fn scatter(
    column: &ArrayRef,
    cells: &[usize],
    total: usize,
    size: usize,
    fill: &[u8],
) -> Vec<u8> {
    let mut dense: Vec<u8> = fill.iter().copied().cycle().take(total * size).collect();
    let data = column.to_data();
    let values = &data.buffers()[0].as_slice()[data.offset() * size..];
    for (row, cell) in cells.iter().enumerate() {
        if column.is_valid(row) {
            dense[cell * size..(cell + 1) * size]
                .copy_from_slice(&values[row * size..(row + 1) * size]);
        }
    }
    dense
}

/// One full chunk (padded with the fill value past the slab's edges) of a
/// dense slab of `shape`.
pub fn gather(
    dense: &[u8],
    shape: &[u64],
    chunk_shape: &[u64],
    chunk: &[u64],
    size: usize,
    fill: &[u8],
) -> Vec<u8> {
    let cells: u64 = chunk_shape.iter().product();
    let mut out: Vec<u8> = fill
        .iter()
        .copied()
        .cycle()
        .take(cells as usize * size)
        .collect();
    let dims = shape.len();
    // The chunk's extent within the slab, per dimension (the first
    // dimension's chunk is the whole slab).
    let origin: Vec<u64> = (0..dims)
        .map(|d| if d == 0 { 0 } else { chunk[d] * chunk_shape[d] })
        .collect();
    let extent: Vec<u64> = (0..dims)
        .map(|d| (shape[d] - origin[d].min(shape[d])).min(chunk_shape[d]))
        .collect();
    if extent.contains(&0) {
        return out;
    }
    let mut slab_strides = vec![1u64; dims];
    let mut chunk_strides = vec![1u64; dims];
    for d in (0..dims - 1).rev() {
        slab_strides[d] = slab_strides[d + 1] * shape[d + 1];
        chunk_strides[d] = chunk_strides[d + 1] * chunk_shape[d + 1];
    }
    let run = extent[dims - 1] as usize * size;
    let outer: u64 = extent[..dims - 1].iter().product();
    let mut index = vec![0u64; dims - 1];
    for _ in 0..outer {
        let mut from = origin[dims - 1];
        let mut to = 0;
        for d in 0..dims - 1 {
            from += (origin[d] + index[d]) * slab_strides[d];
            to += index[d] * chunk_strides[d];
        }
        let (from, to) = (from as usize * size, to as usize * size);
        out[to..to + run].copy_from_slice(&dense[from..from + run]);
        for d in (0..dims - 1).rev() {
            index[d] += 1;
            if index[d] < extent[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}
