//! Reporting: one event vocabulary ([`crate::exec::events::Event`]), three sinks. On a terminal
//! (and not in CI) a progress display on stderr; otherwise one plain line per event on stderr;
//! with `--format json`, versioned NDJSON events on stdout. The recap goes to stdout.

pub mod human;
pub mod json;
pub mod lines;
pub mod log;
pub mod recap;

use crate::exec::events::Event;
use recap::Recap;

/// Where events go. The dispatcher is the only caller, so sinks need no locking.
pub trait Sink: Send {
    /// One event.
    fn event(&mut self, e: &Event);
    /// The run's recap, last.
    fn recap(&mut self, r: &Recap);
    /// A message for the operator that is not an event (e.g. the plan before the prompt).
    fn note(&mut self, text: &str);
}

/// The output format asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Progress display on a terminal, plain lines otherwise; recap on stdout.
    #[default]
    Text,
    /// NDJSON events on stdout (docs/events.md).
    Json,
}

/// True when running under CI (progress bars would only clutter its logs).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The sink for a format on this terminal.
pub fn choose(format: Format, run_id: &str) -> Box<dyn Sink> {
    use std::io::IsTerminal;
    match format {
        Format::Json => Box::new(json::JsonSink::new(std::io::stdout(), run_id)),
        Format::Text if std::io::stderr().is_terminal() && !in_ci() => {
            Box::new(human::HumanSink::new())
        }
        Format::Text => Box::new(lines::LineSink::new(std::io::stderr(), std::io::stdout())),
    }
}
