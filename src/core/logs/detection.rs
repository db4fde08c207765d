//! What became of a client's detections: the searches in a `WindowsUpdate.log` and the verdict
//! on the latest one.
//!
//! This is how a client is checked after a repair (KB 954960, "Workaround", step 5): run
//! `wuauclt /detectnow`, take the log lines written since, and pass them to
//! [`summarize_detection`]. A search runs from `Agent ** START **  Agent: Finding updates` to
//! `Agent **  END  **  Agent: Finding updates`; a fragment without those markers (a copy from an
//! article, an excerpt that begins mid-search) counts as one search when it shows a sync, a
//! result, the search's own failure lines or its end (see [`searches`]).

use serde::Serialize;

use super::client::{self, ClientEvent, ClientEventKind, FailureForm, Kb954960Pattern};
use super::hresult::HResult;
use super::windowsupdate::{self, WindowsUpdateRecord};

/// The verdict on a detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum DetectionOutcome {
    /// `Found N updates and M categories in search`.
    Succeeded { updates: u32, categories: u32 },
    /// KB 954960's failure (0x8024400E, `InternalServerError`, `SyncUpdates`), in full or in
    /// part (see [`DetectionSummary::pattern`]).
    FailedThisBug { fault_id: Option<String> },
    /// Any other failure, named by its code: not KB 954960.
    FailedOther { code: HResult },
    /// No detection ran.
    NotRun { reason: NotRunReason },
    /// A detection was asked for or started, but its result is not in the log (yet).
    Inconclusive { reason: InconclusiveReason },
}

impl DetectionOutcome {
    /// True when the detection ended with a result: success or a failure.
    pub fn is_decisive(&self) -> bool {
        matches!(
            self,
            DetectionOutcome::Succeeded { .. }
                | DetectionOutcome::FailedThisBug { .. }
                | DetectionOutcome::FailedOther { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotRunReason {
    /// Nothing in the lines shows a detection being asked for or run.
    NoDetectionSeen,
    /// `Can not perform non-interactive scan if AU is interactive-only`.
    InteractiveOnly,
    /// `Unable to trigger Automatic Updates to detect now, hr=8024A000`.
    DetectNowRejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InconclusiveReason {
    /// DetectNow was triggered but no search has started.
    DetectionPending,
    /// A search started and has not ended.
    SearchUnfinished,
    /// A search ended without logging a result or a failure.
    NoResultLogged,
}

/// One search of the update agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Line of `** START **  Agent: Finding updates`; `None` for a fragment without it.
    pub start_line: Option<usize>,
    /// Line of `**  END  **  Agent: Finding updates`, once ended.
    pub end_line: Option<usize>,
    /// `AutomaticUpdates`, `WindowsUpdate`, ...
    pub caller: Option<String>,
    /// From `+ ServiceId = {...}, Server URL = ...`: the WSUS server synchronised with.
    pub server_url: Option<String>,
    pub outcome: DetectionOutcome,
    /// For [`DetectionOutcome::FailedThisBug`]: how much of KB 954960's failure the lines show.
    pub pattern: Option<Kb954960Pattern>,
    /// The lines the outcome rests on, ascending.
    pub evidence: Vec<usize>,
    /// Every fault ID the search's SOAP failures carried, KB 954960 or not, with the line of the
    /// `ID:` record's failure and whether that failure is KB 954960's.
    pub faults: Vec<FaultSeen>,
}

/// A fault ID a client logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSeen {
    pub id: String,
    /// Line of the failure record the ID belongs to.
    pub line: usize,
    /// How much of KB 954960's failure the fault's lines show; `None` for another failure.
    pub pattern: Option<Kb954960Pattern>,
}

impl FaultSeen {
    /// True when the failure shows KB 954960's pattern, in full or in part.
    pub fn kb954960(&self) -> bool {
        self.pattern.is_some()
    }
}

/// The verdict on the detections in a stretch of log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetectionSummary {
    #[serde(flatten)]
    pub outcome: DetectionOutcome,
    /// For a failure with KB 954960: how much of its pattern the lines show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Kb954960Pattern>,
    /// The server the deciding search synchronised with, when logged.
    pub server_url: Option<String>,
    /// The lines the verdict rests on, ascending (1-based within the text given).
    pub evidence: Vec<usize>,
}

/// Decides what the detection in `text` came to. `text` is what `WindowsUpdate.log` gained since
/// `wuauclt /detectnow` was run; line numbers in the result count from its first line.
///
/// - the latest search that ended with a result decides: `Succeeded`, `FailedThisBug` or
///   `FailedOther` (a failure of this bug outranks a `Found` line in the same search);
/// - else a search that is still running, or ended without a result, is `Inconclusive`;
/// - else the latest of `Can not perform non-interactive scan`, `hr=8024A000` (`NotRun`) and a
///   DetectNow trigger (`Inconclusive`, pending) decides;
/// - else `NotRun { NoDetectionSeen }`.
pub fn summarize_detection(text: &str) -> DetectionSummary {
    summarize_records(&windowsupdate::parse(text))
}

/// [`summarize_detection`] on records already parsed.
pub fn summarize_records(records: &[WindowsUpdateRecord<'_>]) -> DetectionSummary {
    summarize_events(&client::events(records))
}

/// [`summarize_detection`] on events already read.
pub fn summarize_events(events: &[ClientEvent]) -> DetectionSummary {
    summarize_searches(&searches(events), events)
}

/// [`summarize_detection`] on searches already found in `events`.
pub fn summarize_searches(searches: &[Search], events: &[ClientEvent]) -> DetectionSummary {
    let deciding = searches
        .iter()
        .rev()
        .find(|s| s.outcome.is_decisive())
        .or(searches.last());
    if let Some(search) = deciding {
        return DetectionSummary {
            outcome: search.outcome.clone(),
            pattern: search.pattern,
            server_url: search.server_url.clone(),
            evidence: search.evidence.clone(),
        };
    }
    let marker = events.iter().rev().find_map(|e| {
        let outcome = match e.kind {
            ClientEventKind::NonInteractiveScanRefused => DetectionOutcome::NotRun {
                reason: NotRunReason::InteractiveOnly,
            },
            ClientEventKind::DetectNowRejected { .. } => DetectionOutcome::NotRun {
                reason: NotRunReason::DetectNowRejected,
            },
            ClientEventKind::DetectNowRequested | ClientEventKind::DetectionTriggered { .. } => {
                DetectionOutcome::Inconclusive {
                    reason: InconclusiveReason::DetectionPending,
                }
            }
            _ => return None,
        };
        Some((outcome, e.line))
    });
    let (outcome, evidence) = match marker {
        Some((outcome, line)) => (outcome, vec![line]),
        None => (
            DetectionOutcome::NotRun {
                reason: NotRunReason::NoDetectionSeen,
            },
            Vec::new(),
        ),
    };
    DetectionSummary {
        outcome,
        pattern: None,
        server_url: None,
        evidence,
    }
}

/// Web-service calls that are not part of a search.
const NOT_SEARCH_CALLS: [&str; 2] = ["ReportEventBatch", "GetFileLocations"];

/// The searches in `events`, in order.
///
/// A search runs from its `** START **` line to its `**  END  **` line. Lines of a search seen
/// without its start (an excerpt that begins mid-search) make a fragment that counts as one
/// search: a sync, a SOAP failure, a result, the search's own failure lines or exit code, or
/// its end line. Failures logged after a search (Automatic Updates' report of it) belong to
/// that search, and make one only when no search is in the text at all. Failures inside
/// another operation (installing, downloading, the service starting) belong to no search.
pub fn searches(events: &[ClientEvent]) -> Vec<Search> {
    let mut done: Vec<Search> = Vec::new();
    let mut current: Option<SearchBuilder> = None;
    let mut in_other_operation = false;
    for event in events {
        let starts_fragment = match &event.kind {
            ClientEventKind::SyncStarted
            | ClientEventKind::SyncServer { .. }
            | ClientEventKind::SearchSucceeded { .. } => true,
            ClientEventKind::SoapFailure(f) => f
                .operation
                .as_deref()
                .is_none_or(|op| !NOT_SEARCH_CALLS.contains(&op)),
            ClientEventKind::Failure { form, .. } => match form {
                FailureForm::ExitCode | FailureForm::Search => !in_other_operation,
                FailureForm::SearchReported => done.is_empty() && !in_other_operation,
                FailureForm::Transport | FailureForm::Other => false,
            },
            _ => false,
        };
        match &event.kind {
            ClientEventKind::SearchStarted { caller } => {
                done.extend(current.take().map(SearchBuilder::finish));
                in_other_operation = false;
                current = Some(SearchBuilder {
                    start_line: Some(event.line),
                    caller: caller.clone(),
                    ..SearchBuilder::default()
                });
            }
            ClientEventKind::SearchEnded { caller } => {
                let mut search = current.take().unwrap_or_else(|| SearchBuilder {
                    caller: caller.clone(),
                    ..SearchBuilder::default()
                });
                search.end_line = Some(event.line);
                done.push(search.finish());
            }
            ClientEventKind::OtherOperation { started } => {
                // A fragment that the end of another operation closes was that operation's.
                if !started && current.as_ref().is_some_and(|c| c.start_line.is_none()) {
                    current = None;
                }
                in_other_operation = *started;
            }
            _ if starts_fragment => current
                .get_or_insert_with(SearchBuilder::default)
                .add(event),
            ClientEventKind::Failure { .. } | ClientEventKind::SoapFailure(_) => {
                if let Some(search) = current.as_mut() {
                    search.add(event);
                }
            }
            _ => {}
        }
    }
    done.extend(current.map(SearchBuilder::finish));
    done
}

#[derive(Default)]
struct SearchBuilder {
    start_line: Option<usize>,
    end_line: Option<usize>,
    caller: Option<String>,
    server_url: Option<String>,
    sync_lines: Vec<usize>,
    /// The last event added was `PT: Synchronizing server updates`.
    after_sync_start: bool,
    found: Option<(usize, u32, u32)>,
    /// KB 954960 failures: fault ID, lines and how much of the pattern they show.
    this_bug: Vec<(Option<String>, Vec<usize>, Kb954960Pattern)>,
    /// Other SOAP failures: code and lines.
    other_soap: Vec<(Option<HResult>, Vec<usize>)>,
    /// Other failure records: code, line, form.
    failures: Vec<(HResult, usize, FailureForm)>,
    faults: Vec<FaultSeen>,
}

impl SearchBuilder {
    fn add(&mut self, event: &ClientEvent) {
        let after_sync_start = std::mem::take(&mut self.after_sync_start);
        match &event.kind {
            ClientEventKind::SyncStarted => {
                self.sync_lines.push(event.line);
                self.after_sync_start = true;
            }
            // The server line of this sync; other syncs (extended update info) repeat it.
            ClientEventKind::SyncServer { url, .. }
                if after_sync_start || self.server_url.is_none() =>
            {
                self.sync_lines.push(event.line);
                self.server_url = Some(url.clone());
            }
            ClientEventKind::SearchSucceeded {
                updates,
                categories,
            } => self.found = Some((event.line, *updates, *categories)),
            ClientEventKind::SoapFailure(failure) => {
                let pattern = failure.kb954960();
                if let Some(id) = &failure.fault.id {
                    self.faults.push(FaultSeen {
                        id: id.clone(),
                        line: event.line,
                        pattern,
                    });
                }
                match pattern {
                    Some(pattern) => self.this_bug.push((
                        failure.fault.id.clone(),
                        failure.lines.clone(),
                        pattern,
                    )),
                    None => self.other_soap.push((failure.code, failure.lines.clone())),
                }
            }
            ClientEventKind::Failure { code, form } => {
                self.failures.push((*code, event.line, *form));
            }
            _ => {}
        }
    }

    /// The code a failed search is named by: its exit code, else the code of a failed call,
    /// else its own failure lines (the outermost, logged last), else what was reported of it,
    /// and only then a code from the connection underneath or any other warning.
    fn failure_code(&self) -> Option<HResult> {
        let last_of = |form: FailureForm| {
            self.failures
                .iter()
                .rev()
                .find(|(_, _, f)| *f == form)
                .map(|(code, _, _)| *code)
        };
        let first_of = |form: FailureForm| {
            self.failures
                .iter()
                .find(|(_, _, f)| *f == form)
                .map(|(code, _, _)| *code)
        };
        last_of(FailureForm::ExitCode)
            .or_else(|| self.other_soap.iter().rev().find_map(|(code, _)| *code))
            .or_else(|| last_of(FailureForm::Search))
            .or_else(|| first_of(FailureForm::SearchReported))
            .or_else(|| first_of(FailureForm::Transport))
            .or_else(|| first_of(FailureForm::Other))
    }

    fn finish(self) -> Search {
        let mut evidence: Vec<usize> = self.start_line.into_iter().collect();
        evidence.extend(&self.sync_lines);
        let mut pattern = None;
        let outcome = if let Some(best) = self.this_bug.iter().map(|(_, _, p)| *p).min() {
            for (_, lines, _) in &self.this_bug {
                evidence.extend(lines);
            }
            let code = crate::core::logs::hresult::SOAP_SERVER;
            evidence.extend(self.failures_with(code));
            pattern = Some(best);
            let fault_id = self
                .this_bug
                .iter()
                .find(|(_, _, p)| *p == best)
                .and_then(|(id, _, _)| id.clone())
                .or_else(|| self.this_bug.iter().find_map(|(id, _, _)| id.clone()));
            DetectionOutcome::FailedThisBug { fault_id }
        } else if let Some((line, updates, categories)) = self.found {
            evidence.push(line);
            DetectionOutcome::Succeeded {
                updates,
                categories,
            }
        } else if let Some(code) = self.failure_code() {
            for (soap_code, lines) in &self.other_soap {
                if *soap_code == Some(code) {
                    evidence.extend(lines);
                }
            }
            evidence.extend(self.failures_with(code));
            DetectionOutcome::FailedOther { code }
        } else {
            DetectionOutcome::Inconclusive {
                reason: if self.end_line.is_some() {
                    InconclusiveReason::NoResultLogged
                } else {
                    InconclusiveReason::SearchUnfinished
                },
            }
        };
        evidence.extend(self.end_line);
        evidence.sort_unstable();
        evidence.dedup();
        Search {
            start_line: self.start_line,
            end_line: self.end_line,
            caller: self.caller,
            server_url: self.server_url,
            outcome,
            pattern,
            evidence,
            faults: self.faults,
        }
    }

    fn failures_with(&self, code: HResult) -> impl Iterator<Item = usize> + '_ {
        self.failures
            .iter()
            .filter(move |(c, _, _)| *c == code)
            .map(|(_, line, _)| *line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A log from `lines`, one `(thread, component, text)` each, one millisecond apart.
    fn log(lines: &[(&str, &str, &str)]) -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, (tid, component, text))| {
                format!("2009-03-27\t11:55:29:{i:03}\t1044\t{tid}\t{component}\t{text}\n")
            })
            .collect()
    }

    const START: (&str, &str, &str) = (
        "afc",
        "Agent",
        "** START **  Agent: Finding updates [CallerId = AutomaticUpdates]",
    );
    const END: (&str, &str, &str) = (
        "afc",
        "Agent",
        "**  END  **  Agent: Finding updates [CallerId = AutomaticUpdates]",
    );
    const SYNC: (&str, &str, &str) = (
        "afc",
        "PT",
        "+++++++++++  PT: Synchronizing server updates  +++++++++++",
    );
    const URL: (&str, &str, &str) = (
        "afc",
        "PT",
        "  + ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://wsus01:8530/ClientWebService/client.asmx",
    );

    fn kb954960_failure() -> Vec<(&'static str, &'static str, &'static str)> {
        vec![
            (
                "afc",
                "PT",
                "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200",
            ),
            ("afc", "PT", "WARNING: SOAP Fault: 0x000190"),
            ("afc", "PT", "WARNING:     faultstring:Fault occurred"),
            ("afc", "PT", "WARNING:     ErrorCode:InternalServerError(5)"),
            ("afc", "PT", "WARNING:     Message:(null)"),
            (
                "afc",
                "PT",
                "WARNING:     Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates\"",
            ),
            (
                "afc",
                "PT",
                "WARNING:     ID:c0a7445f-b989-43fa-ac20-11f8ca65fa8c",
            ),
            ("afc", "PT", "WARNING: PTError: 0x8024400e"),
            (
                "afc",
                "Agent",
                "  * WARNING: Failed to synchronize, error = 0x8024400E",
            ),
            ("afc", "Agent", "  * WARNING: Exit code = 0x8024400E"),
        ]
    }

    fn search_with(
        body: Vec<(&'static str, &'static str, &'static str)>,
    ) -> Vec<(&'static str, &'static str, &'static str)> {
        let mut lines = vec![START, SYNC, URL];
        lines.extend(body);
        lines.push(END);
        lines
    }

    #[test]
    fn still_broken() {
        let summary = summarize_detection(&log(&search_with(kb954960_failure())));
        assert_eq!(
            summary,
            DetectionSummary {
                outcome: DetectionOutcome::FailedThisBug {
                    fault_id: Some("c0a7445f-b989-43fa-ac20-11f8ca65fa8c".into())
                },
                pattern: Some(Kb954960Pattern::Complete),
                server_url: Some("http://wsus01:8530/ClientWebService/client.asmx".into()),
                evidence: (1..=14).collect(),
            }
        );
    }

    #[test]
    fn only_the_server_line_of_the_update_sync_is_evidence() {
        let extended = (
            "afc",
            "PT",
            "+++++++++++  PT: Synchronizing extended update info  +++++++++++",
        );
        let found = (
            "afc",
            "Agent",
            "  * Found 1 updates and 2 categories in search",
        );
        let summary = summarize_detection(&log(&search_with(vec![extended, URL, found])));
        assert_eq!(summary.evidence, vec![1, 2, 3, 6, 7]);
    }

    #[test]
    fn succeeded() {
        let found = (
            "afc",
            "Agent",
            "  * Found 2 updates and 41 categories in search; evaluated appl. rules of 622 out of 1169 deployed entities",
        );
        let summary = summarize_detection(&log(&search_with(vec![found])));
        assert_eq!(
            summary.outcome,
            DetectionOutcome::Succeeded {
                updates: 2,
                categories: 41
            }
        );
        assert_eq!(summary.evidence, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_second_detection_decides_when_the_first_failed() {
        let found = (
            "afc",
            "Agent",
            "  * Found 0 updates and 17 categories in search",
        );
        let mut lines = search_with(kb954960_failure());
        lines.extend(search_with(vec![found]));
        let summary = summarize_detection(&log(&lines));
        assert_eq!(
            summary.outcome,
            DetectionOutcome::Succeeded {
                updates: 0,
                categories: 17
            }
        );
        assert_eq!(summary.evidence, vec![15, 16, 17, 18, 19]);
    }

    #[test]
    fn other_failures_are_named_by_their_code() {
        let round_trips = vec![
            (
                "afc",
                "PT",
                "WARNING: Exceeded max server round trips: 0x80244010",
            ),
            ("afc", "PT", "WARNING: Sync of Updates: 0x80244010"),
            (
                "afc",
                "Agent",
                "  * WARNING: Failed to synchronize, error = 0x80244010",
            ),
            ("afc", "Agent", "  * WARNING: Exit code = 0x80244010"),
        ];
        let summary = summarize_detection(&log(&search_with(round_trips)));
        assert_eq!(
            summary.outcome,
            DetectionOutcome::FailedOther {
                code: HResult(0x80244010)
            }
        );
        assert_eq!(summary.evidence, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_0x8024400e_without_the_pattern_is_another_failure() {
        let mut failure = kb954960_failure();
        failure[3] = ("afc", "PT", "WARNING:     ErrorCode:ServerChanged(4)");
        let summary = summarize_detection(&log(&search_with(failure)));
        assert_eq!(
            summary.outcome,
            DetectionOutcome::FailedOther {
                code: crate::core::logs::hresult::SOAP_SERVER
            }
        );
        let bare = vec![
            ("afc", "PT", "WARNING: PTError: 0x8024400e"),
            ("afc", "Agent", "  * WARNING: Exit code = 0x8024400E"),
        ];
        let summary = summarize_detection(&log(&search_with(bare)));
        assert!(matches!(
            summary.outcome,
            DetectionOutcome::FailedOther { .. }
        ));
    }

    #[test]
    fn detection_did_not_run() {
        let cases = [
            (
                vec![(
                    "c04",
                    "AU",
                    "Can not perform non-interactive scan if AU is interactive-only",
                )],
                DetectionOutcome::NotRun {
                    reason: NotRunReason::InteractiveOnly,
                },
                vec![1],
            ),
            (
                vec![(
                    "7f0",
                    "COMAPI",
                    "WARNING: Unable to trigger Automatic Updates to detect now, hr=8024A000",
                )],
                DetectionOutcome::NotRun {
                    reason: NotRunReason::DetectNowRejected,
                },
                vec![1],
            ),
            (
                vec![(
                    "c04",
                    "AU",
                    "AU setting next detection timeout to 2009-03-28 09:55:29",
                )],
                DetectionOutcome::NotRun {
                    reason: NotRunReason::NoDetectionSeen,
                },
                vec![],
            ),
            (
                vec![("c04", "AU", "Triggering AU detection through DetectNow API")],
                DetectionOutcome::Inconclusive {
                    reason: InconclusiveReason::DetectionPending,
                },
                vec![1],
            ),
            (
                vec![START, SYNC],
                DetectionOutcome::Inconclusive {
                    reason: InconclusiveReason::SearchUnfinished,
                },
                vec![1, 2],
            ),
            (
                vec![START, END],
                DetectionOutcome::Inconclusive {
                    reason: InconclusiveReason::NoResultLogged,
                },
                vec![1, 2],
            ),
        ];
        for (lines, outcome, evidence) in cases {
            let summary = summarize_detection(&log(&lines));
            assert_eq!(summary.outcome, outcome, "{lines:?}");
            assert_eq!(summary.evidence, evidence, "{lines:?}");
        }
        assert_eq!(
            summarize_detection("").outcome,
            DetectionOutcome::NotRun {
                reason: NotRunReason::NoDetectionSeen
            }
        );
    }

    #[test]
    fn a_fragment_without_markers_counts_as_one_search() {
        let mut lines = vec![SYNC, URL];
        lines.extend(kb954960_failure());
        let summary = summarize_detection(&log(&lines));
        assert!(matches!(
            summary.outcome,
            DetectionOutcome::FailedThisBug { .. }
        ));
        assert_eq!(summary.evidence.first(), Some(&1));
    }

    #[test]
    fn serializes_as_a_tagged_outcome() {
        let summary = summarize_detection(&log(&search_with(kb954960_failure())));
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["outcome"], "failed-this-bug");
        assert_eq!(json["fault_id"], "c0a7445f-b989-43fa-ac20-11f8ca65fa8c");
        let not_run = summarize_detection("");
        let json = serde_json::to_value(&not_run).unwrap();
        assert_eq!(json["outcome"], "not-run");
        assert_eq!(json["reason"], "no-detection-seen");
    }

    proptest! {
        #[test]
        fn evidence_is_ascending_and_points_at_records(
            picks in proptest::collection::vec(0usize..8, 0..60),
        ) {
            let pool = [START, END, SYNC, URL,
                ("afc", "Agent", "  * Found 1 updates and 2 categories in search"),
                ("afc", "Agent", "  * WARNING: Exit code = 0x80072EE2"),
                ("c04", "AU", "Triggering AU detection through DetectNow API"),
                ("afc", "PT", "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200"),
            ];
            let lines: Vec<_> = picks.iter().map(|&i| pool[i]).collect();
            let text = log(&lines);
            let summary = summarize_detection(&text);
            prop_assert!(summary.evidence.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(summary.evidence.iter().all(|&l| l >= 1 && l <= lines.len()));
        }
    }
}
