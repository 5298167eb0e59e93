//! The gateway's warnings, caught in-process: a global `tracing` subscriber (installed once per
//! test binary, at `warn`) that writes text lines into a buffer the test can read. For tests
//! that run the gateway's serving threads in their own process.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LINES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts catching warnings (from every thread of this process) if not yet.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_writer(|| Sink)
            .with_ansi(false)
            .try_init();
    });
}

/// The lines caught so far that contain `needle`.
pub fn lines_with(needle: &str) -> Vec<String> {
    let all = LINES.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&all)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}
