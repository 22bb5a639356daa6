//! The metadata Terracotta keeps of a dataset, computed as Terracotta
//! 0.8's `compute_metadata` computes it, so that its server and Python
//! nuthatch read ours as theirs: of the first band, at full resolution,
//! over the valid (non-NaN) pixels, the share of pixels that are valid,
//! the range, the mean and the population standard deviation, the 1st to
//! 99th percentiles with linear interpolation (numpy's default), the
//! bounds in EPSG:4326 (west, south, east, north) and the convex hull of
//! the valid pixels, in EPSG:4326, as GeoJSON text the way Python's
//! `json.dumps` writes it.

use datafusion::common::{DataFusionError, Result};

use super::cog::Raster;
use super::mercator::{latitude_of, longitude_of};
use crate::python::python_float;

/// What Terracotta records of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// West, south, east, north, in degrees.
    pub bounds: [f64; 4],
    /// GeoJSON text of the valid pixels' convex hull, in degrees.
    pub convex_hull: String,
    pub valid_percentage: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
    /// The 1st to the 99th percentile.
    pub percentiles: Vec<f64>,
}

impl Metadata {
    /// The metadata of `raster`'s first band; an error when it has no
    /// valid pixel (Terracotta refuses such a dataset too).
    pub fn of(raster: &Raster) -> Result<Metadata> {
        let values = &raster.bands[0].values;
        let mut valid: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if valid.is_empty() {
            return Err(DataFusionError::Execution(
                "the raster has no valid (non-NaN) pixel".into(),
            ));
        }
        let n = valid.len() as f64;
        let mean = valid.iter().sum::<f64>() / n;
        let variance = valid.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        valid.sort_by(f64::total_cmp);
        let percentiles = (1..100).map(|p| percentile(&valid, p as f64)).collect();
        let bounds = [
            longitude_of(raster.left),
            latitude_of(raster.bottom()),
            longitude_of(raster.right()),
            latitude_of(raster.top),
        ];
        Ok(Metadata {
            bounds,
            convex_hull: hull_json(&hull(raster)),
            valid_percentage: n / values.len() as f64 * 100.0,
            min: valid[0],
            max: valid[valid.len() - 1],
            mean,
            stdev: variance.sqrt(),
            percentiles,
        })
    }
}

/// numpy's linear percentile `p` of ascending `sorted` values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = p / 100.0 * (sorted.len() - 1) as f64;
    let (below, above) = (at.floor() as usize, at.ceil() as usize);
    let fraction = at - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// The convex hull of the valid pixels, in degrees: the raster's bounds
/// when every pixel is valid, else the hull of the corners of the first
/// and last valid pixel of each row and column (Terracotta's candidates),
/// clockwise from the lowest (then westernmost) corner, closed, as GEOS
/// gives it.
fn hull(raster: &Raster) -> Vec<(f64, f64)> {
    let values = &raster.bands[0].values;
    let (w, h) = (raster.width, raster.height);
    let degrees = |x: f64, y: f64| (longitude_of(x), latitude_of(y));
    if values.iter().all(|v| !v.is_nan()) {
        let (west, south) = degrees(raster.left, raster.bottom());
        let (east, north) = degrees(raster.right(), raster.top);
        return vec![
            (west, south),
            (east, south),
            (east, north),
            (west, north),
            (west, south),
        ];
    }
    let valid = |row: usize, column: usize| !values[row * w + column].is_nan();
    let mut candidates = Vec::new();
    for row in 0..h {
        let columns: Vec<usize> = (0..w).filter(|&c| valid(row, c)).collect();
        if let (Some(&first), Some(&last)) = (columns.first(), columns.last()) {
            candidates.extend([(row, first), (row, last)]);
        }
    }
    for column in 0..w {
        let rows: Vec<usize> = (0..h).filter(|&r| valid(r, column)).collect();
        if let (Some(&first), Some(&last)) = (rows.first(), rows.last()) {
            candidates.extend([(first, column), (last, column)]);
        }
    }
    let mut corners = Vec::new();
    for (row, column) in candidates {
        for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let x = raster.left + (column + dc) as f64 * raster.pixel_width;
            let y = raster.top - (row + dr) as f64 * raster.pixel_height;
            corners.push((x, y));
        }
    }
    let mut ring = clockwise_hull(corners);
    for point in &mut ring {
        *point = degrees(point.0, point.1);
    }
    ring
}

/// The convex hull of `points`, clockwise from the lowest (then leftmost)
/// point, closed (Andrew's monotone chain).
fn clockwise_hull(mut points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    points.dedup();
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut lower: Vec<(f64, f64)> = Vec::new();
    for &p in &points {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<(f64, f64)> = Vec::new();
    for &p in points.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    // Counter-clockwise from the leftmost point; turned clockwise and
    // started at the lowest, then leftmost, point.
    let mut ring: Vec<(f64, f64)> = lower.into_iter().chain(upper).collect();
    ring.reverse();
    let start = (0..ring.len())
        .min_by(|&a, &b| {
            ring[a]
                .1
                .total_cmp(&ring[b].1)
                .then(ring[a].0.total_cmp(&ring[b].0))
        })
        .unwrap_or(0);
    ring.rotate_left(start);
    if let Some(&first) = ring.first() {
        ring.push(first);
    }
    ring
}

/// `ring` as Python's `json.dumps` writes a GeoJSON polygon.
fn hull_json(ring: &[(f64, f64)]) -> String {
    let points: Vec<String> = (ring.iter())
        .map(|(x, y)| format!("[{}, {}]", python_float(*x), python_float(*y)))
        .collect();
    format!(
        "{{\"type\": \"Polygon\", \"coordinates\": [[{}]]}}",
        points.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terracotta::cog::Band;

    fn raster(values: Vec<f64>, width: usize) -> Raster {
        let height = values.len() / width;
        Raster {
            width,
            height,
            left: 0.0,
            top: 1_000_000.0,
            pixel_width: 100_000.0,
            pixel_height: 100_000.0,
            bands: vec![Band {
                name: "v".into(),
                values,
            }],
        }
    }

    #[test]
    fn statistics_are_numpys() {
        let meta = Metadata::of(&raster(vec![1.0, 2.0, 3.0, f64::NAN], 2)).unwrap();
        assert_eq!((meta.min, meta.max, meta.mean), (1.0, 3.0, 2.0));
        assert_eq!(meta.valid_percentage, 75.0);
        assert!((meta.stdev - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(meta.percentiles.len(), 99);
        // numpy.percentile([1, 2, 3], 1) = 1.02; 50 = 2.0; 99 = 2.98.
        assert!((meta.percentiles[0] - 1.02).abs() < 1e-12);
        assert_eq!(meta.percentiles[49], 2.0);
        assert!((meta.percentiles[98] - 2.98).abs() < 1e-12);
        assert!(Metadata::of(&raster(vec![f64::NAN; 4], 2)).is_err());
    }

    #[test]
    fn the_hull_is_the_bounds_when_all_is_valid_and_clockwise_from_the_lowest_corner() {
        let full = Metadata::of(&raster(vec![1.0; 4], 2)).unwrap();
        assert!(full
            .convex_hull
            .starts_with("{\"type\": \"Polygon\", \"coordinates\": [[[0.0, "));
        // A triangle of valid pixels: the lower-left one missing.
        let partial = hull(&raster(vec![1.0, 1.0, f64::NAN, 1.0], 2));
        assert_eq!(partial.first(), partial.last());
        let lowest = partial[0];
        assert!(partial.iter().all(|p| p.1 >= lowest.1));
        // Clockwise: the signed area is negative.
        let area: f64 = partial
            .windows(2)
            .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
            .sum();
        assert!(area < 0.0, "{partial:?}");
    }

    #[test]
    fn floats_are_spelled_as_python_spells_them() {
        for (value, python) in [
            (30.0, "30.0"),
            (-60.69398802842165, "-60.69398802842165"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(python_float(value), python, "{value}");
        }
    }
}
