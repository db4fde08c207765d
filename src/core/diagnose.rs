//! `wsusfix diagnose`: is KB 954960's symptom in these logs, how sure is that, on which lines,
//! and which server entry answered which client fault.
//!
//! Pure: takes decoded texts, returns a [`Diagnosis`], and renders it as text or JSON
//! (`docs/diagnose.md` documents both). Reading, unzipping and decoding files is the CLI's job.
//!
//! Each file gets a [`Grade`]:
//! - a client log (`WindowsUpdate.log`) is judged by its **last** detection with a result:
//!   `confirmed` when it failed with KB 954960's whole pattern (the SyncUpdates failure line
//!   and its SOAP fault: 0x8024400E, `InternalServerError`, `SyncUpdates`), `likely` when the
//!   text holds only the exact failure line or only the fault, `other failure` for another
//!   code, `not found` otherwise (a later successful detection is a repaired client, and says
//!   so);
//! - a server log (`SoftwareDistribution.log`) is `confirmed` when it holds the client web
//!   service's duplicate-key `ArgumentException` (the server log does not record successes,
//!   so every such entry counts, however old), `not found` otherwise: the exception's message
//!   without its origin or stack trace does not say which component raised it;
//! - a fault ID found on both sides, KB 954960's pattern on the client and the duplicate key
//!   on the server, confirms both.
//!
//! Whole files are read strictly; pasted text leniently (`core::logs::paste`), and each file
//! says which lines were read leniently.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::core::logs::client::Kb954960Pattern;
use crate::core::logs::detection::{
    self, DetectionOutcome, DetectionSummary, InconclusiveReason, NotRunReason, Search,
};
use crate::core::logs::hresult::{self, HResult};
use crate::core::logs::kind::{self, LogKind, Reading};
use crate::core::logs::line::numbered;
use crate::core::logs::paste::{self, Form, Forms, PastedRead};
use crate::core::logs::server::{self, ServerEventKind};
use crate::core::logs::{client, softdist, windowsupdate};

/// Version of the JSON document. Adding fields keeps it; renaming, removing or changing the
/// meaning of one raises it. Version 2 graded the verdicts (`grade`) and made `symptom` true
/// for `likely` as well as `confirmed`.
pub const FORMAT_VERSION: u32 = 2;

/// One decoded log to diagnose.
#[derive(Debug, Clone, Copy)]
pub struct LogInput<'a> {
    /// How the file is named in the output (as the user gave it).
    pub path: &'a str,
    /// Its kind, from [`crate::core::logs::kind::detect`].
    pub kind: LogKind,
    pub text: &'a str,
}

/// How sure a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grade {
    /// KB 954960's failure in full: on a client the SyncUpdates failure with its SOAP fault, on
    /// a server the duplicate-key error of the client web service, or both linked by fault ID.
    Confirmed,
    /// Part of a client's failure: the exact SyncUpdates failure line without the fault, or the
    /// fault without the failure line.
    Likely,
    /// A failure named by its code that is not KB 954960.
    OtherFailure,
    /// A readable log without it.
    NotFound,
    /// A Windows 10 log: recognised, not analysed (WSUS 3.0 does not serve those clients).
    NotAnalysed,
}

impl Grade {
    /// `confirmed` and `likely`: what a triage script acts on (exit code 2).
    pub fn is_symptom(self) -> bool {
        matches!(self, Grade::Confirmed | Grade::Likely)
    }

    /// Higher is more to act on.
    fn rank(self) -> u8 {
        match self {
            Grade::Confirmed => 4,
            Grade::Likely => 3,
            Grade::OtherFailure => 2,
            Grade::NotFound => 1,
            Grade::NotAnalysed => 0,
        }
    }
}

/// The whole result: the JSON document of `diagnose --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub format_version: u32,
    /// The most serious grade of any file; `None` when no file could be read.
    pub grade: Option<Grade>,
    /// True when any file is `confirmed` or `likely`.
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
    pub grade: Grade,
    /// `grade` is `confirmed` or `likely`.
    pub symptom: bool,
    /// `strict` for a whole log file, `lenient` for pasted text.
    pub reading: Reading,
    /// The lines read leniently, and how.
    pub lenient_lines: Vec<LenientLine>,
    /// The words that stood in for the date and time, when a paste had some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
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

/// A line read in a way a whole log file would not need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LenientLine {
    pub line: usize,
    pub forms: Forms,
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
    /// Of those, the ones that failed with KB 954960's pattern (in full or in part).
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
    /// gave no offset; `None` when a paste left no time.
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
    /// True when the client's failure has KB 954960's pattern (in full or in part).
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
    let mut analysed: Vec<Analysed> = inputs.iter().map(analyse).collect();
    let mut raised_by_id: HashMap<&str, Vec<(usize, &RaisedFault)>> = HashMap::new();
    for (at, server) in analysed.iter().enumerate() {
        for raised in &server.server_faults {
            raised_by_id
                .entry(raised.id.as_str())
                .or_default()
                .push((at, raised));
        }
    }
    let mut matches = Vec::new();
    // Files whose grade a match confirms: index, and the match's index.
    let mut confirmed_by: Vec<(usize, usize)> = Vec::new();
    for (client_at, client) in analysed.iter().enumerate() {
        for fault in &client.client_faults {
            let Some(raised) = raised_by_id.get(fault.id.as_str()) else {
                continue;
            };
            for &(server_at, raised) in raised {
                let server = &analysed[server_at];
                let kb954960 = fault.kb954960 && raised.duplicate_key.is_some();
                if kb954960 {
                    confirmed_by.push((client_at, matches.len()));
                    confirmed_by.push((server_at, matches.len()));
                }
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
                        time: raised.time.clone(),
                    },
                    client_kb954960: fault.kb954960,
                    duplicate_key: raised.duplicate_key.clone(),
                    kb954960,
                });
            }
        }
    }
    for (file, m) in confirmed_by {
        let report = &mut analysed[file].report;
        if report.grade == Grade::Likely {
            let m: &FaultMatch = &matches[m];
            let other = if report.kind == LogKind::SoftwareDistribution {
                format!("{}:{}", m.client.path, m.client.line)
            } else {
                format!("{}:{}", m.server.path, m.server.line)
            };
            report.grade = Grade::Confirmed;
            report.notes.push(format!(
                "confirmed by fault ID {} on both sides ({other})",
                m.fault_id
            ));
        }
    }
    for a in &mut analysed {
        let report = &mut a.report;
        if report.grade != Grade::Likely || report.kind != LogKind::WindowsUpdate {
            continue;
        }
        report.notes.push(if report.fault_ids.is_empty() {
            "the lines after it in the client's WindowsUpdate.log (the SOAP fault and its ID), \
             or the server's SoftwareDistribution.log, confirm or rule out KB 954960"
                .to_string()
        } else {
            "give the server's SoftwareDistribution.log with this file: the fault ID links the \
             two and confirms or rules out KB 954960"
                .to_string()
        });
    }
    let files: Vec<FileReport> = analysed.into_iter().map(|a| a.report).collect();
    Diagnosis {
        format_version: FORMAT_VERSION,
        grade: files.iter().map(|f| f.grade).max_by_key(|g| g.rank()),
        symptom: files.iter().any(|f| f.grade.is_symptom()),
        files: files
            .into_iter()
            .map(|mut f| {
                f.symptom = f.grade.is_symptom();
                f
            })
            .collect(),
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
    time: Option<String>,
    duplicate_key: Option<DuplicateKeyRef>,
}

/// The reading `text` needs when read as `kind`.
fn reading_of(input: &LogInput<'_>) -> Reading {
    kind::examine(input.text)
        .ok()
        .filter(|d| d.kind == input.kind)
        .map_or(Reading::Strict, |d| d.reading)
}

fn analyse(input: &LogInput<'_>) -> Analysed {
    match input.kind {
        LogKind::WindowsUpdate => analyse_client(input),
        LogKind::SoftwareDistribution => analyse_server(input),
        LogKind::WindowsUpdateEtw => Analysed {
            report: FileReport {
                path: input.path.to_string(),
                kind: input.kind,
                grade: Grade::NotAnalysed,
                symptom: false,
                reading: Reading::Strict,
                lenient_lines: Vec::new(),
                placeholder: None,
                fault_ids: Vec::new(),
                evidence: Vec::new(),
                client: None,
                server: None,
                notes: etw_notes(input.text),
            },
            client_faults: Vec::new(),
            server_faults: Vec::new(),
        },
    }
}

/// What is said of a Windows 10 log: why it is not analysed, and how its last search ended.
fn etw_notes(text: &str) -> Vec<String> {
    let mut notes = vec![
        "Windows 10 format (Get-WindowsUpdateLog): WSUS 3.0 does not serve these clients, so \
         the log is not analysed for KB 954960"
            .to_string(),
    ];
    // The search's end line carries its exit code (`* END * Finding updates ..., Exit code =
    // 0x8024402F`), or an `Exit code =` line before it does.
    let mut last_search: Option<(usize, Option<HResult>)> = None;
    let mut exit_code = None;
    for line in numbered(text) {
        if line.text.contains("* START * Finding updates") {
            exit_code = None;
        }
        if let Some((_, rest)) = line.text.split_once("Exit code =") {
            exit_code = HResult::find_failure(rest).or(exit_code);
        }
        if line.text.contains("* END * Finding updates") {
            last_search = Some((line.number, exit_code.take()));
        }
    }
    if let Some((line, code)) = last_search {
        notes.push(match code {
            Some(code) => format!(
                "its last search (line {line}) ended with {code}{}",
                hresult::describe(code)
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
            None => format!("its last search (line {line}) ended without a failure code"),
        });
    }
    notes
}

fn analyse_client(input: &LogInput<'_>) -> Analysed {
    let reading = reading_of(input);
    let pasted = match reading {
        Reading::Strict => Vec::new(),
        Reading::Lenient => paste::lines(input.text),
    };
    let read = match reading {
        Reading::Strict => PastedRead {
            records: windowsupdate::parse(input.text),
            lenient_lines: Vec::new(),
            placeholder: None,
        },
        Reading::Lenient => windowsupdate::read_pasted(&pasted),
    };
    let records = &read.records;
    let events = client::events(records);
    let searches = detection::searches(&events);
    let last = detection::summarize_searches(&searches, &events);
    let this_bug: Vec<&Search> = searches
        .iter()
        .filter(|s| matches!(s.outcome, DetectionOutcome::FailedThisBug { .. }))
        .collect();
    let grade = match (&last.outcome, last.pattern) {
        (DetectionOutcome::FailedThisBug { .. }, Some(Kb954960Pattern::Complete)) => {
            Grade::Confirmed
        }
        (DetectionOutcome::FailedThisBug { .. }, _) => Grade::Likely,
        (DetectionOutcome::FailedOther { .. }, _) => Grade::OtherFailure,
        _ => Grade::NotFound,
    };

    let time_at = |line: usize| {
        let record = records.iter().find(|r| r.line == line)?;
        Some(match record.utc_time() {
            Some(utc) => utc_string(utc),
            None => record
                .local_time?
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
            kb954960: f.kb954960(),
        })
        .collect();
    let fault_ids = unique(client_faults.iter().filter(|f| f.kb954960).map(|f| &f.id));

    let mut lines: Vec<usize> = this_bug
        .last()
        .map(|s| s.evidence.clone())
        .unwrap_or_default();
    lines.extend(&last.evidence);
    let evidence = quote_records(
        input.text,
        lines
            .iter()
            .flat_map(|&line| {
                records
                    .iter()
                    .filter(move |r| r.line == line)
                    .flat_map(|r| {
                        std::iter::once(r.line).chain(r.continuation.iter().map(|c| c.number))
                    })
            })
            .collect(),
    );

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
    if let Some(note) = lenient_note(&read.lenient_lines, read.placeholder.as_deref()) {
        notes.push(note);
    }
    if matches!(last.outcome, DetectionOutcome::FailedOther { code } if code == hresult::SOAP_SERVER)
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
            grade,
            symptom: grade.is_symptom(),
            reading,
            lenient_lines: lenient_lines(&read.lenient_lines),
            placeholder: read.placeholder.clone(),
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
    let reading = reading_of(input);
    let pasted = match reading {
        Reading::Strict => Vec::new(),
        Reading::Lenient => paste::lines(input.text),
    };
    let read = match reading {
        Reading::Strict => PastedRead {
            records: softdist::parse(input.text),
            lenient_lines: Vec::new(),
            placeholder: None,
        },
        Reading::Lenient => softdist::read_pasted(&pasted),
    };
    let records = &read.records;
    let events = server::events(records);
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
                    time: records[event.record].time.map(utc_string),
                    duplicate_key: match (duplicate_key, error_line) {
                        (true, Some(line)) => Some(DuplicateKeyRef { line: *line, key }),
                        _ => None,
                    },
                });
            }
        }
    }
    let grade = if duplicates.is_empty() {
        Grade::NotFound
    } else {
        Grade::Confirmed
    };
    let fault_ids = unique(
        raised
            .iter()
            .filter(|r| r.duplicate_key.is_some())
            .map(|r| &r.id),
    );
    let mut lines: BTreeSet<usize> = BTreeSet::new();
    if let Some((last, _)) = duplicates.last() {
        let record = &records[last.record];
        lines.insert(record.line);
        lines.extend(record.continuation.iter().map(|l| l.number));
        if let Some(fault) = raised.iter().find(|r| {
            r.duplicate_key
                .as_ref()
                .is_some_and(|d| d.line == last.line)
        }) {
            lines.insert(fault.line);
        }
    }
    let evidence = quote_records(input.text, lines.into_iter().collect());
    let last_duplicate_key = duplicates.last().map(|(event, _)| Place {
        path: input.path.to_string(),
        line: event.line,
        time: records[event.record].time.map(utc_string),
    });
    let mut notes = Vec::new();
    if let Some(note) = lenient_note(&read.lenient_lines, read.placeholder.as_deref()) {
        notes.push(note);
    }
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
            grade,
            symptom: grade.is_symptom(),
            reading,
            lenient_lines: lenient_lines(&read.lenient_lines),
            placeholder: read.placeholder.clone(),
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

/// The lines numbered `numbers` of `text` as written, ascending and without repeats.
fn quote_records(text: &str, mut numbers: Vec<usize>) -> Vec<Evidence> {
    numbers.sort_unstable();
    numbers.dedup();
    let mut wanted = numbers.into_iter().peekable();
    let mut out = Vec::new();
    for line in numbered(text) {
        let Some(&next) = wanted.peek() else {
            break;
        };
        if line.number == next {
            out.push(Evidence {
                line: line.number,
                text: line.text.to_string(),
            });
            wanted.next();
        }
    }
    out
}

fn lenient_lines(lines: &[(usize, Forms)]) -> Vec<LenientLine> {
    lines
        .iter()
        .map(|&(line, forms)| LenientLine { line, forms })
        .collect()
}

/// One sentence naming the lines read leniently, by form: `read as pasted text: placeholder
/// in place of the date and time ("Datum a čas") on lines 1-9; ...`.
fn lenient_note(lines: &[(usize, Forms)], placeholder: Option<&str>) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let parts: Vec<String> = [
        Form::PlaceholderTime,
        Form::NoTime,
        Form::NoPrefix,
        Form::RunTogether,
        Form::Quoted,
        Form::Markup,
        Form::PlaceholderOnly,
    ]
    .into_iter()
    .filter_map(|form| {
        let numbers: Vec<usize> = lines
            .iter()
            .filter(|(_, forms)| forms.contains(form))
            .map(|(line, _)| *line)
            .collect();
        if numbers.is_empty() {
            return None;
        }
        let what = match (form, placeholder) {
            (Form::PlaceholderTime, Some(words)) => format!("{form} (\"{words}\")"),
            _ => form.to_string(),
        };
        Some(format!("{what} on {}", line_ranges(&numbers)))
    })
    .collect();
    Some(format!("read as pasted text: {}", parts.join("; ")))
}

/// `line 4`, `lines 1-9, 12`.
fn line_ranges(numbers: &[usize]) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &n in numbers {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => ranges.push((n, n)),
        }
    }
    let text: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let word = if numbers.len() == 1 { "line" } else { "lines" };
    format!("{word} {}", text.join(", "))
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

/// The text report: per file a verdict, its notes, fault IDs and evidence lines; then the
/// fault IDs found on both sides; then one summary line.
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
    let count = |g: Grade| diagnosis.files.iter().filter(|f| f.grade == g).count();
    let (confirmed, likely) = (count(Grade::Confirmed), count(Grade::Likely));
    let total = diagnosis.files.len();
    let mut summary = if confirmed + likely == 0 {
        format!("KB 954960 symptom not found in {total} {}", files(total))
    } else {
        let grades: Vec<String> = [(confirmed, "confirmed"), (likely, "likely")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, g)| format!("{g} in {n}"))
            .collect();
        format!(
            "KB 954960 symptom found in {} of {total} {} ({})",
            confirmed + likely,
            files(total),
            grades.join(", ")
        )
    };
    let errors = diagnosis.errors.len();
    if errors > 0 {
        let _ = write!(summary, "; {errors} {} could not be read", files(errors));
    }
    let _ = writeln!(out, "{summary}.");
    out
}

fn files(n: usize) -> &'static str {
    if n == 1 { "file" } else { "files" }
}

/// One sentence saying what a file shows, beginning with its grade.
fn verdict(file: &FileReport) -> String {
    if let Some(client) = &file.client {
        return client_verdict(file.grade, client);
    }
    if let Some(server) = &file.server {
        return server_verdict(server);
    }
    "KB 954960 not analysed: a Windows 10 log.".to_string()
}

fn client_verdict(grade: Grade, client: &ClientDetails) -> String {
    let last = &client.last_detection;
    let (n, of) = (client.kb954960_detections, client.detections);
    let tally = format!("{n} of {of} detections in this log failed this way");
    match (&last.outcome, last.pattern) {
        (DetectionOutcome::FailedThisBug { .. }, Some(Kb954960Pattern::Complete)) => format!(
            "KB 954960 confirmed: the last detection failed with 0x8024400E, InternalServerError \
             in SyncUpdates ({tally})."
        ),
        (DetectionOutcome::FailedThisBug { .. }, pattern) => {
            let head = if grade == Grade::Confirmed {
                "KB 954960 confirmed by the server log"
            } else {
                "KB 954960 likely"
            };
            match pattern {
                Some(Kb954960Pattern::FailureLineMissing) => format!(
                    "{head}: the SOAP fault says InternalServerError in SyncUpdates, but the \
                     failure line before it (SyncUpdates failure, error = 0x8024400E) is not in \
                     this text ({tally})."
                ),
                _ => format!(
                    "{head}: the last detection failed with \"SyncUpdates failure, error = \
                     0x8024400E, soap client error = 7, soap error code = 400\", but the SOAP \
                     fault lines that confirm it (ErrorCode:InternalServerError, Method: \
                     SyncUpdates) are not in this text ({tally})."
                ),
            }
        }
        (outcome, _) if n > 0 => format!(
            "KB 954960 no longer present: {n} of {of} detections failed with it, but the last \
             detection {}.",
            outcome_phrase(outcome)
        ),
        (outcome @ DetectionOutcome::FailedOther { .. }, _) => format!(
            "another failure, not KB 954960: the last detection {}.",
            outcome_phrase(outcome)
        ),
        (outcome, _) => format!(
            "KB 954960 not found: the last detection {}.",
            outcome_phrase(outcome)
        ),
    }
}

fn server_verdict(server: &ServerDetails) -> String {
    if server.duplicate_key_errors == 0 {
        return "KB 954960 not found: no duplicate-key error in the client web service."
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
    let errors = if server.duplicate_key_errors == 1 {
        "error"
    } else {
        "errors"
    };
    format!(
        "KB 954960 confirmed: {} duplicate-key {errors} in the client web service{keys}{last}.",
        server.duplicate_key_errors
    )
}

fn outcome_phrase(outcome: &DetectionOutcome) -> String {
    match outcome {
        DetectionOutcome::Succeeded {
            updates,
            categories,
        } => format!("succeeded (found {updates} updates and {categories} categories)"),
        DetectionOutcome::FailedThisBug { .. } => "failed with KB 954960's failure".to_string(),
        DetectionOutcome::FailedOther { code } => match hresult::describe(*code) {
            Some(meaning) => format!("failed with {code} ({meaning})"),
            None => format!("failed with {code}"),
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
