//! What the benchmarks share: milliseconds, the process's CPU time, sizes
//! on disk, and running a peer's Python script.

use std::path::Path;
use std::time::Duration;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time this whole process has used so far, every thread of it.
#[allow(dead_code)] // the benches that report CPU time
pub fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
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

/// Runs a script of `benches/peers` with the peers' Python (`bash
/// scripts/peers` sets it up); the JSON it prints, or why not.
#[allow(dead_code)] // only the benches with peers in Python run scripts
pub fn peer(script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let python = std::env::var("NUTHATCH_PEERS_PYTHON")
        .map_err(|_| "NUTHATCH_PEERS_PYTHON is not set: run through `bash scripts/peers`")?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/peers")
        .join(script);
    let output = std::process::Command::new(python)
        .arg(path)
        .args(args)
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("{script}: {e}"))
}
