//! A regular latitude/longitude grid (EPSG:4326) onto Web Mercator
//! (EPSG:3857), the projection of map tiles.
//!
//! The formulas are PROJ's for the spherical Mercator. The target grid is
//! north-up with square pixels as wide, in metres at the equator, as the
//! source's longitude step, covering the source's cells (clipped to the
//! latitudes Mercator can show, ±85.0511°). Python nuthatch 0.4.11 lets
//! GDAL suggest the grid instead, which for a grid whose cells reach the
//! poles collapses to a few columns (133 across a 0.25° globe); this rule
//! keeps the source's resolution, as later releases of Python nuthatch do.
//! Longitudes past 180 are wrapped to −180..180 first (Python's code means
//! to and fails).
//!
//! Each target pixel is sampled at its centre with the chosen
//! [`Resampling`]; a neighbour without data (NaN) does not count, and a
//! pixel outside the source's cells has no data.

use std::fmt;
use std::str::FromStr;

use datafusion::common::{DataFusionError, Result};

use super::cog::{Band, Raster};

/// The sphere of EPSG:3857, in metres.
pub const RADIUS: f64 = 6_378_137.0;
/// The latitude at which Mercator's square world ends.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

const TO_RADIANS: f64 = 0.017_453_292_519_943_296;
const TO_DEGREES: f64 = 57.295_779_513_082_32;

pub fn x_of(longitude: f64) -> f64 {
    RADIUS * (longitude * TO_RADIANS)
}

pub fn y_of(latitude: f64) -> f64 {
    RADIUS * (latitude * TO_RADIANS).tan().asinh()
}

pub fn longitude_of(x: f64) -> f64 {
    (x * (1.0 / RADIUS)) * TO_DEGREES
}

pub fn latitude_of(y: f64) -> f64 {
    (y * (1.0 / RADIUS)).sinh().atan() * TO_DEGREES
}

/// How a target pixel takes its value from the source's cells: Python
/// nuthatch's `resampling_method` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resampling {
    /// The cell under the pixel's centre.
    #[default]
    Nearest,
    /// The mean of the cells whose centres the pixel covers (the nearest
    /// cell when it covers none).
    Average,
    /// The four cells around the centre, weighted by distance.
    Bilinear,
    /// The sixteen cells around the centre, by cubic convolution.
    Cubic,
}

impl FromStr for Resampling {
    type Err = DataFusionError;

    fn from_str(text: &str) -> Result<Resampling> {
        match text.trim().to_ascii_lowercase().as_str() {
            "nearest" => Ok(Resampling::Nearest),
            "average" => Ok(Resampling::Average),
            "bilinear" => Ok(Resampling::Bilinear),
            "cubic" => Ok(Resampling::Cubic),
            _ => Err(DataFusionError::Plan(format!(
                "resampling_method '{text}' is not one terracotta entries take: use nearest, \
                 average, bilinear or cubic"
            ))),
        }
    }
}

impl fmt::Display for Resampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resampling::Nearest => "nearest",
            Resampling::Average => "average",
            Resampling::Bilinear => "bilinear",
            Resampling::Cubic => "cubic",
        })
    }
}

/// A regular grid of cell centres: `values` of each band are row-major,
/// one row per latitude (in `latitudes`' order), one column per
/// longitude.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub latitudes: Vec<f64>,
    pub longitudes: Vec<f64>,
    pub bands: Vec<Band>,
}

/// An evenly spaced axis: its first centre and its step (signed), in
/// degrees, or for a latitude axis that is evenly spaced on Web Mercator
/// instead (rows a Terracotta entry was read back as), in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    first: f64,
    step: f64,
    len: usize,
    mercator: bool,
}

/// How far a step may stray from the first, as a share of it: a
/// thousandth of a cell, more than a float32 coordinate's rounding.
const STEP_TOLERANCE: f64 = 1e-3;

impl Axis {
    /// `centres` as an axis, if they are evenly spaced; the error names the
    /// column and where the spacing breaks.
    fn of(column: &str, centres: &[f64]) -> Result<Axis> {
        Axis::spaced(column, centres, false)
    }

    /// Latitudes as an axis: evenly spaced in degrees, or else on Web
    /// Mercator, which a grid already in its projection is.
    fn of_latitudes(centres: &[f64]) -> Result<Axis> {
        Axis::spaced("latitude", centres, false).or_else(|in_degrees| {
            let metres: Vec<f64> = centres.iter().map(|&lat| y_of(lat)).collect();
            Axis::spaced("latitude", &metres, true).map_err(|_| in_degrees)
        })
    }

    fn spaced(column: &str, centres: &[f64], mercator: bool) -> Result<Axis> {
        let irregular = |why: String| {
            DataFusionError::Execution(format!(
                "the {column} column is not a regular grid axis: {why}; terracotta entries need \
                 evenly spaced {column} values"
            ))
        };
        if centres.len() < 2 {
            return Err(irregular(format!("it has {} value(s)", centres.len())));
        }
        let step = centres[1] - centres[0];
        if step == 0.0 || !step.is_finite() {
            return Err(irregular("its values do not change".into()));
        }
        for (i, window) in centres.windows(2).enumerate() {
            if ((window[1] - window[0]) - step).abs() > step.abs() * STEP_TOLERANCE {
                return Err(irregular(format!(
                    "{} follows {} where a step of {step} was expected (at position {})",
                    window[1],
                    window[0],
                    i + 1
                )));
            }
        }
        Ok(Axis {
            first: centres[0],
            step,
            len: centres.len(),
            mercator,
        })
    }

    /// The fractional index of `value` (degrees) on the axis.
    fn index(&self, value: f64) -> f64 {
        let value = if self.mercator { y_of(value) } else { value };
        (value - self.first) / self.step
    }

    /// The lowest and highest cell edges, in degrees.
    fn edges(&self) -> (f64, f64) {
        let last = self.first + self.step * (self.len - 1) as f64;
        let half = self.step.abs() / 2.0;
        let (low, high) = (self.first.min(last) - half, self.first.max(last) + half);
        match self.mercator {
            true => (latitude_of(low), latitude_of(high)),
            false => (low, high),
        }
    }
}

impl Grid {
    /// The grid with longitudes past 180 wrapped to −180..180, columns
    /// reordered to stay ascending.
    pub fn wrapped(mut self) -> Grid {
        if !self.longitudes.iter().any(|&lon| lon > 180.0) {
            return self;
        }
        let mut order: Vec<usize> = (0..self.longitudes.len()).collect();
        let wrap = |lon: f64| if lon > 180.0 { lon - 360.0 } else { lon };
        order.sort_by(|&a, &b| wrap(self.longitudes[a]).total_cmp(&wrap(self.longitudes[b])));
        let width = self.longitudes.len();
        for band in &mut self.bands {
            let values = &band.values;
            band.values = (0..self.latitudes.len())
                .flat_map(|row| {
                    order
                        .iter()
                        .map(move |&column| values[row * width + column])
                })
                .collect();
        }
        self.longitudes = order.iter().map(|&i| wrap(self.longitudes[i])).collect();
        self
    }

    /// The grid on Web Mercator, sampled with `resampling`.
    pub fn reproject(&self, resampling: Resampling) -> Result<Raster> {
        let latitudes = Axis::of_latitudes(&self.latitudes)?;
        let longitudes = Axis::of("longitude", &self.longitudes)?;
        let (west, east) = longitudes.edges();
        let (south, north) = latitudes.edges();
        let (south, north) = (south.max(-MAX_LATITUDE), north.min(MAX_LATITUDE));
        if south >= north {
            return Err(DataFusionError::Execution(format!(
                "the grid's latitudes lie beyond ±{MAX_LATITUDE:.4}, which Web Mercator cannot show"
            )));
        }
        let pixel = x_of(longitudes.step.abs());
        let (left, right, top, bottom) = (x_of(west), x_of(east), y_of(north), y_of(south));
        let width = (((right - left) / pixel) - 1e-9).ceil().max(1.0) as usize;
        let height = (((top - bottom) / pixel) - 1e-9).ceil().max(1.0) as usize;
        let sampler = Sampler {
            latitudes,
            longitudes,
            resampling,
            pixel,
        };
        let bands = (self.bands.iter())
            .map(|band| {
                let mut values = Vec::with_capacity(width * height);
                for row in 0..height {
                    let y = top - (row as f64 + 0.5) * pixel;
                    for column in 0..width {
                        let x = left + (column as f64 + 0.5) * pixel;
                        values.push(sampler.sample(&band.values, x, y));
                    }
                }
                Band {
                    name: band.name.clone(),
                    values,
                }
            })
            .collect();
        Ok(Raster {
            width,
            height,
            left,
            top,
            pixel_width: pixel,
            pixel_height: pixel,
            bands,
        })
    }
}

/// Samples a band of the source grid at target pixel centres.
struct Sampler {
    latitudes: Axis,
    longitudes: Axis,
    resampling: Resampling,
    /// The target pixel's size, in metres.
    pixel: f64,
}

impl Sampler {
    fn sample(&self, values: &[f64], x: f64, y: f64) -> f64 {
        let row = self.latitudes.index(latitude_of(y));
        let column = self.longitudes.index(longitude_of(x));
        let (rows, columns) = (self.latitudes.len as f64, self.longitudes.len as f64);
        if row < -0.5 || row > rows - 0.5 || column < -0.5 || column > columns - 0.5 {
            return f64::NAN;
        }
        match self.resampling {
            Resampling::Nearest => self.at(values, row.round(), column.round()),
            Resampling::Bilinear => self.weighted(values, row, column, 1, |d| (1.0 - d).max(0.0)),
            Resampling::Cubic => self.weighted(values, row, column, 2, cubic),
            Resampling::Average => self.average(values, x, y, row, column),
        }
    }

    /// The value of cell (`row`, `column`), NaN off the grid.
    fn at(&self, values: &[f64], row: f64, column: f64) -> f64 {
        let (rows, columns) = (self.latitudes.len as f64, self.longitudes.len as f64);
        if row < 0.0 || column < 0.0 || row >= rows || column >= columns {
            return f64::NAN;
        }
        values[row as usize * self.longitudes.len + column as usize]
    }

    /// The valid cells within `reach` of (`row`, `column`), weighted by
    /// `kernel` of their distance along each axis, the weights of missing
    /// cells left out.
    fn weighted(
        &self,
        values: &[f64],
        row: f64,
        column: f64,
        reach: i64,
        kernel: fn(f64) -> f64,
    ) -> f64 {
        let (base_row, base_column) = (row.floor() as i64, column.floor() as i64);
        let (mut sum, mut weights) = (0.0, 0.0);
        for r in base_row - reach + 1..=base_row + reach {
            for c in base_column - reach + 1..=base_column + reach {
                let value = self.at(values, r as f64, c as f64);
                let weight = kernel((row - r as f64).abs()) * kernel((column - c as f64).abs());
                if value.is_nan() || weight == 0.0 {
                    continue;
                }
                sum += weight * value;
                weights += weight;
            }
        }
        if weights == 0.0 {
            return self.at(values, row.round(), column.round());
        }
        sum / weights
    }

    /// The mean of the valid cells whose centres lie within the target
    /// pixel around (`x`, `y`); the nearest cell's value when there are none.
    fn average(&self, values: &[f64], x: f64, y: f64, row: f64, column: f64) -> f64 {
        let half = self.pixel / 2.0;
        let rows = ordered(
            self.latitudes.index(latitude_of(y - half)),
            self.latitudes.index(latitude_of(y + half)),
        );
        let columns = ordered(
            self.longitudes.index(longitude_of(x - half)),
            self.longitudes.index(longitude_of(x + half)),
        );
        let (mut sum, mut count) = (0.0, 0);
        for r in rows.0.ceil() as i64..=rows.1.floor() as i64 {
            for c in columns.0.ceil() as i64..=columns.1.floor() as i64 {
                let value = self.at(values, r as f64, c as f64);
                if !value.is_nan() {
                    sum += value;
                    count += 1;
                }
            }
        }
        match count {
            0 => self.at(values, row.round(), column.round()),
            n => sum / n as f64,
        }
    }
}

fn ordered(a: f64, b: f64) -> (f64, f64) {
    (a.min(b), a.max(b))
}

/// Keys' cubic convolution kernel (a = −0.5), GDAL's cubic.
fn cubic(distance: f64) -> f64 {
    let d = distance.abs();
    if d < 1.0 {
        1.5 * d * d * d - 2.5 * d * d + 1.0
    } else if d < 2.0 {
        -0.5 * d * d * d + 2.5 * d * d - 4.0 * d + 2.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(latitudes: Vec<f64>, longitudes: Vec<f64>) -> Grid {
        let values = (0..latitudes.len() * longitudes.len())
            .map(|i| i as f64)
            .collect();
        Grid {
            latitudes,
            longitudes,
            bands: vec![Band {
                name: "v".into(),
                values,
            }],
        }
    }

    #[test]
    fn a_grid_read_back_from_web_mercator_reprojects_to_itself() {
        let latitudes = (0..25).map(|i| 75.0 - 2.5 * i as f64).collect();
        let longitudes = (0..53).map(|i| -160.0 + 2.5 * i as f64).collect();
        let first = grid(latitudes, longitudes)
            .reproject(Resampling::Nearest)
            .unwrap();
        // The pixel centres, in degrees, as float32 columns would hold them.
        let centre = |i: usize, from: f64, step: f64| from + (i as f64 + 0.5) * step;
        let back = Grid {
            latitudes: (0..first.height)
                .map(|r| latitude_of(centre(r, first.top, -first.pixel_height)) as f32 as f64)
                .collect(),
            longitudes: (0..first.width)
                .map(|c| longitude_of(centre(c, first.left, first.pixel_width)) as f32 as f64)
                .collect(),
            bands: first.bands.clone(),
        };
        let again = back.reproject(Resampling::Nearest).unwrap();
        assert_eq!((again.width, again.height), (first.width, first.height));
        assert!((again.top - first.top).abs() < 1.0 && (again.left - first.left).abs() < 1.0);
        assert_eq!(again.bands, first.bands);
    }

    #[test]
    fn the_formulas_are_procs_and_invert() {
        assert_eq!(x_of(-180.0), -20_037_508.342_789_244);
        for lat in [-80.0, -45.5, 0.0, 12.25, 85.0] {
            assert!((latitude_of(y_of(lat)) - lat).abs() < 1e-9);
        }
        assert!((longitude_of(x_of(123.4)) - 123.4).abs() < 1e-12);
    }

    #[test]
    fn a_grid_keeps_its_resolution_and_is_north_up() {
        let g = grid(
            (0..60).map(|i| -59.5 + i as f64 * 2.0).collect(),
            (0..60).map(|i| -29.5 + i as f64).collect(),
        );
        let raster = g.reproject(Resampling::Nearest).unwrap();
        assert_eq!(raster.pixel_width, x_of(1.0));
        assert_eq!(raster.width, 60);
        assert!((raster.left - x_of(-30.0)).abs() < 1e-6);
        assert!((raster.top - y_of(59.5)).abs() < 1e-6);
        // The top-left pixel is the northernmost, westernmost cell.
        assert_eq!(raster.bands[0].values[0], (59 * 60) as f64);
        assert!(raster.bands[0].values.iter().all(|v| !v.is_nan()));
    }

    #[test]
    fn longitudes_past_180_wrap_and_bad_axes_are_named() {
        let g = grid(vec![0.5, 1.5], (0..360).map(|i| i as f64 + 0.5).collect()).wrapped();
        assert_eq!(g.longitudes[0], -179.5);
        assert_eq!(g.longitudes[359], 179.5);
        // Column 180 (lon 180.5) moved to the front.
        assert_eq!(g.bands[0].values[0], 180.0);
        let error = grid(vec![0.0, 1.0, 3.0], vec![0.0, 1.0])
            .reproject(Resampling::Nearest)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("latitude column is not a regular grid axis: 3 follows 1"),
            "{error}"
        );
        let error = "lanczos".parse::<Resampling>().unwrap_err().to_string();
        assert!(
            error.contains("use nearest, average, bilinear or cubic"),
            "{error}"
        );
    }

    #[test]
    fn every_method_keeps_a_constant_field_constant() {
        let mut g = grid(
            (0..20).map(|i| i as f64 * 0.5).collect(),
            (0..20).map(|i| i as f64 * 0.5).collect(),
        );
        g.bands[0].values = vec![7.0; 400];
        g.bands[0].values[5] = f64::NAN;
        for method in [
            Resampling::Nearest,
            Resampling::Average,
            Resampling::Bilinear,
            Resampling::Cubic,
        ] {
            let raster = g.reproject(method).unwrap();
            let valid: Vec<f64> = (raster.bands[0].values.iter())
                .copied()
                .filter(|v| !v.is_nan())
                .collect();
            assert!(valid.len() > 350, "{method}");
            assert!(
                valid.iter().all(|v| (v - 7.0).abs() < 1e-9),
                "{method}: {valid:?}"
            );
        }
    }
}
