//! The terminal display: an overall bar with ETA and one line per server in flight with its
//! current step, drawn on stderr by indicatif; finished servers and warnings scroll above the
//! bars. Log lines (tracing) go through [`HumanSink::writer`] so they do not tear the bars.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Sink;
use super::lines;
use super::recap::{self, Recap};
use crate::exec::events::Event;
use crate::util::terminal;

/// Progress bars on stderr.
pub struct HumanSink {
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    servers: HashMap<String, ProgressBar>,
}

impl Default for HumanSink {
    fn default() -> Self {
        HumanSink::new()
    }
}

impl HumanSink {
    /// A display on stderr.
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        HumanSink {
            multi,
            overall: None,
            servers: HashMap::new(),
        }
    }

    /// The progress display, for routing log lines above the bars.
    pub fn multi(&self) -> MultiProgress {
        self.multi.clone()
    }

    fn println(&self, line: &str) {
        let _ = self.multi.println(terminal::one_line(line));
    }
}

impl Sink for HumanSink {
    fn event(&mut self, e: &Event) {
        match e {
            Event::RunStarted { servers, .. } => {
                let bar = self.multi.add(ProgressBar::new(*servers as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} servers  ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.enable_steady_tick(Duration::from_millis(100));
                self.overall = Some(bar);
                if let Some(l) = lines::line(e) {
                    self.println(&l);
                }
            }
            Event::ServerStarted { server, path } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix:<18} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(server.clone());
                bar.set_message(format!("starting ({path})"));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.servers.insert(server.clone(), bar);
            }
            Event::StepStarted {
                server,
                action,
                attempt,
                ..
            } => {
                if let Some(bar) = self.servers.get(server) {
                    let retry = if *attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    bar.set_message(format!("{action}{retry}"));
                }
            }
            Event::ServerFinished { server, .. } => {
                if let Some(bar) = self.servers.remove(server) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                if let Some(o) = &self.overall {
                    o.inc(1);
                }
                if let Some(l) = lines::line(e) {
                    self.println(&l);
                }
            }
            Event::StepFinished { .. } => {}
            Event::RunFinished { .. } => {
                for (_, bar) in self.servers.drain() {
                    bar.finish_and_clear();
                }
                if let Some(o) = self.overall.take() {
                    o.finish_and_clear();
                }
                if let Some(l) = lines::line(e) {
                    self.println(&l);
                }
            }
            other => {
                if let Some(l) = lines::line(other) {
                    self.println(&l);
                }
            }
        }
    }

    fn recap(&mut self, r: &Recap) {
        let _ = self.multi.clear();
        super::log::route_through(None);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "\n{}", terminal::server_text(&recap::text(r, true)));
    }

    fn note(&mut self, text: &str) {
        let _ = self.multi.suspend(|| {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", terminal::server_text(text));
            out.flush()
        });
    }
}
