//! The command line of a WinRS Command, read as cmd.exe and powershell.exe would read it.
//!
//! A WinRS command runs through `cmd.exe /c` (WINRS_SKIP_CMD_SHELL is FALSE by default): a line
//! over 8191 characters is refused by cmd.exe, and a program other than PowerShell is not found
//! on a simulated host. PowerShell must carry its script as `-EncodedCommand` (base64 of
//! UTF-16LE), as pywinrm's `run_ps` and the project's client send it. Pure; no I/O.

use base64::Engine;

use super::host::ScriptOutcome;

/// cmd.exe's limit on the length of a command line (characters).
pub const MAX_COMMAND_LINE: usize = 8191;

/// The marker that makes a decoded script a stdin bootstrap: the real script (base64 of UTF-8)
/// follows on stdin, up to the Send that carries `End="true"`.
pub const BOOTSTRAP_MARKER: &str = "[Console]::In.ReadToEnd()";

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invocation {
    /// Run this PowerShell script.
    Script(String),
    /// The script is a stdin bootstrap: wait for stdin to end, then run what it carries.
    Bootstrap,
    /// cmd.exe or powershell.exe answers without running a script.
    Immediate(ScriptOutcome),
}

fn failure(message: &str) -> Invocation {
    Invocation::Immediate(ScriptOutcome {
        exit_code: 1,
        stdout: Vec::new(),
        stderr: message.as_bytes().to_vec(),
    })
}

/// Splits a command line into words the way the Microsoft C runtime does for the common cases:
/// whitespace separates, double quotes group (and are removed).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut have = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                have = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        out.push(cur);
    }
    out
}

/// powershell.exe parameters that take a value (PowerShell 2.0).
const VALUED: &[&str] = &[
    "psconsolefile",
    "version",
    "inputformat",
    "outputformat",
    "windowstyle",
    "executionpolicy",
];

/// Whether `name` (without the dash, lower case) selects -EncodedCommand: its unambiguous
/// prefixes and the `-e` / `-ec` aliases PowerShell accepts.
fn is_encoded_command(name: &str) -> bool {
    name == "e" || name == "ec" || (name.len() >= 2 && "encodedcommand".starts_with(name))
}

/// Reads the full command line (`rsp:Command` plus each `rsp:Arguments`, space-joined).
pub(crate) fn interpret(command: &str, arguments: &[String]) -> Invocation {
    let mut line = command.to_string();
    for arg in arguments {
        line.push(' ');
        line.push_str(arg);
    }
    if line.encode_utf16().count() > MAX_COMMAND_LINE {
        return failure("The command line is too long.\r\n");
    }
    let words = words(&line);
    let Some(program) = words.first() else {
        return Invocation::Immediate(ScriptOutcome::default());
    };
    let base = program.rsplit(['\\', '/']).next().unwrap_or(program);
    let base = base.to_ascii_lowercase();
    if base != "powershell" && base != "powershell.exe" {
        return failure(&format!(
            "'{program}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        ));
    }

    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        let Some(name) = word.strip_prefix('-').map(str::to_ascii_lowercase) else {
            break;
        };
        if is_encoded_command(&name) {
            let Some(encoded) = rest.next() else {
                return failure("Missing argument for parameter -EncodedCommand.\r\n");
            };
            return decode_script(encoded);
        }
        if name == "command" || name == "c" || name == "file" {
            break;
        }
        if VALUED
            .iter()
            .any(|p| name.len() >= 2 && p.starts_with(name.as_str()))
        {
            rest.next();
        }
    }
    failure("The simulated powershell.exe runs only scripts passed with -EncodedCommand.\r\n")
}

fn decode_script(encoded: &str) -> Invocation {
    let bad = || {
        failure(
            "Cannot process the command because the value specified with -EncodedCommand is not properly encoded. The value must be Base64 encoded.\r\n",
        )
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return bad();
    };
    if !bytes.len().is_multiple_of(2) {
        return bad();
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let script = String::from_utf16_lossy(&units);
    if script
        .to_ascii_lowercase()
        .contains(&BOOTSTRAP_MARKER.to_ascii_lowercase())
    {
        Invocation::Bootstrap
    } else {
        Invocation::Script(script)
    }
}

/// The script a bootstrap received on stdin: base64 (whitespace ignored) of UTF-8 text. On
/// failure, the outcome PowerShell would report.
pub(crate) fn bootstrap_script(stdin: &[u8]) -> Result<String, ScriptOutcome> {
    let compact: Vec<u8> = stdin
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let fail = |what: &str| ScriptOutcome {
        exit_code: 1,
        stdout: Vec::new(),
        stderr: format!(
            "Exception calling \"FromBase64String\" with \"1\" argument(s): \"{what}\"\r\n"
        )
        .into_bytes(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| fail("Invalid length for a Base-64 char array."))?;
    String::from_utf8(bytes).map_err(|_| fail("The script is not UTF-8."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(script: &str) -> String {
        let bytes: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn decodes_the_forms_clients_send() {
        let b64 = encode("Write-Output 'hé'");
        for line in [
            format!("powershell -encodedcommand {b64}"),
            format!("powershell.exe -NoProfile -NonInteractive -EncodedCommand {b64}"),
            format!("PowerShell -ExecutionPolicy Bypass -enc {b64}"),
            format!("\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -e {b64}"),
            format!("powershell -ec {b64}"),
        ] {
            assert_eq!(
                interpret(&line, &[]),
                Invocation::Script("Write-Output 'hé'".into()),
                "{line}"
            );
        }
        assert_eq!(
            interpret("powershell.exe", &["-EncodedCommand".into(), b64.clone()]),
            Invocation::Script("Write-Output 'hé'".into())
        );
    }

    #[test]
    fn answers_like_cmd_for_other_programs_and_long_lines() {
        let Invocation::Immediate(out) = interpret("ipconfig /all", &[]) else {
            panic!("expected an immediate answer")
        };
        assert_eq!(out.exit_code, 1);
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            "'ipconfig' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
        );
        let long = format!(
            "powershell -EncodedCommand {}",
            "A".repeat(MAX_COMMAND_LINE)
        );
        let Invocation::Immediate(out) = interpret(&long, &[]) else {
            panic!("expected an immediate answer")
        };
        assert_eq!(out.stderr, b"The command line is too long.\r\n");
        assert_eq!(out.exit_code, 1);
        let Invocation::Immediate(out) = interpret("powershell -EncodedCommand !!!", &[]) else {
            panic!("expected an immediate answer")
        };
        assert_eq!(out.exit_code, 1);
        assert!(matches!(
            interpret("powershell -Command Get-Date", &[]),
            Invocation::Immediate(_)
        ));
    }

    #[test]
    fn recognises_the_stdin_bootstrap() {
        let boot = encode(
            "$s=[Console]::In.ReadToEnd(); iex ([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($s)))",
        );
        assert_eq!(
            interpret(
                &format!("powershell.exe -NoProfile -NonInteractive -EncodedCommand {boot}"),
                &[]
            ),
            Invocation::Bootstrap
        );
        assert_eq!(
            bootstrap_script(b"V3JpdGUt\r\nT3V0cHV0IDE=\r\n"),
            Ok("Write-Output 1".to_string())
        );
        assert_eq!(bootstrap_script(b"***").unwrap_err().exit_code, 1);
    }
}
