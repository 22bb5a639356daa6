//! What the format benchmarks share: milliseconds and sizes on disk.

use std::path::Path;
use std::time::Duration;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Bytes of the file at `path`, or of every file under the folder.
pub fn size_under(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|d| d.flatten().map(|e| size_under(&e.path())).sum())
        .unwrap_or(0)
}
