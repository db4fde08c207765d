//! Log lines as admins paste them: what a ticket, a forum post, a web page or a chat does to a
//! log line, undone one line at a time, and a record of what was undone.
//!
//! A pasted line may be quoted (`> `, `>> `), wrapped in BBCode (`[code]...[/code]`,
//! `[quote="..."]`) or markdown (fences, backticks, `\*` escapes), carry HTML remnants (`&lt;`,
//! `<br>`) and typographic characters a page put in (non-breaking spaces, curly quotes). [`lines`]
//! returns each line with those removed and says which forms it had; the parsers then read the
//! record prefixes (or their placeholders) and split records that a page ran together, adding
//! their own [`Form`]s. Lines are never merged or renumbered here: evidence quotes the line as
//! written, by its number.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use super::line::numbered;

/// One way a line was read that a whole log file would not need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// Quoted with `> ` (mail, forums, markdown).
    Quoted,
    /// BBCode, markdown or HTML around or inside the text, or characters a web page substitutes
    /// (non-breaking spaces, curly quotes).
    Markup,
    /// Words in place of the date and time: `Date Time`, `Datum a čas`, `<DATE> <TIME>`.
    PlaceholderTime,
    /// The date and time are missing; the other prefix fields are there.
    NoTime,
    /// No record prefix at all: the message alone, perhaps after its component.
    NoPrefix,
    /// Several records on one line, as a page that dropped the line ends shows them.
    RunTogether,
    /// A line holding only placeholders (`<DATE>`), read as no record.
    PlaceholderOnly,
}

impl Form {
    const ALL: [Form; 7] = [
        Form::Quoted,
        Form::Markup,
        Form::PlaceholderTime,
        Form::NoTime,
        Form::NoPrefix,
        Form::RunTogether,
        Form::PlaceholderOnly,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// What the form means, for the text report.
    pub fn describe(self) -> &'static str {
        match self {
            Form::Quoted => "quoted with '>'",
            Form::Markup => "markup removed",
            Form::PlaceholderTime => "placeholder in place of the date and time",
            Form::NoTime => "no date and time",
            Form::NoPrefix => "no record prefix (message only)",
            Form::RunTogether => "several records run together on one line",
            Form::PlaceholderOnly => "placeholder only, no record",
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A set of [`Form`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Forms(u8);

impl Forms {
    /// No form: the line reads as in a whole file.
    pub const NONE: Forms = Forms(0);

    pub fn of(form: Form) -> Forms {
        Forms(form.bit())
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, form: Form) -> bool {
        self.0 & form.bit() != 0
    }

    pub fn insert(&mut self, form: Form) {
        self.0 |= form.bit();
    }

    pub fn with(mut self, form: Form) -> Forms {
        self.insert(form);
        self
    }

    pub fn union(self, other: Forms) -> Forms {
        Forms(self.0 | other.0)
    }

    /// The forms, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Form> {
        Form::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl Serialize for Forms {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Records read from a pasted text, and how they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastedRead<R> {
    pub records: Vec<R>,
    /// The lines read in a way a whole file would not need, ascending, each with its forms.
    pub lenient_lines: Vec<(usize, Forms)>,
    /// The words that stood in for the date and time (`Datum a čas`), as first written.
    pub placeholder: Option<String>,
}

/// One physical line of a pasted text: as written, and cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastedLine<'a> {
    /// 1-based line number.
    pub number: usize,
    /// The line as written.
    pub raw: &'a str,
    /// The line without quote markers and markup.
    pub text: Cow<'a, str>,
    /// What was removed ([`Form::Quoted`], [`Form::Markup`]).
    pub forms: Forms,
}

/// Every line of `text`, cleaned.
pub fn lines(text: &str) -> Vec<PastedLine<'_>> {
    numbered(text)
        .map(|line| {
            let (text, forms) = clean(line.text);
            PastedLine {
                number: line.number,
                raw: line.text,
                text,
                forms,
            }
        })
        .collect()
}

/// `line` without the quoting and markup a paste adds, and what was removed.
pub fn clean(line: &str) -> (Cow<'_, str>, Forms) {
    let mut forms = Forms::NONE;
    let mut text = Cow::Borrowed(line);

    if needs_unicode_cleanup(&text) {
        text = Cow::Owned(
            text.chars()
                .map(|c| match c {
                    '\u{a0}' | '\u{2007}' | '\u{202f}' | '\u{2002}' | '\u{2003}' | '\u{2009}' => {
                        ' '
                    }
                    '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{2033}' => '"',
                    '\u{2018}' | '\u{2019}' | '\u{201a}' => '\'',
                    other => other,
                })
                .filter(|c| *c != '\u{200b}' && *c != '\u{feff}')
                .collect(),
        );
        forms.insert(Form::Markup);
    }

    // Quote markers come first on the line, possibly nested (`> > `, `>>`), possibly inside
    // markup that a forum put around the quote.
    let unquoted = strip_quotes(&text);
    if unquoted.len() != text.len() {
        text = Cow::Owned(unquoted.to_string());
        forms.insert(Form::Quoted);
    }

    if is_code_fence(&text) {
        return (Cow::Borrowed(""), forms.with(Form::Markup));
    }
    if let Some(stripped) = strip_markup(&text) {
        text = Cow::Owned(stripped);
        forms.insert(Form::Markup);
        // A quote marker may sit inside markup: `[quote]> 2009-...`.
        let unquoted = strip_quotes(&text);
        if unquoted.len() != text.len() {
            text = Cow::Owned(unquoted.to_string());
            forms.insert(Form::Quoted);
        }
    }
    (text, forms)
}

/// True when a page put characters into the line that a log never has (non-breaking spaces,
/// curly quotes, zero-width spaces).
pub(crate) fn needs_unicode_cleanup(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(
            c,
            '\u{a0}'
                | '\u{2007}'
                | '\u{202f}'
                | '\u{2002}'
                | '\u{2003}'
                | '\u{2009}'
                | '\u{201c}'
                | '\u{201d}'
                | '\u{201e}'
                | '\u{2033}'
                | '\u{2018}'
                | '\u{2019}'
                | '\u{201a}'
                | '\u{200b}'
                | '\u{feff}'
        )
    })
}

/// `text` without leading quote markers: `>`, each followed by optional spaces.
fn strip_quotes(text: &str) -> &str {
    let mut rest = text.trim_start_matches([' ', '\t']);
    let mut stripped = false;
    while let Some(after) = rest.strip_prefix('>') {
        // `>>##  RESUMED  ## AU:` is the update agent's own text, not a quote.
        if after.starts_with(">##") || after.starts_with("##") {
            break;
        }
        rest = after.trim_start_matches([' ', '\t']);
        stripped = true;
    }
    if stripped { rest } else { text }
}

/// A markdown code fence: three or more backticks or tildes, with an optional language.
fn is_code_fence(text: &str) -> bool {
    let t = text.trim();
    (t.starts_with("```") || t.starts_with("~~~"))
        && t.trim_start_matches(['`', '~'])
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// BBCode tags whose brackets a paste puts around log text.
const BBCODE_TAGS: [&str; 20] = [
    "code",
    "quote",
    "b",
    "i",
    "u",
    "s",
    "color",
    "size",
    "font",
    "pre",
    "tt",
    "icode",
    "noparse",
    "spoiler",
    "plain",
    "highlight",
    "php",
    "html",
    "url",
    "log",
];

/// HTML tags a copied page may leave in the text.
const HTML_TAGS: [&str; 8] = ["br", "p", "pre", "code", "tt", "span", "div", "font"];

/// The text without BBCode tags, HTML tags and entities, markdown backticks and escapes; `None`
/// when it holds none.
fn strip_markup(text: &str) -> Option<String> {
    if !text.contains(['[', '<', '&', '`', '\\']) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let skip = match c {
            '[' => bbcode_tag_len(rest),
            '<' => html_tag_len(rest),
            '`' => Some(1),
            _ => None,
        };
        if let Some(len) = skip {
            // A tag between two words must not glue them together.
            if c != '`' && !out.is_empty() && !out.ends_with([' ', '\t']) {
                out.push(' ');
            }
            rest = &rest[len..];
            changed = true;
            continue;
        }
        if c == '&'
            && let Some((entity, len)) = entity(rest)
        {
            out.push(entity);
            rest = &rest[len..];
            changed = true;
            continue;
        }
        if c == '\\' {
            // `\*\* START \*\*`, `SyncUpdates\_WithRecovery`: markdown escapes. `\\` is left as
            // it is: Windows paths and UNC names use it.
            if let Some(next) = rest[1..].chars().next()
                && "*_#[]<>`|~+!".contains(next)
            {
                out.push(next);
                rest = &rest[1 + next.len_utf8()..];
                changed = true;
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then(|| collapse_edges(out))
}

/// Removed tags may leave spaces at the ends; the text between them stays as it was.
fn collapse_edges(s: String) -> String {
    let trimmed = s.trim_end();
    if trimmed.len() == s.len() {
        s
    } else {
        trimmed.to_string()
    }
}

/// Length of a BBCode tag at the start of `s` (`[code]`, `[/quote]`, `[quote="admin"]`,
/// `[color=red]`), or `None`.
fn bbcode_tag_len(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(']')?;
    let tag = inner[..end].strip_prefix('/').unwrap_or(&inner[..end]);
    let name_end = tag.find(['=', ' ']).unwrap_or(tag.len());
    let name = &tag[..name_end];
    BBCODE_TAGS
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name))
        .then_some(end + 2)
}

/// Length of an HTML tag of [`HTML_TAGS`] at the start of `s`, or `None`. Other angle brackets
/// (`<NULL>`, `<DATE>`, `<http://wsus/>`) are the log's own text.
fn html_tag_len(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('<')?;
    let end = inner.find('>')?;
    let tag = inner[..end].trim_end_matches('/').trim();
    let tag = tag.strip_prefix('/').unwrap_or(tag);
    let name_end = tag.find(' ').unwrap_or(tag.len());
    let name = &tag[..name_end];
    HTML_TAGS
        .iter()
        .any(|t| *t == name.to_ascii_lowercase())
        .then_some(end + 2)
}

/// An HTML entity at the start of `s` and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    const ENTITIES: [(&str, char); 8] = [
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&amp;", '&'),
        ("&quot;", '"'),
        ("&#39;", '\''),
        ("&apos;", '\''),
        ("&nbsp;", ' '),
        ("&#160;", ' '),
    ];
    ENTITIES
        .iter()
        .find(|(name, _)| s.starts_with(name))
        .map(|(name, c)| (*c, name.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaned(line: &str) -> (String, Vec<Form>) {
        let (text, forms) = clean(line);
        (text.into_owned(), forms.iter().collect())
    }

    #[test]
    fn a_line_of_a_log_file_is_left_alone() {
        for line in [
            "2009-03-27\t11:55:29:193\t1044\tafc\tPT\tWARNING: SyncUpdates failure, error = 0x8024400E",
            "2009-03-27\t11:55:29:224\t1044\tc04\tAU\t>>##  RESUMED  ## AU: Search for updates [CallId = {B5E7F3A1}]",
            "2009-03-27\t11:52:48:593\t1044\taa8\tAgent\t  * WSUS server: <NULL>",
            "2009-03-27\t11:56:31:100\t1044\tafc\tMisc\tWARNING: WinHttp: SendRequestUsingProxy failed for <http://wsus01/ClientWebService/client.asmx>. error 0x80072ee2",
            "   at Microsoft.UpdateServices.Internal.ClientImplementation.GetSyncInfo(DataAccess dataAccess, Hashtable stateTable)",
            "  = Process: C:\\WINDOWS\\System32\\svchost.exe",
            "** START **  Agent: Finding updates [CallerId = AutomaticUpdates]",
        ] {
            let (text, forms) = clean(line);
            assert!(matches!(text, Cow::Borrowed(_)), "{line}");
            assert_eq!(forms, Forms::NONE, "{line}");
        }
    }

    #[test]
    fn quotes_are_removed_however_nested() {
        assert_eq!(
            cleaned("> Date Time 788 ee4 PT WARNING: x"),
            ("Date Time 788 ee4 PT WARNING: x".into(), vec![Form::Quoted])
        );
        assert_eq!(
            cleaned(">> > 2009-03-27 11:55:29:193 1044 afc PT x").0,
            "2009-03-27 11:55:29:193 1044 afc PT x"
        );
        assert_eq!(cleaned(">").0, "");
        assert_eq!(
            cleaned(">>##  RESUMED  ## AU: Search for updates"),
            (">>##  RESUMED  ## AU: Search for updates".into(), vec![])
        );
    }

    #[test]
    fn bbcode_html_and_markdown_are_removed() {
        assert_eq!(
            cleaned("[code]Date Time 788 ee4 PT WARNING: SOAP Fault: 0x000190[/code]"),
            (
                "Date Time 788 ee4 PT WARNING: SOAP Fault: 0x000190".into(),
                vec![Form::Markup]
            )
        );
        assert_eq!(
            cleaned("[quote=\"admin\"]> Date Time 788 ee4 PT x"),
            (
                "Date Time 788 ee4 PT x".into(),
                vec![Form::Quoted, Form::Markup]
            )
        );
        assert_eq!(
            cleaned("&lt;DATE&gt; &lt;TIME&gt; UTC Error w3wp.130").0,
            "<DATE> <TIME> UTC Error w3wp.130"
        );
        assert_eq!(
            cleaned("`Agent \\*\\* START \\*\\*  Agent: Finding updates`").0,
            "Agent ** START **  Agent: Finding updates"
        );
        assert_eq!(
            cleaned("*FAILED\\* [80244007] SyncUpdates\\_WithRecovery failed").0,
            "*FAILED* [80244007] SyncUpdates_WithRecovery failed"
        );
        assert_eq!(
            cleaned("a +++<br>Date Time 788 ee4 PT b").0,
            "a +++ Date Time 788 ee4 PT b"
        );
        assert_eq!(cleaned("```text"), ("".into(), vec![Form::Markup]));
        assert_eq!(cleaned("~~~"), ("".into(), vec![Form::Markup]));
    }

    #[test]
    fn page_typography_is_undone() {
        assert_eq!(
            cleaned("Method:\u{201c}http://www.microsoft.com/x/SyncUpdates\u{201d}\u{a0}x"),
            (
                "Method:\"http://www.microsoft.com/x/SyncUpdates\" x".into(),
                vec![Form::Markup]
            )
        );
    }

    #[test]
    fn the_log_s_own_brackets_and_backslashes_stay() {
        for line in [
            "[CallerId = AutomaticUpdates]",
            "**  END  **  Service: Service exit [Exit code = 0x240001]",
            "<![LOG[Async searching completed.]LOG]!>",
            "\\\\server\\share",
        ] {
            assert_eq!(cleaned(line).0, line);
        }
    }

    #[test]
    fn lines_keep_their_numbers_and_raw_text() {
        let pasted = lines("> a\r\nb\n");
        assert_eq!(pasted.len(), 2);
        assert_eq!((pasted[0].number, pasted[0].raw), (1, "> a"));
        assert_eq!(pasted[0].text, "a");
        assert!(pasted[0].forms.contains(Form::Quoted));
        assert_eq!(pasted[1].forms, Forms::NONE);
    }

    #[test]
    fn forms_serialise_as_names() {
        let forms = Forms::of(Form::RunTogether).with(Form::Quoted);
        assert_eq!(
            serde_json::to_string(&forms).unwrap(),
            "[\"quoted\",\"run-together\"]"
        );
    }
}
