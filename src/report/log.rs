//! Logs: `tracing` to stderr, filtered by `WSUSFIX_LOG` (e.g. `WSUSFIX_LOG=debug`,
//! `WSUSFIX_LOG=wsusfix::winrm=trace`). While progress bars are drawn, each log line is printed
//! through them so it does not tear the display.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use indicatif::MultiProgress;

static BARS: OnceLock<Mutex<Option<MultiProgress>>> = OnceLock::new();

/// Routes log lines through `bars` from now on (None: straight to stderr again).
pub fn route_through(bars: Option<MultiProgress>) {
    if let Ok(mut slot) = BARS.get_or_init(|| Mutex::new(None)).lock() {
        *slot = bars;
    }
}

/// A log line being written.
pub struct LogWriter {
    buf: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let bars = BARS
            .get()
            .and_then(|m| m.lock().ok().and_then(|g| g.clone()));
        match bars {
            Some(multi) => multi.suspend(|| {
                let _ = std::io::stderr().write_all(&self.buf);
            }),
            None => {
                let _ = std::io::stderr().write_all(&self.buf);
            }
        }
    }
}

/// Makes a writer per log event.
#[derive(Debug, Clone, Copy)]
pub struct LogMakeWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogMakeWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter { buf: Vec::new() }
    }
}

/// Installs the subscriber when `WSUSFIX_LOG` is set; without it nothing is logged.
pub fn init() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("WSUSFIX_LOG") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogMakeWriter)
        .with_ansi(false)
        .try_init();
}
