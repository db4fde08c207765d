//! `wsusfix diagnose`: is KB 954960's symptom in these logs, on which lines, and which server
//! entry answered which client fault.
//!
//! Pure: takes decoded texts, returns a [`Diagnosis`], and renders it as text or JSON
//! (`docs/diagnose.md` documents both). Reading, unzipping and decoding files is the CLI's job.
//!
//! - A client log (`WindowsUpdate.log`) shows the symptom when its **last** detection failed with
//!   KB 954960's pattern (0x8024400E, `InternalServerError`, `SyncUpdates`): a log where a later
//!   detection succeeded is a repaired client, and says so.
//! - A server log (`SoftwareDistribution.log`) shows the symptom when it holds the duplicate-key
//!   `ArgumentException` of the client web service. The server log does not record successes, so
//!   every such entry counts, however old.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::logs::detection::{
    self, DetectionOutcome, DetectionSummary, InconclusiveReason, NotRunReason, Search,
};
use crate::core::logs::hresult::{self, HResult};
use crate::core::logs::kind::LogKind;
use crate::core::logs::line::Line;
use crate::core::logs::server::{self, ServerEventKind};
use crate::core::logs::{client, softdist, windowsupdate};

/// Version of the JSON document. Adding fields keeps it; renaming, removing or changing the
/// meaning of one raises it.
pub const FORMAT_VERSION: u32 = 1;

/// One decoded log to diagnose.
#[derive(Debug, Clone, Copy)]
pub struct LogInput<'a> {
    /// How the file is named in the output (as the user gave it).
    pub path: &'a str,
    /// Its kind, from [`crate::core::logs::kind::detect`].
    pub kind: LogKind,
    pub text: &'a str,
}

/// The whole result: the JSON document of `diagnose --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub format_version: u32,
    /// True when any file shows the symptom.
    pub symptom: bool,
    pub files: Vec<FileReport>,
    /// Client fault IDs found in a server log given alongside.
    pub matches: Vec<FaultMatch>,
    /// Inputs that could not be read; the caller fills this in.
    pub errors: Vec<UnreadableInput>,
}

/// A file that could not be diagnosed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableInput {
    pub path: String,
    pub message: String,
}

/// What one file shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    pub kind: LogKind,
    pub symptom: bool,
    /// Client: fault IDs of KB 954960 failures. Server: fault IDs raised for the duplicate-key
    /// error. In order of appearance, without repeats.
    pub fault_ids: Vec<String>,
    /// The lines the verdict rests on, with their 1-based numbers, ascending.
    pub evidence: Vec<Evidence>,
    #[serde(flatten)]
    pub client: Option<ClientDetails>,
    #[serde(flatten)]
    pub server: Option<ServerDetails>,
    /// Sentences for the reader: what the verdict does not say by itself.
    pub notes: Vec<String>,
}

/// A quoted log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub line: usize,
    /// The line as written, tabs kept.
    pub text: String,
}

/// What a client log adds to its [`FileReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientDetails {
    /// Searches (`Agent: Finding updates`) in the log.
    pub detections: usize,
    /// Of those, the ones that failed with KB 954960's pattern.
    pub kb954960_detections: usize,
    /// The verdict on the latest detection, as [`detection::summarize_detection`] gives it.
    pub last_detection: DetectionSummary,
    /// Detections that failed for another reason, by code.
    pub other_failures: Vec<OtherFailure>,
}

/// Detections that failed with one code that is not KB 954960's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherFailure {
    pub code: HResult,
    pub detections: usize,
    /// First line of the latest of them.
    pub last_line: usize,
}

/// What a server log adds to its [`FileReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerDetails {
    /// Duplicate-key errors of the client web service.
    pub duplicate_key_errors: usize,
    /// The dictionary keys they name, without repeats.
    pub keys: Vec<String>,
    /// The latest of them.
    pub last_duplicate_key: Option<Place>,
    /// `SoapUtilities.CreateException` records with a fault ID, of any error.
    pub faults_raised: usize,
}

/// A line in a file, with its time when the log says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub path: String,
    pub line: usize,
    /// `2009-03-27T10:55:29.193Z` in UTC; a client's local time without the `Z` when its log
    /// gave no offset.
    pub time: Option<String>,
}

/// A client fault ID found in a server log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultMatch {
    pub fault_id: String,
    /// The client's failure record.
    pub client: Place,
    /// The server's `SoapUtilities.CreateException` record.
    pub server: Place,
    /// True when the client's failure has KB 954960's pattern.
    pub client_kb954960: bool,
    /// The server's duplicate-key error this fault reports, if it reports one.
    pub duplicate_key: Option<DuplicateKeyRef>,
    /// Both sides show KB 954960: the pattern on the client, the duplicate key on the server.
    pub kb954960: bool,
}

/// A server duplicate-key error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateKeyRef {
    pub line: usize,
    pub key: Option<String>,
}

/// Diagnoses every input and matches client fault IDs with server entries across them.
pub fn diagnose(inputs: &[LogInput<'_>]) -> Diagnosis {
    let analysed: Vec<Analysed> = inputs.iter().map(analyse).collect();
    let mut raised_by_id: HashMap<&str, Vec<(&Analysed, &RaisedFault)>> = HashMap::new();
    for server in &analysed {
        for raised in &server.server_faults {
            raised_by_id
                .entry(raised.id.as_str())
                .or_default()
                .push((server, raised));
        }
    }
    let mut matches = Vec::new();
    for client in &analysed {
        for fault in &client.client_faults {
            let Some(raised) = raised_by_id.get(fault.id.as_str()) else {
                continue;
            };
            for &(server, raised) in raised {
                matches.push(FaultMatch {
                    fault_id: fault.id.clone(),
                    client: Place {
                        path: client.report.path.clone(),
                        line: fault.line,
                        time: fault.time.clone(),
                    },
                    server: Place {
                        path: server.report.path.clone(),
                        line: raised.line,
                        time: Some(raised.time.clone()),
                    },
                    client_kb954960: fault.kb954960,
                    duplicate_key: raised.duplicate_key.clone(),
                    kb954960: fault.kb954960 && raised.duplicate_key.is_some(),
                });
            }
        }
    }
    let files: Vec<FileReport> = analysed.into_iter().map(|a| a.report).collect();
    Diagnosis {
        format_version: FORMAT_VERSION,
        symptom: files.iter().any(|f| f.symptom),
        files,
        matches,
        errors: Vec::new(),
    }
}

/// A file's report and the fault IDs it contributes to matching.
struct Analysed {
    report: FileReport,
    client_faults: Vec<ClientFault>,
    server_faults: Vec<RaisedFault>,
}

struct ClientFault {
    id: String,
    line: usize,
    time: Option<String>,
    kb954960: bool,
}

struct RaisedFault {
    id: String,
    line: usize,
    time: String,
    duplicate_key: Option<DuplicateKeyRef>,
}

fn analyse(input: &LogInput<'_>) -> Analysed {
    match input.kind {
        LogKind::WindowsUpdate => analyse_client(input),
        LogKind::SoftwareDistribution => analyse_server(input),
        LogKind::WindowsUpdateEtw => Analysed {
            report: FileReport {
                path: input.path.to_string(),
                kind: input.kind,
                symptom: false,
                fault_ids: Vec::new(),
                evidence: Vec::new(),
                client: None,
                server: None,
                notes: vec![
                    "Windows 10 format (Get-WindowsUpdateLog): WSUS 3.0 does not serve these \
                     clients, so the log is not analysed for KB 954960"
                        .to_string(),
                ],
            },
            client_faults: Vec::new(),
            server_faults: Vec::new(),
        },
    }
}

fn analyse_client(input: &LogInput<'_>) -> Analysed {
    let records = windowsupdate::parse(input.text);
    let events = client::events(&records);
    let searches = detection::searches(&events);
    let last = detection::summarize_searches(&searches, &events);
    let this_bug: Vec<&Search> = searches
        .iter()
        .filter(|s| matches!(s.outcome, DetectionOutcome::FailedThisBug { .. }))
        .collect();
    let symptom = matches!(last.outcome, DetectionOutcome::FailedThisBug { .. });

    let time_at = |line: usize| {
        let at = records.binary_search_by_key(&line, |r| r.line).ok()?;
        let record = &records[at];
        Some(match record.utc_time() {
            Some(utc) => utc_string(utc),
            None => record
                .local_time
                .format("%Y-%m-%dT%H:%M:%S%.3f")
                .to_string(),
        })
    };
    let client_faults: Vec<ClientFault> = searches
        .iter()
        .flat_map(|s| &s.faults)
        .map(|f| ClientFault {
            id: f.id.clone(),
            line: f.line,
            time: time_at(f.line),
            kb954960: f.kb954960,
        })
        .collect();
    let fault_ids = unique(client_faults.iter().filter(|f| f.kb954960).map(|f| &f.id));

    let mut lines: Vec<usize> = this_bug
        .last()
        .map(|s| s.evidence.clone())
        .unwrap_or_default();
    lines.extend(&last.evidence);
    lines.sort_unstable();
    lines.dedup();
    let evidence = lines
        .iter()
        .filter_map(|&line| {
            let at = records.binary_search_by_key(&line, |r| r.line).ok()?;
            let r = &records[at];
            Some(quote(r.line, r.raw, &r.continuation))
        })
        .flatten()
        .collect();

    let mut other_failures: Vec<OtherFailure> = Vec::new();
    for search in &searches {
        if let DetectionOutcome::FailedOther { code } = search.outcome {
            let line = search.evidence.first().copied().unwrap_or_default();
            match other_failures.iter_mut().find(|o| o.code == code) {
                Some(other) => {
                    other.detections += 1;
                    other.last_line = line;
                }
                None => other_failures.push(OtherFailure {
                    code,
                    detections: 1,
                    last_line: line,
                }),
            }
        }
    }

    let mut notes = Vec::new();
    if other_failures
        .iter()
        .any(|o| o.code == hresult::SOAP_SERVER)
    {
        notes.push(
            "0x8024400E without KB 954960's SOAP fault (InternalServerError in SyncUpdates) is \
             another server-side fault: the server's SoftwareDistribution.log says which"
                .to_string(),
        );
    }

    Analysed {
        report: FileReport {
            path: input.path.to_string(),
            kind: input.kind,
            symptom,
            fault_ids,
            evidence,
            client: Some(ClientDetails {
                detections: searches.len(),
                kb954960_detections: this_bug.len(),
                last_detection: last,
                other_failures,
            }),
            server: None,
            notes,
        },
        client_faults,
        server_faults: Vec::new(),
    }
}

fn analyse_server(input: &LogInput<'_>) -> Analysed {
    let records = softdist::parse(input.text);
    let events = server::events(&records);
    let mut duplicates = Vec::new();
    let mut raised = Vec::new();
    for event in &events {
        match &event.kind {
            ServerEventKind::DuplicateKey { key, .. } => duplicates.push((event, key)),
            ServerEventKind::FaultRaised {
                id,
                error_line,
                duplicate_key,
                ..
            } => {
                let key = duplicates
                    .iter()
                    .find(|(dup, _)| Some(dup.line) == *error_line)
                    .and_then(|(_, key)| (*key).clone());
                raised.push(RaisedFault {
                    id: id.clone(),
                    line: event.line,
                    time: utc_string(records[event.record].time),
                    duplicate_key: match (duplicate_key, error_line) {
                        (true, Some(line)) => Some(DuplicateKeyRef { line: *line, key }),
                        _ => None,
                    },
                });
            }
        }
    }
    let fault_ids = unique(
        raised
            .iter()
            .filter(|r| r.duplicate_key.is_some())
            .map(|r| &r.id),
    );
    let mut evidence = Vec::new();
    if let Some((last, _)) = duplicates.last() {
        let record = &records[last.record];
        evidence.extend(quote(record.line, record.raw, &record.continuation));
        if let Some(fault) = raised.iter().find(|r| {
            r.duplicate_key
                .as_ref()
                .is_some_and(|d| d.line == last.line)
        }) {
            let at = records
                .binary_search_by_key(&fault.line, |r| r.line)
                .expect("a fault's line is a record's line");
            evidence.extend(quote(fault.line, records[at].raw, &[]));
        }
    }
    let last_duplicate_key = duplicates.last().map(|(event, _)| Place {
        path: input.path.to_string(),
        line: event.line,
        time: Some(utc_string(records[event.record].time)),
    });
    let mut notes = Vec::new();
    if !duplicates.is_empty() {
        notes.push(
            "the server log does not record successful detections: after a repair, only entries \
             written since then tell whether it worked"
                .to_string(),
        );
    }
    Analysed {
        report: FileReport {
            path: input.path.to_string(),
            kind: input.kind,
            symptom: !duplicates.is_empty(),
            fault_ids,
            evidence,
            client: None,
            server: Some(ServerDetails {
                duplicate_key_errors: duplicates.len(),
                keys: unique(duplicates.iter().filter_map(|(_, key)| key.as_ref())),
                last_duplicate_key,
                faults_raised: raised.len(),
            }),
            notes,
        },
        client_faults: Vec::new(),
        server_faults: raised,
    }
}

/// A record's first line and its continuation lines as evidence.
fn quote(line: usize, raw: &str, continuation: &[Line<'_>]) -> Vec<Evidence> {
    std::iter::once(Evidence {
        line,
        text: raw.to_string(),
    })
    .chain(continuation.iter().map(|l| Evidence {
        line: l.number,
        text: l.text.to_string(),
    }))
    .collect()
}

fn unique<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

fn utc_string(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The JSON document, pretty-printed, with a final newline.
pub fn render_json(diagnosis: &Diagnosis) -> String {
    let mut json = serde_json::to_string_pretty(diagnosis).expect("a diagnosis serialises");
    json.push('\n');
    json
}

/// The text report: per file a verdict, its fault IDs and the evidence lines; then the fault
/// IDs found on both sides; then one summary line.
pub fn render_text(diagnosis: &Diagnosis) -> String {
    let mut out = String::new();
    for file in &diagnosis.files {
        let _ = writeln!(out, "== {} ({})", file.path, file.kind.file_name());
        let _ = writeln!(out, "{}", verdict(file));
        for note in &file.notes {
            let _ = writeln!(out, "note: {note}");
        }
        if !file.fault_ids.is_empty() {
            let _ = writeln!(out, "fault IDs: {}", file.fault_ids.join(", "));
        }
        if !file.evidence.is_empty() {
            let _ = writeln!(out, "evidence:");
            for e in &file.evidence {
                let _ = writeln!(out, "{:>7}  {}", e.line, e.text.replace('\t', " "));
            }
        }
        out.push('\n');
    }
    if !diagnosis.matches.is_empty() {
        let _ = writeln!(out, "fault IDs found on both sides:");
        for m in &diagnosis.matches {
            let _ = writeln!(
                out,
                "  {}  {}:{} -> {}:{}",
                m.fault_id, m.client.path, m.client.line, m.server.path, m.server.line
            );
            let _ = writeln!(out, "    {}", match_verdict(m));
        }
        out.push('\n');
    }
    let with = diagnosis.files.iter().filter(|f| f.symptom).count();
    let total = diagnosis.files.len();
    let _ = match (with, diagnosis.errors.len()) {
        (0, 0) => writeln!(
            out,
            "KB 954960 symptom not found in {total} {}.",
            files(total)
        ),
        (0, e) => writeln!(
            out,
            "KB 954960 symptom not found in {total} {}; {e} {} could not be read.",
            files(total),
            files(e)
        ),
        (n, 0) => writeln!(
            out,
            "KB 954960 symptom found in {n} of {total} {}.",
            files(total)
        ),
        (n, e) => writeln!(
            out,
            "KB 954960 symptom found in {n} of {total} {}; {e} {} could not be read.",
            files(total),
            files(e)
        ),
    };
    out
}

fn files(n: usize) -> &'static str {
    if n == 1 { "file" } else { "files" }
}

/// One sentence saying what a file shows.
fn verdict(file: &FileReport) -> String {
    if let Some(client) = &file.client {
        let last = &client.last_detection;
        let (n, of) = (client.kb954960_detections, client.detections);
        return match &last.outcome {
            DetectionOutcome::FailedThisBug { .. } => format!(
                "KB 954960 symptom present: the last detection failed with 0x8024400E, \
                 InternalServerError in SyncUpdates ({n} of {of} detections in this log failed \
                 this way)."
            ),
            outcome if n > 0 => format!(
                "KB 954960 symptom no longer present: {n} of {of} detections failed with it, \
                 but the last detection {}.",
                outcome_phrase(outcome)
            ),
            outcome => format!(
                "no KB 954960 symptom: the last detection {}.",
                outcome_phrase(outcome)
            ),
        };
    }
    if let Some(server) = &file.server {
        if server.duplicate_key_errors == 0 {
            return "no KB 954960 symptom: no duplicate-key error in the client web service."
                .to_string();
        }
        let keys: Vec<String> = server.keys.iter().map(|k| format!("'{k}'")).collect();
        let keys = if keys.is_empty() {
            String::new()
        } else {
            format!(" (key {})", keys.join(", "))
        };
        let last = server
            .last_duplicate_key
            .as_ref()
            .map(|p| match &p.time {
                Some(time) => format!(", the last on line {} at {time}", p.line),
                None => format!(", the last on line {}", p.line),
            })
            .unwrap_or_default();
        return format!(
            "KB 954960 symptom present: {} duplicate-key {} in the client web service{keys}{last}.",
            server.duplicate_key_errors,
            if server.duplicate_key_errors == 1 {
                "error"
            } else {
                "errors"
            },
        );
    }
    "not analysed for KB 954960.".to_string()
}

fn outcome_phrase(outcome: &DetectionOutcome) -> String {
    match outcome {
        DetectionOutcome::Succeeded {
            updates,
            categories,
        } => format!("succeeded (found {updates} updates and {categories} categories)"),
        DetectionOutcome::FailedThisBug { .. } => "failed with KB 954960's failure".to_string(),
        DetectionOutcome::FailedOther { code } => match hresult::describe(*code) {
            Some(meaning) => format!("failed with {code} ({meaning}), which is not KB 954960"),
            None => format!("failed with {code}, which is not KB 954960"),
        },
        DetectionOutcome::NotRun { reason } => match reason {
            NotRunReason::NoDetectionSeen => "is not in this log: no detection ran".to_string(),
            NotRunReason::InteractiveOnly => "did not run: Automatic Updates is interactive-only \
                 and refused the non-interactive scan"
                .to_string(),
            NotRunReason::DetectNowRejected => {
                "did not run: Automatic Updates could not be asked to detect now".to_string()
            }
        },
        DetectionOutcome::Inconclusive { reason } => match reason {
            InconclusiveReason::DetectionPending => "was triggered but has not started".into(),
            InconclusiveReason::SearchUnfinished => "has not finished".into(),
            InconclusiveReason::NoResultLogged => "ended without logging a result".into(),
        },
    }
}

fn match_verdict(m: &FaultMatch) -> String {
    match (&m.duplicate_key, m.client_kb954960) {
        (Some(dup), true) => format!(
            "KB 954960 confirmed: the server raised it for the duplicate-key error on line {}{}",
            dup.line,
            dup.key
                .as_ref()
                .map(|k| format!(" (key '{k}')"))
                .unwrap_or_default()
        ),
        (Some(dup), false) => format!(
            "the server raised it for the duplicate-key error on line {}, though the client's \
             failure lacks KB 954960's pattern",
            dup.line
        ),
        (None, true) => "the server raised it for another error than the duplicate key".into(),
        (None, false) => "not KB 954960 on either side".into(),
    }
}
