//! Typed events of a client's `WindowsUpdate.log`: what a detection did, and how it failed.
//!
//! The KB 954960 failure is a `PT` record `WARNING: SyncUpdates failure, error = 0x8024400E,
//! soap client error = 7, soap error code = 400, HTTP status code = 200` followed, on the same
//! thread, by the SOAP fault's fields (`SOAP Fault:`, `faultstring:`, `ErrorCode:`, `Message:`,
//! `Method:`, `ID:`). 0x8024400E alone is only "the server could not process the message", so the
//! pattern also needs `ErrorCode:InternalServerError` and the `SyncUpdates` method; anything else
//! is another failure, named by its code.

use serde::Serialize;

use super::hresult::{self, HResult};
use super::windowsupdate::{WindowsUpdateRecord, logging_initialized_build};

/// A recognised event and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// 1-based line of the record the event was read from.
    pub line: usize,
    /// Index of that record in the slice given to [`events`].
    pub record: usize,
    pub kind: ClientEventKind,
}

/// What a client log record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEventKind {
    /// `Misc ===========  Logging initialized (build: 7.2.6001.788, tz: +0200)  ===========`.
    LoggingInitialized { build: Option<String> },
    /// `AU Triggering AU detection through DetectNow API` (`wuauclt /detectnow`).
    DetectNowRequested,
    /// `AU Triggering Online detection (interactive)` or `(non-interactive)`.
    DetectionTriggered { interactive: bool },
    /// `AU Can not perform non-interactive scan if AU is interactive-only`.
    NonInteractiveScanRefused,
    /// `COMAPI WARNING: Unable to trigger Automatic Updates to detect now, hr=8024A000`.
    DetectNowRejected { code: HResult },
    /// `Agent ** START **  Agent: Finding updates [CallerId = AutomaticUpdates]`.
    SearchStarted { caller: Option<String> },
    /// `Agent **  END  **  Agent: Finding updates [CallerId = AutomaticUpdates]`.
    SearchEnded { caller: Option<String> },
    /// `** START **  Agent: Installing updates`, `**  END  **  Service: Service exit`: an
    /// operation other than a search starts or ends. Its failures are not a detection's.
    OtherOperation { started: bool },
    /// `PT +++++++++++  PT: Synchronizing server updates  +++++++++++`.
    SyncStarted,
    /// `PT   + ServiceId = {3DA21691-...}, Server URL = http://wsus/ClientWebService/client.asmx`.
    SyncServer { service_id: String, url: String },
    /// `Agent   * Found 3 updates and 71 categories in search` (WUA 7.x appends
    /// `; evaluated appl. rules of X out of Y deployed entities`).
    SearchSucceeded { updates: u32, categories: u32 },
    /// `PT WARNING: <Operation> failure, error = 0x...` with the SOAP fault lines after it, or
    /// SOAP fault lines whose failure line is not in the text.
    SoapFailure(SoapFailure),
    /// Any other `WARNING:` or `FATAL:` record naming a failure code.
    Failure { code: HResult, form: FailureForm },
}

/// What a failure record with a code is, for telling a search's own failure from what was
/// logged around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureForm {
    /// `Agent   * WARNING: Exit code = 0x...`: the result the search ended with.
    ExitCode,
    /// The search's own failure lines: `Failed to synchronize, error = ...`, `Sync of Updates:`,
    /// `SyncServerUpdatesInternal failed:`, `PTError:`, `Exceeded max server round trips:`,
    /// `..._WithRecovery failed`.
    Search,
    /// What the agent and Automatic Updates log once a search has failed: `WU client failed
    /// Searching for update with error`, `Search callback failed, result =`, `Failed to find
    /// updates with error code`.
    SearchReported,
    /// The connection under a call: `Send failed with hr =`, `SendRequest failed`, `WinHttp: ...`.
    Transport,
    /// Any other warning with a code (downloads, installs, reporting).
    Other,
}

impl FailureForm {
    fn of(text: &str) -> FailureForm {
        const SEARCH: [&str; 7] = [
            "Failed to synchronize",
            "Sync of Updates:",
            "SyncServerUpdatesInternal failed",
            "PTError:",
            "Exceeded max server round trips",
            "_WithRecovery failed",
            "Sync of Extended Info:",
        ];
        const REPORTED: [&str; 3] = [
            "WU client failed Searching for update",
            "Search callback failed",
            "Failed to find updates with error code",
        ];
        const TRANSPORT: [&str; 4] = ["Send failed with hr", "SendRequest", "WinHttp:", "WinInet:"];
        if text.contains("Exit code =") {
            FailureForm::ExitCode
        } else if SEARCH.iter().any(|p| text.contains(p)) {
            FailureForm::Search
        } else if REPORTED.iter().any(|p| text.contains(p)) {
            FailureForm::SearchReported
        } else if TRANSPORT.iter().any(|p| text.contains(p)) {
            FailureForm::Transport
        } else {
            FailureForm::Other
        }
    }
}

/// A failed web-service call of the protocol talker and the SOAP fault it received.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SoapFailure {
    /// `SyncUpdates`, `GetCookie`, `GetExtendedUpdateInfo`, ...; `None` when only the fault
    /// lines are in the text.
    pub operation: Option<String>,
    pub code: Option<HResult>,
    pub soap_client_error: Option<u32>,
    pub soap_error_code: Option<u32>,
    pub http_status: Option<u32>,
    pub fault: SoapFault,
    /// Lines of the failure record and of its fault records, in order.
    pub lines: Vec<usize>,
}

/// The fields of a SOAP fault as the client logs them, trimmed; `None` when not logged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SoapFault {
    /// `SOAP Fault: 0x000190`.
    pub soap_fault: Option<String>,
    pub faultstring: Option<String>,
    /// `InternalServerError(5)`.
    pub error_code: Option<String>,
    pub message: Option<String>,
    /// `"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates"`, unquoted.
    pub method: Option<String>,
    /// The fault ID, lower case without braces: the key to the server's log entry.
    pub id: Option<String>,
}

impl SoapFault {
    fn is_empty(&self) -> bool {
        *self == SoapFault::default()
    }

    /// `ErrorCode:InternalServerError(5)`: the web service failed inside.
    fn internal_server_error(&self) -> Option<bool> {
        self.error_code
            .as_deref()
            .map(|c| c.starts_with("InternalServerError"))
    }

    /// The last part of `Method:"http://.../ClientWebService/SyncUpdates"`.
    fn method_name(&self) -> Option<&str> {
        self.method.as_deref().and_then(|m| m.rsplit('/').next())
    }
}

/// How much of KB 954960's failure a client text shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kb954960Pattern {
    /// The SyncUpdates failure line and its SOAP fault, agreeing: 0x8024400E, SOAP error code
    /// 400, `InternalServerError` for `SyncUpdates`.
    Complete,
    /// The exact failure line `SyncUpdates failure, error = 0x8024400E, soap client error = 7,
    /// soap error code = 400, HTTP status code = 200`; the fault lines that confirm it are not
    /// in the text.
    FaultLinesMissing,
    /// The fault (`ErrorCode:InternalServerError`, `Method:".../SyncUpdates"`); the failure line
    /// before it is not in the text.
    FailureLineMissing,
}

impl SoapFailure {
    /// True when this is KB 954960's failure in full: `SyncUpdates` failed with 0x8024400E and
    /// SOAP error code 400, and the fault says `InternalServerError` for the `SyncUpdates` method.
    pub fn is_kb954960(&self) -> bool {
        self.kb954960() == Some(Kb954960Pattern::Complete)
    }

    /// How much of KB 954960's failure this shows, or `None` when it shows another failure
    /// (another code, call, SOAP error or fault) or too little to tell.
    pub fn kb954960(&self) -> Option<Kb954960Pattern> {
        let internal = self.fault.internal_server_error();
        let method = self.fault.method_name();
        if internal == Some(false) || method.is_some_and(|m| m != "SyncUpdates") {
            return None;
        }
        let Some(operation) = self.operation.as_deref() else {
            // The fault without its failure line: it must say both what and where.
            return (internal == Some(true) && method == Some("SyncUpdates"))
                .then_some(Kb954960Pattern::FailureLineMissing);
        };
        let agrees = |field: Option<u32>, value: u32| field.is_none_or(|f| f == value);
        if operation != "SyncUpdates"
            || self.code != Some(hresult::SOAP_SERVER)
            || !agrees(self.soap_error_code, 400)
            || !agrees(self.soap_client_error, 7)
            || !agrees(self.http_status, 200)
        {
            return None;
        }
        if internal == Some(true) {
            return Some(Kb954960Pattern::Complete);
        }
        // Without the fault, only the exact line counts: the SOAP fields all said.
        let exact = self.soap_client_error == Some(7) && self.soap_error_code == Some(400);
        (exact && self.fault.error_code.is_none()).then_some(Kb954960Pattern::FaultLinesMissing)
    }
}

/// Reads the events of `records`, in order. SOAP fault lines are folded into the
/// [`ClientEventKind::SoapFailure`] before them and yield no event of their own; fault lines
/// without a failure line before them make a [`SoapFailure`] of their own.
pub fn events(records: &[WindowsUpdateRecord<'_>]) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    let mut folded = vec![false; records.len()];
    for (index, record) in records.iter().enumerate() {
        if folded[index] {
            continue;
        }
        let text = record.full_text();
        let text = text.trim();
        let kind = if let Some(mut failure) = soap_failure_line(text) {
            failure.lines.push(record.line);
            fold_fault_lines(records, index + 1, record, &mut failure, &mut folded);
            Some(ClientEventKind::SoapFailure(failure))
        } else if fault_field(text).is_some() {
            let mut failure = SoapFailure::default();
            fold_fault_lines(records, index, record, &mut failure, &mut folded);
            (!failure.fault.is_empty()).then_some(ClientEventKind::SoapFailure(failure))
        } else {
            classify(text)
        };
        if let Some(kind) = kind {
            events.push(ClientEvent {
                line: record.line,
                record: index,
                kind,
            });
        }
    }
    events
}

/// Every event but a SOAP failure, from one record's trimmed text.
fn classify(text: &str) -> Option<ClientEventKind> {
    if text.contains("Logging initialized") {
        let build = logging_initialized_build(text).map(str::to_string);
        return Some(ClientEventKind::LoggingInitialized { build });
    }
    if text.contains("Triggering AU detection through DetectNow API") {
        return Some(ClientEventKind::DetectNowRequested);
    }
    if text.contains("Triggering Online detection (non-interactive)") {
        return Some(ClientEventKind::DetectionTriggered { interactive: false });
    }
    if text.contains("Triggering Online detection (interactive)") {
        return Some(ClientEventKind::DetectionTriggered { interactive: true });
    }
    if text.contains("Can not perform non-interactive scan") {
        return Some(ClientEventKind::NonInteractiveScanRefused);
    }
    if let Some(started) = other_operation(text) {
        return Some(ClientEventKind::OtherOperation { started });
    }
    if let Some((before, after)) = text.split_once("Agent: Finding updates") {
        let caller = caller_id(after);
        // `**  END  **`; a copy may lose the spaces (`** END **`).
        return Some(if before.contains("END") {
            ClientEventKind::SearchEnded { caller }
        } else {
            ClientEventKind::SearchStarted { caller }
        });
    }
    if text.contains("PT: Synchronizing server updates") {
        return Some(ClientEventKind::SyncStarted);
    }
    if let Some(server) = sync_server(text) {
        return Some(server);
    }
    if let Some(found) = found_in_search(text) {
        return Some(found);
    }
    // Failure codes come on warnings; most records are not, and need no scan for a code.
    if !(text.contains("WARNING:") || text.contains("FATAL:")) {
        return None;
    }
    let code = HResult::find_failure(text)?;
    if code == hresult::AU_NOSERVICE || text.contains("Unable to trigger Automatic Updates") {
        return Some(ClientEventKind::DetectNowRejected { code });
    }
    Some(ClientEventKind::Failure {
        code,
        form: FailureForm::of(text),
    })
}

/// `** START **  Agent: Installing updates` (true) or `**  END  **  Service: Service exit`
/// (false): the banner of an operation that is not a search.
fn other_operation(text: &str) -> Option<bool> {
    let (started, rest) = if let Some(rest) = text.strip_prefix("** START **") {
        (true, rest)
    } else {
        let rest = text.strip_prefix("**")?.trim_start().strip_prefix("END")?;
        (false, rest.trim_start().strip_prefix("**")?)
    };
    let (_, name) = rest.trim_start().split_once(": ")?;
    (!name.starts_with("Finding updates")).then_some(started)
}

/// `[CallerId = AutomaticUpdates]`.
fn caller_id(s: &str) -> Option<String> {
    let rest = &s[s.find("CallerId =")? + "CallerId =".len()..];
    let caller = rest.split([']', ' ']).find(|w| !w.is_empty())?.trim();
    Some(caller.to_string()).filter(|c| !c.is_empty())
}

/// `+ ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://...`.
fn sync_server(text: &str) -> Option<ClientEventKind> {
    let rest = text.strip_prefix('+')?.trim_start();
    let rest = rest.strip_prefix("ServiceId =")?.trim_start();
    let (service_id, rest) = rest.split_once(',')?;
    let url = rest.trim_start().strip_prefix("Server URL =")?.trim();
    Some(ClientEventKind::SyncServer {
        service_id: service_id
            .trim()
            .trim_matches(['{', '}'])
            .to_ascii_uppercase(),
        url: url.to_string(),
    })
}

/// `* Found 3 updates and 71 categories in search[; evaluated appl. rules of ...]`.
fn found_in_search(text: &str) -> Option<ClientEventKind> {
    let rest = &text[text.find("Found ")? + "Found ".len()..];
    let (updates, rest) = rest.split_once(" updates and ")?;
    let (categories, rest) = rest.split_once(" categories in search")?;
    // A paste may continue the line with prose: a word boundary is enough.
    if !(rest.is_empty() || rest.starts_with([';', ' ', '\t'])) {
        return None;
    }
    Some(ClientEventKind::SearchSucceeded {
        updates: updates.trim().parse().ok()?,
        categories: categories.trim().parse().ok()?,
    })
}

/// `WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200`.
/// A paste may have dropped the `WARNING:` too.
fn soap_failure_line(text: &str) -> Option<SoapFailure> {
    let rest = text.strip_prefix("WARNING:").unwrap_or(text).trim_start();
    let (operation, rest) = rest.split_once(" failure, error = ")?;
    if operation.is_empty() || operation.contains(' ') {
        return None;
    }
    let mut failure = SoapFailure {
        operation: Some(operation.to_string()),
        code: HResult::parse(rest.split([',', ' ']).next()?.trim()),
        ..SoapFailure::default()
    };
    for part in rest.split(',').skip(1) {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        // The number alone: a paste may run other text onto the last field.
        let value = value
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|v| v.parse().ok());
        match name.trim() {
            "soap client error" => failure.soap_client_error = value,
            "soap error code" => failure.soap_error_code = value,
            "HTTP status code" => failure.http_status = value,
            _ => {}
        }
    }
    Some(failure)
}

/// The fields of a SOAP fault record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultField {
    SoapFault,
    Faultstring,
    ErrorCode,
    Message,
    Method,
    Id,
}

/// The fault field a record's text holds, and its value.
fn fault_field(text: &str) -> Option<(FaultField, &str)> {
    let field = text.strip_prefix("WARNING:")?.trim_start();
    const FIELDS: [(&str, FaultField); 6] = [
        ("SOAP Fault:", FaultField::SoapFault),
        ("faultstring:", FaultField::Faultstring),
        ("ErrorCode:", FaultField::ErrorCode),
        ("Message:", FaultField::Message),
        ("Method:", FaultField::Method),
        ("ID:", FaultField::Id),
    ];
    FIELDS
        .iter()
        .find_map(|(name, f)| field.strip_prefix(name).map(|v| (*f, v.trim())))
}

/// How many records after a SOAP failure are searched for its fault lines. The agent writes them
/// right after the failure; other threads may interleave a few records.
const FAULT_LOOKAHEAD: usize = 64;

/// Folds the SOAP fault records from `from` on that follow `first` on the same thread into
/// `failure`. Records of other threads may interleave; the first other record of the same
/// thread ends the fault, as does a field seen twice (a second fault).
fn fold_fault_lines(
    records: &[WindowsUpdateRecord<'_>],
    from: usize,
    first: &WindowsUpdateRecord<'_>,
    failure: &mut SoapFailure,
    folded: &mut [bool],
) {
    let window = records.iter().enumerate().skip(from).take(FAULT_LOOKAHEAD);
    for (later, record) in window {
        if !record.same_thread(first) {
            continue;
        }
        let text = record.full_text();
        let Some((field, value)) = fault_field(text.trim()) else {
            break;
        };
        let fault = &mut failure.fault;
        let target = match field {
            FaultField::SoapFault => &mut fault.soap_fault,
            FaultField::Faultstring => &mut fault.faultstring,
            FaultField::ErrorCode => &mut fault.error_code,
            FaultField::Message => &mut fault.message,
            FaultField::Method => &mut fault.method,
            FaultField::Id => &mut fault.id,
        };
        if target.is_some() {
            break;
        }
        *target = Some(match field {
            // One token each; a paste may run prose onto the line.
            FaultField::SoapFault | FaultField::ErrorCode | FaultField::Id => {
                value.split_whitespace().next().unwrap_or("").to_string()
            }
            // A quoted URL, which a copy may have wrapped (spaces are no part of it).
            FaultField::Method => match value.strip_prefix('"').and_then(|v| v.split_once('"')) {
                Some((url, _)) => url.split_whitespace().collect(),
                None => value.split_whitespace().next().unwrap_or("").to_string(),
            },
            FaultField::Faultstring | FaultField::Message => value.trim_matches('"').to_string(),
        });
        failure.lines.push(record.line);
        folded[later] = true;
    }
    failure.fault.id = failure.fault.id.as_deref().and_then(fault_id);
}

/// A fault ID in the form used to match client and server: lower case, no braces.
pub fn normalize_fault_id(id: &str) -> String {
    id.trim().trim_matches(['{', '}']).to_ascii_lowercase()
}

/// The fault ID in `text` when it is a GUID (`c0a7445f-b989-43fa-ac20-11f8ca65fa8c`, with or
/// without braces, any case), normalised; `None` for a placeholder such as `<fault id>`.
pub fn fault_id(text: &str) -> Option<String> {
    let id = normalize_fault_id(text);
    let dashes_at = [8, 13, 18, 23];
    let guid = id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if dashes_at.contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let bare = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (guid || bare).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::logs::windowsupdate;

    fn kinds(text: &str) -> Vec<(usize, ClientEventKind)> {
        let records = windowsupdate::parse(text);
        events(&records)
            .into_iter()
            .map(|e| (e.line, e.kind))
            .collect()
    }

    const KB954960: &str = "\
2009-03-27 11:55:29:115 1044 afc PT +++++++++++  PT: Synchronizing server updates  +++++++++++
2009-03-27 11:55:29:115 1044 afc PT   + ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://wsus01/ClientWebService/client.asmx
2009-03-27 11:55:29:193 1044 afc PT WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200
2009-03-27 11:55:29:193 1044 c04 AU AU received policy change subscription event
2009-03-27 11:55:29:193 1044 afc PT WARNING: SOAP Fault: 0x000190
2009-03-27 11:55:29:193 1044 afc PT WARNING:     faultstring:Fault occurred
2009-03-27 11:55:29:193 1044 afc PT WARNING:     ErrorCode:InternalServerError(5)
2009-03-27 11:55:29:193 1044 afc PT WARNING:     Message:(null)
2009-03-27 11:55:29:193 1044 afc PT WARNING:     Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates\"
2009-03-27 11:55:29:193 1044 afc PT WARNING:     ID:C0A7445F-B989-43FA-AC20-11F8CA65FA8C
2009-03-27 11:55:29:209 1044 afc PT WARNING: PTError: 0x8024400e
";

    #[test]
    fn reads_the_kb954960_failure_with_its_fault() {
        let events = kinds(KB954960);
        assert_eq!(events[0], (1, ClientEventKind::SyncStarted));
        assert_eq!(
            events[1],
            (
                2,
                ClientEventKind::SyncServer {
                    service_id: "3DA21691-E39D-4DA6-8A4B-B43877BCB1B7".into(),
                    url: "http://wsus01/ClientWebService/client.asmx".into(),
                }
            )
        );
        let ClientEventKind::SoapFailure(failure) = &events[2].1 else {
            panic!("expected a SOAP failure, got {:?}", events[2]);
        };
        assert!(failure.is_kb954960());
        assert_eq!(failure.code, Some(hresult::SOAP_SERVER));
        assert_eq!(failure.soap_client_error, Some(7));
        assert_eq!(failure.http_status, Some(200));
        assert_eq!(failure.lines, vec![3, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            failure.fault.id.as_deref(),
            Some("c0a7445f-b989-43fa-ac20-11f8ca65fa8c")
        );
        assert_eq!(failure.fault.message.as_deref(), Some("(null)"));
        assert_eq!(
            events[3],
            (
                11,
                ClientEventKind::Failure {
                    code: hresult::SOAP_SERVER,
                    form: FailureForm::Search
                }
            )
        );
        assert_eq!(events.len(), 4, "fault lines yield no events of their own");
    }

    fn failure_with(replace: &str, by: &str) -> SoapFailure {
        let text = KB954960.replace(replace, by);
        let records = windowsupdate::parse(&text);
        events(&records)
            .into_iter()
            .find_map(|e| match e.kind {
                ClientEventKind::SoapFailure(f) => Some(f),
                _ => None,
            })
            .expect("a SOAP failure")
    }

    #[test]
    fn similar_failures_are_not_kb954960() {
        for (replace, by) in [
            ("error = 0x8024400E", "error = 0x8024400D"),
            ("soap error code = 400", "soap error code = 300"),
            ("InternalServerError(5)", "InvalidParameters(7)"),
            (
                "ClientWebService/SyncUpdates",
                "ClientWebService/GetExtendedUpdateInfo",
            ),
            ("WARNING: SyncUpdates failure", "WARNING: GetCookie failure"),
            ("ErrorCode:", "ErrorKode:"),
        ] {
            assert!(!failure_with(replace, by).is_kb954960(), "{by}");
        }
        assert!(failure_with("", "").is_kb954960());
    }

    fn pattern(text: &str) -> Vec<Option<Kb954960Pattern>> {
        let records = windowsupdate::parse(text);
        events(&records)
            .into_iter()
            .filter_map(|e| match e.kind {
                ClientEventKind::SoapFailure(f) => Some(f.kb954960()),
                _ => None,
            })
            .collect()
    }

    fn lines_of(texts: &[&str]) -> String {
        texts
            .iter()
            .map(|t| format!("2009-03-27 11:55:29:193 1044 afc PT {t}\n"))
            .collect()
    }

    #[test]
    fn how_much_of_the_pattern_a_text_shows() {
        const LINE: &str = "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200";
        assert_eq!(pattern(KB954960), vec![Some(Kb954960Pattern::Complete)]);
        assert_eq!(
            pattern(&lines_of(&[LINE])),
            vec![Some(Kb954960Pattern::FaultLinesMissing)]
        );
        assert_eq!(
            pattern(&lines_of(&[
                LINE,
                "WARNING: SOAP Fault: 0x000190",
                "WARNING: ErrorCode:InternalServerError(5)"
            ])),
            vec![Some(Kb954960Pattern::Complete)],
            "the Method line cut off"
        );
        assert_eq!(
            pattern(&lines_of(&[
                "WARNING: ErrorCode:InternalServerError(5)",
                "WARNING: Message:(null)",
                "WARNING: Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates\"",
                "WARNING: ID:c0a7445f-b989-43fa-ac20-11f8ca65fa8c",
            ])),
            vec![Some(Kb954960Pattern::FailureLineMissing)]
        );
        for not_it in [
            // A near code, another SOAP error, another call.
            lines_of(&[
                "WARNING: SyncUpdates failure, error = 0x8024000E, soap client error = 7, soap error code = 400, HTTP status code = 200",
            ]),
            lines_of(&[
                "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 300, HTTP status code = 200",
            ]),
            lines_of(&[
                "WARNING: GetExtendedUpdateInfo failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200",
            ]),
            // A partial line without the fault: not the exact line.
            lines_of(&["WARNING: SyncUpdates failure, error = 0x8024400E"]),
            // Another fault after the exact line.
            lines_of(&[LINE, "WARNING: ErrorCode:InvalidParameters(7)"]),
            lines_of(&[
                LINE,
                "WARNING: Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/GetCookie\"",
            ]),
            // The fault alone, but not saying both what and where.
            lines_of(&[
                "WARNING: ErrorCode:InternalServerError(5)",
                "WARNING: Message:(null)",
            ]),
            lines_of(&[
                "WARNING: ErrorCode:InvalidParameters(7)",
                "WARNING: Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates\"",
            ]),
            lines_of(&[
                "WARNING: ErrorCode:InternalServerError(5)",
                "WARNING: Method:\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/GetExtendedUpdateInfo\"",
            ]),
        ] {
            assert!(pattern(&not_it).iter().all(Option::is_none), "{not_it}");
        }
    }

    #[test]
    fn fault_values_are_read_when_prose_follows() {
        let text = lines_of(&[
            "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200 and more",
            "WARNING: ErrorCode:InternalServerError(5) as the article shows",
            "WARNING: ID:{C0A7445F-B989-43FA-AC20-11F8CA65FA8C} Tato zpráva je do protokolu zaznamenána",
        ]);
        let records = windowsupdate::parse(&text);
        let ClientEventKind::SoapFailure(f) = &events(&records)[0].kind else {
            panic!("a SOAP failure");
        };
        assert_eq!(f.http_status, Some(200));
        assert_eq!(
            f.fault.error_code.as_deref(),
            Some("InternalServerError(5)")
        );
        assert_eq!(
            f.fault.id.as_deref(),
            Some("c0a7445f-b989-43fa-ac20-11f8ca65fa8c")
        );
        assert!(f.is_kb954960());
    }

    #[test]
    fn fault_ids_are_guids() {
        assert_eq!(
            fault_id("{C0A7445F-B989-43FA-AC20-11F8CA65FA8C}").as_deref(),
            Some("c0a7445f-b989-43fa-ac20-11f8ca65fa8c")
        );
        for placeholder in ["<fault id>", "<fault", "GUID", "c0a7445f", ""] {
            assert_eq!(fault_id(placeholder), None, "{placeholder}");
        }
    }

    #[test]
    fn failure_forms() {
        for (text, form) in [
            ("* WARNING: Exit code = 0x80244010", FailureForm::ExitCode),
            (
                "* WARNING: Failed to synchronize, error = 0x80244010",
                FailureForm::Search,
            ),
            ("WARNING: Sync of Updates: 0x80244010", FailureForm::Search),
            ("WARNING: PTError: 0x8024400e", FailureForm::Search),
            (
                "WARNING: SyncUpdates_WithRecovery failed.: 0x80072ee2",
                FailureForm::Search,
            ),
            (
                "WARNING: WU client failed Searching for update with error 0x8024400e",
                FailureForm::SearchReported,
            ),
            (
                "# WARNING: Failed to find updates with error code 8024400E",
                FailureForm::SearchReported,
            ),
            (
                "WARNING: Send failed with hr = 80072ee2.",
                FailureForm::Transport,
            ),
            (
                "WARNING: WinHttp: SendRequestUsingProxy failed for <http://w/>. error 0x80190197",
                FailureForm::Transport,
            ),
            (
                "WARNING: Failed to upload events to the server with hr = 80244008",
                FailureForm::Other,
            ),
        ] {
            assert_eq!(FailureForm::of(text), form, "{text}");
        }
    }

    #[test]
    fn detection_markers() {
        let text = "\
2009-03-27\t11:55:20:100\t1044\tc04\tAU\tTriggering AU detection through DetectNow API
2009-03-27\t11:55:20:100\t1044\tc04\tAU\tTriggering Online detection (interactive)
2009-03-27\t11:55:28:810\t1044\tafc\tAgent\t** START **  Agent: Finding updates [CallerId = AutomaticUpdates]
2009-03-27\t11:55:31:000\t1044\tafc\tAgent\t  * Found 3 updates and 71 categories in search; evaluated appl. rules of 1651 out of 2884 deployed entities
2009-03-27\t11:55:31:000\t1044\tafc\tAgent\t**  END  **  Agent: Finding updates [CallerId = AutomaticUpdates]
2009-03-27\t11:55:31:000\t1044\tafc\tAgent\t  * WARNING: Exit code = 0x80244010
2009-03-27\t11:56:00:000\t1044\tc04\tAU\tCan not perform non-interactive scan if AU is interactive-only
2009-03-27\t11:56:00:000\t1044\t7f0\tCOMAPI\tWARNING: Unable to trigger Automatic Updates to detect now, hr=8024A000
2009-03-27\t11:56:00:000\t1044\t7f0\tCOMAPI\tWARNING: Exit code = 0x00000000
";
        let caller = Some("AutomaticUpdates".to_string());
        assert_eq!(
            kinds(text),
            vec![
                (1, ClientEventKind::DetectNowRequested),
                (2, ClientEventKind::DetectionTriggered { interactive: true }),
                (
                    3,
                    ClientEventKind::SearchStarted {
                        caller: caller.clone()
                    }
                ),
                (
                    4,
                    ClientEventKind::SearchSucceeded {
                        updates: 3,
                        categories: 71
                    }
                ),
                (5, ClientEventKind::SearchEnded { caller }),
                (
                    6,
                    ClientEventKind::Failure {
                        code: HResult(0x80244010),
                        form: FailureForm::ExitCode
                    }
                ),
                (7, ClientEventKind::NonInteractiveScanRefused),
                (
                    8,
                    ClientEventKind::DetectNowRejected {
                        code: hresult::AU_NOSERVICE
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_found_line_must_end_or_carry_the_wua7_suffix() {
        assert_eq!(
            found_in_search("* Found 1 updates and 2 categories in search"),
            Some(ClientEventKind::SearchSucceeded {
                updates: 1,
                categories: 2
            })
        );
        assert_eq!(
            found_in_search("* Found 1 updates and 2 categories in searchlight"),
            None
        );
        assert!(
            found_in_search("* Found 1 updates and 2 categories in search Tato zpráva").is_some()
        );
        assert_eq!(
            found_in_search("* Found many updates and 2 categories in search"),
            None
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::core::logs::windowsupdate;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_record_texts(
            texts in proptest::collection::vec(
                prop_oneof![
                    any::<String>(),
                    "(WARNING: )?[A-Za-z]{0,12} failure, error = [0-9a-fx]{0,10}(, [a-zA-Z ]{0,20} = [0-9]{0,4}){0,4}",
                    "WARNING: {0,4}(SOAP Fault|faultstring|ErrorCode|Message|Method|ID):[ -~]{0,20}",
                    "[ *+]{0,4}(Found [0-9a-z ]{0,6} updates and [0-9]{0,3} categories in search[; a-z]{0,8}|Agent: Finding updates \\[CallerId =[ -~]{0,8}|ServiceId =[ -~]{0,20})",
                    "[ -~]{0,10}(hr ?= ?|0x|error code )[0-9a-fA-F]{0,10}[ -~]{0,4}",
                ],
                0..30,
            ),
        ) {
            let text: String = texts
                .iter()
                .map(|t| format!("2009-03-27\t11:55:29:193\t1044\tafc\tPT\t{t}\n"))
                .collect();
            let records = windowsupdate::parse(&text);
            let events = events(&records);
            prop_assert!(events.windows(2).all(|w| w[0].line < w[1].line));
        }
    }
}
