//! How a PowerShell script becomes a WinRS command: `-EncodedCommand` when the command line fits
//! cmd.exe's limit, otherwise a small fixed bootstrap that reads the script from stdin.
//!
//! WinRS runs the command through `cmd.exe /c`, whose command line is capped at 8191 characters;
//! `-EncodedCommand` (base64 of UTF-16LE) inflates a script 8/3-fold, so only about 3,050
//! characters of script fit. Longer scripts travel over stdin as base64 of their UTF-8 bytes
//! (plain ASCII, so the console code page cannot mangle it), sent in `rsp:Send` chunks; the
//! bootstrap decodes and runs them and passes the exit code on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// cmd.exe's maximum command-line length.
pub(crate) const CMD_LINE_MAX: usize = 8191;

/// Everything before the base64 text of `-EncodedCommand`.
pub(crate) const POWERSHELL_PREFIX: &str =
    "powershell.exe -NoProfile -NonInteractive -EncodedCommand ";

/// The stdin bootstrap. The token `[Console]::In.ReadToEnd()` is what the simulator (and any
/// reader of a captured command) recognises it by; keep it verbatim.
///
/// - reads all of stdin (base64 text, possibly with line breaks, which FromBase64String skips);
///   if the console host already consumed stdin into `$input`, takes it from there instead;
/// - decodes it as UTF-8 and runs it as a script block; an `exit N` inside ends powershell.exe
///   with N;
/// - otherwise exits 0 or 1 like `-EncodedCommand` does (status of the last statement);
/// - a script that cannot be read or parsed ends with exit code 254 and a message on stderr.
///
/// It sets no preferences of its own, so a script behaves the same whichever way it travels.
pub(crate) const STDIN_BOOTSTRAP: &str = "\
$wsusfixStdin = [Console]::In.ReadToEnd()
if (-not $wsusfixStdin) { $wsusfixStdin = [string]::Join('', @($input)) }
try {
    $wsusfixScript = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($wsusfixStdin))
    $wsusfixBlock = [ScriptBlock]::Create($wsusfixScript)
} catch {
    [Console]::Error.WriteLine('wsusfix bootstrap: cannot load the script from stdin: ' + $_)
    exit 254
}
& $wsusfixBlock
if ($?) { exit 0 } else { exit 1 }
";

/// Bytes of stdin text per `rsp:Send`. Base64 in the Stream element makes 64 KiB into an envelope
/// under 90 KB: well under WinRM 2.0's 150 KB MaxEnvelopeSizekb, sealing included.
pub(crate) const STDIN_CHUNK: usize = 64 * 1024;

/// How to start a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandPlan {
    /// The `rsp:Command` text.
    pub command_line: String,
    /// For the bootstrap: the stdin bytes (base64 of the script's UTF-8), sent with `rsp:Send`
    /// while `WINRS_CONSOLEMODE_STDIN` is FALSE.
    pub stdin: Option<Vec<u8>>,
}

/// `powershell.exe … -EncodedCommand <base64(UTF-16LE(script))>`.
pub(crate) fn encoded_command(script: &str) -> String {
    let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut line = String::with_capacity(POWERSHELL_PREFIX.len() + utf16.len() * 4 / 3 + 4);
    line.push_str(POWERSHELL_PREFIX);
    BASE64.encode_string(&utf16, &mut line);
    line
}

/// Chooses between `-EncodedCommand` and the stdin bootstrap for `script`.
pub(crate) fn plan(script: &str) -> CommandPlan {
    let direct = encoded_command(script);
    if direct.len() <= CMD_LINE_MAX {
        return CommandPlan {
            command_line: direct,
            stdin: None,
        };
    }
    CommandPlan {
        command_line: encoded_command(STDIN_BOOTSTRAP),
        stdin: Some(BASE64.encode(script.as_bytes()).into_bytes()),
    }
}

/// The longest script of only ASCII characters that still goes by `-EncodedCommand`.
#[cfg(test)]
fn max_direct_ascii_len() -> usize {
    // base64 of 2n bytes is 4 * ceil(2n / 3) characters.
    let budget = CMD_LINE_MAX - POWERSHELL_PREFIX.len();
    let mut n = budget * 3 / 8 + 2;
    while 4 * (2 * n).div_ceil(3) > budget {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_command(line: &str) -> String {
        let b64 = line.strip_prefix(POWERSHELL_PREFIX).unwrap();
        let bytes = BASE64.decode(b64).unwrap();
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).unwrap()
    }

    #[test]
    fn small_script_is_encoded_inline() {
        let p = plan("Write-Output 'h\u{e9}llo'; exit 3");
        assert!(p.stdin.is_none());
        assert_eq!(
            decode_command(&p.command_line),
            "Write-Output 'h\u{e9}llo'; exit 3"
        );
        // UTF-16LE of "W" is 57 00: base64 starts with "VwB".
        assert!(p.command_line.ends_with(
            &encoded_command("Write-Output 'h\u{e9}llo'; exit 3")[POWERSHELL_PREFIX.len()..]
        ));
        assert!(p.command_line[POWERSHELL_PREFIX.len()..].starts_with("VwB"));
    }

    #[test]
    fn switch_at_the_cmd_line_boundary() {
        let n = max_direct_ascii_len();
        assert!((3000..3100).contains(&n), "{n}");
        let fits = "a".repeat(n);
        let p = plan(&fits);
        assert!(p.stdin.is_none());
        assert!(p.command_line.len() <= CMD_LINE_MAX);
        assert!(p.command_line.len() > CMD_LINE_MAX - 4);

        let too_long = "a".repeat(n + 1);
        let p = plan(&too_long);
        assert!(encoded_command(&too_long).len() > CMD_LINE_MAX);
        let stdin = p.stdin.expect("bootstrap");
        assert_eq!(BASE64.decode(&stdin).unwrap(), too_long.as_bytes());
        assert_eq!(decode_command(&p.command_line), STDIN_BOOTSTRAP);
    }

    #[test]
    fn non_ascii_counts_in_utf16_units() {
        // An astral character is two UTF-16 units, so it costs twice as much as "a".
        let n = max_direct_ascii_len();
        let s = format!("{}\u{1F600}", "a".repeat(n - 2));
        assert!(plan(&s).stdin.is_none());
        let s = format!("{}\u{1F600}", "a".repeat(n - 1));
        assert!(plan(&s).stdin.is_some());
    }

    #[test]
    fn bootstrap_contract() {
        assert!(STDIN_BOOTSTRAP.contains("[Console]::In.ReadToEnd()"));
        let line = encoded_command(STDIN_BOOTSTRAP);
        assert!(line.len() < 2000, "{}", line.len());
        insta::assert_snapshot!(STDIN_BOOTSTRAP);
    }

    #[test]
    fn bootstrap_parses_as_powershell() {
        let mut parser = tree_sitter::Parser::new();
        parser
            .set_language(&tree_sitter_powershell::LANGUAGE.into())
            .unwrap();
        let tree = parser.parse(STDIN_BOOTSTRAP, None).unwrap();
        assert!(
            !tree.root_node().has_error(),
            "{}",
            tree.root_node().to_sexp()
        );
    }
}
