//! Which log a text is, told from its content alone (file names are unreliable once logs are
//! copied, renamed and zipped).

use serde::Serialize;

use super::line::{Line, numbered};
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

/// How many non-blank lines from the top are looked at.
const SAMPLE_LINES: usize = 400;

/// The kind of log `text` is: the format most of its first non-blank lines start with. `None`
/// when no line starts like a record of any known log.
pub fn detect(text: &str) -> Option<LogKind> {
    let (mut client, mut server, mut etw) = (0usize, 0usize, 0usize);
    for line in numbered(text)
        .filter(|l| !l.text.trim().is_empty())
        .take(SAMPLE_LINES)
    {
        if windowsupdate::parse_prefix(line.text).is_some() {
            client += 1;
        } else if softdist::parse_line(line).is_some() {
            server += 1;
        } else if is_etw_line(line) {
            etw += 1;
        }
    }
    let best = client.max(server).max(etw);
    if best == 0 {
        None
    } else if best == client {
        Some(LogKind::WindowsUpdate)
    } else if best == server {
        Some(LogKind::SoftwareDistribution)
    } else {
        Some(LogKind::WindowsUpdateEtw)
    }
}

/// `2019/05/14 10:31:12.4812345 1052 4404 ...`: slashes in the date, a fraction after a dot.
fn is_etw_line(line: Line<'_>) -> bool {
    let b = line.text.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'/'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'/'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && b[10] == b' '
        && b[11..13].iter().all(u8::is_ascii_digit)
        && b[13] == b':'
        && b[14..16].iter().all(u8::is_ascii_digit)
        && b[16] == b':'
        && b[17..19].iter().all(u8::is_ascii_digit)
        && b[19] == b'.'
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
}
