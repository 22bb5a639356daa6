//! Cloud-Optimized GeoTIFFs, written here rather than through GDAL.
//!
//! A COG is a classic TIFF laid out so that a reader fetching byte ranges
//! finds what it needs early: the header, then every image file directory
//! (the full-resolution image's first, then each overview's, largest to
//! smallest), then the out-of-line tag values, then the tiles, smallest
//! overview first and full resolution last. Tiles are 512 × 512 (edge
//! tiles padded with NaN, the nodata value), pixel-interleaved when there
//! are several bands, each DEFLATE-compressed. Overviews halve the image
//! (integer division, as GDAL does) while it is wider or taller than a
//! tile, each pixel the mean of the valid pixels below it. This is what
//! `rio cogeo validate` checks, and what GDAL, rasterio and Terracotta
//! read.
//!
//! Why not GDAL: a system library every developer, CI machine and user of
//! the binary would need, for a writer this size. The georeferencing is the
//! one GDAL writes for EPSG:3857 (the same GeoKeys, pixel-is-area), with
//! the nodata in `GDAL_NODATA` and band names in `GDAL_METADATA`, so
//! readers see the file as they see GDAL's.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

/// Tile edge, in pixels.
pub const TILE: usize = 512;

/// A north-up raster in EPSG:3857: `bands` of `width × height` values each,
/// row-major from the top-left pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    /// The top-left corner of the top-left pixel, in metres.
    pub left: f64,
    pub top: f64,
    /// Pixel width and height, in metres (both positive).
    pub pixel_width: f64,
    pub pixel_height: f64,
    pub bands: Vec<Band>,
}

/// One band: its name and its values, NaN where there is no data.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub name: String,
    pub values: Vec<f64>,
}

/// How the values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    F32,
    F64,
}

impl Sample {
    fn bytes(self) -> usize {
        match self {
            Sample::F32 => 4,
            Sample::F64 => 8,
        }
    }
}

impl Raster {
    /// The right and bottom edges, in metres.
    pub fn right(&self) -> f64 {
        self.left + self.width as f64 * self.pixel_width
    }

    pub fn bottom(&self) -> f64 {
        self.top - self.height as f64 * self.pixel_height
    }

    /// This raster halved: each pixel the mean of the valid pixels of the
    /// (up to) 2 × 2 below it.
    fn halved(&self) -> Raster {
        let (width, height) = (self.width / 2, self.height / 2);
        let bands = (self.bands.iter())
            .map(|band| {
                let mut values = Vec::with_capacity(width * height);
                for row in 0..height {
                    for column in 0..width {
                        let (mut sum, mut count) = (0.0, 0);
                        for (r, c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            let value = band.values[(2 * row + r) * self.width + 2 * column + c];
                            if !value.is_nan() {
                                sum += value;
                                count += 1;
                            }
                        }
                        values.push(if count == 0 {
                            f64::NAN
                        } else {
                            sum / count as f64
                        });
                    }
                }
                Band {
                    name: band.name.clone(),
                    values,
                }
            })
            .collect();
        Raster {
            width,
            height,
            left: self.left,
            top: self.top,
            pixel_width: self.pixel_width * self.width as f64 / width as f64,
            pixel_height: self.pixel_height * self.height as f64 / height as f64,
            bands,
        }
    }

    /// The full-resolution raster and its overviews, largest first.
    fn levels(&self) -> Vec<Raster> {
        let mut levels = vec![self.clone()];
        loop {
            let last = levels.last().expect("one level");
            if (last.width <= TILE && last.height <= TILE) || last.width < 2 || last.height < 2 {
                break;
            }
            levels.push(last.halved());
        }
        levels
    }

    /// The compressed tiles of this raster, row by row.
    fn tiles(&self, sample: Sample) -> Vec<Vec<u8>> {
        let across = self.width.div_ceil(TILE);
        let down = self.height.div_ceil(TILE);
        let mut tiles = Vec::with_capacity(across * down);
        let bands = self.bands.len();
        for tile_row in 0..down {
            for tile_column in 0..across {
                let mut raw = Vec::with_capacity(TILE * TILE * bands * sample.bytes());
                for r in 0..TILE {
                    for c in 0..TILE {
                        let (row, column) = (tile_row * TILE + r, tile_column * TILE + c);
                        let inside = row < self.height && column < self.width;
                        for band in &self.bands {
                            let value = match inside {
                                true => band.values[row * self.width + column],
                                false => f64::NAN,
                            };
                            match sample {
                                Sample::F32 => raw.extend_from_slice(&(value as f32).to_le_bytes()),
                                Sample::F64 => raw.extend_from_slice(&value.to_le_bytes()),
                            }
                        }
                    }
                }
                let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
                encoder.write_all(&raw).expect("writing to memory");
                tiles.push(encoder.finish().expect("writing to memory"));
            }
        }
        tiles
    }
}

/// A tag's value as TIFF stores it.
enum Value {
    Short(Vec<u16>),
    Long(Vec<u32>),
    Double(Vec<f64>),
    Ascii(String),
}

impl Value {
    fn kind(&self) -> u16 {
        match self {
            Value::Ascii(_) => 2,
            Value::Short(_) => 3,
            Value::Long(_) => 4,
            Value::Double(_) => 12,
        }
    }

    fn count(&self) -> u32 {
        match self {
            Value::Short(v) => v.len() as u32,
            Value::Long(v) => v.len() as u32,
            Value::Double(v) => v.len() as u32,
            Value::Ascii(text) => text.len() as u32 + 1,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Short(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
            Value::Long(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
            Value::Double(v) => v.iter().flat_map(|n| n.to_le_bytes()).collect(),
            Value::Ascii(text) => text.bytes().chain([0]).collect(),
        }
    }
}

/// One image file directory: its tags in ascending order.
struct Directory {
    tags: Vec<(u16, Value)>,
}

impl Directory {
    /// Bytes of the directory itself: count, entries, next offset.
    fn size(&self) -> usize {
        2 + 12 * self.tags.len() + 4
    }

    /// Bytes of the values that do not fit in an entry, each padded to
    /// an even length.
    fn spilled(&self) -> usize {
        (self.tags.iter())
            .map(|(_, value)| value.bytes().len())
            .filter(|&n| n > 4)
            .map(|n| n + n % 2)
            .sum()
    }
}

/// The tags of one level's directory; `tiles` are its tile offsets and
/// byte counts, `main` whether it is the full-resolution image.
fn directory(
    raster: &Raster,
    sample: Sample,
    tiles: (Vec<u32>, Vec<u32>),
    main: bool,
) -> Directory {
    let bands = raster.bands.len() as u16;
    let mut tags: Vec<(u16, Value)> = Vec::new();
    if !main {
        tags.push((254, Value::Long(vec![1])));
    }
    tags.extend([
        (256, Value::Long(vec![raster.width as u32])),
        (257, Value::Long(vec![raster.height as u32])),
        (
            258,
            Value::Short(vec![8 * sample.bytes() as u16; bands as usize]),
        ),
        (259, Value::Short(vec![8])),
        (262, Value::Short(vec![1])),
        (277, Value::Short(vec![bands])),
        (284, Value::Short(vec![1])),
        (322, Value::Short(vec![TILE as u16])),
        (323, Value::Short(vec![TILE as u16])),
        (324, Value::Long(tiles.0)),
        (325, Value::Long(tiles.1)),
    ]);
    if bands > 1 {
        tags.push((338, Value::Short(vec![0; bands as usize - 1])));
    }
    tags.push((339, Value::Short(vec![3; bands as usize])));
    if main {
        tags.extend([
            (
                33550,
                Value::Double(vec![raster.pixel_width, raster.pixel_height, 0.0]),
            ),
            (
                33922,
                Value::Double(vec![0.0, 0.0, 0.0, raster.left, raster.top, 0.0]),
            ),
            (34735, Value::Short(GEO_KEYS.to_vec())),
            (34737, Value::Ascii(GEO_ASCII.to_string())),
            (42112, Value::Ascii(gdal_metadata(raster))),
        ]);
    }
    tags.push((42113, Value::Ascii("nan".into())));
    Directory { tags }
}

/// EPSG:3857 as GDAL writes it: projected, pixel-is-area, the citations in
/// [`GEO_ASCII`], degrees for angles, metres for lengths.
const GEO_KEYS: [u16; 32] = [
    1, 1, 0, 7, //
    1024, 0, 1, 1, //
    1025, 0, 1, 1, //
    1026, 34737, 25, 0, //
    2049, 34737, 7, 25, //
    2054, 0, 1, 9102, //
    3072, 0, 1, 3857, //
    3076, 0, 1, 9001,
];
const GEO_ASCII: &str = "WGS 84 / Pseudo-Mercator|WGS 84|";

/// GDAL's metadata item list: each band's fill value and name.
fn gdal_metadata(raster: &Raster) -> String {
    let mut text = String::from("<GDALMetadata>\n");
    for (sample, band) in raster.bands.iter().enumerate() {
        text.push_str(&format!(
            "  <Item name=\"_FillValue\" sample=\"{sample}\">nan</Item>\n  <Item \
             name=\"DESCRIPTION\" sample=\"{sample}\" role=\"description\">{}</Item>\n",
            escape(&band.name)
        ));
    }
    text.push_str("</GDALMetadata>\n");
    text
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The COG of `raster`, its values stored as `sample`.
pub fn write(raster: &Raster, sample: Sample) -> Vec<u8> {
    let levels = raster.levels();
    let tiles: Vec<Vec<Vec<u8>>> = levels.iter().map(|level| level.tiles(sample)).collect();
    // First pass: where each directory and its spilled values go, with
    // the tile offsets unknown (their count, and so the sizes, are known).
    let placeholder = |level: usize| {
        let n = tiles[level].len();
        (vec![0u32; n], vec![0u32; n])
    };
    let sized: Vec<Directory> = (levels.iter().enumerate())
        .map(|(i, level)| directory(level, sample, placeholder(i), i == 0))
        .collect();
    let mut at = 8;
    let mut directory_at = Vec::new();
    for dir in &sized {
        directory_at.push(at);
        at += dir.size();
    }
    let mut spilled_at = Vec::new();
    for dir in &sized {
        spilled_at.push(at);
        at += dir.spilled();
    }
    // The tiles: smallest overview first, full resolution last.
    let mut tile_at: Vec<Vec<u32>> = vec![Vec::new(); levels.len()];
    for level in (0..levels.len()).rev() {
        for tile in &tiles[level] {
            tile_at[level].push(at as u32);
            at += tile.len();
        }
    }
    let mut file = Vec::with_capacity(at);
    file.extend_from_slice(b"II*\0");
    file.extend_from_slice(&8u32.to_le_bytes());
    let directories: Vec<Directory> = (levels.iter().enumerate())
        .map(|(i, level)| {
            let counts = tiles[i].iter().map(|t| t.len() as u32).collect();
            directory(level, sample, (tile_at[i].clone(), counts), i == 0)
        })
        .collect();
    for (i, dir) in directories.iter().enumerate() {
        let mut spill = spilled_at[i];
        file.extend_from_slice(&(dir.tags.len() as u16).to_le_bytes());
        for (tag, value) in &dir.tags {
            file.extend_from_slice(&tag.to_le_bytes());
            file.extend_from_slice(&value.kind().to_le_bytes());
            file.extend_from_slice(&value.count().to_le_bytes());
            let mut bytes = value.bytes();
            if bytes.len() <= 4 {
                bytes.resize(4, 0);
                file.extend_from_slice(&bytes);
            } else {
                file.extend_from_slice(&(spill as u32).to_le_bytes());
                spill += bytes.len() + bytes.len() % 2;
            }
        }
        let next = directory_at.get(i + 1).copied().unwrap_or(0) as u32;
        file.extend_from_slice(&next.to_le_bytes());
    }
    for dir in &directories {
        for (_, value) in &dir.tags {
            let bytes = value.bytes();
            if bytes.len() > 4 {
                file.extend_from_slice(&bytes);
                if bytes.len() % 2 == 1 {
                    file.push(0);
                }
            }
        }
    }
    for level in (0..levels.len()).rev() {
        for tile in &tiles[level] {
            file.extend_from_slice(tile);
        }
    }
    debug_assert_eq!(file.len(), at);
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raster(width: usize, height: usize) -> Raster {
        let values = (0..width * height)
            .map(|i| if i % 7 == 0 { f64::NAN } else { i as f64 })
            .collect();
        Raster {
            width,
            height,
            left: -1000.0,
            top: 2000.0,
            pixel_width: 10.0,
            pixel_height: 10.0,
            bands: vec![Band {
                name: "air".into(),
                values,
            }],
        }
    }

    fn u32_at(file: &[u8], at: usize) -> usize {
        u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize
    }

    #[test]
    fn directories_come_first_then_tiles_smallest_level_first() {
        let big = raster(1100, 700);
        let file = write(&big, Sample::F32);
        assert_eq!(&file[..4], b"II*\0");
        assert_eq!(
            u32_at(&file, 4),
            8,
            "the first directory follows the header"
        );
        // Halved while wider or taller than a tile.
        let levels = big.levels();
        assert_eq!(
            levels
                .iter()
                .map(|l| (l.width, l.height))
                .collect::<Vec<_>>(),
            [(1100, 700), (550, 350), (275, 175)]
        );
        // Walk the chain of directories: offsets increase, and every one
        // comes before the first tile byte.
        let mut at = 8;
        let mut directories = Vec::new();
        while at != 0 {
            directories.push(at);
            let entries = u16::from_le_bytes([file[at], file[at + 1]]) as usize;
            at = u32_at(&file, at + 2 + 12 * entries);
        }
        assert_eq!(directories.len(), 3);
        assert!(directories.windows(2).all(|w| w[0] < w[1]));
        let first_tile = |dir: usize| {
            let entries = u16::from_le_bytes([file[dir], file[dir + 1]]) as usize;
            (0..entries)
                .map(|e| dir + 2 + 12 * e)
                .find(|&entry| u16::from_le_bytes([file[entry], file[entry + 1]]) == 324)
                .map(|entry| {
                    let count = u32_at(&file, entry + 4);
                    let offsets = if count == 1 {
                        entry + 8
                    } else {
                        u32_at(&file, entry + 8)
                    };
                    u32_at(&file, offsets)
                })
                .unwrap()
        };
        let firsts: Vec<usize> = directories.iter().map(|&d| first_tile(d)).collect();
        assert!(
            firsts[2] < firsts[1] && firsts[1] < firsts[0],
            "tiles of the smallest level first: {firsts:?}"
        );
        assert!(
            directories[2] < firsts[2],
            "every directory before the tiles"
        );
    }

    #[test]
    fn an_overview_pixel_is_the_mean_of_the_valid_pixels_below_it() {
        let mut small = raster(4, 2);
        small.bands[0].values = vec![1.0, 3.0, f64::NAN, f64::NAN, 5.0, 7.0, f64::NAN, 2.0];
        let half = small.halved();
        assert_eq!((half.width, half.height), (2, 1));
        assert_eq!(half.bands[0].values[0], 4.0);
        assert_eq!(half.bands[0].values[1], 2.0);
        assert_eq!(half.pixel_width, 20.0);
    }
}
