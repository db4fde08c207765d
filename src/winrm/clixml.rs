//! Turns PowerShell's CLIXML stderr into readable text.
//!
//! When `powershell.exe` runs with redirected stderr it writes every non-output record (errors,
//! warnings, verbose, progress) as `#< CLIXML` followed by `<Objs>` documents. Only the error
//! strings (`<S S="Error">`) matter to a reader; progress records in particular would otherwise
//! flood the output. Strings escape control and non-XML characters as `_xHHHH_` (UTF-16 code
//! units), e.g. `_x000D__x000A_` for CRLF.

use super::xml::Document;

const MARKER: &str = "#< CLIXML";
const NS_PS: &str = "http://schemas.microsoft.com/powershell/2004/04";

/// Returns the error text of CLIXML stderr, or `stderr` unchanged if it is not CLIXML (or cannot
/// be parsed). Line ends are normalised to `\n` and trailing whitespace is removed.
pub(crate) fn clean_stderr(stderr: &str) -> String {
    if !stderr.trim_start().starts_with(MARKER) {
        return stderr.to_string();
    }
    match error_strings(stderr) {
        Some(text) => text.replace("\r\n", "\n").trim_end().to_string(),
        None => stderr.to_string(),
    }
}

fn error_strings(stderr: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = stderr;
    let mut documents = 0;
    while let Some(start) = rest.find("<Objs") {
        let end = rest[start..].find("</Objs>")? + start + "</Objs>".len();
        let doc = Document::parse(&rest.as_bytes()[start..end]).ok()?;
        for el in doc.root().children.iter() {
            if el.is(NS_PS, "S") && el.attr("S") == Some("Error") {
                out.push_str(&decode_escapes(&el.text));
            }
        }
        documents += 1;
        rest = &rest[end..];
    }
    (documents > 0).then_some(out)
}

/// Decodes `_xHHHH_` escapes (UTF-16 code units; surrogate pairs come as two escapes).
pub(crate) fn decode_escapes(text: &str) -> String {
    let mut units: Vec<u16> = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut plain_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'_'
            && i + 7 <= bytes.len()
            && bytes[i + 1] == b'x'
            && bytes[i + 6] == b'_'
            && bytes[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit)
            && let Ok(unit) = u16::from_str_radix(&text[i + 2..i + 6], 16)
        {
            units.extend(text[plain_start..i].encode_utf16());
            units.push(unit);
            i += 7;
            plain_start = i;
            continue;
        }
        i += 1;
    }
    units.extend(text[plain_start..].encode_utf16());
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERROR_AND_PROGRESS: &str = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj><S S=\"Error\">Write-Error \"boom &amp; bang\" : boom &amp; bang_x000D__x000A_</S><S S=\"Error\">    + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException_x000D__x000A_</S><S S=\"Warning\">careful_x000D__x000A_</S><S S=\"Error\">caf\u{e9} _xD83D__xDE00_ _x0009_tab_x000D__x000A_</S></Objs>";

    #[test]
    fn keeps_only_error_strings_and_decodes_escapes() {
        insta::assert_snapshot!(clean_stderr(ERROR_AND_PROGRESS), @r#"
        Write-Error "boom & bang" : boom & bang
            + CategoryInfo          : NotSpecified: (:) [Write-Error], WriteErrorException
        café 😀 	tab
        "#);
    }

    #[test]
    fn progress_only_becomes_empty() {
        let progress = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><MS><I64 N=\"SourceId\">1</I64></MS></Obj></Objs>";
        assert_eq!(clean_stderr(progress), "");
    }

    #[test]
    fn several_documents() {
        let two = "#< CLIXML\r\n<Objs xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">one_x000A_</S></Objs>#< CLIXML\r\n<Objs xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><S S=\"Error\">two_x000A_</S></Objs>";
        assert_eq!(clean_stderr(two), "one\ntwo");
    }

    #[test]
    fn plain_or_broken_stderr_is_kept() {
        assert_eq!(clean_stderr("plain error\r\n"), "plain error\r\n");
        let broken = "#< CLIXML\r\n<Objs><S S=\"Error\">unterminated";
        assert_eq!(clean_stderr(broken), broken);
    }

    #[test]
    fn escapes() {
        assert_eq!(decode_escapes("a_x000D__x000A_b"), "a\r\nb");
        assert_eq!(decode_escapes("_x005F_x0041_"), "_x0041_");
        assert_eq!(
            decode_escapes("_xZZZZ_ _x12_ tail_x"),
            "_xZZZZ_ _x12_ tail_x"
        );
        assert_eq!(decode_escapes("_xD83D__xDE00_"), "\u{1F600}");
        assert_eq!(decode_escapes("é_x00E9_"), "éé");
        assert_eq!(decode_escapes("_xé00_"), "_xé00_");
    }
}
