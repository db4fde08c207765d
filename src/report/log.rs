//! Logs: `tracing` to stderr, filtered by `WSUSFIX_LOG` (e.g. `WSUSFIX_LOG=debug`,
//! `WSUSFIX_LOG=wsusfix::winrm=trace`; docs/logging.md). While progress bars are drawn, each log
//! line is printed through them so it does not tear the display.
//!
//! No level of `WSUSFIX_LOG` shows what a password could be tested against offline: the
//! dependencies' targets are capped (sspi logs every NTLM message and every plaintext message it
//! seals at debug and trace), whatever the filter asks for. Only `WSUSFIX_LOG_PROTOCOL=1`, and
//! only when standard error is a terminal, lifts the caps and adds wsusfix's own dumps of the
//! SOAP messages, after a loud warning.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use indicatif::MultiProgress;

use crate::util::terminal;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The variable that asks for protocol dumps.
pub const PROTOCOL_DUMPS_VAR: &str = "WSUSFIX_LOG_PROTOCOL";

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
        // Fields may hold server text (fault reasons, errors): escape it as every sink does.
        // Protocol dumps keep their whole lines.
        let text = String::from_utf8_lossy(&self.buf);
        let max_line = if crate::winrm::protocol_dumps_enabled() {
            usize::MAX
        } else {
            terminal::MAX_LINE_CHARS
        };
        self.buf = terminal::escape(&text, true, max_line).into_bytes();
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

/// The most each target may log without protocol dumps: wsusfix itself anything; the security
/// libraries (sspi and its ASN.1 and Kerberos crates, picky*) warnings and errors only; every
/// other dependency (hyper, reqwest, rustls, ...) up to info.
pub fn dependency_caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("wsusfix", LevelFilter::TRACE)
        .with_target("sspi", LevelFilter::WARN)
        .with_target("picky", LevelFilter::WARN)
}

/// Whether protocol dumps are asked for (`WSUSFIX_LOG_PROTOCOL` set to anything but `0`/empty).
fn protocol_dumps_asked() -> bool {
    std::env::var_os(PROTOCOL_DUMPS_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

const PROTOCOL_DUMPS_WARNING: &str = "\
warning: WSUSFIX_LOG_PROTOCOL is on: the NTLM messages and every SOAP message, in clear text, are
         written below. Anyone who sees this output can test passwords against it offline and
         read what was sent. Do not save it, paste it or share it.
";

/// Installs the subscriber when `WSUSFIX_LOG` is set; without it nothing is logged.
pub fn init() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("WSUSFIX_LOG") else {
        if protocol_dumps_asked() {
            let _ = writeln!(
                std::io::stderr(),
                "note: {PROTOCOL_DUMPS_VAR} is ignored without WSUSFIX_LOG (e.g. WSUSFIX_LOG=trace)"
            );
        }
        return;
    };
    let dumps = protocol_dumps_asked() && std::io::stderr().is_terminal();
    if protocol_dumps_asked() && !dumps {
        let _ = writeln!(
            std::io::stderr(),
            "note: {PROTOCOL_DUMPS_VAR} is ignored: protocol dumps are only written to a terminal"
        );
    }
    let caps = if dumps {
        let _ = std::io::stderr().write_all(PROTOCOL_DUMPS_WARNING.as_bytes());
        crate::winrm::enable_protocol_dumps();
        Targets::new().with_default(LevelFilter::TRACE)
    } else {
        dependency_caps()
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(LogMakeWriter)
        .with_ansi(false)
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(caps)
        .with(fmt)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn dependencies_are_capped_below_their_secrets() {
        let caps = dependency_caps();
        for (target, level, shown) in [
            ("sspi::ntlm", Level::DEBUG, false),
            ("sspi::negotiate::client", Level::TRACE, false),
            ("sspi", Level::WARN, true),
            ("picky_krb::messages", Level::DEBUG, false),
            ("hyper::proto::h1::io", Level::TRACE, false),
            ("reqwest::connect", Level::DEBUG, false),
            ("rustls::client::hs", Level::INFO, true),
            ("wsusfix::winrm::transport", Level::TRACE, true),
        ] {
            assert_eq!(
                caps.would_enable(target, &level),
                shown,
                "{target} at {level}"
            );
        }
    }
}
