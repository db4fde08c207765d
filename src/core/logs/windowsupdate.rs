//! Records of the client's `%windir%\WindowsUpdate.log` (Windows Update Agent 5.x to 7.x).
//!
//! A record is `date time PID TID component text`: `2009-03-27`, `11:55:29:193` (milliseconds after
//! a colon; copies without them are accepted), a decimal PID that real files right-align to four
//! characters, a hex TID without `0x`, a component name, then the text with its own indentation
//! (`  * `, `  + `). Real files separate the fields with tabs; copies in articles and forum posts
//! collapse them to spaces, so only the first five fields are split, on runs of either. A line
//! without that prefix continues the record before it. Times are local: the
//! `Logging initialized (build: ..., tz: +0200)` record gives the offset for what follows.
//!
//! The Windows 10 format (`2019/05/14 10:31:12.4812345`, written by `Get-WindowsUpdateLog`) has
//! no record here by design: its dates use slashes. [`super::kind`] recognises it.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::line::{Line, is_digits, next_field, numbered};

/// One record of `WindowsUpdate.log`, borrowing from the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsUpdateRecord<'a> {
    /// 1-based number of the record's first line.
    pub line: usize,
    /// The record's first line as written (tabs kept).
    pub raw: &'a str,
    /// Local time of the client.
    pub local_time: NaiveDateTime,
    /// The client's UTC offset from the last `Logging initialized` record at or before this one.
    pub utc_offset: Option<FixedOffset>,
    pub pid: u32,
    pub tid: u32,
    /// As written: `PT`, `Agent`, `AU`, `COMAPI`, `DnldMgr`, ...
    pub component: &'a str,
    /// The text after the component, with its leading indentation.
    pub text: &'a str,
    /// Following lines without a record prefix (blank lines are skipped).
    pub continuation: Vec<Line<'a>>,
}

impl WindowsUpdateRecord<'_> {
    /// The record's time in UTC, when the log said which offset the client was in.
    pub fn utc_time(&self) -> Option<DateTime<Utc>> {
        let offset = self.utc_offset?;
        self.local_time
            .and_local_timezone(offset)
            .single()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The text with its continuation lines appended, each trimmed and joined by one space: a
    /// line that a copy wrapped reads as one again.
    pub fn full_text(&self) -> Cow<'_, str> {
        if self.continuation.is_empty() {
            return Cow::Borrowed(self.text);
        }
        let mut text = self.text.trim_end().to_string();
        for line in &self.continuation {
            text.push(' ');
            text.push_str(line.text.trim());
        }
        Cow::Owned(text)
    }
}

/// The five prefix fields of a record line and the text after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefix<'a> {
    pub local_time: NaiveDateTime,
    pub pid: u32,
    pub tid: u32,
    pub component: &'a str,
    pub text: &'a str,
}

/// Parses every record of a `WindowsUpdate.log` text. Lines before the first record (a header
/// row, a truncated line) belong to no record and are dropped.
pub fn parse(text: &str) -> Vec<WindowsUpdateRecord<'_>> {
    let mut records: Vec<WindowsUpdateRecord<'_>> = Vec::new();
    let mut utc_offset = None;
    for line in numbered(text) {
        match parse_prefix(line.text) {
            Some(prefix) => {
                if let Some(offset) = logging_initialized_offset(prefix.text) {
                    utc_offset = Some(offset);
                }
                records.push(WindowsUpdateRecord {
                    line: line.number,
                    raw: line.text,
                    local_time: prefix.local_time,
                    utc_offset,
                    pid: prefix.pid,
                    tid: prefix.tid,
                    component: prefix.component,
                    text: prefix.text,
                    continuation: Vec::new(),
                });
            }
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

/// The record prefix of one line, or `None` when the line is not a record's first line.
pub(crate) fn parse_prefix(line: &str) -> Option<Prefix<'_>> {
    if !line.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (date, rest) = next_field(line)?;
    let (time, rest) = next_field(rest)?;
    let (pid, rest) = next_field(rest)?;
    let (tid, rest) = next_field(rest)?;
    let (component, rest) = next_field(rest)?;
    let local_time = NaiveDateTime::new(parse_date(date)?, parse_time(time)?);
    if pid.len() > 10 || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if tid.len() > 8 || !tid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Exactly one separator between the component and the text: the rest is indentation.
    let text = rest
        .strip_prefix(['\t', ' '])
        .unwrap_or(rest)
        .trim_end_matches(['\r', '\n']);
    Some(Prefix {
        local_time,
        pid: pid.parse().ok()?,
        tid: u32::from_str_radix(tid, 16).ok()?,
        component,
        text,
    })
}

/// `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if s.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (&s[..4], &s[5..7], &s[8..]);
    if !(is_digits(y, 4) && is_digits(m, 2) && is_digits(d, 2)) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// `HH:MM:SS:mmm`, or `HH:MM:SS` as some copies print it.
fn parse_time(s: &str) -> Option<NaiveTime> {
    let (hms, millis) = match s.len() {
        8 => (s, "0"),
        12 if s.as_bytes()[8] == b':' && is_digits(&s[9..], 3) => (&s[..8], &s[9..]),
        _ => return None,
    };
    let b = hms.as_bytes();
    if b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, sec) = (&hms[..2], &hms[3..5], &hms[6..]);
    if !(is_digits(h, 2) && is_digits(m, 2) && is_digits(sec, 2)) {
        return None;
    }
    NaiveTime::from_hms_milli_opt(
        h.parse().ok()?,
        m.parse().ok()?,
        sec.parse().ok()?,
        millis.parse().ok()?,
    )
}

/// The offset in `===========  Logging initialized (build: 7.2.6001.788, tz: +0200)  ===========`.
pub fn logging_initialized_offset(text: &str) -> Option<FixedOffset> {
    if !text.contains("Logging initialized") {
        return None;
    }
    let tz = &text[text.find("tz:")? + 3..];
    let tz = tz.trim_start();
    let sign = match tz.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = tz.get(1..5)?;
    if !is_digits(digits, 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if minutes >= 60 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The build in `Logging initialized (build: 7.2.6001.788, tz: +0200)`.
pub fn logging_initialized_build(text: &str) -> Option<&str> {
    if !text.contains("Logging initialized") {
        return None;
    }
    let rest = &text[text.find("build:")? + 6..];
    let end = rest.find([',', ')'])?;
    Some(rest[..end].trim()).filter(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAB: &str = "2009-03-27\t11:55:29:115\t1044\tafc\tPT\t+++++++++++  PT: Synchronizing server updates  +++++++++++\n\
        2009-03-27\t11:55:29:115\t 952\t1f40\tPT\t  + ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://wsus01/ClientWebService/client.asmx\n";

    #[test]
    fn splits_tab_separated_records_and_keeps_indentation() {
        let records = parse(TAB);
        assert_eq!(records.len(), 2);
        let r = &records[1];
        assert_eq!(r.line, 2);
        assert_eq!(r.pid, 952);
        assert_eq!(r.tid, 0x1f40);
        assert_eq!(r.component, "PT");
        assert!(r.text.starts_with("  + ServiceId = {3DA21691"));
        assert_eq!(
            r.local_time.to_string(),
            "2009-03-27 11:55:29.115",
            "milliseconds follow a colon"
        );
        assert_eq!(r.utc_offset, None);
    }

    #[test]
    fn accepts_the_space_separated_form_of_articles() {
        let text = "2009-03-27 11:55:29:193 1044 afc PT WARNING: SyncUpdates failure, error = 0x8024400E\n\
                    2009-03-27 11:55:29:193  952 5b4 Agent   * Found 0 updates and 17 categories in search";
        let records = parse(text);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].text,
            "WARNING: SyncUpdates failure, error = 0x8024400E"
        );
        assert_eq!(records[1].pid, 952);
        assert_eq!(records[1].component, "Agent");
        assert_eq!(
            records[1].text,
            "  * Found 0 updates and 17 categories in search"
        );
    }

    #[test]
    fn lines_without_the_prefix_continue_the_previous_record() {
        let text = "header line that is not a record\n\
                    2009-03-27\t11:55:29:115\t1044\tafc\tMisc\tfirst\n\
                    \tsecond part\n\
                    \n\
                    third part\n\
                    2009-03-27\t11:55:29:116\t1044\tafc\tMisc\tnext";
        let records = parse(text);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].line, 2);
        let continuation: Vec<_> = records[0].continuation.iter().map(|l| l.number).collect();
        assert_eq!(continuation, vec![3, 5]);
        assert_eq!(records[1].line, 6);
        assert_eq!(records[0].full_text(), "first second part third part");
        assert_eq!(records[1].full_text(), "next");
    }

    #[test]
    fn logging_initialized_sets_the_offset_for_what_follows() {
        let text = "2009-03-27\t11:00:00:000\t1044\tafc\tMisc\tbefore\n\
            2009-03-27\t11:00:01:000\t1044\tafc\tMisc\t===========  Logging initialized (build: 7.2.6001.788, tz: +0200)  ===========\n\
            2009-03-27\t11:55:29:193\t1044\tafc\tPT\tafter";
        let records = parse(text);
        assert_eq!(records[0].utc_time(), None);
        assert_eq!(
            logging_initialized_build(records[1].text),
            Some("7.2.6001.788")
        );
        assert_eq!(
            records[2].utc_time().map(|t| t.to_rfc3339()),
            Some("2009-03-27T09:55:29.193+00:00".to_string())
        );
    }

    #[test]
    fn negative_offsets_and_bad_offsets() {
        let off = |t: &str| logging_initialized_offset(t).map(|o| o.local_minus_utc());
        assert_eq!(
            off("Logging initialized (build: 7.0, tz: -0530)"),
            Some(-(5 * 3600 + 30 * 60))
        );
        assert_eq!(off("Logging initialized (build: 7.0, tz: 0200)"), None);
        assert_eq!(off("Logging initialized (build: 7.0, tz: +02)"), None);
        assert_eq!(off("tz: +0200"), None);
    }

    #[test]
    fn does_not_read_other_formats_as_records() {
        for line in [
            "2019/05/14 10:31:12.4812345 1052  4404  ProtocolTalker  SyncUpdates round trips: 1",
            "2009-03-27 11:55:29.193 UTC Error w3wp.12 ClientImplementation.SyncUpdates x",
            "2009-13-27\t11:55:29:193\t1044\tafc\tPT\tbad month",
            "2009-03-27\t11:55:29:19\t1044\tafc\tPT\tshort millis",
            "2009-03-27\t11:55:29:193\t10x4\tafc\tPT\tbad pid",
            "2009-03-27\t11:55:29:193\t1044\txyz\tPT\tbad tid",
            "2009-03-27\t11:55:29:193\t1044\tafc",
            "Date Time PID TID Component Text",
        ] {
            assert_eq!(parse_prefix(line), None, "{line}");
        }
    }

    #[test]
    fn accepts_times_without_milliseconds_as_kb902093_prints_them() {
        let p = parse_prefix("2005-06-01 18:30:03 992 810 Misc = Logging initialized").unwrap();
        assert_eq!(p.text, "= Logging initialized");
        assert_eq!(p.tid, 0x810);
    }

    fn log_like_line() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ \t]{0,3}[a-z ]{0,20}",
            (
                "20[0-9]{2}-[01][0-9]-[0-3][0-9]",
                "[0-2][0-9]:[0-5][0-9]:[0-5][0-9](:[0-9]{3})?",
                "[ \t]{1,2}",
                "[0-9 ]{1,6}",
                "[0-9a-fA-F]{1,9}",
                "(PT|Agent|AU|Misc)",
                "[ -~\t]{0,40}"
            )
                .prop_map(|(d, t, sep, pid, tid, c, text)| format!(
                    "{d}{sep}{t}{sep}{pid}{sep}{tid}{sep}{c}{sep}{text}"
                )),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_line_numbers_monotone(
            lines in proptest::collection::vec(log_like_line(), 0..40),
            crlf in any::<bool>(),
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
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
            prop_assert!(last <= text.lines().count());
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
