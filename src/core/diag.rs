//! Diagnostics that teach: a message, the file:line:col it points at, the source line with a
//! caret under the culprit, and a hint where one helps. Rendering is pure and snapshot-tested.

use std::fmt::Write as _;

use super::yaml::Span;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The input cannot be used.
    Error,
    /// The input works but goes against advice.
    Warning,
}

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A lowercase fragment saying what is wrong.
    pub message: String,
    /// Where, when known.
    pub span: Option<Span>,
    /// A short note printed under the caret (e.g. "did you mean `address`?").
    pub label: Option<String>,
    /// A longer hint printed after the snippet.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: Some(span),
            label: None,
            help: None,
        }
    }

    /// An error that concerns the file as a whole.
    pub fn error_in_file(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span: None,
            label: None,
            help: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    /// Adds a note under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a hint after the snippet.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `line:col` of the diagnostic, for tests and one-line output.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.span.map(|s| (s.start.line, s.start.col))
    }
}

/// Sorts diagnostics by position (file-level ones first), keeping the order of equal positions.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| d.span.map(|s| (s.start.line, s.start.col)));
}

/// Renders one diagnostic against its source text:
///
/// ```text
/// error: unknown key `adress` in server `wsus-hq`
///   --> inventory/lab.yaml:9:5
///    |
///  9 |     adress: 127.0.1.1
///    |     ^^^^^^ did you mean `address`?
/// ```
pub fn render(d: &Diagnostic, file: &str, source: &str) -> String {
    let mut out = String::new();
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{kind}: {}", d.message);
    match d.span {
        None => {
            let _ = writeln!(out, "  --> {file}");
        }
        Some(span) => {
            let line_no = span.start.line;
            let _ = writeln!(out, "  --> {file}:{}:{}", line_no, span.start.col);
            let text = source.lines().nth(line_no.saturating_sub(1)).unwrap_or("");
            let text = mask_secrets(text.trim_end_matches('\r'));
            let text = text.as_ref();
            let gutter = line_no.to_string().len();
            let pad = " ".repeat(gutter);
            let _ = writeln!(out, " {pad} |");
            let _ = writeln!(out, " {line_no} | {}", text.replace('\t', " "));
            let before = span.start.col.saturating_sub(1);
            let width = span
                .len
                .min(text.chars().count().saturating_sub(before).max(1));
            let _ = write!(out, " {pad} | {}{}", " ".repeat(before), "^".repeat(width));
            if let Some(label) = &d.label {
                let _ = write!(out, " {label}");
            }
            out.push('\n');
        }
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "  = help: {help}");
    }
    out
}

/// Renders every diagnostic, then a one-line count when there are errors.
pub fn render_all(diags: &[Diagnostic], file: &str, source: &str) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&render(d, file, source));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        let _ = writeln!(
            out,
            "error: {file} is not valid: {errors} error{}",
            if errors == 1 { "" } else { "s" }
        );
    }
    out
}

/// A source line as a snippet may show it: the value of a password-like key (`password`, a typo
/// of it, `passwd`, `pwd`, `pw`, `secret`, `token`…) is replaced by as many `*`, so that carets
/// stay in place, unless it is a reference (`env:`, `file:`, `prompt`, an alias). Everything
/// after such a key on the line is masked: in a flow mapping the value's end is not known.
pub fn mask_secrets(line: &str) -> std::borrow::Cow<'_, str> {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b':' || !bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) {
            continue;
        }
        let key_end = if i > 0 && matches!(bytes[i - 1], b'"' | b'\'') {
            i - 1
        } else {
            i
        };
        let key_start = line[..key_end]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |p| p + 1);
        if !is_secret_key(&line[key_start..key_end]) {
            continue;
        }
        let rest = &line[i + 1..];
        let value_start = i + 1 + (rest.len() - rest.trim_start().len());
        let value = line[value_start..].trim_matches(|c| c == '"' || c == '\'');
        let reference = value.is_empty()
            || ["env:", "file:", "*"].iter().any(|p| value.starts_with(p))
            || value
                .split(|c: char| c == ',' || c == '}' || c.is_whitespace())
                .next()
                == Some("prompt");
        if reference {
            continue;
        }
        let masked: String = line[value_start..].chars().map(|_| '*').collect();
        return std::borrow::Cow::Owned(format!("{}{masked}", &line[..value_start]));
    }
    std::borrow::Cow::Borrowed(line)
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.is_empty() {
        return false;
    }
    ["pass", "pwd", "secret", "token"]
        .iter()
        .any(|w| k.contains(w))
        || k == "pw"
        || strsim::levenshtein(&k, "password") <= 2
}

/// The closest candidate to `word` among `candidates`, if one is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        let close = strsim::levenshtein(&lower, &c.to_ascii_lowercase()) <= 2.max(c.len() / 4);
        if (score >= 0.85 || close) && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_caret_under_the_span() {
        let src = "servers:\n  wsus-hq:\n    adress: 127.0.1.1\n";
        let d = Diagnostic::error(
            "unknown key `adress` in server `wsus-hq`",
            Span::at(3, 5, 6),
        )
        .with_label("did you mean `address`?");
        let text = render(&d, "lab.yaml", src);
        assert_eq!(
            text,
            "error: unknown key `adress` in server `wsus-hq`\n  --> lab.yaml:3:5\n   |\n 3 |     adress: 127.0.1.1\n   |     ^^^^^^ did you mean `address`?\n"
        );
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = ["address", "role", "upstream", "clients"];
        assert_eq!(did_you_mean("adress", keys), Some("address"));
        assert_eq!(did_you_mean("upstrem", keys), Some("upstream"));
        assert_eq!(did_you_mean("Role", keys), Some("role"));
        assert_eq!(did_you_mean("zzzz", keys), None);
    }

    #[test]
    fn render_all_counts_errors_not_warnings() {
        let d1 = Diagnostic::error("a", Span::at(1, 1, 1));
        let d2 = Diagnostic::warning("b", Span::at(1, 1, 1));
        let text = render_all(&[d1, d2], "f.yaml", "x: 1\n");
        assert!(
            text.ends_with("error: f.yaml is not valid: 1 error\n"),
            "{text}"
        );
    }

    #[test]
    fn snippets_never_show_a_password() {
        for (line, shown) in [
            ("  password: Passw0rd!", "  password: *********"),
            ("  pasword: 'Passw0rd!'", "  pasword: ***********"),
            (
                "defaults: { username: u, password: hunter2, winrm: {} }",
                "defaults: { username: u, password: ********************",
            ),
            ("  \"password\": x", "  \"password\": *"),
            ("  client_secret: abc", "  client_secret: ***"),
            (
                "  password: env:WSUSFIX_PASSWORD",
                "  password: env:WSUSFIX_PASSWORD",
            ),
            ("  password: file:pw.txt", "  password: file:pw.txt"),
            ("  password: prompt", "  password: prompt"),
            ("  password: *shared", "  password: *shared"),
            ("  address: 127.0.1.1", "  address: 127.0.1.1"),
            (
                "  role: upstream  # no secret here",
                "  role: upstream  # no secret here",
            ),
        ] {
            assert_eq!(mask_secrets(line), shown, "{line}");
        }
        let src = "defaults:\n  username: u\n  password: Hunter2-secret\n";
        let d = Diagnostic::error(
            "password of the defaults holds a literal password",
            Span::at(3, 13, 14),
        );
        let text = render(&d, "inv.yaml", src);
        assert!(!text.contains("Hunter2"), "{text}");
        assert!(
            text.contains(" 3 |   password: **************\n   |             ^^^^^^^^^^^^^^"),
            "{text}"
        );
    }
}
