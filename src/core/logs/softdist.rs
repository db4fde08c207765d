//! Records of the WSUS server's `SoftwareDistribution.log`
//! (`%ProgramFiles%\Update Services\LogFiles\`).
//!
//! A record is `YYYY-MM-DD HH:MM:SS.mmm UTC <Level> <process>.<thread> <Class>.<Method> <message>`,
//! fields separated by tabs in real files and by spaces in copies. Exception stack traces follow
//! on lines without that prefix; they continue the record before them. Times are UTC.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};

use super::line::{Line, is_digits, next_field, numbered};
use super::windowsupdate::parse_date;

/// The level column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level<'a> {
    Info,
    Change,
    Warning,
    Error,
    /// Any other word, as written.
    Other(&'a str),
}

impl<'a> Level<'a> {
    fn parse(s: &'a str) -> Level<'a> {
        match s {
            "Info" => Level::Info,
            "Change" => Level::Change,
            "Warning" => Level::Warning,
            "Error" => Level::Error,
            other => Level::Other(other),
        }
    }
}

/// One record of `SoftwareDistribution.log`, borrowing from the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDistRecord<'a> {
    /// 1-based number of the record's first line.
    pub line: usize,
    /// The record's first line as written.
    pub raw: &'a str,
    pub time: DateTime<Utc>,
    pub level: Level<'a>,
    /// `w3wp.12`: the process name and the managed thread id, as written.
    pub source: &'a str,
    /// `ClientImplementation.SyncUpdates`: class and method, as written (may be empty).
    pub origin: &'a str,
    /// The rest of the first line.
    pub message: &'a str,
    /// Following lines without a record prefix, such as a stack trace (blank lines skipped).
    pub continuation: Vec<Line<'a>>,
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
}

/// Parses every record of a `SoftwareDistribution.log` text. Lines before the first record
/// belong to no record and are dropped.
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
        time,
        level: Level::parse(level),
        source,
        origin,
        message: message.trim_start_matches([' ', '\t']),
        continuation: Vec::new(),
    })
}

/// `HH:MM:SS.mmm` (one to seven fraction digits).
fn parse_time(s: &str) -> Option<NaiveTime> {
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
        assert_eq!(error.time.to_rfc3339(), "2009-03-27T09:55:29.178+00:00");
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
