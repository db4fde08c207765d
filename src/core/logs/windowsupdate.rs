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
//! [`parse`] reads a whole file that way. [`read_pasted`] reads what a paste made of it: the
//! date and time replaced by words (`Date Time 788 ee4 PT ...`, `Datum a čas 788 ee4 PT ...`)
//! or gone, the whole prefix gone, several records on one line (see [`super::paste`]).
//!
//! The Windows 10 format (`2019/05/14 10:31:12.4812345`, written by `Get-WindowsUpdateLog`) has
//! no record here by design: its time has a fraction after a dot. [`super::kind`] recognises it.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::line::{Line, is_digits, next_field, numbered, tokens};
use super::paste::{Form, Forms, PastedLine, PastedRead};

/// One record of `WindowsUpdate.log`, borrowing from the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsUpdateRecord<'a> {
    /// 1-based number of the record's first line.
    pub line: usize,
    /// The record's first line as written (tabs kept). Records that a page ran together share it.
    pub raw: &'a str,
    /// Local time of the client; `None` when a paste replaced or dropped it.
    pub local_time: Option<NaiveDateTime>,
    /// The client's UTC offset from the last `Logging initialized` record at or before this one.
    pub utc_offset: Option<FixedOffset>,
    /// `None` when the paste dropped the prefix.
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    /// As written: `PT`, `Agent`, `AU`, `COMAPI`, `DnldMgr`, ...; empty when not given.
    pub component: &'a str,
    /// The text after the component, with its leading indentation.
    pub text: &'a str,
    /// Following lines without a record prefix (blank lines are skipped), as read (without the
    /// quoting and markup of a paste).
    pub continuation: Vec<Line<'a>>,
    /// How a paste made this record differ from a whole file's (empty for a whole file).
    pub forms: Forms,
}

impl WindowsUpdateRecord<'_> {
    /// The record's time in UTC, when the log said which offset the client was in.
    pub fn utc_time(&self) -> Option<DateTime<Utc>> {
        let offset = self.utc_offset?;
        self.local_time?
            .and_local_timezone(offset)
            .single()
            .map(|t| t.with_timezone(&Utc))
    }

    /// True when the record and `other` may come from one thread: the same PID and TID, or a
    /// paste dropped them from either.
    pub fn same_thread(&self, other: &WindowsUpdateRecord<'_>) -> bool {
        let differ =
            |a: Option<u32>, b: Option<u32>| matches!((a, b), (Some(a), Some(b)) if a != b);
        !(differ(self.pid, other.pid) || differ(self.tid, other.tid))
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

/// Parses every record of a `WindowsUpdate.log` text, strictly: a record starts with the full
/// prefix. Lines before the first record (a header row, a truncated line) belong to no record
/// and are dropped.
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
                    local_time: Some(prefix.local_time),
                    utc_offset,
                    pid: Some(prefix.pid),
                    tid: Some(prefix.tid),
                    component: prefix.component,
                    text: prefix.text,
                    continuation: Vec::new(),
                    forms: Forms::NONE,
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

/// Components of the update agent (WUA 5.x to 7.x), lower case; real logs vary the case.
const COMPONENTS: [&str; 26] = [
    "agent", "au", "auclnt", "cltui", "comapi", "dnldmgr", "dtastor", "driver", "drvinst",
    "eehndlr", "ep", "handler", "idletmr", "misc", "offline", "pt", "report", "service", "setup",
    "setupui", "shutdwn", "sls", "wutask", "wuredir", "wuweb", "wuauclt",
];

/// True for a component name of the update agent.
pub(crate) fn is_component(token: &str) -> bool {
    token.len() <= 8 && COMPONENTS.iter().any(|c| c.eq_ignore_ascii_case(token))
}

fn is_pid(token: &str) -> bool {
    !token.is_empty() && token.len() <= 10 && token.bytes().all(|b| b.is_ascii_digit())
}

fn is_tid(token: &str) -> bool {
    !token.is_empty() && token.len() <= 8 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `PID TID component` at token `i`.
fn is_triple(tokens: &[(usize, &str)], i: usize) -> bool {
    matches!(
        (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)),
        (Some((_, pid)), Some((_, tid)), Some((_, component)))
            if is_pid(pid) && is_tid(tid) && is_component(component)
    )
}

/// The most placeholder words seen before `PID TID component`.
const MAX_PLACEHOLDER_WORDS: usize = 4;

/// Lower-cased placeholder words (`["datum", "a", "čas"]`), or an empty list when the lines
/// start with `PID TID component` directly.
type Placeholder = Vec<String>;

/// The words in place of the date and time that most pasted lines start with, and the text
/// of their first appearance.
fn learn_placeholder(lines: &[PastedLine<'_>]) -> Option<(Placeholder, String)> {
    let mut seen: HashMap<Placeholder, (usize, usize, String)> = HashMap::new();
    for (order, line) in lines.iter().enumerate() {
        let text: &str = &line.text;
        if parse_prefix(text.trim_start()).is_some() {
            continue;
        }
        let toks = tokens(text);
        let Some(i) = (0..=MAX_PLACEHOLDER_WORDS.min(toks.len())).find(|&i| is_triple(&toks, i))
        else {
            continue;
        };
        if !toks[..i].iter().all(|(_, w)| is_placeholder_word(w)) {
            continue;
        }
        let words: Placeholder = toks[..i].iter().map(|(_, w)| w.to_lowercase()).collect();
        let written = match (toks.first(), toks.get(i)) {
            (Some((from, _)), Some((to, _))) if i > 0 => text[*from..*to].trim().to_string(),
            _ => String::new(),
        };
        seen.entry(words)
            .and_modify(|(count, _, _)| *count += 1)
            .or_insert((1, order, written));
    }
    seen.into_iter()
        .max_by_key(|(_, (count, order, _))| (*count, std::cmp::Reverse(*order)))
        .map(|(words, (_, _, written))| (words, written))
}

/// A word that may stand for a date or a time: no field separators of a message.
fn is_placeholder_word(word: &str) -> bool {
    word.chars().count() <= 24 && !word.contains(['=', ',', ';', '(', ')', '{', '}'])
}

/// A line of placeholders alone: `<DATE>`, `<DATE> <TIME>`.
pub(crate) fn is_placeholder_only(text: &str) -> bool {
    let toks = tokens(text);
    !toks.is_empty()
        && toks
            .iter()
            .all(|(_, t)| t.len() > 2 && t.starts_with('<') && t.ends_with('>') && !t.contains('/'))
}

/// A record's head as a paste left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LooseHead<'a> {
    local_time: Option<NaiveDateTime>,
    pid: Option<u32>,
    tid: Option<u32>,
    component: &'a str,
    text: &'a str,
    forms: Forms,
}

/// The text after the component: exactly one separator; the rest is indentation.
fn after_component(rest: &str) -> &str {
    rest.strip_prefix(['\t', ' '])
        .unwrap_or(rest)
        .trim_end_matches(['\r', '\n'])
}

/// Reads the head of a segment that starts a record in a paste: the full prefix, placeholder
/// words or nothing before `PID TID component`, a component alone, or a message alone.
fn loose_head(segment: &str) -> Option<LooseHead<'_>> {
    if let Some(p) = parse_prefix(segment) {
        return Some(LooseHead {
            local_time: Some(p.local_time),
            pid: Some(p.pid),
            tid: Some(p.tid),
            component: p.component,
            text: p.text,
            forms: Forms::NONE,
        });
    }
    let toks = tokens(segment);
    let triple = (0..=MAX_PLACEHOLDER_WORDS.min(toks.len()))
        .find(|&i| is_triple(&toks, i) && toks[..i].iter().all(|(_, w)| is_placeholder_word(w)));
    if let Some(i) = triple {
        let (component_at, component) = toks[i + 2];
        let rest = &segment[component_at + component.len()..];
        return Some(LooseHead {
            local_time: None,
            pid: toks[i].1.parse().ok(),
            tid: u32::from_str_radix(toks[i + 1].1, 16).ok(),
            component,
            text: after_component(rest),
            forms: Forms::of(if i == 0 {
                Form::NoTime
            } else {
                Form::PlaceholderTime
            }),
        });
    }
    let (first_at, first) = *toks.first()?;
    if is_component(first) && toks.len() > 1 && is_message_start(&segment[toks[1].0..]) {
        return Some(LooseHead {
            local_time: None,
            pid: None,
            tid: None,
            component: first,
            text: after_component(&segment[first_at + first.len()..]),
            forms: Forms::of(Form::NoPrefix),
        });
    }
    let text = segment.trim_start();
    is_message_start(text).then_some(LooseHead {
        local_time: None,
        pid: None,
        tid: None,
        component: "",
        text: text.trim_end_matches(['\r', '\n']),
        forms: Forms::of(Form::NoPrefix),
    })
}

/// How the agent's messages begin: a warning, a bullet or banner of its own, or one of the
/// phrases that mark a detection.
fn is_message_start(text: &str) -> bool {
    const STARTS: [&str; 13] = [
        "WARNING:", "FATAL:", "* ", "+ ", "# ", "= ", "**", "++", "##", "==", "<<##", ">>##",
        "*FAILED*",
    ];
    const PHRASES: [&str; 7] = [
        "Found ",
        "Triggering AU detection",
        "Triggering Online detection",
        "Can not perform non-interactive scan",
        "Unable to trigger Automatic Updates",
        "Agent: Finding updates",
        "PT: Synchronizing",
    ];
    let text = text.trim_start();
    let soap_failure = text
        .split_once(" failure, error = ")
        .is_some_and(|(call, _)| !call.is_empty() && !call.contains(' '));
    soap_failure
        || STARTS.iter().any(|s| text.starts_with(s))
        || PHRASES.iter().any(|p| text.starts_with(p))
}

/// Byte offsets in `text` where records start, ascending. The first may lie after other text
/// (prose that a page glued to the record).
fn record_starts(text: &str, placeholder: Option<&Placeholder>) -> Vec<usize> {
    let toks = tokens(text);
    let mut starts = Vec::new();
    // The `PID TID component` of the line's own head, which is no second record.
    let mut own_triple = None;
    if let Some(&(first, _)) = toks.first()
        && loose_head(&text[first..]).is_some()
    {
        starts.push(first);
        own_triple = (0..=MAX_PLACEHOLDER_WORDS.min(toks.len())).find(|&i| {
            is_triple(&toks, i) && toks[..i].iter().all(|(_, w)| is_placeholder_word(w))
        });
    }
    for i in 1..toks.len() {
        let at = toks[i].0;
        if Some(i) == own_triple {
            continue;
        }
        // The full prefix of the next record.
        if toks.len() > i + 4
            && parse_date(toks[i].1).is_some()
            && parse_time(toks[i + 1].1).is_some()
            && is_triple(&toks, i + 2)
        {
            starts.push(at);
            continue;
        }
        // The placeholder words, then `PID TID component` (not the one of a full prefix).
        let in_prefix =
            i >= 2 && parse_date(toks[i - 2].1).is_some() && parse_time(toks[i - 1].1).is_some();
        if let Some(words) = placeholder.filter(|_| !in_prefix)
            && is_triple(&toks, i)
            && i >= words.len()
        {
            if words.is_empty() {
                starts.push(at);
            } else if let Some(from) = placeholder_before(text, &toks, i, words) {
                starts.push(from);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    split_messages(text, &toks, starts)
}

/// Where the placeholder before the triple at token `i` begins, when the words there are the
/// placeholder. The first word may be glued to the text before it by punctuation
/// (`protokolliert:Date Time 788 ee4 PT`).
fn placeholder_before(
    text: &str,
    toks: &[(usize, &str)],
    i: usize,
    words: &[String],
) -> Option<usize> {
    let first = i - words.len();
    for (k, word) in words.iter().enumerate().skip(1) {
        if toks[first + k].1.to_lowercase() != *word {
            return None;
        }
    }
    let (at, token) = toks[first];
    let lower = token.to_lowercase();
    if lower == words[0] {
        return Some(at);
    }
    let glued = lower.strip_suffix(words[0].as_str())?;
    let boundary = glued.chars().last()?;
    if boundary.is_alphanumeric() {
        return None;
    }
    // Offsets in the lower-cased token match the original for the ASCII punctuation that glues.
    let cut = token.len() - (lower.len() - glued.len());
    text.is_char_boundary(at + cut).then_some(at + cut)
}

/// Within records that have no prefix, the starts of further messages run onto the same line:
/// a `WARNING:` that no bullet or component precedes, or a component followed by a warning,
/// bullet or banner.
fn split_messages(text: &str, toks: &[(usize, &str)], starts: Vec<usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(starts.len() + 1);
    // The text before the first start is searched too: a message may follow a wrapped line's
    // end or a page's prose.
    let first = starts.first().copied().unwrap_or(text.len());
    let segments =
        std::iter::once((None, first)).chain(starts.iter().enumerate().map(|(k, &start)| {
            (
                Some(start),
                starts.get(k + 1).copied().unwrap_or(text.len()),
            )
        }));
    for (start, end) in segments {
        let mut j = match start {
            None => {
                if first == 0 {
                    continue;
                }
                // From the second token: the first would start a record if it could.
                1
            }
            Some(start) => {
                out.push(start);
                let Some(head) = loose_head(&text[start..end]) else {
                    continue;
                };
                if !head.forms.contains(Form::NoPrefix) {
                    continue;
                }
                let j = toks.iter().position(|t| t.0 > start).unwrap_or(toks.len());
                if head.component.is_empty() { j } else { j + 1 }
            }
        };
        while j < toks.len() && toks[j].0 < end {
            let (at, tok) = toks[j];
            let prev = toks[j - 1].1;
            let next = toks.get(j + 1).map_or("", |t| t.1);
            // `WARNING:` after neither a bullet nor a component (which starts the message).
            let bare_warning = (tok == "WARNING:" || tok == "FATAL:")
                && !matches!(prev, "*" | "+" | "#")
                && !is_component(prev);
            let component_message = is_component(tok)
                && ["WARNING:", "FATAL:", "*", "+", "#", "**", "+++", "###"]
                    .iter()
                    .any(|s| next.starts_with(s));
            if bare_warning || component_message {
                out.push(at);
            }
            j += 1;
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Reads a pasted `WindowsUpdate.log` excerpt leniently: besides the full prefix, a record may
/// start with placeholder words or nothing before `PID TID component`, with its component
/// alone, or with its message alone; quoted and marked-up lines are read without the quoting
/// and markup; records run together on one line are split. A line that starts no record
/// continues the record before it.
pub fn read_pasted<'a>(lines: &'a [PastedLine<'_>]) -> PastedRead<WindowsUpdateRecord<'a>> {
    let learned = learn_placeholder(lines);
    let placeholder = learned.as_ref().map(|(words, _)| words);
    let mut records: Vec<WindowsUpdateRecord<'a>> = Vec::new();
    let mut lenient_lines = Vec::new();
    let mut utc_offset = None;
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
            let segment = text[start..end].trim_end();
            let Some(head) = loose_head(segment) else {
                continue;
            };
            forms = forms.union(head.forms);
            if let Some(offset) = logging_initialized_offset(head.text) {
                utc_offset = Some(offset);
            }
            records.push(WindowsUpdateRecord {
                line: line.number,
                raw: line.raw,
                local_time: head.local_time,
                utc_offset,
                pid: head.pid,
                tid: head.tid,
                component: head.component,
                text: head.text,
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
        placeholder: learned
            .map(|(_, written)| written)
            .filter(|w| !w.is_empty()),
    }
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
    if !is_pid(pid) || !is_tid(tid) {
        return None;
    }
    Some(Prefix {
        local_time,
        pid: pid.parse().ok()?,
        tid: u32::from_str_radix(tid, 16).ok()?,
        component,
        text: after_component(rest),
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
pub(crate) fn parse_time(s: &str) -> Option<NaiveTime> {
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
        assert_eq!(r.pid, Some(952));
        assert_eq!(r.tid, Some(0x1f40));
        assert_eq!(r.component, "PT");
        assert!(r.text.starts_with("  + ServiceId = {3DA21691"));
        assert_eq!(
            r.local_time.map(|t| t.to_string()).as_deref(),
            Some("2009-03-27 11:55:29.115"),
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
        assert_eq!(records[1].pid, Some(952));
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

    /// Line, PID, component, full text and forms of each record.
    type Read = (usize, Option<u32>, String, String, Vec<Form>);

    fn pasted(text: &str) -> Vec<Read> {
        let lines = crate::core::logs::paste::lines(text);
        read_pasted(&lines)
            .records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.pid,
                    r.component.to_string(),
                    r.full_text().into_owned(),
                    r.forms.iter().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn placeholder_words_stand_for_the_date_and_time_in_any_language() {
        for words in [
            "Date Time",
            "Datum a čas",
            "Dato Klokkeslett",
            "Data Godzina",
            "<DATE> <TIME>",
        ] {
            let text = format!(
                "{words} 788 ee4 PT WARNING: SOAP Fault: 0x000190\n{words} 788 ee4 PT WARNING: ID:x\n"
            );
            let lines = crate::core::logs::paste::lines(&text);
            let read = read_pasted(&lines);
            assert_eq!(read.records.len(), 2, "{words}");
            let r = &read.records[0];
            assert_eq!((r.pid, r.tid, r.component), (Some(788), Some(0xee4), "PT"));
            assert_eq!(r.text, "WARNING: SOAP Fault: 0x000190");
            assert_eq!(r.local_time, None);
            assert_eq!(r.forms, Forms::of(Form::PlaceholderTime));
            assert_eq!(read.placeholder.as_deref(), Some(words));
            assert_eq!(read.lenient_lines.len(), 2);
        }
    }

    #[test]
    fn records_a_page_ran_together_are_split() {
        let text = "Wenn dieses Problem auftritt, wird protokolliert:Date Time 788 ee4 PT +++++++++++ PT: Synchronizing server updates +++++++++++\n\
                    Date Time 788 ee4 PT + ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://WSUS Server/ClientWebService/client.asmx Date Time 788 ee4 PT WARNING: SyncUpdates failure, error = 0x8024400E Date Time 788 ee4 PT WARNING: SOAP Fault: 0x000190\n";
        let records = pasted(text);
        let texts: Vec<(usize, &str)> = records.iter().map(|r| (r.0, r.3.as_str())).collect();
        assert_eq!(
            texts,
            vec![
                (
                    1,
                    "+++++++++++ PT: Synchronizing server updates +++++++++++"
                ),
                (
                    2,
                    "+ ServiceId = {3DA21691-E39D-4DA6-8A4B-B43877BCB1B7}, Server URL = http://WSUS Server/ClientWebService/client.asmx"
                ),
                (2, "WARNING: SyncUpdates failure, error = 0x8024400E"),
                (2, "WARNING: SOAP Fault: 0x000190"),
            ]
        );
        assert!(records.iter().all(|r| r.4.contains(&Form::RunTogether)));
    }

    #[test]
    fn dated_records_run_together_are_split_too() {
        let text = "2009-03-27 11:55:29:193 1044 afc PT WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7 2009-03-27 11:55:29:193 1044 afc PT WARNING: SOAP Fault: 0x000190";
        let records = pasted(text);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].3,
            "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7"
        );
        assert_eq!(records[1].3, "WARNING: SOAP Fault: 0x000190");
    }

    #[test]
    fn messages_without_a_prefix_are_records_and_may_run_together() {
        let text = "PT WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7\n\
                    WARNING: SOAP Fault: 0x000190 WARNING: faultstring:Fault occurred\n\
                    the agent then logged\n\
                    Agent * WARNING: Failed to synchronize, error = 0x8024400E Agent * WARNING: Exit code = 0x8024400E\n";
        let records = pasted(text);
        let got: Vec<(usize, Option<u32>, &str, &str)> = records
            .iter()
            .map(|r| (r.0, r.1, r.2.as_str(), r.3.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    None,
                    "PT",
                    "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7"
                ),
                (2, None, "", "WARNING: SOAP Fault: 0x000190"),
                (
                    2,
                    None,
                    "",
                    "WARNING: faultstring:Fault occurred the agent then logged"
                ),
                (
                    4,
                    None,
                    "Agent",
                    "* WARNING: Failed to synchronize, error = 0x8024400E"
                ),
                (4, None, "Agent", "* WARNING: Exit code = 0x8024400E"),
            ]
        );
        assert_eq!(records[0].4, vec![Form::NoPrefix]);
    }

    #[test]
    fn quoted_lines_keep_their_prefix_and_raw_text() {
        let text = "> 2009-03-27 11:55:29:193 1044 afc PT WARNING: x\n> 788 ee4 PT WARNING: y\n";
        let lines = crate::core::logs::paste::lines(text);
        let read = read_pasted(&lines);
        assert_eq!(
            read.records[0].raw,
            "> 2009-03-27 11:55:29:193 1044 afc PT WARNING: x"
        );
        assert!(read.records[0].local_time.is_some());
        assert_eq!(read.records[0].forms, Forms::of(Form::Quoted));
        assert_eq!(
            read.records[1].forms,
            Forms::of(Form::Quoted).with(Form::NoTime)
        );
        assert_eq!(read.placeholder, None);
    }

    #[test]
    fn prose_and_placeholder_lines_start_no_record() {
        let text =
            "When this problem occurs, the log shows:\n<DATE> <TIME>\nSome more words here.\n";
        let lines = crate::core::logs::paste::lines(text);
        let read = read_pasted(&lines);
        assert_eq!(read.records, vec![]);
        assert_eq!(
            read.lenient_lines,
            vec![(2, Forms::of(Form::PlaceholderOnly))]
        );
    }

    #[test]
    fn threads_unknown_to_a_paste_match_any_thread() {
        let lines = crate::core::logs::paste::lines(
            "Date Time 788 ee4 PT a\nDate Time 788 ee5 PT b\nWARNING: c\n",
        );
        let read = read_pasted(&lines);
        let r = &read.records;
        assert!(!r[0].same_thread(&r[1]));
        assert!(r[0].same_thread(&r[2]));
        assert!(r[1].same_thread(&r[2]));
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
            let lines = crate::core::logs::paste::lines(&text);
            let _ = read_pasted(&lines);
        }

        #[test]
        fn pasted_reading_keeps_line_numbers_monotone(
            lines in proptest::collection::vec(
                prop_oneof![
                    log_like_line(),
                    "(> )?(Date Time|Datum a čas|<DATE> <TIME>)? ?[0-9]{1,4} [0-9a-f]{1,4} (PT|Agent|AU) [ -~]{0,30}",
                    "(WARNING: [ -~]{0,20} ?){1,3}",
                ],
                0..30,
            ),
        ) {
            let text = lines.join("\n");
            let pasted = crate::core::logs::paste::lines(&text);
            let read = read_pasted(&pasted);
            let mut last = 0;
            for r in &read.records {
                prop_assert!(r.line >= last);
                last = r.line;
                for c in &r.continuation {
                    prop_assert!(c.number >= last);
                    last = c.number;
                }
            }
            prop_assert!(read.lenient_lines.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
