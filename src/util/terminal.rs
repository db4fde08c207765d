//! Making text from servers safe to show: control characters escaped, long lines cut.
//!
//! A fault reason, a command's output or an error record comes from a server we do not control.
//! Printed raw, an escape sequence in it can retitle the window, clear the screen, move the
//! cursor over what was printed before, or (with a carriage return or a line break) forge a result
//! line; a 20 MB reason would bury everything else. The sinks (progress display, plain lines,
//! recap, log lines) and the commands that print server output pass it through here first.
//!
//! Escapes: C0 controls other than tab and line feed, DEL, C1 controls (`\u{9b}` is a CSI on some
//! terminals) and the Unicode bidirectional overrides (which reorder what is displayed) become
//! `\e`, `\r`, `\x07`, `\u{9b}`, `\u{202e}`… A CR LF pair (Windows line end) becomes a line feed.

use std::fmt::Write as _;

/// Lines longer than this many characters are cut.
pub const MAX_LINE_CHARS: usize = 2_000;

/// Text for a terminal or a plain log, keeping its line breaks: each line escaped and cut at
/// [`MAX_LINE_CHARS`].
pub fn server_text(text: &str) -> String {
    escape(text, true, MAX_LINE_CHARS)
}

/// Text for one line of a terminal or a plain log: line breaks escaped too, cut at
/// [`MAX_LINE_CHARS`].
pub fn one_line(text: &str) -> String {
    escape(text, false, MAX_LINE_CHARS)
}

/// Escapes `text`; with `keep_lines` line feeds stay (and CR LF becomes LF), otherwise they are
/// escaped as well. Each line is cut after `max_line` characters with a marker saying how much
/// was left out.
pub fn escape(text: &str, keep_lines: bool, max_line: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_line.saturating_mul(4)) + 16);
    let mut shown = 0usize;
    let mut hidden = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if keep_lines && c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if keep_lines && c == '\n' {
            end_line(&mut out, hidden);
            out.push('\n');
            shown = 0;
            hidden = 0;
            continue;
        }
        if shown >= max_line {
            hidden += 1;
            continue;
        }
        shown += 1;
        match c {
            '\t' => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_hidden_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    end_line(&mut out, hidden);
    out
}

fn end_line(out: &mut String, hidden: usize) {
    if hidden > 0 {
        let _ = write!(
            out,
            " [... {hidden} more character{}]",
            if hidden == 1 { "" } else { "s" }
        );
    }
}

/// C1 controls and the characters that reorder or hide text (bidirectional embeddings,
/// overrides and isolates; line and paragraph separators; the byte order mark).
fn is_hidden_control(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f | 0x2028 | 0x2029 | 0x202a..=0x202e | 0x2066..=0x2069 | 0x200e | 0x200f
            | 0x061c | 0xfeff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_cannot_reach_the_terminal() {
        let hostile = "boom\x1b]0;pwned\x07\x1b[2J\r[   1.00s] wsus-eu: done\u{9b}31m\u{202e}txt";
        let safe = one_line(hostile);
        assert_eq!(
            safe,
            "boom\\e]0;pwned\\x07\\e[2J\\r[   1.00s] wsus-eu: done\\u{9b}31m\\u{202e}txt"
        );
        assert!(safe.chars().all(|c| !c.is_control()));
        assert_eq!(one_line("a\nb"), "a\\nb");
        assert_eq!(server_text("a\r\nb\n\tc\x00"), "a\nb\n\tc\\x00");
        assert_eq!(server_text("plain ünïcode ✓"), "plain ünïcode ✓");
        // No limit at all (protocol dumps) is allowed.
        assert_eq!(escape("a\x1bb", true, usize::MAX), "a\\eb");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let reason = "x".repeat(20 * 1024 * 1024);
        let shown = one_line(&reason);
        assert_eq!(
            shown.len(),
            MAX_LINE_CHARS + " [... 20969520 more characters]".len()
        );
        assert!(
            shown.ends_with(" [... 20969520 more characters]"),
            "{}",
            &shown[1990..]
        );
        let text = format!("short\n{}\nend", "y".repeat(2_001));
        assert_eq!(
            server_text(&text),
            format!("short\n{} [... 1 more character]\nend", "y".repeat(2_000))
        );
    }
}
