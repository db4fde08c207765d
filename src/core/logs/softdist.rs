//! Records of the WSUS server's `SoftwareDistribution.log`
//! (`%ProgramFiles%\Update Services\LogFiles\`).
//!
//! A record is `YYYY-MM-DD HH:MM:SS.mmm UTC <Level> <process>.<thread> <Class>.<Method> <message>`,
//! fields separated by tabs in real files and by spaces in copies. Exception stack traces follow
//! on lines without that prefix; they continue the record before them. Times are UTC.
//!
//! [`parse`] reads a whole file that way; [`read_pasted`] reads what a paste made of it
//! (`Date Time UTC Error w3wp.12 ...`, `<DATE> <TIME> UTC Error w3wp.130 ...`, a message alone,
//! several records on one line; see [`super::paste`]).

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};

use super::line::{Line, is_digits, next_field, numbered, tokens};
use super::paste::{Form, Forms, PastedLine, PastedRead};
use super::windowsupdate::{is_placeholder_only, parse_date};

/// The level column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Change,
    Warning,
    Error,
    /// Any other word.
    Other,
    /// A paste dropped the column.
    Unknown,
}

impl Level {
    fn parse(s: &str) -> Level {
        match s {
            "Info" => Level::Info,
            "Change" => Level::Change,
            "Warning" => Level::Warning,
            "Error" => Level::Error,
            _ => Level::Other,
        }
    }

    /// The levels the log writes; a paste is read only with one of these.
    fn known(s: &str) -> Option<Level> {
        Some(Level::parse(s)).filter(|l| *l != Level::Other)
    }
}

/// One record of `SoftwareDistribution.log`, borrowing from the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDistRecord<'a> {
    /// 1-based number of the record's first line.
    pub line: usize,
    /// The record's first line as written. Records that a page ran together share it.
    pub raw: &'a str,
    /// `None` when a paste replaced or dropped the date and time.
    pub time: Option<DateTime<Utc>>,
    pub level: Level,
    /// `w3wp.12`: the process name and the managed thread id, as written; empty when not given.
    pub source: &'a str,
    /// `ClientImplementation.SyncUpdates`: class and method, as written (may be empty).
    pub origin: &'a str,
    /// The rest of the first line.
    pub message: &'a str,
    /// Following lines without a record prefix, such as a stack trace (blank lines skipped).
    pub continuation: Vec<Line<'a>>,
    /// How a paste made this record differ from a whole file's (empty for a whole file).
    pub forms: Forms,
}

impl SoftDistRecord<'_> {
    /// `w3wp` in `w3wp.12`.
    pub fn process(&self) -> &str {
        self.source
            .rsplit_once('.')
            .map_or(self.source, |(process, _)| process)
    }

    /// `ClientImplementation` in `ClientImplementation.SyncUpdates`.
    pub fn class(&self) -> &str {
        self.origin
            .rsplit_once('.')
            .map_or(self.origin, |(class, _)| class)
    }

    /// `SyncUpdates` in `ClientImplementation.SyncUpdates`.
    pub fn method(&self) -> &str {
        self.origin
            .rsplit_once('.')
            .map_or("", |(_, method)| method)
    }

    /// The exception's text: the message and the lines after it up to the first stack frame
    /// (a message that a copy wrapped), joined by spaces.
    pub fn exception_text(&self) -> Cow<'_, str> {
        let wrapped: Vec<&str> = self
            .continuation
            .iter()
            .map(|l| l.text.trim())
            .take_while(|t| !is_stack_frame(t) && !is_stripped_header(t))
            .collect();
        if wrapped.is_empty() {
            return Cow::Borrowed(self.message);
        }
        let mut text = self.message.trim_end().to_string();
        for part in wrapped {
            text.push(' ');
            text.push_str(part);
        }
        Cow::Owned(text)
    }

    /// The frames of the record's own stack trace (`Microsoft.UpdateServices...GetSyncInfo(...)`):
    /// those a page ran onto the message line, then the `at ...` lines after it. The trace
    /// ends at the first other line after a frame: frames after that belong to another
    /// exception whose first line lost its prefix in a paste.
    pub fn stack_frames(&self) -> Vec<&str> {
        let mut frames = Vec::new();
        if let Some((_, ran_on)) = self.message.split_once(" at ")
            && !push_frames(ran_on, &mut frames)
        {
            return frames;
        }
        let mut in_trace = !frames.is_empty();
        for line in &self.continuation {
            let text = line.text.trim();
            if let Some(frame) = text.strip_prefix("at ") {
                in_trace = true;
                if !push_frames(frame, &mut frames) {
                    break;
                }
            } else if text.starts_with("---") {
                in_trace = true;
            } else if in_trace || is_stripped_header(text) {
                break;
            }
        }
        frames
    }
}

/// Parses every record of a `SoftwareDistribution.log` text, strictly: a record starts with the
/// full prefix. Lines before the first record belong to no record and are dropped.
pub fn parse(text: &str) -> Vec<SoftDistRecord<'_>> {
    let mut records: Vec<SoftDistRecord<'_>> = Vec::new();
    for line in numbered(text) {
        match parse_line(line) {
            Some(record) => records.push(record),
            None if line.text.trim().is_empty() => {}
            None => {
                if let Some(last) = records.last_mut() {
                    last.continuation.push(line);
                }
            }
        }
    }
    records
}

/// The record starting on `line`, or `None` when the line has no record prefix.
pub(crate) fn parse_line(line: Line<'_>) -> Option<SoftDistRecord<'_>> {
    if !line.text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (date, rest) = next_field(line.text)?;
    let (time, rest) = next_field(rest)?;
    let (utc, rest) = next_field(rest)?;
    let (level, rest) = next_field(rest)?;
    let (source, rest) = next_field(rest)?;
    if utc != "UTC" {
        return None;
    }
    let time = NaiveDateTime::new(parse_date(date)?, parse_time(time)?).and_utc();
    let (origin, message) = next_field(rest).unwrap_or(("", ""));
    Some(SoftDistRecord {
        line: line.number,
        raw: line.text,
        time: Some(time),
        level: Level::parse(level),
        source,
        origin,
        message: message.trim_start_matches([' ', '\t']),
        continuation: Vec::new(),
        forms: Forms::NONE,
    })
}

/// `w3wp.12`, `WsusService.21`: a process name, a dot, a thread number. A copy that lost the
/// space after it (`w3wp.130DBConnection.LogSqlException`) still has one at its start; the
/// length of that part is returned.
fn source_len(token: &str) -> Option<usize> {
    let (process, rest) = token.split_once('.')?;
    if process.is_empty()
        || !process
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then_some(process.len() + 1 + digits)
}

/// `UTC Level source` at token `i`.
fn is_utc_triple(toks: &[(usize, &str)], i: usize) -> bool {
    matches!(
        (toks.get(i), toks.get(i + 1), toks.get(i + 2)),
        (Some((_, "UTC")), Some((_, level)), Some((_, source)))
            if Level::known(level).is_some() && source_len(source).is_some()
    )
}

/// True when a line of the whole-file form holds a second record's full prefix: a page ran
/// records together.
pub(crate) fn runs_together(text: &str) -> bool {
    let toks = tokens(text);
    (3..toks.len().saturating_sub(4)).any(|i| {
        parse_date(toks[i].1).is_some()
            && parse_time(toks[i + 1].1).is_some()
            && is_utc_triple(&toks, i + 2)
    })
}

/// The most placeholder words seen before `UTC Level source`.
const MAX_PLACEHOLDER_WORDS: usize = 4;

/// A record's head as a paste left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LooseHead<'a> {
    time: Option<DateTime<Utc>>,
    level: Level,
    source: &'a str,
    origin: &'a str,
    message: &'a str,
    forms: Forms,
}

/// Splits what follows the source: the origin (`Class.Method`) and the message.
fn origin_and_message(rest: &str) -> (&str, &str) {
    let (origin, message) = next_field(rest).unwrap_or(("", ""));
    (origin, message.trim_start_matches([' ', '\t']))
}

/// Reads the head of a segment that starts a record in a paste.
fn loose_head(segment: &str) -> Option<LooseHead<'_>> {
    let line = Line {
        number: 0,
        text: segment,
    };
    if let Some(r) = parse_line(line) {
        return Some(LooseHead {
            time: r.time,
            level: r.level,
            source: r.source,
            origin: r.origin,
            message: r.message,
            forms: Forms::NONE,
        });
    }
    let toks = tokens(segment);
    let utc = (0..=MAX_PLACEHOLDER_WORDS.min(toks.len())).find(|&i| {
        is_utc_triple(&toks, i) && toks[..i].iter().all(|(_, w)| is_placeholder_word(w))
    });
    // `Date Time UTC Error w3wp.12 ...`, `UTC Error w3wp.12 ...`, `Error w3wp.12 ...`.
    let (level_at, form) = match utc {
        Some(0) => (1, Form::NoTime),
        Some(i) => (i + 1, Form::PlaceholderTime),
        None if toks.len() > 2
            && Level::known(toks[0].1).is_some()
            && source_len(toks[1].1).is_some() =>
        {
            (0, Form::NoTime)
        }
        None => return message_head(segment),
    };
    let (source_at, source_token) = toks[level_at + 1];
    let source_end = source_at + source_len(source_token)?;
    let (origin, message) = origin_and_message(&segment[source_end..]);
    Some(LooseHead {
        time: None,
        level: Level::parse(toks[level_at].1),
        source: &segment[source_at..source_end],
        origin,
        message,
        forms: Forms::of(form),
    })
}

/// A message without its prefix: an exception, a `ThrowException:` fault, or either after its
/// origin (`ClientImplementation.SyncUpdates System.ArgumentException: ...`).
fn message_head(segment: &str) -> Option<LooseHead<'_>> {
    let text = segment.trim();
    let (first, rest) = next_field(text)?;
    let is_origin = first.contains('.')
        && !first.ends_with(':')
        && first.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    let (origin, message) = if is_origin && is_message_start(rest.trim_start()) {
        (first, rest.trim_start())
    } else if is_message_start(text) {
        ("", text)
    } else {
        return None;
    };
    Some(LooseHead {
        time: None,
        level: Level::Unknown,
        source: "",
        origin,
        message,
        forms: Forms::of(Form::NoPrefix),
    })
}

/// How the messages that matter here begin.
fn is_message_start(text: &str) -> bool {
    (text.starts_with("System.")
        && text
            .split(' ')
            .next()
            .is_some_and(|w| w.ends_with("Exception:")))
        || text.starts_with("ThrowException:")
}

fn is_placeholder_word(word: &str) -> bool {
    word.chars().count() <= 24 && !word.contains(['=', ',', ';', '(', ')', '{', '}'])
}

/// The words in place of the date and time before `UTC`, and their first appearance.
fn learn_placeholder(lines: &[PastedLine<'_>]) -> Option<(Vec<String>, String)> {
    let mut seen: HashMap<Vec<String>, (usize, usize, String)> = HashMap::new();
    for (order, line) in lines.iter().enumerate() {
        let text: &str = &line.text;
        let toks = tokens(text);
        let Some(i) =
            (1..=MAX_PLACEHOLDER_WORDS.min(toks.len())).find(|&i| is_utc_triple(&toks, i))
        else {
            continue;
        };
        if parse_date(toks[0].1).is_some() || !toks[..i].iter().all(|(_, w)| is_placeholder_word(w))
        {
            continue;
        }
        let words: Vec<String> = toks[..i].iter().map(|(_, w)| w.to_lowercase()).collect();
        let written = text[toks[0].0..toks[i].0].trim().to_string();
        seen.entry(words)
            .and_modify(|(count, _, _)| *count += 1)
            .or_insert((1, order, written));
    }
    seen.into_iter()
        .max_by_key(|(_, (count, order, _))| (*count, std::cmp::Reverse(*order)))
        .map(|(words, (_, _, written))| (words, written))
}

/// Byte offsets in `text` where records start, ascending.
fn record_starts(text: &str, placeholder: Option<&[String]>) -> Vec<usize> {
    let toks = tokens(text);
    let mut starts = Vec::new();
    // The `UTC` of the line's own head, which is no second record.
    let mut own_utc = None;
    if let Some(&(first, _)) = toks.first()
        && loose_head(&text[first..]).is_some()
    {
        starts.push(first);
        own_utc = (0..=MAX_PLACEHOLDER_WORDS.min(toks.len())).find(|&i| {
            is_utc_triple(&toks, i) && toks[..i].iter().all(|(_, w)| is_placeholder_word(w))
        });
    }
    for i in 1..toks.len() {
        if Some(i) == own_utc {
            continue;
        }
        if toks.len() > i + 4
            && parse_date(toks[i].1).is_some()
            && parse_time(toks[i + 1].1).is_some()
            && is_utc_triple(&toks, i + 2)
        {
            starts.push(toks[i].0);
        } else if is_utc_triple(&toks, i) && parse_time(toks[i - 1].1).is_none() {
            // After the placeholder when the words before are the placeholder, else at `UTC`.
            let from = placeholder
                .filter(|words| !words.is_empty() && i >= words.len())
                .and_then(|words| {
                    let first = i - words.len();
                    toks[first..i]
                        .iter()
                        .zip(words)
                        .all(|((_, t), w)| t.to_lowercase() == *w)
                        .then_some(toks[first].0)
                });
            starts.push(from.unwrap_or(toks[i].0));
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Pushes the frames of `text` (`A.B(x) at C.D(y)`, the first `at ` already gone) onto
/// `frames`; false when other text follows a frame, which ends the trace.
fn push_frames<'a>(text: &'a str, frames: &mut Vec<&'a str>) -> bool {
    for part in text.split(" at ") {
        let part = part.trim();
        let Some(close) = part.find(')') else {
            // A frame cut off by the end of the line or of the paste.
            frames.push(part);
            return true;
        };
        frames.push(&part[..=close]);
        let after = part[close + 1..].trim();
        // `in c:\...\File.cs:line 42` belongs to the frame; anything else ends the trace.
        if !(after.is_empty() || after.starts_with("in ")) {
            return false;
        }
    }
    true
}

/// A record's origin and message without the rest of its prefix
/// (`DBConnection.LogSqlException DBLAYER: ...`): another record, whose prefix a paste stripped.
fn is_stripped_header(text: &str) -> bool {
    let Some((first, rest)) = text.split_once([' ', '\t']) else {
        return false;
    };
    !rest.trim().is_empty()
        && first.contains('.')
        && first.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A line of a .NET stack trace: `at Namespace.Class.Method(...)`, `--- End of inner exception
/// stack trace ---`.
fn is_stack_frame(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("at ") || text.starts_with("---")
}

/// Reads a pasted `SoftwareDistribution.log` excerpt leniently: besides the full prefix, a
/// record may start with placeholder words or nothing before `UTC Level source`, with the
/// level and source alone, or with its message alone (an exception, a `ThrowException:`
/// fault); records run together on one line are split. A line that starts no record (a stack
/// frame, a wrapped line) continues the record before it; [`SoftDistRecord::stack_frames`] keeps
/// the frames of an exception whose first line a paste stripped from reaching back to an
/// earlier one.
pub fn read_pasted<'a>(lines: &'a [PastedLine<'_>]) -> PastedRead<SoftDistRecord<'a>> {
    let learned = learn_placeholder(lines);
    let placeholder = learned.as_ref().map(|(words, _)| words.as_slice());
    let mut records: Vec<SoftDistRecord<'a>> = Vec::new();
    let mut lenient_lines = Vec::new();
    for line in lines {
        let text: &'a str = &line.text;
        let mut forms = line.forms;
        if text.trim().is_empty() {
            if !forms.is_empty() {
                lenient_lines.push((line.number, forms));
            }
            continue;
        }
        if is_placeholder_only(text) {
            lenient_lines.push((line.number, forms.with(Form::PlaceholderOnly)));
            continue;
        }
        let starts = record_starts(text, placeholder);
        let first = starts.first().copied().unwrap_or(text.len());
        let leading = text.len() - text.trim_start().len();
        let run_together = starts.len() > 1 || (first > leading && first < text.len());
        if run_together {
            forms.insert(Form::RunTogether);
        }
        let before = text[..first].trim();
        if !before.is_empty()
            && let Some(last) = records.last_mut()
        {
            last.continuation.push(Line {
                number: line.number,
                text: before,
            });
        }
        for (k, &start) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(text.len());
            let Some(head) = loose_head(text[start..end].trim_end()) else {
                continue;
            };
            // A header that a copy wrapped after its origin: this message is its own.
            if head.forms.contains(Form::NoPrefix)
                && k == 0
                && let Some(last) = records
                    .last_mut()
                    .filter(|r| r.message.is_empty() && r.continuation.is_empty())
            {
                last.message = head.message;
                if last.origin.is_empty() {
                    last.origin = head.origin;
                }
                continue;
            }
            forms = forms.union(head.forms);
            records.push(SoftDistRecord {
                line: line.number,
                raw: line.raw,
                time: head.time,
                level: head.level,
                source: head.source,
                origin: head.origin,
                message: head.message,
                continuation: Vec::new(),
                forms: line.forms.union(head.forms).union(if run_together {
                    Forms::of(Form::RunTogether)
                } else {
                    Forms::NONE
                }),
            });
        }
        if !forms.is_empty() {
            lenient_lines.push((line.number, forms));
        }
    }
    PastedRead {
        records,
        lenient_lines,
        placeholder: learned.map(|(_, written)| written),
    }
}

/// `HH:MM:SS.mmm` (one to seven fraction digits).
pub(crate) fn parse_time(s: &str) -> Option<NaiveTime> {
    let (hms, fraction) = s.split_once('.')?;
    if fraction.is_empty() || fraction.len() > 7 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let b = hms.as_bytes();
    if hms.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, sec) = (&hms[..2], &hms[3..5], &hms[6..]);
    if !(is_digits(h, 2) && is_digits(m, 2) && is_digits(sec, 2)) {
        return None;
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    NaiveTime::from_hms_nano_opt(h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "2009-03-27 09:55:29.178 UTC\tError\tw3wp.12\tClientImplementation.SyncUpdates\tSystem.ArgumentException: Item has already been added. Key in dictionary: '8862'  Key being added: '8862'\n\
   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)\n\
   at System.Collections.Hashtable.Add(Object key, Object value)\n\
\n\
2009-03-27 09:55:29.193 UTC Warning w3wp.12 SoapUtilities.CreateException ThrowException: actor = http://wsus01/ClientWebService/client.asmx, ID=c0a7445f-b989-43fa-ac20-11f8ca65fa8c, ErrorCode=InternalServerError, Message=, Client=?\n";

    #[test]
    fn parses_fields_and_attaches_the_stack_trace() {
        let records = parse(SAMPLE);
        assert_eq!(records.len(), 2);
        let error = &records[0];
        assert_eq!(error.line, 1);
        assert_eq!(error.level, Level::Error);
        assert_eq!(error.process(), "w3wp");
        assert_eq!(error.source, "w3wp.12");
        assert_eq!(error.class(), "ClientImplementation");
        assert_eq!(error.method(), "SyncUpdates");
        assert!(
            error
                .message
                .starts_with("System.ArgumentException: Item has")
        );
        assert_eq!(
            error.time.map(|t| t.to_rfc3339()).as_deref(),
            Some("2009-03-27T09:55:29.178+00:00")
        );
        let stack: Vec<_> = error.continuation.iter().map(|l| l.number).collect();
        assert_eq!(stack, vec![2, 3]);
        assert_eq!(records[1].line, 5);
        assert_eq!(records[1].level, Level::Warning);
        assert_eq!(records[1].origin, "SoapUtilities.CreateException");
    }

    #[test]
    fn does_not_read_client_or_windows_10_lines_as_records() {
        for text in [
            "2009-03-27\t11:55:29:193\t1044\tafc\tPT\tWARNING: SyncUpdates failure",
            "2019/05/14 10:31:12.4812345 1052  4404  ProtocolTalker  SyncUpdates",
            "2009-03-27 09:55:29.178 GMT Error w3wp.12 X.Y message",
            "   at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)",
        ] {
            assert_eq!(parse_line(Line { number: 1, text }), None, "{text}");
        }
    }

    #[test]
    fn a_record_may_lack_origin_and_message() {
        let records = parse("2014-01-16 18:53:54.231 UTC Info WsusService.15");
        assert_eq!(records[0].origin, "");
        assert_eq!(records[0].message, "");
        assert_eq!(records[0].method(), "");
    }

    /// Line, level, source, origin, message and forms of each record.
    type Read = (usize, Level, String, String, String, Vec<Form>);

    fn pasted(text: &str) -> Vec<Read> {
        let lines = crate::core::logs::paste::lines(text);
        read_pasted(&lines)
            .records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.level,
                    r.source.to_string(),
                    r.origin.to_string(),
                    r.message.to_string(),
                    r.forms.iter().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn placeholders_missing_times_and_glued_fields() {
        let got = pasted(
            "Datum a čas UTC Error w3wp.12 ClientImplementation.SyncUpdates System.ArgumentException: Item has already been added.\n\
             at System.Collections.Hashtable.Insert(Object key, Object nvalue, Boolean add)\n\
             řádky byly odebrány\n\
             Datum a čas UTC Warning w3wp.12 SoapUtilities.CreateException ThrowException: actor = x, ID=c0a7445f\n\
             <DATE>\n\
             <TIME>\n\
             UTC Error w3wp.130DBConnection.LogSqlExceptionDBLAYER: Errors[0]: Source .Net SqlClient Data Provider\n\
             <DATE> <TIME> UTC Error w3wp.130 DBConnection.LogSqlException DBLAYER: Errors[0]\n",
        );
        let short: Vec<(usize, Level, &str, &str, Vec<Form>)> = got
            .iter()
            .map(|r| (r.0, r.1, r.2.as_str(), r.3.as_str(), r.5.clone()))
            .collect();
        assert_eq!(
            short,
            vec![
                (
                    1,
                    Level::Error,
                    "w3wp.12",
                    "ClientImplementation.SyncUpdates",
                    vec![Form::PlaceholderTime]
                ),
                (
                    4,
                    Level::Warning,
                    "w3wp.12",
                    "SoapUtilities.CreateException",
                    vec![Form::PlaceholderTime]
                ),
                (
                    7,
                    Level::Error,
                    "w3wp.130",
                    "DBConnection.LogSqlExceptionDBLAYER:",
                    vec![Form::NoTime]
                ),
                (
                    8,
                    Level::Error,
                    "w3wp.130",
                    "DBConnection.LogSqlException",
                    vec![Form::PlaceholderTime]
                ),
            ]
        );
        assert!(got[1].4.starts_with("ThrowException: actor = x"));
    }

    #[test]
    fn messages_alone_and_records_run_together() {
        let got = pasted(
            "ClientImplementation.SyncUpdates System.ArgumentException: Item has already been added. at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(x) Date Time UTC Warning w3wp.12 SoapUtilities.CreateException ThrowException: ID=1\n\
             ThrowException: actor = http://wsus/ClientWebService/client.asmx, ID=2, ErrorCode=InternalServerError\n\
             Some prose about the log.\n",
        );
        let short: Vec<(usize, &str, &str, Vec<Form>)> = got
            .iter()
            .map(|r| (r.0, r.2.as_str(), r.3.as_str(), r.5.clone()))
            .collect();
        assert_eq!(
            short,
            vec![
                (
                    1,
                    "",
                    "ClientImplementation.SyncUpdates",
                    vec![Form::NoPrefix, Form::RunTogether]
                ),
                (
                    1,
                    "w3wp.12",
                    "SoapUtilities.CreateException",
                    vec![Form::NoTime, Form::RunTogether]
                ),
                (2, "", "", vec![Form::NoPrefix]),
            ]
        );
    }

    #[test]
    fn strict_lines_read_the_same_when_pasted() {
        let lines = crate::core::logs::paste::lines(SAMPLE);
        let read = read_pasted(&lines);
        assert_eq!(read.records, parse(SAMPLE));
        assert_eq!(read.lenient_lines, vec![]);
        assert_eq!(read.placeholder, None);
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_line_numbers_monotone(
            lines in proptest::collection::vec(
                prop_oneof![
                    any::<String>(),
                    ("20[0-9]{2}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\.[0-9]{1,8}",
                     "[ \t]UTC[ \t](Info|Error|Warning)[ \t]w3wp\\.[0-9]{1,3}[ \t]?",
                     "[ -~\t]{0,30}")
                        .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
                    "[ \t]+at [ -~]{0,20}",
                ],
                0..40,
            ),
        ) {
            let text = lines.join("\n");
            let records = parse(&text);
            let mut last = 0;
            for r in &records {
                prop_assert!(r.line > last);
                last = r.line;
                for c in &r.continuation {
                    prop_assert!(c.number > last);
                    last = c.number;
                }
            }
        }
    }
}
