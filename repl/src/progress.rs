//! The progress line: while a statement runs, one line on the terminal says
//! which cached call is doing what, how many rows and bytes it has written,
//! and for how long. It is redrawn in place and erased before anything else
//! prints, and it is only used when both stdout and stderr are terminals.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nuthatch::{Phase, Running};

/// Statements quicker than this never show a line, so fast queries do not
/// flicker.
pub const DELAY: Duration = Duration::from_millis(300);

/// How often the line is redrawn.
pub const TICK: Duration = Duration::from_millis(100);

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];

#[derive(Debug, Default)]
pub struct ProgressLine {
    drawn: bool,
    ticks: usize,
}

impl ProgressLine {
    /// Redraws the line for the calls under way.
    pub fn draw(&mut self, running: &[Arc<Running>], started: Instant) {
        if started.elapsed() < DELAY {
            return;
        }
        self.ticks += 1;
        let spinner = SPINNER[self.ticks % SPINNER.len()];
        let text = describe(running, started.elapsed());
        let width = terminal_width().saturating_sub(2);
        let text: String = text.chars().take(width).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{spinner} {text}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line, if it is there.
    pub fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// One line about the busiest call: the newest one computing or copying,
/// else the newest one; the others are counted.
pub fn describe(running: &[Arc<Running>], elapsed: Duration) -> String {
    let busy = running
        .iter()
        .rev()
        .find(|call| {
            matches!(
                call.phase(),
                Phase::Computing | Phase::Copying | Phase::Waiting
            )
        })
        .or_else(|| running.last());
    let Some(call) = busy else {
        return format!("running · {}", seconds(elapsed));
    };
    let phase = call.phase();
    let mut text = format!("{}: {}", call.function, phase.name());
    match phase {
        Phase::Computing | Phase::Copying => {
            let rows = call.written.rows();
            let bytes = call.written.bytes();
            if rows > 0 || bytes > 0 {
                text.push_str(&format!(
                    " · {} rows · {} written",
                    thousands(rows),
                    human_bytes(bytes)
                ));
            }
        }
        Phase::Reading => {
            let rows = call.served.load(std::sync::atomic::Ordering::Relaxed);
            text.push_str(&format!(" · {} rows", thousands(rows)));
        }
        Phase::Waiting => {
            let waited = call.waited.lock().expect("running call poisoned");
            if let Some(waited) = waited.as_ref() {
                text.push_str(&format!(" {}", waited.holder));
            }
        }
        Phase::LookingUp => {}
    }
    text.push_str(&format!(" · {}", seconds(call.started.elapsed())));
    if running.len() > 1 {
        text.push_str(&format!(" (+{} more)", running.len() - 1));
    }
    text
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Columns of the terminal on stderr (80 if it cannot tell).
pub fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize it is given and nothing else.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            return size.ws_col as usize;
        }
    }
    80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
