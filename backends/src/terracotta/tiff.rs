//! Reading a GeoTIFF's full-resolution image back into a [`Raster`]: the
//! COGs this crate writes (DEFLATE) and those GDAL writes for Python
//! nuthatch (LZW, its COG driver's default), both tiled, little-endian
//! classic TIFF with floating-point samples and a north-up pixel-is-area
//! transform. Only the first image file directory is read: overviews are
//! for map tiles, not for rows.
//!
//! Band names come from the `DESCRIPTION` items of `GDAL_METADATA`, which
//! both writers set to the column (xarray variable) a band holds.

use std::io::Read;

use datafusion::common::{DataFusionError, Result};
use flate2::read::ZlibDecoder;

use super::cog::{Band, Raster};

/// Tags this reader uses.
const WIDTH: u16 = 256;
const HEIGHT: u16 = 257;
const BITS_PER_SAMPLE: u16 = 258;
const COMPRESSION: u16 = 259;
const SAMPLES_PER_PIXEL: u16 = 277;
const PLANAR: u16 = 284;
const PREDICTOR: u16 = 317;
const TILE_WIDTH: u16 = 322;
const TILE_HEIGHT: u16 = 323;
const TILE_OFFSETS: u16 = 324;
const TILE_BYTE_COUNTS: u16 = 325;
const SAMPLE_FORMAT: u16 = 339;
const PIXEL_SCALE: u16 = 33550;
const TIEPOINT: u16 = 33922;
const GDAL_METADATA: u16 = 42112;

/// The error for a file this reader cannot take, naming it.
fn unreadable(file: &str, why: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("cannot read the GeoTIFF {file}: {why}"))
}

/// One directory entry's values, widened.
#[derive(Debug, Default)]
struct Entry {
    numbers: Vec<f64>,
    text: String,
}

/// Reads the first image of the TIFF in `bytes` (named `file` in errors).
pub fn read(bytes: &[u8], file: &str) -> Result<Raster> {
    let fail = |why: &str| unreadable(file, why);
    if bytes.len() < 8 || &bytes[..4] != b"II*\0" {
        return Err(fail(
            "not a little-endian classic TIFF (BigTIFF and big-endian files are not read)",
        ));
    }
    let ifd = u32_at(bytes, 4).ok_or_else(|| fail("truncated header"))? as usize;
    let tags = directory(bytes, ifd).ok_or_else(|| fail("truncated image file directory"))?;
    let number = |tag: u16| tags.iter().find(|(t, _)| *t == tag).map(|(_, e)| e);
    let one = |tag: u16, default: Option<f64>| -> Result<f64> {
        number(tag)
            .and_then(|e| e.numbers.first().copied())
            .or(default)
            .ok_or_else(|| unreadable(file, format!("tag {tag} is missing")))
    };
    let width = one(WIDTH, None)? as usize;
    let height = one(HEIGHT, None)? as usize;
    let bands = one(SAMPLES_PER_PIXEL, Some(1.0))? as usize;
    let bits = one(BITS_PER_SAMPLE, Some(1.0))? as usize;
    if one(SAMPLE_FORMAT, Some(1.0))? != 3.0 || !(bits == 32 || bits == 64) {
        return Err(fail("its samples are not 32- or 64-bit floats"));
    }
    if bands > 1 && one(PLANAR, Some(1.0))? != 1.0 {
        return Err(fail("its bands are stored as separate planes"));
    }
    if one(PREDICTOR, Some(1.0))? != 1.0 {
        return Err(fail("it uses a predictor, which this reader does not undo"));
    }
    let compression = one(COMPRESSION, Some(1.0))? as u16;
    let tile_width = one(TILE_WIDTH, None).map_err(|_| fail("it is not tiled"))? as usize;
    let tile_height = one(TILE_HEIGHT, None)? as usize;
    let offsets = &number(TILE_OFFSETS)
        .ok_or_else(|| fail("no tile offsets"))?
        .numbers;
    let counts = &number(TILE_BYTE_COUNTS)
        .ok_or_else(|| fail("no tile sizes"))?
        .numbers;
    let scale = &number(PIXEL_SCALE)
        .ok_or_else(|| fail("no pixel scale"))?
        .numbers;
    let tiepoint = &number(TIEPOINT)
        .ok_or_else(|| fail("no tie point"))?
        .numbers;
    if scale.len() < 2 || tiepoint.len() < 6 || tiepoint[0] != 0.0 || tiepoint[1] != 0.0 {
        return Err(fail("its georeferencing is not a plain north-up transform"));
    }
    let names = band_names(number(GDAL_METADATA).map_or("", |e| e.text.as_str()), bands);
    let mut values = vec![vec![f64::NAN; width * height]; bands];
    let across = width.div_ceil(tile_width);
    let sample = bits / 8;
    let tile_bytes = tile_width * tile_height * bands * sample;
    for (index, (&offset, &count)) in offsets.iter().zip(counts.iter()).enumerate() {
        let (offset, count) = (offset as usize, count as usize);
        let raw = bytes
            .get(offset..offset + count)
            .ok_or_else(|| fail("a tile lies past the end of the file"))?;
        let tile = decompress(raw, compression, tile_bytes).map_err(|why| unreadable(file, why))?;
        let (tile_row, tile_column) = (index / across, index % across);
        for y in 0..tile_height {
            let row = tile_row * tile_height + y;
            if row >= height {
                break;
            }
            for x in 0..tile_width {
                let column = tile_column * tile_width + x;
                if column >= width {
                    break;
                }
                for (band, into) in values.iter_mut().enumerate() {
                    let at = ((y * tile_width + x) * bands + band) * sample;
                    into[row * width + column] = sample_at(&tile, at, sample);
                }
            }
        }
    }
    Ok(Raster {
        width,
        height,
        left: tiepoint[3],
        top: tiepoint[4],
        pixel_width: scale[0],
        pixel_height: scale[1],
        bands: names
            .into_iter()
            .zip(values)
            .map(|(name, values)| Band { name, values })
            .collect(),
    })
}

/// The sample of `size` bytes at `at`, NaN past the end of a short tile.
fn sample_at(tile: &[u8], at: usize, size: usize) -> f64 {
    match (size, tile.get(at..at + size)) {
        (4, Some(b)) => f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
        (8, Some(b)) => f64::from_le_bytes(b.try_into().expect("8 bytes")),
        _ => f64::NAN,
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The entries of the directory at `at`, values widened to numbers (or
/// text, for ASCII).
fn directory(bytes: &[u8], at: usize) -> Option<Vec<(u16, Entry)>> {
    let count = u16_at(bytes, at)? as usize;
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let entry = at + 2 + i * 12;
        let tag = u16_at(bytes, entry)?;
        let kind = u16_at(bytes, entry + 2)?;
        let n = u32_at(bytes, entry + 4)? as usize;
        let size = match kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            5 | 10 | 12 => 8,
            _ => continue,
        };
        let start = if n * size <= 4 {
            entry + 8
        } else {
            u32_at(bytes, entry + 8)? as usize
        };
        let data = bytes.get(start..start + n * size)?;
        let mut value = Entry::default();
        if kind == 2 {
            value.text = String::from_utf8_lossy(data)
                .trim_end_matches('\0')
                .to_string();
        } else {
            value.numbers = data.chunks_exact(size).map(|c| number(kind, c)).collect();
        }
        entries.push((tag, value));
    }
    Some(entries)
}

/// One value of TIFF type `kind` from its little-endian bytes.
fn number(kind: u16, c: &[u8]) -> f64 {
    match kind {
        1 | 7 => c[0] as f64,
        6 => c[0] as i8 as f64,
        3 => u16::from_le_bytes([c[0], c[1]]) as f64,
        8 => i16::from_le_bytes([c[0], c[1]]) as f64,
        4 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
        9 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
        11 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
        12 => f64::from_le_bytes(c.try_into().expect("8 bytes")),
        5 | 10 => {
            let (n, d) = (u32_at(c, 0).unwrap_or(0), u32_at(c, 4).unwrap_or(1));
            n as f64 / d.max(1) as f64
        }
        _ => f64::NAN,
    }
}

/// The band names in `GDAL_METADATA`'s `DESCRIPTION` items, `band_<n>`
/// for a band without one.
fn band_names(metadata: &str, bands: usize) -> Vec<String> {
    let mut names: Vec<String> = (1..=bands).map(|n| format!("band_{n}")).collect();
    for item in metadata.split("<Item ").skip(1) {
        let Some((attributes, rest)) = item.split_once('>') else {
            continue;
        };
        if !attributes.contains("name=\"DESCRIPTION\"") {
            continue;
        }
        let sample = attributes
            .split("sample=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<usize>().ok());
        let text = rest.split("</Item>").next().unwrap_or_default();
        if let Some(name) = sample.and_then(|s| names.get_mut(s)) {
            *name = unescape(text);
        }
    }
    names
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A tile's bytes, decompressed.
fn decompress(raw: &[u8], compression: u16, expected: usize) -> Result<Vec<u8>, String> {
    match compression {
        1 => Ok(raw.to_vec()),
        5 => lzw(raw, expected),
        8 | 32946 => {
            let mut out = Vec::with_capacity(expected);
            ZlibDecoder::new(raw)
                .read_to_end(&mut out)
                .map_err(|e| format!("a tile does not inflate: {e}"))?;
            Ok(out)
        }
        other => Err(format!(
            "its tiles use compression {other}; this reader takes none, LZW and DEFLATE"
        )),
    }
}

/// TIFF's LZW: codes of 9 to 12 bits, most significant bit first, 256
/// clears the table and 257 ends, and the code width grows one code early.
///
/// Every string in the table is a run of the output already decoded (a
/// code's string is the previous code's string plus the byte after it), so
/// the table holds positions in the output rather than strings.
fn lzw(input: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    const CLEAR: u32 = 256;
    const END: u32 = 257;
    let mut out: Vec<u8> = Vec::with_capacity(expected);
    let mut table: Vec<(usize, usize)> = Vec::with_capacity(4096);
    let (mut buffer, mut held, mut position) = (0u64, 0u32, 0usize);
    let mut width = 9u32;
    let mut previous: Option<(usize, usize)> = None;
    loop {
        while held < width {
            let Some(&byte) = input.get(position) else {
                return Ok(out);
            };
            buffer = (buffer << 8) | byte as u64;
            held += 8;
            position += 1;
        }
        let code = ((buffer >> (held - width)) & ((1 << width) - 1)) as u32;
        held -= width;
        if code == CLEAR {
            table.clear();
            width = 9;
            previous = None;
            continue;
        }
        if code == END {
            return Ok(out);
        }
        let start = out.len();
        let run = if code < 256 {
            out.push(code as u8);
            (start, 1)
        } else {
            let index = (code - 258) as usize;
            match (table.get(index).copied(), previous) {
                (Some((from, len)), _) => {
                    out.extend_from_within(from..from + len);
                    (start, len)
                }
                (None, Some((from, len))) if index == table.len() => {
                    out.extend_from_within(from..from + len);
                    out.push(out[from]);
                    (start, len + 1)
                }
                _ => return Err(format!("a tile's LZW data holds an unknown code {code}")),
            }
        };
        if let Some((from, len)) = previous {
            if table.len() < 4096 - 258 {
                table.push((from, len + 1));
            }
        }
        previous = Some(run);
        if table.len() + 258 >= (1 << width) - 1 && width < 12 {
            width += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terracotta::cog::{self, Sample};

    /// TIFF LZW of `data`, as libtiff writes it, for the decoder's tests.
    fn encode(data: &[u8]) -> Vec<u8> {
        use std::collections::HashMap;
        let mut bits: Vec<(u32, u32)> = vec![(256, 9)];
        let mut table: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut next = 258u32;
        let mut width = 9u32;
        let mut current: Vec<u8> = Vec::new();
        for &byte in data {
            let mut longer = current.clone();
            longer.push(byte);
            if longer.len() == 1 || table.contains_key(&longer) {
                current = longer;
                continue;
            }
            let code = if current.len() == 1 {
                current[0] as u32
            } else {
                table[&current]
            };
            bits.push((code, width));
            table.insert(longer, next);
            next += 1;
            // libtiff widens once the next free code passes the width's
            // largest, and clears the table just before it fills.
            if next == 4094 {
                bits.push((256, width));
                table.clear();
                (next, width) = (258, 9);
            } else if next > (1 << width) - 1 && width < 12 {
                width += 1;
            }
            current = vec![byte];
        }
        let last = if current.len() == 1 {
            current[0] as u32
        } else {
            table[&current]
        };
        bits.push((last, width));
        bits.push((257, width));
        let (mut out, mut buffer, mut held) = (Vec::new(), 0u64, 0u32);
        for (code, width) in bits {
            buffer = (buffer << width) | code as u64;
            held += width;
            while held >= 8 {
                out.push((buffer >> (held - 8)) as u8);
                held -= 8;
            }
        }
        if held > 0 {
            out.push((buffer << (8 - held)) as u8);
        }
        out
    }

    #[test]
    fn lzw_decodes_what_libtiffs_scheme_encodes() {
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| ((i * 7) % 13 + (i / 500) % 3) as u8)
            .chain(std::iter::repeat_n(9u8, 3000))
            .collect();
        assert_eq!(lzw(&encode(&data), data.len()).unwrap(), data);
        assert_eq!(lzw(&encode(b"ababababab"), 10).unwrap(), b"ababababab");
    }

    #[test]
    fn a_written_cog_reads_back_as_written() {
        let raster = Raster {
            width: 700,
            height: 530,
            left: -1000.0,
            top: 5000.0,
            pixel_width: 10.0,
            pixel_height: 10.0,
            bands: ["t2m", "precip & snow"]
                .iter()
                .enumerate()
                .map(|(b, name)| Band {
                    name: name.to_string(),
                    values: (0..700 * 530)
                        .map(|i| {
                            if i % 11 == 0 {
                                f64::NAN
                            } else {
                                (i * (b + 1)) as f64
                            }
                        })
                        .collect(),
                })
                .collect(),
        };
        for sample in [Sample::F32, Sample::F64] {
            let back = read(&cog::write(&raster, sample), "t.tif").unwrap();
            assert_eq!(
                (back.width, back.height, back.left, back.top),
                (700, 530, -1000.0, 5000.0)
            );
            assert_eq!(back.bands[1].name, "precip & snow");
            for (a, b) in back.bands[0].values.iter().zip(&raster.bands[0].values) {
                assert!(a == b || (a.is_nan() && b.is_nan()));
            }
        }
    }
}
