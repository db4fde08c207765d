//! One plain line per event (logs, CI, pipes): `[time] server: what happened`.

use std::io::Write;

use super::Sink;
use super::recap::{self, Recap};
use crate::exec::events::Event;
use crate::journal::record::{ServerResult, Signal, StepOutcome};
use crate::util::terminal;

/// Writes a line per event to `err` and the recap to `out`.
pub struct LineSink<E: Write + Send, O: Write + Send> {
    err: E,
    out: O,
    start: std::time::Instant,
}

impl<E: Write + Send, O: Write + Send> LineSink<E, O> {
    /// A sink writing events to `err` and the recap to `out`.
    pub fn new(err: E, out: O) -> Self {
        LineSink {
            err,
            out,
            start: std::time::Instant::now(),
        }
    }
}

/// The line for an event (None: not shown in plain mode).
pub fn line(e: &Event) -> Option<String> {
    Some(match e {
        Event::RunStarted {
            command,
            servers,
            journal,
            ..
        } => {
            format!(
                "{command}: {servers} server{} (journal {journal})",
                if *servers == 1 { "" } else { "s" }
            )
        }
        Event::RestoringFromJournal { obligations } => {
            format!(
                "restoring first: {obligations} temporary change{} left by an interrupted run",
                if *obligations == 1 { "" } else { "s" }
            )
        }
        Event::ServerStarted { server, path } => format!("{server}: start ({path})"),
        Event::StepStarted { .. } => return None,
        Event::StepFinished {
            server,
            action,
            outcome,
            detail,
            ..
        } => {
            let word = match outcome {
                StepOutcome::Changed => "changed",
                StepOutcome::Ok => "ok",
                StepOutcome::Failed => "FAILED",
                StepOutcome::Skipped => "skipped",
            };
            format!(
                "{server}: {action}: {word}{}",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" - {detail}")
                }
            )
        }
        Event::Retrying {
            host,
            action,
            attempt,
            delay_ms,
            error,
        } => {
            format!(
                "{host}: {action}: attempt {attempt} failed ({error}); retrying in {}",
                recap::human_duration(*delay_ms)
            )
        }
        Event::ObligationOpened { server, id } => format!("{server}: obligation {id} recorded"),
        Event::ObligationClosed { server, id, how } => {
            format!("{server}: obligation {id} closed ({})", how.describe())
        }
        Event::RestoreFailed { server, id, error } => {
            format!("{server}: RESTORE FAILED for {id}: {error}")
        }
        Event::Verification {
            server,
            client,
            succeeded,
            attempts,
            detail,
        } => format!(
            "{server}: client {client}: {} after {attempts} attempt{} - {detail}",
            if *succeeded { "detects" } else { "STILL FAILS" },
            if *attempts == 1 { "" } else { "s" }
        ),
        Event::ServerFinished {
            server,
            result,
            detail,
            duration_ms,
            ..
        } => {
            let word = match result {
                ServerResult::Done => "done",
                ServerResult::Failed => "FAILED",
                ServerResult::Blocked => "blocked",
                ServerResult::Skipped => "skipped",
                ServerResult::Interrupted => "INTERRUPTED",
            };
            format!(
                "{server}: {word} in {}{}",
                recap::human_duration(*duration_ms),
                detail
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        }
        Event::Interrupted { count: 1, signal } => format!(
            "interrupted ({}): no new servers; running steps finish, then restores run (a second signal stops at once)",
            signal_name(*signal)
        ),
        Event::Interrupted { signal, .. } => format!(
            "interrupted again ({}): stopping now; open obligations stay in the journal (run `wsusfix restore`)",
            signal_name(*signal)
        ),
        Event::JournalFailed { journal, error } => format!(
            "JOURNAL FAILED: {journal}: {error}; no further change is made, restores still run"
        ),
        Event::Warning { message } => format!("warning: {message}"),
        Event::RunFinished {
            result,
            exit_code,
            duration_ms,
        } => {
            format!(
                "finished: {} (exit {exit_code}) in {}",
                result.word(),
                recap::human_duration(*duration_ms)
            )
        }
    })
}

fn signal_name(s: Signal) -> &'static str {
    match s {
        // Windows' console events, as src/exec/signals.rs maps them.
        Signal::Sigint if cfg!(windows) => "Ctrl-C or Ctrl-Break",
        Signal::Sigterm if cfg!(windows) => "a shutdown, as SIGTERM",
        Signal::Sighup if cfg!(windows) => "a closed console or logoff, as SIGHUP",
        Signal::Sigint => "Ctrl-C",
        Signal::Sigterm => "SIGTERM",
        Signal::Sighup => "SIGHUP",
    }
}

impl<E: Write + Send, O: Write + Send> Sink for LineSink<E, O> {
    fn event(&mut self, e: &Event) {
        if let Some(l) = line(e) {
            let t = self.start.elapsed().as_secs_f64();
            let _ = writeln!(self.err, "[{t:7.2}s] {}", terminal::one_line(&l));
        }
    }

    fn recap(&mut self, r: &Recap) {
        let _ = writeln!(
            self.out,
            "\n{}",
            terminal::server_text(&recap::text(r, true))
        );
        let _ = self.out.flush();
    }

    fn note(&mut self, text: &str) {
        let _ = write!(self.out, "{}", terminal::server_text(text));
        let _ = self.out.flush();
    }
}
