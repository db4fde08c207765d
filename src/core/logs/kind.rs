//! Which log a text is, told from its content alone (file names are unreliable once logs are
//! copied, renamed and zipped).

use serde::Serialize;

use super::line::{Line, numbered, tokens};
use super::paste::{clean, needs_unicode_cleanup};
use super::{softdist, windowsupdate};

/// The kinds of log `diagnose` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogKind {
    /// A client's `WindowsUpdate.log` written by Windows Update Agent 5.x to 7.x.
    #[serde(rename = "windowsupdate")]
    WindowsUpdate,
    /// A WSUS server's `SoftwareDistribution.log`.
    #[serde(rename = "softwaredistribution")]
    SoftwareDistribution,
    /// A Windows 10 or later `WindowsUpdate.log` produced by `Get-WindowsUpdateLog` from ETW
    /// traces. WSUS 3.0 does not serve those clients, so it is recognised but not analysed.
    #[serde(rename = "windowsupdate-etw")]
    WindowsUpdateEtw,
}

impl LogKind {
    /// The name an administrator knows the log by.
    pub fn file_name(self) -> &'static str {
        match self {
            LogKind::WindowsUpdate => "WindowsUpdate.log",
            LogKind::SoftwareDistribution => "SoftwareDistribution.log",
            LogKind::WindowsUpdateEtw => "WindowsUpdate.log (Windows 10 format)",
        }
    }
}

/// How a text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reading {
    /// As a whole log file: every record starts with the full prefix.
    Strict,
    /// As pasted text: prefixes may be placeholders or gone, lines quoted, marked up or run
    /// together (see [`super::paste`]).
    Lenient,
}

/// What a text was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub kind: LogKind,
    pub reading: Reading,
}

/// How many non-blank lines from the top are looked at.
const SAMPLE_LINES: usize = 400;

/// Why a text is none of the logs `diagnose` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecognised {
    /// No line reads as a record of a known log.
    NoRecord,
    /// More lines start like records of another log (IIS, CBS, CMTrace) than like ours.
    AnotherLog,
}

/// The kind of log `text` is (see [`examine`]).
pub fn detect(text: &str) -> Option<LogKind> {
    examine(text).ok().map(|d| d.kind)
}

/// How one sample line reads.
#[derive(Debug, Default)]
struct Tally {
    /// Lines with the full prefix of a client, a server or a Windows 10 log.
    strict: [usize; 3],
    /// Lines that are one of those only once a paste is undone.
    lenient: [usize; 3],
    /// Lines only a lenient reading can read: quoted or marked-up prefixes, placeholder or
    /// missing dates, records run together.
    forcing: [usize; 3],
    /// Lines that start like a record of another log (a date, a time, CMTrace's `<![LOG[`, a
    /// W3C header).
    foreign: usize,
}

const CLIENT: usize = 0;
const SERVER: usize = 1;
const ETW: usize = 2;

/// Tells what `text` is from its content alone: the kind most of its first non-blank lines
/// belong to, whether as a whole file's records or as pasted ones, and how to read it. An
/// error when no line reads as a record of a known log, or when more lines start like records
/// of another log (IIS, CBS, CMTrace) than like ours: such a log may quote our text, it is
/// still another log.
///
/// The reading is [`Reading::Strict`] when the kind's lines carry the full prefix and none
/// needs undoing a paste; lines that only a paste explains (a message alone) then continue the
/// record before them, as in a whole file.
pub fn examine(text: &str) -> Result<Detected, Unrecognised> {
    let mut tally = Tally::default();
    for line in numbered(text)
        .filter(|l| !l.text.trim().is_empty())
        .take(SAMPLE_LINES)
    {
        tally_line(&mut tally, line);
    }
    let total = |k: usize| tally.strict[k] + tally.lenient[k];
    let known = total(CLIENT) + total(SERVER) + total(ETW);
    if tally.foreign > known {
        return Err(Unrecognised::AnotherLog);
    }
    if known == 0 {
        return Err(Unrecognised::NoRecord);
    }
    let best = total(CLIENT).max(total(SERVER)).max(total(ETW));
    let (kind, k) = if best == total(CLIENT) {
        (LogKind::WindowsUpdate, CLIENT)
    } else if best == total(SERVER) {
        (LogKind::SoftwareDistribution, SERVER)
    } else {
        (LogKind::WindowsUpdateEtw, ETW)
    };
    let reading = if tally.strict[k] > 0 && tally.forcing[k] == 0 {
        Reading::Strict
    } else {
        Reading::Lenient
    };
    Ok(Detected { kind, reading })
}

fn tally_line(tally: &mut Tally, line: Line<'_>) {
    let raw = line.text;
    // A page's non-breaking spaces or curly quotes in a line of the whole-file form: only a
    // lenient reading undoes them.
    let typography = needs_unicode_cleanup(raw);
    if windowsupdate::parse_prefix(raw).is_some() {
        tally.strict[CLIENT] += 1;
        if typography || runs_together(raw) {
            tally.forcing[CLIENT] += 1;
        }
        return;
    }
    if softdist::parse_line(line).is_some() {
        tally.strict[SERVER] += 1;
        tally.forcing[SERVER] += usize::from(typography || softdist::runs_together(raw));
        return;
    }
    if is_etw_line(raw) {
        tally.strict[ETW] += 1;
        return;
    }
    let (text, forms) = clean(raw);
    let cleaned = Line {
        number: line.number,
        text: &text,
    };
    let pasted = !forms.is_empty();
    let text = text.trim_start();
    if windowsupdate::parse_prefix(text).is_some() {
        tally.lenient[CLIENT] += 1;
        tally.forcing[CLIENT] += usize::from(pasted || runs_together(text));
    } else if softdist::parse_line(Line { text, ..cleaned }).is_some() {
        tally.lenient[SERVER] += 1;
        tally.forcing[SERVER] += usize::from(pasted || softdist::runs_together(text));
    } else if is_etw_line(text) {
        tally.lenient[ETW] += 1;
    } else if client_paste(text) == Some(true) {
        tally.lenient[CLIENT] += 1;
        tally.forcing[CLIENT] += 1;
    } else if server_paste(text) == Some(true) {
        tally.lenient[SERVER] += 1;
        tally.forcing[SERVER] += 1;
    } else if is_foreign_record(text) {
        // Another log's record, whatever it says.
        tally.foreign += 1;
    } else if client_paste(text).is_some() {
        // A message alone continues a whole file's record, unless a paste quoted or marked it.
        tally.lenient[CLIENT] += 1;
        tally.forcing[CLIENT] += usize::from(pasted || runs_together(text));
    } else if server_paste(text).is_some() {
        tally.lenient[SERVER] += 1;
        tally.forcing[SERVER] += usize::from(pasted);
    }
}

/// A pasted client record: `Some(true)` when its head has placeholder words or only
/// `PID TID component` (only a lenient reading reads it), `Some(false)` for a message
/// alone that only the update agent writes, `None` otherwise.
fn client_paste(text: &str) -> Option<bool> {
    let toks = tokens(text);
    let triple = (0..=4.min(toks.len())).any(|i| {
        matches!(
            (toks.get(i), toks.get(i + 1), toks.get(i + 2)),
            (Some((_, pid)), Some((_, tid)), Some((_, c)))
                if pid.len() <= 10
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && tid.len() <= 8
                    && tid.bytes().all(|b| b.is_ascii_hexdigit())
                    && windowsupdate::is_component(c)
        )
    });
    if triple {
        return Some(true);
    }
    let message = match toks.first() {
        Some((_, first)) if windowsupdate::is_component(first) && toks.len() > 1 => {
            &text[toks[1].0..]
        }
        _ => text,
    };
    is_agent_message(message).then_some(false)
}

/// Text only the update agent writes.
fn is_agent_message(text: &str) -> bool {
    const PHRASES: [&str; 12] = [
        " failure, error = 0x",
        "SOAP Fault: 0x",
        "faultstring:",
        "ErrorCode:",
        "Method:\"http://www.microsoft.com/SoftwareDistribution/",
        "Agent: Finding updates",
        "PT: Synchronizing server updates",
        "ServiceId = {",
        " categories in search",
        "Exit code = 0x",
        "Triggering AU detection",
        "Can not perform non-interactive scan",
    ];
    if PHRASES.iter().any(|p| text.contains(p)) {
        return true;
    }
    // A warning that names an update agent code (facility 0x24).
    text.trim_start().starts_with("WARNING:")
        && super::hresult::HResult::find_failure(text).is_some_and(|c| c.0 >> 16 == 0x8024)
}

/// A pasted server record: `Some(true)` for placeholder words or a missing date before
/// `UTC Level source`, `Some(false)` for the server's own messages alone.
fn server_paste(text: &str) -> Option<bool> {
    let toks = tokens(text);
    let head = (0..=4.min(toks.len())).any(|i| {
        matches!(
            (toks.get(i), toks.get(i + 1), toks.get(i + 2)),
            (Some((_, "UTC")), Some((_, level)), Some((_, source)))
                if matches!(*level, "Info" | "Change" | "Warning" | "Error")
                    && source.split_once('.').is_some_and(|(p, t)| {
                        !p.is_empty() && t.starts_with(|c: char| c.is_ascii_digit())
                    })
        )
    });
    if head {
        return Some(true);
    }
    const PHRASES: [&str; 4] = [
        "ArgumentException: Item has already been added",
        "ThrowException: actor =",
        "SoapUtilities.CreateException",
        "at Microsoft.UpdateServices.",
    ];
    PHRASES.iter().any(|p| text.contains(p)).then_some(false)
}

/// True when a line of the whole-file form holds a second record's full prefix: a page ran
/// lines together.
fn runs_together(text: &str) -> bool {
    let toks = tokens(text);
    (5..toks.len().saturating_sub(4)).any(|i| {
        windowsupdate::parse_prefix(&text[toks[i].0..]).is_some()
            && windowsupdate::is_component(toks[i + 4].1)
    })
}

/// A line that starts like a record of another log: a date or a time of another form, a
/// CMTrace record, a W3C (IIS) header.
fn is_foreign_record(text: &str) -> bool {
    const W3C: [&str; 5] = ["#Software:", "#Version:", "#Date:", "#Fields:", "#Remark:"];
    if text.starts_with("<![LOG[") || W3C.iter().any(|h| text.starts_with(h)) {
        return true;
    }
    let first = text.split([' ', '\t', ',']).next().unwrap_or("");
    let groups: Vec<&str> = first.split(['-', '/', '.', ':']).collect();
    groups.len() >= 3
        && groups
            .iter()
            .all(|g| !g.is_empty() && g.len() <= 4 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// The prefix of a Windows 10 line, whatever the locale made of its date:
/// `2019/05/14 10:31:12.4812345 1052  4404  ProtocolTalker ...`, `2024-04-12 01:39:31.1847595`,
/// `2018.10.21 12:08:49.8046643`, `14.05.2019 10:31:12.4812345`, `5/14/2019 10:31:12.4812345 AM`.
/// The time's fraction after a dot and the decimal thread ID tell it from the older formats.
pub(crate) fn is_etw_line(text: &str) -> bool {
    let toks = tokens(text);
    if toks.first().is_none_or(|(at, _)| *at != 0) {
        return false;
    }
    let mut i = 0;
    let Some((_, date)) = toks.get(i) else {
        return false;
    };
    if !is_locale_date(date) {
        return false;
    }
    i += 1;
    let Some((_, time)) = toks.get(i) else {
        return false;
    };
    if !is_fraction_time(time) {
        return false;
    }
    i += 1;
    if toks
        .get(i)
        .is_some_and(|(_, t)| t.eq_ignore_ascii_case("AM") || t.eq_ignore_ascii_case("PM"))
    {
        i += 1;
    }
    let decimal = |t: Option<&(usize, &str)>| {
        t.is_some_and(|(_, t)| {
            !t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit())
        })
    };
    decimal(toks.get(i))
        && decimal(toks.get(i + 1))
        && toks
            .get(i + 2)
            .is_some_and(|(_, c)| c.starts_with(|ch: char| ch.is_ascii_alphabetic()))
}

/// Three numeric groups joined by one separator (`/`, `-` or `.`), a four-digit year first or
/// last; a trailing dot is allowed (`14.05.2019.`).
fn is_locale_date(token: &str) -> bool {
    let token = token.strip_suffix('.').unwrap_or(token);
    let Some(sep) = token.chars().find(|c| matches!(c, '/' | '-' | '.')) else {
        return false;
    };
    let groups: Vec<&str> = token.split(sep).collect();
    if groups.len() != 3
        || !groups
            .iter()
            .all(|g| (1..=4).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let (first, last) = (groups[0].len(), groups[2].len());
    (first == 4 && groups[1].len() <= 2 && last <= 2)
        || (last == 4 && first <= 2 && groups[1].len() <= 2)
}

/// `10:31:12.4812345` (one or two hour digits, one to seven fraction digits).
fn is_fraction_time(token: &str) -> bool {
    let Some((hms, fraction)) = token.split_once('.') else {
        return false;
    };
    let parts: Vec<&str> = hms.split(':').collect();
    parts.len() == 3
        && (1..=2).contains(&parts[0].len())
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && (1..=7).contains(&fraction.len())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_three_formats_apart() {
        let client = "2009-03-27\t11:55:29:193\t1044\tafc\tPT\tWARNING: x\n";
        let server = "2009-03-27 09:55:29.178 UTC\tError\tw3wp.12\tX.Y\tmessage\n   at Z\n";
        let etw = "2019/05/14 10:31:12.4812345 1052  4404  ProtocolTalker  x\n";
        assert_eq!(detect(client), Some(LogKind::WindowsUpdate));
        assert_eq!(detect(server), Some(LogKind::SoftwareDistribution));
        assert_eq!(detect(etw), Some(LogKind::WindowsUpdateEtw));
    }

    #[test]
    fn text_that_is_no_log_has_no_kind() {
        assert_eq!(detect(""), None);
        assert_eq!(detect("\n\n  \n"), None);
        assert_eq!(
            detect("Some computers do not receive updates\nDate Time PID TID\n"),
            None
        );
    }

    #[test]
    fn the_majority_of_lines_decides() {
        let text = "2009-03-27 09:55:29.178 UTC Info w3wp.12 X.Y a\n\
                    2009-03-27\t11:55:29:193\t1044\tafc\tPT\tb\n\
                    2009-03-27\t11:55:29:194\t1044\tafc\tPT\tc\n";
        assert_eq!(detect(text), Some(LogKind::WindowsUpdate));
    }

    fn examined(text: &str) -> Option<(LogKind, Reading)> {
        examine(text).ok().map(|d| (d.kind, d.reading))
    }

    #[test]
    fn windows_10_dates_in_every_locale_form() {
        for line in [
            "2019/05/14 10:31:12.4812345 1052  4404  ProtocolTalker  x",
            "2024-04-12 01:39:31.1847595 4972  12948 Agent           * START * Finding updates",
            "2018.10.21 12:08:49.8046643 1276 3628 Shared * START * Service startup",
            "14.05.2019 10:31:12.4812345 1052 4404 Agent x",
            "14.05.2019. 10:31:12.4812345 1052 4404 Agent x",
            "5/14/2019 10:31:12.4812345 AM 1052 4404 Agent x",
            "14-05-2019 9:31:12.4812345 1052 4404 Agent x",
        ] {
            assert!(is_etw_line(line), "{line}");
            assert_eq!(
                examined(line),
                Some((LogKind::WindowsUpdateEtw, Reading::Strict)),
                "{line}"
            );
        }
        for line in [
            "2009-03-27 09:55:29.178 UTC Error w3wp.12 X.Y m",
            "2009-03-27\t11:55:29:193\t1044\tafc\tPT\tx",
            "2016-01-10 00:07:26 172.31.22.76 GET / - 80 - 66.249.66.155",
            "2023-05-17 08:24:08, Info                  CBS    Starting TiWorker initialization.",
            "2019/05/14 10:31:12 1052 4404 Agent x",
        ] {
            assert!(!is_etw_line(line), "{line}");
        }
    }

    #[test]
    fn pasted_excerpts_are_read_leniently() {
        let cases = [
            (
                "Date Time 788 ee4 PT WARNING: SOAP Fault: 0x000190",
                LogKind::WindowsUpdate,
            ),
            (
                "> 2009-03-27 11:55:29:193 1044 afc PT WARNING: x",
                LogKind::WindowsUpdate,
            ),
            (
                "WARNING: SyncUpdates failure, error = 0x8024400E, soap client error = 7, soap error code = 400, HTTP status code = 200",
                LogKind::WindowsUpdate,
            ),
            (
                "2009-03-27 11:55:29:193 1044 afc PT WARNING: a 2009-03-27 11:55:29:193 1044 afc PT WARNING: b",
                LogKind::WindowsUpdate,
            ),
            (
                "<DATE> <TIME> UTC Error w3wp.130 DBConnection.LogSqlException DBLAYER: Errors[0]",
                LogKind::SoftwareDistribution,
            ),
            (
                "2009-03-27 06:00:12.015 UTC Info WsusService.13 A.B x 2009-03-27 06:00:14.220 UTC Error WsusService.13 A.B y",
                LogKind::SoftwareDistribution,
            ),
            (
                "Datum a čas UTC Error w3wp.12 ClientImplementation.SyncUpdates System.ArgumentException: Item has already been added.",
                LogKind::SoftwareDistribution,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(examined(text), Some((kind, Reading::Lenient)), "{text}");
        }
    }

    #[test]
    fn whole_files_are_read_strictly_even_with_odd_lines() {
        let text = "2009-03-27\t11:55:29:193\t1044\tafc\tPT\tWARNING: x\n\
                    WARNING: a line wrapped by an editor\n\
                    2009-03-27\t11:55:29:194\t1044\tafc\tPT\tWARNING: y\n";
        assert_eq!(
            examined(text),
            Some((LogKind::WindowsUpdate, Reading::Strict))
        );
    }

    #[test]
    fn other_logs_are_refused_even_when_they_quote_ours() {
        let cbs = "2023-05-17 08:24:08, Info CBS Starting TiWorker initialization.\n\
                   2023-05-17 08:24:08, Info CBS WARNING: SyncUpdates failure, error = 0x8024400E\n\
                   2023-05-17 08:24:09, Info CBS Ending TiWorker initialization.\n";
        assert_eq!(examine(cbs), Err(Unrecognised::AnotherLog));
        let cmtrace = "<![LOG[Async searching of updates using WUAgent started.]LOG]!><time=\"08:53:25.968+240\" date=\"07-14-2021\" component=\"WUAHandler\">\n\
                       <![LOG[OnSearchComplete - Failed to end search job. Error = 0x8024400e. Exit code = 0x8024400e]LOG]!><time=\"08:53:26.968+240\">\n";
        assert_eq!(examine(cmtrace), Err(Unrecognised::AnotherLog));
        let iis = "#Software: Microsoft Internet Information Services 8.5\n\
                   #Fields: date time s-ip cs-method cs-uri-stem\n\
                   2016-01-10 00:07:26 172.31.22.76 GET /ClientWebService/client.asmx - 80\n";
        assert_eq!(examine(iis), Err(Unrecognised::AnotherLog));
        assert_eq!(examine("just prose\n"), Err(Unrecognised::NoRecord));
    }
}
