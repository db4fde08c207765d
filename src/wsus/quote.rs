//! PowerShell single-quoted literals. The only way a value from an inventory or playbook reaches
//! a script body is as the output of [`quote`], after a validator in [`super::arg`] accepted it.
//!
//! PowerShell's tokenizer treats five characters as single quotes: `'` and the typographic
//! U+2018, U+2019, U+201A and U+201B (the language specification's `single-quote-character`).
//! Inside a verbatim string any of them ends the string unless another one follows, in which case
//! the pair stands for the second character. Doubling each of them therefore keeps the value
//! intact and keeps the literal closed; nothing else is special between single quotes (`$`,
//! backticks and double quotes are plain characters there).

/// True for the characters PowerShell treats as single quotes.
pub fn is_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// `s` as a PowerShell single-quoted literal: every single-quote character doubled, the whole
/// wrapped in ASCII single quotes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if is_single_quote(c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Reads one single-quoted literal at the start of `text` the way PowerShell's tokenizer does.
/// Returns the value and the number of bytes the literal spans, or `None` when `text` does not
/// start with a closed literal. The reference for tests of [`quote`].
pub fn unquote_prefix(text: &str) -> Option<(String, usize)> {
    let mut chars = text.char_indices().peekable();
    match chars.next() {
        Some((_, c)) if is_single_quote(c) => {}
        _ => return None,
    }
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        if is_single_quote(c) {
            match chars.peek() {
                Some(&(_, next)) if is_single_quote(next) => {
                    value.push(next);
                    chars.next();
                }
                _ => return Some((value, i + c.len_utf8())),
            }
        } else {
            value.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_wrapped() {
        assert_eq!(quote("W3SVC"), "'W3SVC'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(calc) `n \"x\""), "'$(calc) `n \"x\"'");
    }

    #[test]
    fn every_single_quote_character_is_doubled() {
        assert_eq!(quote("O'Brien"), "'O''Brien'");
        assert_eq!(quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(
            quote("\u{2018}\u{201A}\u{201B}"),
            "'\u{2018}\u{2018}\u{201A}\u{201A}\u{201B}\u{201B}'"
        );
        // Double quotes, typographic or not, are not special inside single quotes.
        assert_eq!(quote("\u{201C}x\u{201D}"), "'\u{201C}x\u{201D}'");
    }

    #[test]
    fn unquote_follows_the_tokenizer() {
        assert_eq!(unquote_prefix("'a''b' rest"), Some(("a'b".into(), 6)));
        // A typographic quote closes the literal just like an ASCII one.
        assert_eq!(unquote_prefix("'a\u{2019}; calc"), Some(("a".into(), 5)));
        assert_eq!(
            unquote_prefix("'a\u{2019}'b'"),
            Some(("a'b".into(), 8)),
            "a mixed pair stands for its second character"
        );
        assert_eq!(unquote_prefix("'open"), None);
        assert_eq!(unquote_prefix("x'a'"), None);
    }

    #[test]
    fn quote_round_trips() {
        for s in [
            "",
            "'",
            "''",
            "\u{2018}\u{2019}\u{201A}\u{201B}'",
            "x'; Remove-Item C:\\ -Recurse; '",
            "\u{2019}; calc; \u{2019}",
            "line\nbreak\r\0nul",
            "${env:x} $(whoami) `$",
        ] {
            let q = quote(s);
            assert_eq!(unquote_prefix(&q), Some((s.to_string(), q.len())), "{s:?}");
        }
    }
}
