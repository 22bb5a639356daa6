//! The Terracotta backend's parts, checked with the real Python stack:
//! COGs that rio-cogeo validates and rasterio reads as written.

use std::path::Path;
use std::process::Command;

use nuthatch::crates::backends::terracotta::cog::{self, Band, Raster, Sample};
use nuthatch::crates::backends::terracotta::mercator::{Grid, Resampling};

/// What `tests/python/cog_check.py` says of the file at `path`, as its
/// lines split on spaces, with the `pixel` lines of `cells`.
fn check(path: &Path, cells: &[(usize, usize)]) -> Vec<Vec<String>> {
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON")
        .expect("NUTHATCH_TEST_PYTHON is unset: run `bash scripts/test`, which installs rio-cogeo");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cog_check.py");
    let mut command = Command::new(&interpreter);
    command.arg(script).arg(path);
    for (row, column) in cells {
        command.arg(row.to_string()).arg(column.to_string());
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

fn line<'a>(lines: &'a [Vec<String>], first: &str) -> &'a [String] {
    let found = lines.iter().find(|l| l[0] == first);
    &found.unwrap_or_else(|| panic!("no {first} line in {lines:?}"))[1..]
}

/// The README grid's shape (25 latitudes from 75 down, 53 longitudes from
/// 200 east, 2.5° apart), with a value per cell and a few cells missing.
fn readme_grid() -> Grid {
    let latitudes: Vec<f64> = (0..25).map(|i| 75.0 - 2.5 * i as f64).collect();
    let longitudes: Vec<f64> = (0..53).map(|i| 200.0 + 2.5 * i as f64).collect();
    let values = (0..25 * 53)
        .map(|i| {
            if i % 97 == 3 {
                f64::NAN
            } else {
                230.0 + (i % 53) as f64 * 0.5 + (i / 53) as f64
            }
        })
        .collect();
    Grid {
        latitudes,
        longitudes,
        bands: vec![Band {
            name: "air".into(),
            values,
        }],
    }
}

#[test]
#[ignore = "needs rio-cogeo and rasterio: run bash scripts/test"]
fn a_grid_on_web_mercator_is_a_valid_cog_that_rasterio_reads_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let raster = readme_grid()
        .wrapped()
        .reproject(Resampling::Nearest)
        .unwrap();
    let path = dir.path().join("_.tif");
    std::fs::write(&path, cog::write(&raster, Sample::F32)).unwrap();
    let cells = [(0, 0), (3, 17), (raster.height - 1, raster.width - 1)];
    let lines = check(&path, &cells);
    assert_eq!(line(&lines, "valid"), ["True"], "{lines:?}");
    assert!(
        !lines.iter().any(|l| l[0] == "error" || l[0] == "warning"),
        "{lines:?}"
    );
    assert_eq!(line(&lines, "crs"), ["EPSG:3857"]);
    assert_eq!(
        line(&lines, "size"),
        [raster.width.to_string(), raster.height.to_string()]
    );
    let transform: Vec<f64> = line(&lines, "transform")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(
        transform,
        [
            raster.pixel_width,
            0.0,
            raster.left,
            0.0,
            -raster.pixel_height,
            raster.top
        ]
    );
    assert_eq!(line(&lines, "nodata"), ["nan"]);
    assert_eq!(line(&lines, "bands"), ["air"]);
    let pixels: Vec<&Vec<String>> = lines.iter().filter(|l| l[0] == "pixel").collect();
    for ((row, column), pixel) in cells.iter().zip(pixels) {
        let ours = raster.bands[0].values[row * raster.width + column] as f32;
        let theirs: f64 = pixel[3].parse().unwrap();
        assert!(
            (ours.is_nan() && theirs.is_nan()) || ours as f64 == theirs,
            "({row}, {column}): {ours} here, {theirs} read"
        );
    }
}

#[test]
#[ignore = "needs rio-cogeo and rasterio: run bash scripts/test"]
fn a_raster_larger_than_a_tile_gets_overviews_and_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (width, height) = (1300, 1100);
    let band = |offset: f64| Band {
        name: format!("b{offset}"),
        values: (0..width * height)
            .map(|i| offset + (i % 1000) as f64)
            .collect(),
    };
    let raster = Raster {
        width,
        height,
        left: -2_000_000.0,
        top: 3_000_000.0,
        pixel_width: 1000.0,
        pixel_height: 1000.0,
        bands: vec![band(0.0), band(0.5)],
    };
    let path = dir.path().join("big.tif");
    std::fs::write(&path, cog::write(&raster, Sample::F64)).unwrap();
    let lines = check(&path, &[(1099, 1299)]);
    assert_eq!(line(&lines, "valid"), ["True"], "{lines:?}");
    assert!(
        !lines.iter().any(|l| l[0] == "error" || l[0] == "warning"),
        "{lines:?}"
    );
    assert_eq!(line(&lines, "overviews"), ["2", "4"]);
    assert_eq!(line(&lines, "bands"), ["b0", "b0.5"]);
    let last = (1099 * 1300 + 1299) % 1000;
    assert_eq!(
        line(&lines, "pixel")[2..],
        [
            format!("{:?}", last as f64),
            format!("{:?}", last as f64 + 0.5)
        ]
    );
}
