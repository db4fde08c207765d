//! Numbered lines of a log text: the unit every parser and every piece of evidence refers to.

/// One physical line of a log, without its line terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number within the text that was parsed.
    pub number: usize,
    /// The line's text, without `\n` or `\r\n` (and without a leading byte-order mark).
    pub text: &'a str,
}

/// The lines of `text`, numbered from 1. A leading byte-order mark is dropped; `\n` and `\r\n`
/// both end a line, and a final terminator does not start an extra empty line.
pub fn numbered(text: &str) -> impl Iterator<Item = Line<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().map(|(index, text)| Line {
        number: index + 1,
        text,
    })
}

/// Splits off the next whitespace-separated field (spaces or tabs), skipping the whitespace
/// before it. Returns the field and the rest, which starts at the separator after the field.
pub(crate) fn next_field(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// The whitespace-separated tokens of `s` (spaces or tabs) with their byte offsets.
pub(crate) fn tokens(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c == ' ' || c == '\t' {
            if let Some(from) = start.take() {
                out.push((from, &s[from..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(from) = start {
        out.push((from, &s[from..]));
    }
    out
}

/// True when `s` has exactly `n` bytes and all are ASCII digits.
pub(crate) fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_from_one_and_handles_crlf_and_bom() {
        let lines: Vec<_> = numbered("\u{feff}a\r\nb\n\nc\n").collect();
        assert_eq!(
            lines,
            vec![
                Line {
                    number: 1,
                    text: "a"
                },
                Line {
                    number: 2,
                    text: "b"
                },
                Line {
                    number: 3,
                    text: ""
                },
                Line {
                    number: 4,
                    text: "c"
                },
            ]
        );
    }

    #[test]
    fn next_field_skips_runs_of_spaces_and_tabs() {
        assert_eq!(next_field("  952\t5b4"), Some(("952", "\t5b4")));
        assert_eq!(next_field("PT"), Some(("PT", "")));
        assert_eq!(next_field(" \t "), None);
    }

    #[test]
    fn tokens_carry_their_offsets() {
        assert_eq!(
            tokens(" Date\tTime  788 "),
            vec![(1, "Date"), (6, "Time"), (12, "788")]
        );
        assert_eq!(tokens(""), vec![]);
    }
}
